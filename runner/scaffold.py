"""`runner init`: a starter tasksfile, and the state directory kept out of git."""

from __future__ import annotations

import os

from .errors import UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import TextIO

TEMPLATE = '''\
"""This project's tasks. `runner --list` shows them; `runner` runs the default one."""

from runner import sh, task


@task(default=True)
def hello(name: str = "world"):
    """Say hello (try: runner hello --name=you)."""
    print(f"hello, {name}")


@task(inputs=["**/*.py"], env=["PYTEST_ADDOPTS"])
def test(k: str = ""):
    """Run the tests (skipped when no .py file changed since they last passed)."""
    sh(["python", "-m", "pytest", "-q", *(["-k", k] if k else [])])


@task(deps=[test])
def check():
    """Everything that must pass before a merge."""
'''


def init_project(directory: str, out: TextIO, extra: list[str]) -> int:
    if extra:
        raise UsageError(f"`runner init` takes no arguments, got {' '.join(extra)!r}")
    path = os.path.join(directory, "tasksfile.py")
    if os.path.exists(path):
        raise UsageError(f"{path} already exists; runner init leaves it alone")
    with open(path, "x", encoding="utf-8") as f:
        f.write(TEMPLATE)
    out.write(f"wrote {path}\n")
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
