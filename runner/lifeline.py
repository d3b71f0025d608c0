"""Commands do not outlive their runner, even one killed with SIGKILL.

Commands run in sessions of their own (runner.proc), so nothing the kernel does when
runner dies reaches them. Three things make up for that, set up when a run's first
command starts (a no-op run, or one of Python-only tasks, pays for none of them):

- a mark: from then on every command carries RUNNER_OWNER=<mark> in its environment,
  and so does what it starts (a daemon that double-forked into a session of its own
  included), unless it clears its environment;
- a record, `<cache_dir>/procs/<pid>-<start time>` (runner's): the mark, then a line
  `<pid> <start time>` per command. A pid with its start time names one process for
  good: a pid the system has since given to another process is never taken for it;
- a guardian: a shell in a session of its own, blocked reading a pipe of which runner
  holds the only writing end. A run that ends writes "done" and the guardian exits;
  if runner dies, the read meets end-of-file and the guardian runs this file as a
  script, which stops what the record and the mark name: each recorded command's
  group, session and descendants, and every process carrying the mark (SIGTERM, the
  grace period, SIGKILL), then deletes the record.

A guardian killed together with runner leaves the record behind: the next run in the
project finds the record of a runner that no longer lives and does the same, before it
runs or restores any task. Commands that a run leaves in the background when it ends
normally are left alone, as before: the record goes when the run ends.

Per command this costs one read of /proc/PID/stat and one write; per run, one `sh`
started without waiting for it. Linux only (the start times and marks are read from
/proc); elsewhere nothing is recorded or guarded.

    python runner/lifeline.py --grace 5 --mark MARK [--record PATH]
"""

from __future__ import annotations

import os
import sys

try:
    from . import ptree
except ImportError:  # run as a script (what the guardian does): no package import
    import ptree  # type: ignore[no-redef]

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

MARK = "RUNNER_OWNER"
RECORDS = "procs"  # under the cache directory
# The guardian: a "done" line ends it quietly; end-of-file (runner died) starts the
# cleanup. `read` returns non-zero at end-of-file.
GUARDIAN = 'read -r line; [ "$line" = done ] || exec "$@"'


