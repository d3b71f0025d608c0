"""What a job installs: the project (its own install command) and runner, unless the
project's install already brings runner. Install commands and requirements files are
read as pip reads them, far enough to tell which distributions they name."""

from __future__ import annotations

import os
import re
import shlex
from typing import Any

from .. import __version__

# runner's name on PyPI (the command and the import are `runner`; the name `runner` on
# PyPI is another project's).
DISTRIBUTION = "runner-tasks"
VERSION_OPERATOR = re.compile(r"\s*(===|==|!=|~=|<=|>=|<|>)")
REQUIREMENT_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?")


def default_install(root: str, pyproject: dict[str, Any]) -> str:
    """The project's own install command: with its `dev` extra when it has one; its
    requirements.txt when it is no package; '' when it has neither."""
    project = pyproject.get("project", {})
    if "dev" in project.get("optional-dependencies", {}):
        return "python -m pip install -e '.[dev]'"
    has_setup = any(os.path.isfile(os.path.join(root, f)) for f in ("setup.py", "setup.cfg"))
    if project or has_setup or "build-system" in pyproject:
        return "python -m pip install -e ."
    if os.path.isfile(os.path.join(root, "requirements.txt")):
        return "python -m pip install -r requirements.txt"
    return ""


def runner_install(requirement: str, install: str, root: str, pyproject: dict[str, Any]) -> str:
    """The command that installs runner in a job: `requirement` when it is set (a version
    or a range, a path, a URL); else this version of runner, unless the project's own
    install (`install`) already brings a requirement that names it ('')."""
    if "${{" in requirement:
        raise ValueError("must not hold a ${{ }} expression")
    if not requirement:
        if _normal(DISTRIBUTION) in installed_names(install, root, pyproject):
            return ""
        requirement = __version__
    if re.fullmatch(r"\d+(\.\d+)*", requirement):
        requirement = f"{DISTRIBUTION}=={requirement}"
    elif VERSION_OPERATOR.match(requirement):
        requirement = DISTRIBUTION + requirement.strip()
    return "python -m pip install " + _single_quoted(requirement)


def installed_names(install: str, root: str, pyproject: dict[str, Any]) -> set[str]:
    """The (normalized) names of the distributions an install command asks for: plain
    requirements, the project itself with its dependencies and the extras it names
    (`.[dev]`), requirements files (`-r FILE`) and dependency groups (`--group NAME`)."""
    try:
        words = shlex.split(install)
    except ValueError:
        words = install.split()
    return _names_in(words, root, pyproject, set())


def _names_in(words: list[str], base: str, pyproject: dict[str, Any], seen: set[str]) -> set[str]:
    names: set[str] = set()
    project = pyproject.get("project", {})
    words = list(words)
    while words:
        word = words.pop(0)
        option, _, attached = word.partition("=") if word.startswith("--") else (word, "", "")
        if option in ("-r", "--requirement"):
            target = attached or (words.pop(0) if words else "")
            names |= _requirements_file(os.path.join(base, target), pyproject, seen)
        elif option == "--group":
            group = attached or (words.pop(0) if words else "")
            listed = pyproject.get("dependency-groups", {}).get(group, [])
            names |= {_name_of(r) for r in listed if isinstance(r, str)}
        elif word.startswith("-"):
            continue
        elif (extras := _project_extras(word)) is not None:
            names.add(_normal(str(project.get("name", ""))))
            wanted = list(project.get("dependencies", []))
            for extra in extras:
                wanted += project.get("optional-dependencies", {}).get(extra, [])
            names |= {_name_of(r) for r in wanted if isinstance(r, str)}
        else:
            names.add(_name_of(word))
    return names - {""}


def _requirements_file(path: str, pyproject: dict[str, Any], seen: set[str]) -> set[str]:
    if path in seen:
        return set()
    seen.add(path)
    words = []
    for line in read_text(path).splitlines():
        line = line.split(" #", 1)[0].strip()
        if line and not line.startswith("#"):
            words += line.split()
    return _names_in(words, os.path.dirname(path), pyproject, seen)


def _project_extras(word: str) -> list[str] | None:
    """The extras of an install target that is the project itself (`.`, `./`, `.[a,b]`);
    None for any other word."""
    found = re.fullmatch(r"\./?(?:\[([^\]]*)\])?", word)
    if found is None:
        return None
    return [e.strip() for e in (found.group(1) or "").split(",") if e.strip()]


def _name_of(requirement: str) -> str:
    found = REQUIREMENT_NAME.match(requirement.strip())
    return _normal(found.group(0)) if found else ""


def _normal(name: str) -> str:
    """A distribution name as PyPI compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _single_quoted(text: str) -> str:
    """`text` as one word of a shell command, quoted as a reader expects to see it."""
    return "'" + text.replace("'", "'\"'\"'") + "'"


def read_text(path: str) -> str:
    """A file's text; '' when it cannot be read."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return ""
