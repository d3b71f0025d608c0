"""Snapshots: the up-to-date part of a run, checked in one pass.

When a cached task is found up to date with its inputs and outputs exactly as its
record says (the same stat data: no file read), runner keeps what that check looked
at: each directory listing (its mtime and inode), ignore file and absent name of its
inputs, each input and output with its stat data, and the task's key and the digests
of its code, arguments and env. A run's snapshot holds this for the longest run of such
tasks from the start of its order. The next run of the same tasks checks them in that
order, in one pass, without reading their records: a task whose observations and
digests are all the same (as are the global inputs, runner's cache format and the
Python version) is up to date for the same reasons as last time — a decision is a
function of those parts and of what the stat data shows. The first task that differs,
and every task after it, is decided one by one, as always: a task is covered only if
every task before it in the order is, so nothing that runs can have changed its inputs
after the check.

Nothing racy gets in: a snapshot holds only stat data that matched a record, and a
record keeps stat data taken within the clock's granularity of a write in a form that
never matches (runner.fingerprint). A snapshot older than an hour is not used, so that
a task's cache entry is marked used at least hourly (for `cache prune`), as without
snapshots.
"""

from __future__ import annotations

import os
import time

from . import fingerprint as fp

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

MAX_AGE = 3600.0  # seconds
FORMAT = 3  # of the entries below: part of the snapshot's name

# One task's entry: (name, key, code, args, env, saved, dirs, ignores, absent, inputs,
# input stats, outputs, output stats) — dirs [(rel, mtime_ns, inode)], ignores [(rel,
# stat key or None)], absent [rel], the input and output paths and their packed stat
# data (an output's own: a symlink is not followed).
Entry = tuple


def name_of(order: list[str]) -> str:
    """The snapshot's name for a run of these tasks, in this order."""
    text = "\0".join([fp.version_tag(""), f"snapshot-{FORMAT}", *order])
    return fp.digest(text.encode("utf-8", "surrogateescape")).hex()[:32]


def entry(
    name: str,
    key: bytes,
    code: bytes,
    args: dict[str, bytes],
    env: dict[str, bytes],
    saved: float,
    walk: dict[str, Any],
    inputs: tuple[Any, ...],
    outputs: tuple[Any, ...],
) -> Entry:
    """A task found up to date: what its check looked at (`walk`, and the records of
    its inputs and outputs: (paths, packed stat data, ...))."""
    return (
        name,
        key,
        code,
        args,
        env,
        saved,
        walk["dirs"],
        walk["ignores"],
        walk.get("absent", []),
        inputs[0],
        inputs[1],
        outputs[0],
        outputs[1],
    )


def make(entries: list[Entry], glob: bytes) -> dict[str, Any]:
    return {"created": time.time(), "glob": glob, "tasks": entries}


class Checker:
    """Checks a snapshot's entries in order against the files, memoising the stat data
    of the directories and ignore files that several tasks share."""

    def __init__(self, root: str, snap: dict[str, Any]) -> None:
        self.root = root
        self.fd = fp.root_fd(root)
        self.fresh = 0 <= time.time() - snap["created"] < MAX_AGE
        self._dirs: dict[str, Any] = {}
        self._files: dict[str, Any] = {}

    def holds(self, e: Entry, digests_match: Callable[[Entry], bool]) -> bool:
        """Is this task's entry still true: its digests (asked of `digests_match`)
        and every observation?"""
        if not self.fresh or not digests_match(e):
            return False
        stat = os.stat
        fd = self.fd
        for rel, mtime, ino in e[6]:
            now = self._dirs.get(rel)
            if now is None:
                try:
                    st = stat(rel or ".", dir_fd=fd)
                    now = (st.st_mtime_ns, st.st_ino)
                except OSError:
                    now = (-1, -1)
                self._dirs[rel] = now
            if now != (mtime, ino):
                return False
        for rel, was in e[7]:
            now = self._files.get(rel, self._files)
            if now is self._files:
                try:
                    now = fp.stat_key(stat(rel, dir_fd=fd))
                except OSError:
                    now = None
                self._files[rel] = now
            if now != was:
                return False
        for rel in e[8]:
            try:
                stat(rel, dir_fd=fd, follow_symlinks=False)
                return False  # a file named exactly has appeared
            except OSError:
                pass
        packed, vanished = fp.stat_pack(self.root, e[9])
        if vanished or packed != e[10]:
            return False
        if not e[11]:
            return True
        packed, vanished = fp.stat_pack(self.root, e[11], follow=False)
        return not vanished and packed == e[12]