class Lifeline:
    """One run's guardian and record (see the module's docstring). `arm()` before
    each command starts, `started(pid)` after; `close()` when the run ends."""

    def __init__(self, cache_dir: str | None, grace: float) -> None:
        """Made by the thread that starts the run's tasks, before it starts any: the
        mark goes into the environment then (changing it later could race with a
        task's code reading it)."""
        self.cache_dir = cache_dir  # None (--no-cache): the mark alone, no record
        self.grace = grace
        self.mark = _own_mark()
        if os.environ.get(MARK) != self.mark:
            os.environ[MARK] = self.mark
        self._armed = False
        self._record_fd: int | None = None
        self._record_path: str | None = None
        self._pipe: int | None = None
        self._guardian: int | None = None
        import _thread

        self._lock = _thread.allocate_lock()

    def arm(self) -> None:
        """Before a command starts: the first time, write the record's head and start
        the guardian."""
        if self._armed:
            return
        with self._lock:
            if not self._armed and self.mark.partition("-")[2].isdigit():  # on Linux
                self._open_record()
                self._start_guardian()
            self._armed = True

    def started(self, pid: int) -> None:
        """A command started: record it (before it can be waited for, its pid and
        start time are still its own)."""
        fd = self._record_fd
        if fd is None:
            return
        start = ptree.start_time(pid)
        if start is not None:
            try:
                os.write(fd, f"{pid} {start}\n".encode())
            except OSError:
                pass  # a full disk: the mark still finds it

    def close(self) -> None:
        """The run ended: let the guardian go and delete the record."""
        with self._lock:
            if self._pipe is not None:
                try:
                    os.write(self._pipe, b"done\n")
                except OSError:
                    pass  # the guardian is gone already
                os.close(self._pipe)
                self._pipe = None
            if self._guardian is not None:
                try:
                    os.waitpid(self._guardian, 0)  # it exits as soon as it reads the line
                except ChildProcessError:
                    pass
                self._guardian = None
            if self._record_fd is not None:
                os.close(self._record_fd)
                self._record_fd = None
                _unlink(self._record_path)

    def _open_record(self) -> None:
        if self.cache_dir is None:
            return
        folder = os.path.join(os.path.abspath(self.cache_dir), RECORDS)
        path = os.path.join(folder, self.mark)
        try:
            os.makedirs(folder, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644)
        except OSError:
            return  # a read-only project: the mark alone
        os.write(fd, f"mark {self.mark}\n".encode())
        self._record_fd, self._record_path = fd, path

    def _start_guardian(self) -> None:
        import signal

        script = os.path.abspath(__file__)
        argv = ["/bin/sh", "-c", GUARDIAN, "runner-guardian", sys.executable, "-S", "-E"]
        argv += [script, "--grace", str(self.grace), "--mark", self.mark]
        if self._record_path is not None:
            argv += ["--record", self._record_path]
        env = {k: v for k, v in os.environ.items() if k != MARK}  # it must not stop itself
        read_end, write_end = os.pipe()  # neither inherited by commands (close-on-exec)
        try:
            self._guardian = os.posix_spawn(
                argv[0],
                argv,
                env,
                file_actions=[
                    (os.POSIX_SPAWN_DUP2, read_end, 0),
                    (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
                    (os.POSIX_SPAWN_DUP2, 1, 2),
                ],
                setsid=True,  # beyond the reach of a signal to runner's group or terminal
                setsigdef=[signal.SIGPIPE, signal.SIGINT, signal.SIGTERM, signal.SIGHUP],
            )
        except OSError:
            os.close(write_end)
            return
        finally:
            os.close(read_end)
        self._pipe = write_end


def _own_mark() -> str:
    """This runner's mark: its pid and start time (unique while it lives, and after)."""
    return f"{os.getpid()}-{ptree.start_time(os.getpid())}"


# ---------------------------------------------------------------- what a dead runner left


def stop_leftovers(cache_dir: str, grace: float, warn: Callable[[str], None]) -> None:
    """Stop what runners that died in this project left running (their guardian died
    too, or has not finished): every record whose runner no longer lives."""
    folder = os.path.join(cache_dir, RECORDS)
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        pid, _, start = name.partition("-")
        if not (pid.isdigit() and start.isdigit()):
            continue
        if str(ptree.start_time(int(pid))) == start:
            continue  # that runner is alive: its commands are its own
        stopped = stop_recorded(os.path.join(folder, name), grace)
        if stopped:
            warn(
                f"stopped {stopped} process{'es' if stopped > 1 else ''} left running by "
                f"a runner that was killed (pid {pid})"
            )


def stop_recorded(record: str, grace: float, mark: str | None = None) -> int:
    """Stop the commands a record names (those still the processes it recorded) and
    every process carrying its mark, with their trees; then delete the record. How
    many processes were found to stop."""
    leaders: list[int] = []
    try:
        with open(record) as f:
            lines = f.read().splitlines()
    except OSError:
        lines = []
    for line in lines:
        word, _, rest = line.partition(" ")
        if word == "mark":
            mark = mark or rest
        elif word.isdigit() and rest.isdigit() and str(ptree.start_time(int(word))) == rest:
            leaders.append(int(word))
    marked = ptree.carrying(f"{MARK}={mark}".encode()) if mark else set()
    roots = sorted(set(leaders) | marked)
    found = len(ptree.tree_of(roots)) if roots else 0
    ptree.kill_trees(roots, grace)
    if lines:
        _unlink(record)  # only now: a run starting meanwhile must see it and wait
    return found


def _unlink(path: str | None) -> None:
    if path is None:
        return
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def main(argv: list[str]) -> int:
    """The guardian's cleanup, once runner died: --grace SECONDS --mark MARK
    [--record PATH]."""
    opts = dict(zip(argv[::2], argv[1::2], strict=False))
    record = opts.get("--record")
    stop_recorded(record or "", float(opts.get("--grace", "5")), opts.get("--mark"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
