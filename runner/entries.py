"""Cache entries: what one successful run of a task produced, and the rule an entry must
obey before anything of it is restored.

An entry lists the task's outputs, each one of

    a file        its path, the digest of its content (its blob in runner.cas), its
                  mode and size
    a symlink     its path and its target text, as the Remote Execution API's
                  output_symlinks keep them (never the file it points to)
    a directory   its path: one the task left empty, under a directory its `outputs`
                  name (restored empty)

`capture` makes an output of what a task left. The state database keeps an output as
a row (path, digest, mode, size, target), a remote as JSON (`to_json`). `mode` is a
file type (S_IFREG, S_IFLNK, S_IFDIR) and permission bits (0o777 at most). A symlink's
digest is that of its target text, a directory's is NO_DIGEST: the digests that
runner.fingerprint's scan gives them.

**Entries are untrusted input** (SPEC §4): a remote may be written by anyone who can
reach it, and local state can be tampered with. `refusal` is the one rule. Every
restore applies it before it touches a file (runner.restore), an entry from a remote
is checked by it before its blobs are fetched, whatever the backend (runner.plan), and
a run's own outputs are checked by it before they are stored, so that runner never
makes an entry it would refuse. An entry may restore only:

- normalised relative paths inside the project root (no `..`, no `.`, no empty or
  absolute path), none in `.git` or another directory runner never matches
  (runner.globs.ALWAYS_SKIPPED), nor in the cache directory;
- paths the task's own `outputs` patterns match;
- paths reached without a symbolic link: no directory on the way may be one (the
  restore itself opens each with O_NOFOLLOW, so a link that appears after this check
  is not followed either), and no output may be the parent of another;
- files, symlinks and directories with permission bits only (no setuid, setgid or
  sticky bit);
- symlinks whose target stays in the project: relative, and resolving inside the root
  (as written, and through the links that exist), not into a directory runner never
  matches.

An entry that breaks the rule is refused whole; the caller reports it and treats it as
a miss. The no-op path does not call it: an entry is checked when it is read from a
remote or restored, not when a run finds the outputs already as it left them.
"""

from __future__ import annotations

import os
import posixpath
import stat
import time

from . import globs
from .fingerprint import NO_DIGEST, digest, stat_key

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from typing import Any

    from .cas import Blobs

FILE = stat.S_IFREG
SYMLINK = stat.S_IFLNK
DIRECTORY = stat.S_IFDIR
PERMISSIONS = 0o777

# Two modes are the same output when these bits are.
_COMPARED = stat.S_IFMT(0o177777) | PERMISSIONS


class Malformed(ValueError):
    """An entry whose rows or JSON are not of the form runner writes."""


class Refused(Exception):
    """An entry that breaks the rule; str() says which output and why."""


class Output:
    """One output of a cache entry."""

    __slots__ = ("path", "digest", "mode", "size", "target")

    def __init__(self, path: str, digest: bytes, mode: int, size: int, target: str = "") -> None:
        self.path = path
        self.digest = digest
        self.mode = mode
        self.size = size
        self.target = target

    @classmethod
    def file(cls, path: str, d: bytes, st_mode: int, size: int) -> Output:
        return cls(path, d, FILE | (st_mode & PERMISSIONS), size)

    @classmethod
    def symlink(cls, path: str, target: str) -> Output:
        raw = os.fsencode(target)
        return cls(path, digest(raw), SYMLINK | PERMISSIONS, len(raw), target)

    @classmethod
    def directory(cls, path: str, st_mode: int) -> Output:
        return cls(path, NO_DIGEST, DIRECTORY | (st_mode & PERMISSIONS), 0)

    @property
    def kind(self) -> int:
        return stat.S_IFMT(self.mode)

    def row(self) -> tuple[str, bytes, int, int, str]:
        return (self.path, self.digest, self.mode, self.size, self.target)

    def __repr__(self) -> str:
        return f"Output({self.path!r}, {oct(self.mode)})"


def same_mode(a: int, b: int) -> bool:
    """Do two st_mode values mean the same output (file type and permission bits)?"""
    return (a ^ b) & _COMPARED == 0


