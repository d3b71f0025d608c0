"""Snapshots: a no-op run checked in one pass.

A run in which every cached task was up to date, each with its inputs and outputs
exactly as its record says (the same stat data: no file read), leaves a snapshot of
what those checks looked at: each directory listing (its mtime and inode), ignore
file, file named but absent, input and output with its stat data, and each task's key
and the digests of its code, arguments and env. The next run of the same tasks stats
all of it in one pass. When every observation is the same, and so are each task's
code, arguments, env, the global inputs, runner's cache format and the Python version,
every task is up to date again, for the same reasons: a decision is a function of
those parts and of what the stat data shows. The per-task records are not even read.
When anything differs, the run decides task by task, as always.

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
    from typing import Any

MAX_AGE = 3600.0  # seconds


def name_of(order: list[str]) -> str:
    """The snapshot's name for a run of these tasks, in this order."""
    text = "\0".join([fp.version_tag(""), *order])
    return fp.digest(text.encode("utf-8", "surrogateescape")).hex()[:32]


class Evidence:
    """What the checks of one run looked at, task by task; `build()` makes the
    snapshot, or None when two checks saw one file differently."""

    def __init__(self) -> None:
        self.tasks: list[tuple[str, bytes, bytes, dict[str, bytes], dict[str, bytes], float]] = []
        self.dirs: dict[str, tuple[int, int]] = {}
        self.ignores: dict[str, Any] = {}
        self.absent: set[str] = set()
        self.files: dict[str, bytes] = {}
        self.consistent = True

    def add(
        self,
        task: tuple[str, bytes, bytes, dict[str, bytes], dict[str, bytes], float],
        walk: dict[str, Any],
        file_sets: list[tuple[list[str], bytes]],
    ) -> None:
        """One task found up to date: (name, key, code, args, env, saved), the walk that
        listed its inputs, and (paths, packed stat data) of its inputs and outputs."""
        self.tasks.append(task)
        for rel, mtime, ino in walk["dirs"]:
            self._put(self.dirs, rel, (mtime, ino))
        for rel, st in walk["ignores"]:
            self._put(self.ignores, rel, st)
        self.absent.update(walk.get("absent", ()))
        for paths, stats in file_sets:
            for i, p in enumerate(paths):
                self._put(self.files, p, stats[32 * i : 32 * i + 32])

    def _put(self, table: dict[str, Any], key: str, value: Any) -> None:
        if table.setdefault(key, value) != value:
            self.consistent = False  # it changed during the run: no snapshot

    def build(self, glob: bytes) -> dict[str, Any] | None:
        if not self.consistent:
            return None
        files = list(self.files)
        return {
            "created": time.time(),
            "glob": glob,
            "tasks": self.tasks,
            "dirs": list(self.dirs.items()),
            "ignores": list(self.ignores.items()),
            "absent": sorted(self.absent),
            "files": files,
            "stats": b"".join(self.files[p] for p in files),
        }


def files_unchanged(root: str, snap: dict[str, Any]) -> bool:
    """Is every directory, ignore file, absent name and file of the snapshot as it saw
    them?"""
    if not 0 <= time.time() - snap["created"] < MAX_AGE:
        return False
    fd = fp.root_fd(root)
    stat = os.stat
    try:
        for rel, (mtime, ino) in snap["dirs"]:
            st = stat(rel or ".", dir_fd=fd)
            if st.st_mtime_ns != mtime or st.st_ino != ino:
                return False
    except OSError:
        return False
    for rel, was in snap["ignores"]:
        try:
            now: Any = fp.stat_key(stat(rel, dir_fd=fd))
        except OSError:
            now = None
        if now != was:
            return False
    for rel in snap["absent"]:
        try:
            stat(rel, dir_fd=fd, follow_symlinks=False)
            return False
        except OSError:
            pass
    now_stats, vanished = fp.stat_pack(root, snap["files"])
    return not vanished and now_stats.tobytes() == snap["stats"]
