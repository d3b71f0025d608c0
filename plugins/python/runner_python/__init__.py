"""runner-python: tasks for the everyday Python loop, with their inputs and outputs
declared so that they cache well.

    py:test       pytest                      (the project has tests or a pytest config)
    py:lint       ruff check                  (it has a ruff config)
    py:format     ruff format                 (it has a ruff config; always runs)
    py:typecheck  mypy                        (it has a mypy config)
    py:build      a wheel and an sdist in dist/, with `python -m build`
                                              (it has a [build-system] or a setup.py)

A task is defined when the project is set up for its tool; `[tool.runner-python] tasks`
names them instead. Each tool runs as `python -m TOOL` with the interpreter runner runs
on, and its installed version is part of the task's fingerprint: upgrading ruff makes
py:lint run again. A tool that is not installed fails its task with the pip command that
installs it.
"""

from __future__ import annotations

import os
import sys

from runner import TaskError, sh, task

from .layout import Layout, read_layout

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from runner import Task
    from runner.loader import Project

__version__ = "0.1.0"
__all__ = ["__version__", "runner_add_tasks"]

PY = sys.executable
# Settings files at the root that change what the tools do.
CONFIG = ["pyproject.toml", "setup.cfg", "tox.ini"]


def runner_add_tasks(project: Project) -> list[Task]:
    """The py:* tasks the project is set up for (or that its settings name)."""
    layout = read_layout(project.root, project.tasksfile)
    return [MAKERS[kind](layout) for kind in layout.kinds]


def make_test(layout: Layout) -> Task:
    cmd = [PY, "-m", "pytest", *layout.args["test"]]
    version = installed_version("pytest")

    def test(k: str = "") -> None:
        """Run the tests (pytest); --k selects tests by name, as pytest -k does."""
        require("pytest", version)
        sh([*cmd, *(["-k", k] if k else [])])

    # Tests read data files too: every file of the sources and the tests is an input,
    # and the root's Python files (conftest.py) and settings, but not the tasksfile.
    inputs = [
        *layout.trees(),
        *layout.modules,
        "*.toml",
        "*.cfg",
        "*.ini",
        "!**/*.egg-info/**",
        f"!{layout.tasksfile}",
        *layout.inputs["test"],
    ]
    return task(name="py:test", inputs=inputs, env=["PYTEST_ADDOPTS"])(test)


def make_lint(layout: Layout) -> Task:
    cmd = [PY, "-m", "ruff", "check", *layout.args["lint"], *(layout.paths() or ["."])]
    version = installed_version("ruff")

    def lint() -> None:
        """Lint the code (ruff check)."""
        require("ruff", version)
        sh(cmd)

    inputs = [
        *(layout.code() or ["**/*.py"]),
        *CONFIG,
        "ruff.toml",
        ".ruff.toml",
        *layout.inputs["lint"],
    ]
    return task(name="py:lint", inputs=inputs)(lint)


def make_format(layout: Layout) -> Task:
    cmd = [PY, "-m", "ruff", "format", *layout.args["format"], *(layout.paths() or ["."])]
    version = installed_version("ruff")

    def format_code() -> None:
        """Format the code in place (ruff format)."""
        require("ruff", version)
        sh(cmd)

    # It rewrites its own inputs: not cached (ruff keeps a cache of its own).
    return task(name="py:format")(format_code)


def make_typecheck(layout: Layout) -> Task:
    targets = [] if layout.mypy_files else (layout.sources or ["."])
    cmd = [PY, "-m", "mypy", *layout.args["typecheck"], *targets]
    version = installed_version("mypy")

    def typecheck() -> None:
        """Type-check the code (mypy)."""
        require("mypy", version)
        sh(cmd)

    inputs = [*layout.all_code(), *CONFIG, "mypy.ini", ".mypy.ini", *layout.inputs["typecheck"]]
    return task(name="py:typecheck", inputs=inputs, env=["MYPYPATH"])(typecheck)


def make_build(layout: Layout) -> Task:
    cmd = [PY, "-m", "build", "--outdir", "dist", *layout.args["build"], "."]
    version = installed_version("build")

    def build() -> None:
        """Build the wheel and the sdist into dist/ (python -m build)."""
        require("build", version)
        sh(cmd)

    # An sdist can hold any file of the project: all of them are inputs.
    inputs = [*layout.everything(), *layout.inputs["build"]]
    return task(
        name="py:build",
        inputs=inputs,
        outputs=["dist/*.whl", "dist/*.tar.gz"],
        env=["SOURCE_DATE_EPOCH"],
    )(build)


MAKERS: dict[str, Callable[[Layout], Task]] = {
    "test": make_test,
    "lint": make_lint,
    "format": make_format,
    "typecheck": make_typecheck,
    "build": make_build,
}


def require(dist: str, version: str) -> None:
    if not version:
        raise TaskError(f"{dist} is not installed for {PY} (pip install {dist})")


def installed_version(dist: str) -> str:
    """The version of a distribution installed where this interpreter imports from,
    read from its .dist-info directory's name (importlib.metadata costs ~30 ms); ''
    when it is not installed."""
    prefix = dist.lower().replace("-", "_") + "-"
    for d in sys.path:
        try:
            names = os.listdir(d or ".")
        except OSError:
            continue
        for n in names:
            if n.endswith(".dist-info") and n.lower().startswith(prefix):
                return n[len(prefix) : -len(".dist-info")]
    return ""
