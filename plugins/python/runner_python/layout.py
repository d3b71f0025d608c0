"""What a Python project looks like to the plugin: where its code and its tests are,
which tools it is set up for, and the `[tool.runner-python]` table that overrides both.
Read once per runner invocation, from pyproject.toml and the names at the project root
(no recursive walk: a project's size does not change what this costs)."""

from __future__ import annotations

import os

from runner.config import locate
from runner.errors import ConfigError, did_you_mean

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

TABLE = "tool.runner-python"
KINDS = ("test", "lint", "format", "typecheck", "build")
KEYS = ("tasks", "sources", "tests", "args", "inputs")
TEST_DIRS = ("tests", "test")
# Top-level directories that tools make or own: never part of the project's files.
GENERATED = frozenset(("build", "dist", "node_modules", "htmlcov", "site", "__pycache__"))


class Layout:
    """The project as the tasks see it; all paths relative to the root, '/'-separated."""

    __slots__ = (
        "root",
        "tasksfile",
        "kinds",
        "sources",
        "tests",
        "modules",
        "dirs",
        "args",
        "inputs",
        "mypy_files",
    )

    def __init__(
        self,
        root: str,
        tasksfile: str,
        kinds: list[str],
        sources: list[str],
        tests: list[str],
        modules: list[str],
        dirs: list[str],
        args: dict[str, list[str]],
        inputs: dict[str, list[str]],
        mypy_files: bool,
    ) -> None:
        self.root = root
        self.tasksfile = tasksfile  # relative
        self.kinds = kinds  # the py:* tasks to define
        self.sources = sources  # package directories (or files)
        self.tests = tests  # test directories
        self.modules = modules  # .py files at the root (conftest.py, setup.py, ...)
        self.dirs = dirs  # top-level directories that are the project's own
        self.args = args  # kind -> extra command-line arguments
        self.inputs = inputs  # kind -> extra input patterns
        self.mypy_files = mypy_files  # mypy's config names what it checks

    def code(self) -> list[str]:
        """Patterns for the Python files of `paths()`: what a linter is handed."""
        out = []
        for p in self.sources + self.tests:
            out += [p] if p.endswith((".py", ".pyi")) else [f"{p}/**/*.py", f"{p}/**/*.pyi"]
        return out + self.modules

    def all_code(self) -> list[str]:
        """Patterns for every Python file of the project (a type checker follows imports
        anywhere in it)."""
        out = ["*.py", "*.pyi"]
        for d in self.dirs:
            out += [f"{d}/**/*.py", f"{d}/**/*.pyi"]
        return out

    def trees(self) -> list[str]:
        """Patterns for every file of the sources and the tests (data files included);
        all of the project's files when it has neither."""
        if not self.sources and not self.tests:
            return self.everything()
        return [
            p if os.path.isfile(os.path.join(self.root, p)) else f"{p}/**"
            for p in self.sources + self.tests
        ]

    def paths(self) -> list[str]:
        """What to hand a linter: the sources, the tests and the root's .py files."""
        return self.sources + self.tests + self.modules

    def everything(self) -> list[str]:
        """Patterns for all of the project's files: the root's files and its own
        directories (not hidden ones, virtual environments or tools' output)."""
        return ["*", *(f"{d}/**" for d in self.dirs), "!**/*.egg-info/**"]


def read_layout(root: str, tasksfile: str) -> Layout:
    """The layout of the project at `root`; a bad `[tool.runner-python]` is a
    ConfigError naming the key and its line."""
    path = os.path.join(root, "pyproject.toml")
    doc, text = _read_toml(path)
    settings = _settings(doc, text, path)
    files, dirs = _root_entries(root)
    sources = settings.get("sources")
    if sources is None:
        sources = ["src"] if "src" in dirs else _packages(root, dirs)
    tests = settings.get("tests")
    if tests is None:
        tests = [d for d in TEST_DIRS if d in dirs]
    kinds = settings.get("tasks")
    if kinds is None:
        kinds = _configured(root, doc, set(files), tests)
    own = [d for d in dirs if d not in GENERATED and not d.endswith(".egg-info")]
    return Layout(
        root,
        os.path.relpath(tasksfile, root).replace(os.sep, "/"),
        [k for k in KINDS if k in kinds],
        sources,
        tests,
        sorted(f for f in files if f.endswith(".py")),
        sorted(d for d in own if not os.path.isfile(os.path.join(root, d, "pyvenv.cfg"))),
        {k: settings.get("args", {}).get(k, []) for k in KINDS},
        {k: settings.get("inputs", {}).get(k, []) for k in KINDS},
        _mypy_names_files(root, doc),
    )


def _packages(root: str, dirs: list[str]) -> list[str]:
    """The import packages at the root (a flat layout): directories with __init__.py."""
    return sorted(
        d
        for d in dirs
        if d not in TEST_DIRS and os.path.isfile(os.path.join(root, d, "__init__.py"))
    )