def capture(root: str, path: str, blobs: Blobs) -> tuple[Output, os.stat_result, int] | None:
    """An output as a task left it: a file (copied into the store while it is hashed),
    a symlink (its target), an empty directory; with its own stat data and when it was
    read. None if it is gone, or no longer what it was a moment ago."""
    full = os.path.join(root, path)
    try:
        st = os.lstat(full)
        if stat.S_ISLNK(st.st_mode):
            at = time.time_ns()
            output = Output.symlink(path, os.readlink(full))
            return (output, st, at) if stat_key(os.lstat(full)) == stat_key(st) else None
        if stat.S_ISDIR(st.st_mode):
            return Output.directory(path, st.st_mode), st, time.time_ns()
    except OSError:
        return None
    got = blobs.ingest(full)
    if got is None:
        return None
    st, d, hashed_at = got
    return Output.file(path, d, st.st_mode, st.st_size), st, hashed_at


# ---------------------------------------------------------------- stored forms


def from_rows(rows: Iterable[Any]) -> list[Output]:
    """The outputs of rows read from the state database."""
    found = []
    for row in rows:
        if not isinstance(row, tuple) or len(row) != 5:
            raise Malformed(f"an output row of the form {type(row).__name__}")
        path, d, mode, size, target = row
        found.append(_checked(path, d, mode, size, target))
    return found


def to_rows(outputs: Iterable[Output]) -> list[tuple[str, bytes, int, int, str]]:
    return [o.row() for o in outputs]


def row_paths(rows: list[Any]) -> list[str]:
    return [row[0] for row in rows]


def blobs_of(rows: Iterable[Any]) -> list[tuple[bytes, int]]:
    """(digest, size) of the blobs stored rows refer to: their files' (rows of runner's
    earlier formats included, which held files only)."""
    found = []
    for row in rows:
        try:
            if stat.S_ISREG(row[2]) and isinstance(row[1], bytes):
                found.append((row[1], int(row[3])))
        except (IndexError, TypeError, ValueError):
            continue
    return found


def to_json(outputs: Iterable[Output]) -> dict[str, list[dict[str, Any]]]:
    """The outputs as a remote keeps them (the fields of REAPI's ActionResult:
    output files, symlinks and directories)."""
    files, links, dirs = [], [], []
    for o in outputs:
        if o.kind == SYMLINK:
            links.append({"path": o.path, "target": o.target})
        elif o.kind == DIRECTORY:
            dirs.append({"path": o.path, "mode": o.mode})
        else:
            files.append({"path": o.path, "digest": o.digest.hex(), "mode": o.mode, "size": o.size})
    return {"files": files, "symlinks": links, "directories": dirs}


def from_json(raw: Any) -> list[Output]:
    """The outputs of an entry read from a remote; Malformed if it is not of the form
    to_json writes."""
    if not isinstance(raw, dict):
        raise Malformed("an entry that is not a JSON object")
    found = []
    try:
        for f in raw["files"]:
            d = bytes.fromhex(_text(f["digest"]))
            found.append(_checked(f["path"], d, f["mode"], f["size"], "", FILE))
        for s in raw["symlinks"]:
            found.append(_checked(s["path"], None, SYMLINK | PERMISSIONS, None, s["target"]))
        for d in raw["directories"]:
            found.append(_checked(d["path"], NO_DIGEST, d["mode"], 0, "", DIRECTORY))
    except (KeyError, TypeError) as e:
        raise Malformed(f"an entry without {e}") from None
    return found


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise Malformed(f"{value!r} where text belongs")
    return value


def _checked(
    path: Any, d: Any, mode: Any, size: Any, target: Any, kind: int | None = None
) -> Output:
    """An Output from stored fields, each of the right type (and of file type `kind`,
    when its place says; what the fields say is for `refusal`). A symlink's digest and
    size follow from its target."""
    if not isinstance(mode, int) or isinstance(mode, bool):
        raise Malformed(f"mode {mode!r}")
    if kind is not None and stat.S_IFMT(mode) != kind:
        raise Malformed(f"mode {oct(mode)} where a mode of type {oct(kind)} belongs")
    if stat.S_ISLNK(mode):
        return Output.symlink(_text(path), _text(target))
    if not isinstance(d, bytes) or len(d) != 32:
        raise Malformed(f"digest {d!r}")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise Malformed(f"size {size!r}")
    return Output(_text(path), d, mode, size, "")


