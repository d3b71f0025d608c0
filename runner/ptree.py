"""The process table, from /proc: who is whose child, group and session.

Kept free of imports from the rest of runner: `runner.supervise` runs as a script and
imports this file on its own, without the cost of importing the runner package.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence


def read_table() -> dict[int, tuple[int, int, int, str]]:
    """pid -> (ppid, pgid, sid, state) for every process, from /proc."""
    table: dict[int, tuple[int, int, int, str]] = {}
    try:
        names = os.listdir("/proc")
    except OSError:
        return table
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                raw = f.read()
        except OSError:
            continue
        # The command name (field 2) may hold spaces and parentheses: split after it.
        rest = raw[raw.rfind(b")") + 2 :].split()
        table[int(name)] = (int(rest[1]), int(rest[2]), int(rest[3]), rest[0].decode())
    return table


def tree_of(
    roots: Sequence[int], table: dict[int, tuple[int, int, int, str]] | None = None
) -> set[int]:
    """The live processes of these roots' trees: their descendants, and the members of
    the process groups and sessions they lead (started with start_new_session, each root
    leads both)."""
    if table is None:
        table = read_table()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _pgid, _sid, _state) in table.items():
        children.setdefault(ppid, []).append(pid)
    rootset = set(roots)
    found: set[int] = set()
    stack = [r for r in roots if r in table]
    for pid, (_ppid, pgid, sid, _state) in table.items():
        if pgid in rootset or sid in rootset:
            stack.append(pid)
    while stack:
        pid = stack.pop()
        if pid in found:
            continue
        found.add(pid)
        stack.extend(children.get(pid, ()))
    me = os.getpid()
    return {p for p in found if p != me and table[p][3] != "Z"}


def alive(pids: set[int]) -> set[int]:
    """The pids of `pids` that still run (a zombie has finished dying)."""
    live = set()
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                raw = f.read()
        except OSError:
            continue
        if raw[raw.rfind(b")") + 2 : raw.rfind(b")") + 3] != b"Z":
            live.add(pid)
    return live