def _read_toml(path: str) -> tuple[dict[str, Any], str]:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        return {}, ""
    try:
        import tomllib
    except ImportError:  # Python < 3.11
        import tomli as tomllib  # type: ignore[no-redef]
    try:
        return tomllib.loads(text), text
    except tomllib.TOMLDecodeError as e:
        raise ConfigError("pyproject.toml", f"invalid TOML: {e}", file=path) from None


def _settings(doc: dict[str, Any], text: str, path: str) -> dict[str, Any]:
    """`[tool.runner-python]`, checked: every key known, every value of its type."""
    table = doc.get("tool", {}).get("runner-python", {})
    if not isinstance(table, dict):
        raise ConfigError(TABLE, "must be a table", file=path)

    def bad(within: str, key: str, problem: str) -> ConfigError:
        line = locate(text, within, key)
        return ConfigError(f"{within}.{key}", problem, file=path, line=line)

    out: dict[str, Any] = {}
    for key, value in table.items():
        if key not in KEYS:
            raise bad(TABLE, key, "unknown key" + did_you_mean(key, KEYS))
        if key in ("args", "inputs"):
            if not isinstance(value, dict):
                raise bad(TABLE, key, f"expected a table of task kinds ({', '.join(KINDS)})")
            within = f"{TABLE}.{key}"
            for kind, items in value.items():
                if kind not in KINDS:
                    raise bad(within, kind, "unknown task kind" + did_you_mean(kind, KINDS))
                problem = _not_strings(items) or (_not_relative(items) if key == "inputs" else "")
                if problem:
                    raise bad(within, kind, problem)
            out[key] = value
            continue
        problem = _not_strings(value) or (_not_relative(value) if key != "tasks" else "")
        if problem:
            raise bad(TABLE, key, problem)
        if key == "tasks":
            for kind in value:
                if kind not in KINDS:
                    raise bad(
                        TABLE,
                        key,
                        f"unknown task kind {kind!r}"
                        + did_you_mean(kind, KINDS)
                        + f"; the kinds: {', '.join(KINDS)}",
                    )
            out[key] = value
        else:
            out[key] = [p.strip("/") for p in value]
    return out


def _not_strings(value: object) -> str:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        return f"expected a list of strings, got {value!r}"
    return ""


def _not_relative(paths: list[str]) -> str:
    for p in paths:
        body = p.lstrip("!")
        if body.startswith(("/", "~")) or ".." in body.split("/"):
            return f"{p!r}: paths are relative to the project root, inside it"
    return ""


def _root_entries(root: str) -> tuple[list[str], list[str]]:
    """The names of the files and of the directories at the root (not hidden ones)."""
    files: list[str] = []
    dirs: list[str] = []
    with os.scandir(root) as entries:
        for e in entries:
            if e.name.startswith("."):
                continue
            try:
                (dirs if e.is_dir() else files).append(e.name)
            except OSError:
                continue
    return files, dirs


def _configured(root: str, doc: dict[str, Any], files: set[str], tests: list[str]) -> list[str]:
    """The kinds of task the project is set up for: it has tests, a ruff or mypy
    configuration, a build system."""
    tool = doc.get("tool", {})
    kinds = []
    if (
        tests
        or "pytest" in tool
        or {"pytest.ini", "conftest.py"} & files
        or _ini_has(root, "tox.ini", "pytest")
        or _ini_has(root, "setup.cfg", "tool:pytest")
    ):
        kinds.append("test")
    if "ruff" in tool or "ruff.toml" in files or os.path.isfile(os.path.join(root, ".ruff.toml")):
        kinds += ["lint", "format"]
    if _mypy_config(root, doc) is not None:
        kinds.append("typecheck")
    if "build-system" in doc or "setup.py" in files:
        kinds.append("build")
    return kinds


def _mypy_config(root: str, doc: dict[str, Any]) -> str | None:
    """Where mypy reads its settings from, in mypy's order: mypy.ini, .mypy.ini,
    pyproject.toml, setup.cfg; None if nowhere."""
    for name in ("mypy.ini", ".mypy.ini"):
        if os.path.isfile(os.path.join(root, name)):
            return name
    if "mypy" in doc.get("tool", {}):
        return "pyproject.toml"
    return "setup.cfg" if _ini_has(root, "setup.cfg", "mypy") else None


def _mypy_names_files(root: str, doc: dict[str, Any]) -> bool:
    """Does mypy's configuration say what to check (`files`)? Then mypy runs bare."""
    where = _mypy_config(root, doc)
    if where is None:
        return False
    if where == "pyproject.toml":
        settings = doc["tool"]["mypy"]
        return isinstance(settings, dict) and "files" in settings
    import configparser

    parser = configparser.ConfigParser()
    try:
        parser.read(os.path.join(root, where), encoding="utf-8")
    except configparser.Error:
        return False
    return parser.has_option("mypy", "files")


def _ini_has(root: str, name: str, section: str) -> bool:
    try:
        with open(os.path.join(root, name), encoding="utf-8", errors="replace") as f:
            return any(line.strip() == f"[{section}]" for line in f)
    except OSError:
        return False