# ---------------------------------------------------------------- the rule


def refusal(
    outputs: list[Output], patterns: Sequence[str], root: str, never: Iterable[str] = ()
) -> str | None:
    """Why this entry must not be restored in the project at `root` for a task whose
    `outputs` are `patterns` (naming the first output that breaks the rule), or None.
    `never`: directories, relative to the root, that no output may be in (the cache
    directory). See the module's docstring for the rule."""
    never = [n for n in never if n and not n.startswith("..")]
    seen: set[str] = set()
    links: dict[str, bool] = {}  # directory -> is it (or one above it) a symlink?
    for o in outputs:
        why = _path_refusal(o.path, never) or _mode_refusal(o)
        if why is None and not globs.matches(patterns, o.path):
            why = "is not one of the task's outputs"
        if why is None and o.path in seen:
            why = "is listed twice"
        if why is None:
            why = _link_on_the_way(root, posixpath.dirname(o.path), links)
        if why is None and o.kind == SYMLINK:
            why = _target_refusal(root, o, never)
        if why is not None:
            return f"output {o.path!r} {why}"
        seen.add(o.path)
    for p in seen:
        parent = posixpath.dirname(p)
        while parent:
            if parent in seen:
                return f"output {parent!r} is the parent of another output ({p!r})"
            parent = posixpath.dirname(parent)
    return None


def _path_refusal(path: str, never: list[str]) -> str | None:
    if not path or "\0" in path:
        return "has an empty or unusable path"
    if path.startswith("/"):
        return "has an absolute path"
    parts = path.split("/")
    if ".." in parts:
        return "leaves the project (..)"
    if posixpath.normpath(path) != path:
        return "has a path that is not normalised"
    return _inside_a_skipped_directory(parts, never)


def _inside_a_skipped_directory(parts: list[str], never: list[str]) -> str | None:
    for name in parts:
        if name in globs.ALWAYS_SKIPPED:
            return f"is inside {name}, which runner never matches"
    joined = "/".join(parts)
    for d in never:
        if joined == d or joined.startswith(d + "/"):
            return f"is inside the cache directory {d}"
    return None


def _mode_refusal(o: Output) -> str | None:
    if o.kind not in (FILE, SYMLINK, DIRECTORY):
        return f"is neither a file, a symlink nor a directory (mode {oct(o.mode)})"
    if stat.S_IMODE(o.mode) & ~PERMISSIONS:
        return f"has more than permission bits (mode {oct(o.mode)})"
    return None


def _link_on_the_way(root: str, parent: str, memo: dict[str, bool]) -> str | None:
    """The first directory on the way from the root to `parent` that is a symbolic
    link, named; None if there is none (a directory not there yet is made by the
    restore, which opens each directory without following a link)."""
    d = ""
    for name in parent.split("/") if parent else ():
        d = f"{d}/{name}" if d else name
        link = memo.get(d)
        if link is None:
            try:
                link = stat.S_ISLNK(os.lstat(os.path.join(root, d)).st_mode)
            except OSError:
                link = False
            memo[d] = link
        if link:
            return f"is reached through a symbolic link ({d})"
    return None


def _target_refusal(root: str, o: Output, never: list[str]) -> str | None:
    """Why a symlink output's target is not allowed, or None."""
    target = o.target
    if not target or "\0" in target:
        return "is a symbolic link with an empty or unusable target"
    if target.startswith("/"):
        return f"is a symbolic link that leaves the project ({target})"
    lexical = posixpath.normpath(posixpath.join(posixpath.dirname(o.path), target))
    if lexical == ".." or lexical.startswith("../"):
        return f"is a symbolic link that leaves the project ({target})"
    if lexical != ".":
        inside = _inside_a_skipped_directory(lexical.split("/"), never)
        if inside is not None:
            return f"is a symbolic link to a path that {inside} ({target})"
    real_root = os.path.realpath(root)
    resolved = os.path.realpath(os.path.join(real_root, posixpath.dirname(o.path), target))
    if resolved != real_root and not resolved.startswith(real_root + os.sep):
        return f"is a symbolic link that resolves outside the project ({target})"
    return None
