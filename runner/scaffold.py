"""`runner init`: a starter tasksfile for the project as it is, and the state directory
kept out of git.

The starter uses what the project has: its sources (`src/`, or the packages at the
root), its tests (`tests/` or `test/` with test files in them), and the tools
pyproject.toml (or their own config files) sets up — pytest, ruff, mypy — when the
Python running runner can run them. `check`, the default task, depends on those. In a
directory with none of them, `hello` is the default and `check` depends on nothing:
the starter passes where it was written.
"""

from __future__ import annotations

import os

from .errors import UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, TextIO

HEADER = '''\
"""This project's tasks. `runner --list` shows them; `runner` runs the default one."""
'''

EMPTY = '''
from runner import task


@task(default=True)
def hello(name: str = "world"):
    """Say hello (try: runner hello --name=you)."""
    print(f"hello, {name}")


@task
def check():
    """Everything that must pass before a merge (add tests and linters to its deps)."""
'''

TEST_DIRS = ("tests", "test")


class Survey:
    """What `runner init` found in the project: where the code and the tests are, and
    which tools are set up (and installed)."""

    __slots__ = ("sources", "tests", "configs", "tools", "missing", "mypy_files")

    def __init__(self, directory: str) -> None:
        doc = _pyproject(directory)
        names = set(os.listdir(directory))
        tool = doc.get("tool", {}) if isinstance(doc.get("tool"), dict) else {}
        if os.path.isdir(os.path.join(directory, "src")):
            self.sources = ["src"]
        else:
            self.sources = sorted(
                d
                for d in names
                if d not in TEST_DIRS and os.path.isfile(os.path.join(directory, d, "__init__.py"))
            )
        self.tests = [d for d in TEST_DIRS if _has_tests(os.path.join(directory, d))]
        self.configs = sorted(
            n for n in ("pyproject.toml", "setup.cfg", "pytest.ini", "conftest.py") if n in names
        )
        wanted = {
            "pytest": bool(self.tests),
            "ruff": "ruff" in tool or bool(names & {"ruff.toml", ".ruff.toml"}),
            "mypy": "mypy" in tool or "mypy.ini" in names,
        }
        self.tools = [t for t, on in wanted.items() if on and _installed(t)]
        self.missing = [t for t, on in wanted.items() if on and t not in self.tools]
        self.mypy_files = "files" in tool.get("mypy", {})

    def code(self) -> list[str]:
        """Input patterns for the project's Python code and its configuration."""
        patterns = [f"{d}/**/*.py" for d in self.sources] if self.sources else ["*.py"]
        return patterns + self.configs


def render(survey: Survey) -> str:
    """The starter tasksfile's text."""
    if not survey.tools:
        return HEADER + _missing_note(survey) + EMPTY
    lines = [HEADER + _missing_note(survey), "import sys\n", "from runner import sh, task\n"]
    lines.append("PY = sys.executable  # the Python runner runs with, and its tools")
    lines.append(f"CODE = {_strings(survey.code())}")
    tests = [f"{d}/**/*.py" for d in survey.tests]
    if tests:
        lines.append(f"TESTS = {_strings(tests)}")
    lines.append("")
    deps = []
    if "pytest" in survey.tools:
        deps.append("test")
        lines.append(_TEST)
    if "ruff" in survey.tools:
        deps.append("lint")
        lines.append(_LINT.replace("INPUTS", "[*CODE, *TESTS]" if tests else "CODE"))
    if "mypy" in survey.tools:
        deps.append("typecheck")
        targets = [] if survey.mypy_files else (survey.sources or ["."])
        where = "".join(f", {_string(t)}" for t in targets)  # none: its config names them
        lines.append(_TYPECHECK.replace(", WHERE", where))
    lines.append(_CHECK.replace("DEPS", ", ".join(deps)))
    return "\n".join(lines).rstrip() + "\n"


_TEST = '''
@task(inputs=[*CODE, *TESTS], env=["PYTEST_ADDOPTS"])
def test(k: str = ""):
    """Run the tests (skipped when nothing they read changed since they passed)."""
    sh([PY, "-m", "pytest", "-q", *(["-k", k] if k else [])])
'''

_LINT = '''
@task(inputs=INPUTS)
def lint():
    """Lint the code (ruff)."""
    sh([PY, "-m", "ruff", "check", "."])
'''

_TYPECHECK = '''
@task(inputs=CODE)
def typecheck():
    """Type-check the code (mypy)."""
    sh([PY, "-m", "mypy", WHERE])
'''

_CHECK = '''
@task(deps=[DEPS], default=True)
def check():
    """Everything that must pass before a merge."""
'''


def _string(text: str) -> str:
    """A Python string literal in double quotes, as the formatter writes them."""
    import json

    return json.dumps(text)


def _strings(items: list[str]) -> str:
    return "[" + ", ".join(_string(t) for t in items) + "]"


def _missing_note(survey: Survey) -> str:
    """A comment naming the tools the project sets up that this Python cannot run."""
    if not survey.missing:
        return ""
    names = ", ".join(survey.missing)
    note = (
        f"# Set up in this project but not installed for this Python, so left out: {names}.\n"
        "# Install, delete this file and run `runner init` again for a task each.\n"
    )
    return "\n" + note


def _pyproject(directory: str) -> dict[str, Any]:
    path = os.path.join(directory, "pyproject.toml")
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError:
        return {}
    try:
        import tomllib
    except ImportError:  # Python < 3.11
        import tomli as tomllib  # type: ignore[no-redef]
    try:
        doc = tomllib.loads(raw.decode("utf-8", errors="replace"))
    except tomllib.TOMLDecodeError:
        return {}  # runner itself reports a broken pyproject.toml when it reads it
    return doc


def _has_tests(directory: str) -> bool:
    """Does this directory hold a test file pytest would collect?"""
    for _dirpath, dirnames, files in os.walk(directory):
        dirnames[:] = [d for d in dirnames if not d.startswith(".") and d != "__pycache__"]
        if any(
            f.endswith(".py") and (f.startswith("test_") or f.endswith("_test.py")) for f in files
        ):
            return True
    return False


def _installed(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def init_project(directory: str, out: TextIO, extra: list[str]) -> int:
    if extra:
        raise UsageError(f"`runner init` takes no arguments, got {' '.join(extra)!r}")
    path = os.path.join(directory, "tasksfile.py")
    if os.path.exists(path):
        raise UsageError(f"{path} already exists; runner init leaves it alone")
    survey = Survey(directory)
    with open(path, "x", encoding="utf-8") as f:
        f.write(render(survey))
    out.write(
        f"wrote {path}" + (f" (tasks for {', '.join(survey.tools)})" if survey.tools else "") + "\n"
    )
    if _ignore_state_dir(directory):
        out.write(f"added .runner/ to {os.path.join(directory, '.gitignore')}\n")
    return 0


def _ignore_state_dir(directory: str) -> bool:
    """Add `.runner/` to the project's .gitignore unless it is there already."""
    path = os.path.join(directory, ".gitignore")
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        text = ""
    entries = {line.strip().rstrip("/").lstrip("/") for line in text.splitlines()}
    if ".runner" in entries:
        return False
    with open(path, "a", encoding="utf-8") as f:
        if text and not text.endswith("\n"):
            f.write("\n")
        f.write(".runner/\n")
    return True
