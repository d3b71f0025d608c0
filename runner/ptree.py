"""The process table, from /proc: who is whose child, group and session; and stopping
a process tree.

Kept free of imports from the rest of runner: `runner.supervise` and `runner.lifeline`
run as scripts and import this file on their own, without the cost of importing the
runner package.
"""

from __future__ import annotations

import os
import signal
import time

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


def start_time(pid: int) -> int | None:
    """When the process started (clock ticks since boot), or None if it is gone (or
    there is no /proc). With the pid, it names one process for good: a pid the system
    gives to another process later comes with another start time."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    return int(raw[raw.rfind(b")") + 2 :].split()[19])  # field 22 of proc(5)


def carrying(entry: bytes) -> set[int]:
    """The live processes whose environment holds `entry` (b"NAME=value"), as they
    were started (a process reads its own; others' are readable by their owner)."""
    found: set[int] = set()
    me = os.getpid()
    try:
        names = os.listdir("/proc")
    except OSError:
        return found
    for name in names:
        if not name.isdigit() or int(name) == me:
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as f:
                env = f.read()
        except OSError:
            continue
        if entry in env.split(b"\0"):
            found.add(int(name))
    return alive(found)


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


def kill_trees(roots: Sequence[int], grace: float, sig: int = signal.SIGTERM) -> None:
    """Stop these processes and everything they started: `sig` to each group and each
    descendant, up to `grace` seconds for them to exit, then SIGKILL for the rest. The
    set of victims only grows: a process seen once is signalled until it is gone, even
    after its parent died and it was re-parented away from the tree."""
    if not roots:
        return
    victims = tree_of(roots)
    if grace > 0:
        _signal_all(roots, victims, sig)
        end = time.monotonic() + grace
        while time.monotonic() < end:
            victims |= tree_of(roots)
            if not alive(victims):
                return
            time.sleep(0.02)
    while True:
        victims |= tree_of(roots)
        live = alive(victims)
        if not live:
            return
        _signal_all(roots, live, signal.SIGKILL)
        time.sleep(0.01)


def _signal_all(groups: Sequence[int], pids: set[int], sig: int) -> None:
    for g in groups:
        try:
            os.killpg(g, sig)
        except (ProcessLookupError, PermissionError):
            pass
    for pid in pids:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass
