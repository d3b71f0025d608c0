"""Which Python a workflow's jobs set up: the newest Python 3 that both the project's
`requires-python` and runner itself allow, written as actions/setup-python reads it.

The specifiers are PEP 440's (`>=3.8`, `<3.13`, `~=3.11`, `!=3.12.*`, comma-joined),
compared on release numbers only (a pre-release is never what a workflow asks for).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# runner's own `requires-python` (pyproject.toml says the same; a test checks it).
RUNNER_REQUIRES_PYTHON = ">=3.10"

# Python 3 minors and patches looked at. A specifier that allows the last minor looked at
# has no upper bound that matters: the job gets the newest Python 3 there is ('3.x').
LAST_MINOR = 99
LAST_PATCH = 99

CLAUSE = re.compile(r"(===|==|!=|~=|<=|>=|<|>)\s*(\d+(?:\.\d+)*)(\.\*)?")


@dataclass(frozen=True)
class Clause:
    """One comparison of a version specifier: `>=3.8`, `!=3.12.*`."""

    op: str
    release: tuple[int, ...]
    wildcard: bool  # `==3.12.*`: a prefix match

    def allows(self, version: tuple[int, int, int]) -> bool:
        if self.wildcard:
            same = version[: len(self.release)] == self.release
            return same if self.op == "==" else not same
        if self.op == "~=":  # ~=3.11 means >=3.11, ==3.*
            prefix = self.release[:-1]
            return _pad(version) >= _pad(self.release) and version[: len(prefix)] == prefix
        ours, theirs = _pad(version), _pad(self.release)
        return {
            "==": ours == theirs,
            "===": ours == theirs,
            "!=": ours != theirs,
            "<=": ours <= theirs,
            ">=": ours >= theirs,
            "<": ours < theirs,
            ">": ours > theirs,
        }[self.op]


def _pad(release: tuple[int, ...]) -> tuple[int, ...]:
    return release + (0,) * (4 - len(release))


def parse_specifier(text: str) -> list[Clause]:
    """A comma-separated version specifier; ValueError naming the part it cannot read."""
    clauses = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        found = CLAUSE.fullmatch(part)
        if found is None:
            raise ValueError(f"cannot read {part!r} as a version specifier (like '>=3.10')")
        op, release, wildcard = found.groups()
        if op == "~=" and "." not in release or wildcard and op not in ("==", "!="):
            raise ValueError(f"cannot read {part!r} as a version specifier (like '>=3.10')")
        clauses.append(Clause(op, tuple(int(n) for n in release.split(".")), bool(wildcard)))
    return clauses


def newest_python(requires_python: str) -> str | None:
    """setup-python's `python-version` for the newest Python 3 that `requires_python` and
    runner both allow: '3.x' when nothing bounds it from above, '3.12' when the newest
    3.12 is allowed, '3.12.4' when only older ones are; None when no version is."""
    clauses = parse_specifier(requires_python) + parse_specifier(RUNNER_REQUIRES_PYTHON)
    for minor in range(LAST_MINOR, -1, -1):
        patches = [p for p in range(LAST_PATCH + 1) if _allowed(clauses, (3, minor, p))]
        if not patches:
            continue
        if minor == LAST_MINOR:
            return "3.x"
        if patches[-1] == LAST_PATCH:  # its newest patch is allowed: setup-python's pick
            return f"3.{minor}"
        return f"3.{minor}.{patches[-1]}"
    return None


def runner_supports(version: str) -> bool | None:
    """Whether runner runs on a `python-version` given as X.Y or X.Y.Z (X.Y: its newest
    patch); None for anything else setup-python takes (a range, '3.x', 'pypy3.10'),
    which is not checked here."""
    found = re.fullmatch(r"(\d+)\.(\d+)(?:\.(\d+))?", version)
    if found is None:
        return None
    major, minor, patch = found.groups()
    release = (int(major), int(minor), LAST_PATCH if patch is None else int(patch))
    return _allowed(parse_specifier(RUNNER_REQUIRES_PYTHON), release)


def _allowed(clauses: list[Clause], version: tuple[int, int, int]) -> bool:
    return all(c.allows(version) for c in clauses)
