"""Task locks: two runners in one project never run the same task at once.

One byte of `.runner/locks` stands for each task (at an offset taken from its name); a
runner holds it from the moment it decides about the task until its result is stored.
The second runner waits, then finds the first one's result in the cache. Every run also
holds a shared lock on a byte past all of them, which `cache clean` and `cache prune`
take exclusively, and a byte past that for each process id, held by the runner of
that id while it has temporary files in the store (runner.store clears those of a
runner that is gone: the kernel released its byte). The kernel releases a dead
process's locks, whatever pid namespace it ran in.
"""

from __future__ import annotations

import _thread
import os
import time

from .errors import StoreError
from .fingerprint import digest

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable


class TaskLocks:
    """The locks of one runner process (POSIX record locks belong to the process)."""

    def __init__(self, cache_dir: str, warn: Callable[[str], None] | None = None) -> None:
        self.dir = cache_dir
        self.warn = warn or (lambda msg: None)
        self._lock_fd: int | None = None
        self._locked: set[str] = set()
        self._mutex = _thread.allocate_lock()

    PROJECT_LOCK = 0x80000000  # past every task's offset
    PID_LOCKS = PROJECT_LOCK + 1  # + a process id: that runner is alive

    def _lockf(self, flags: int, offset: int) -> bool:
        import fcntl

        with self._mutex:
            if self._lock_fd is None:
                try:
                    os.makedirs(self.dir, exist_ok=True)
                    self._lock_fd = self._open()
                except OSError as e:
                    raise StoreError(
                        f"cannot use the cache directory {self.dir}: {e.strerror or e}"
                    ) from None
            fd = self._lock_fd
        if flags & fcntl.LOCK_NB:
            try:
                fcntl.lockf(fd, flags, 1, offset)
            except (BlockingIOError, PermissionError):
                return False
            return True
        # Waiting: poll instead of blocking. POSIX locks belong to the process, so when
        # runner A runs x and waits for y while runner B runs y and waits for x, the
        # kernel calls it a deadlock (EDEADLK), though each will finish its task and
        # let go. Polling never trips on that.
        delay = 0.005
        while True:
            try:
                fcntl.lockf(fd, flags | fcntl.LOCK_NB, 1, offset)
                return True
            except (BlockingIOError, PermissionError):
                time.sleep(delay)
                delay = min(delay * 2, 0.1)

    def _open(self) -> int:
        path = os.path.join(self.dir, "locks")
        try:
            return os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except IsADirectoryError:
            from .layout import ensure_not_directory

            ensure_not_directory(self.dir, "locks", self.warn)
            return os.open(path, os.O_RDWR | os.O_CREAT, 0o644)

    def lock(self, task: str, wait: bool) -> bool:
        """Lock a task against other runners in this project (one byte of the `locks`
        file, at an offset taken from the task's name). The kernel releases it if
        this process dies."""
        import fcntl

        if not self._lockf(fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB), _offset(task)):
            return False
        self._locked.add(task)
        return True

    def share_project(self) -> None:
        """Held (shared) by every run: `cache clean` and `cache prune` wait for none."""
        import fcntl

        self._lockf(fcntl.LOCK_SH, self.PROJECT_LOCK)

    def own_project(self) -> bool:
        """Exclusive hold for maintenance; False while any runner works here."""
        import fcntl

        return self._lockf(fcntl.LOCK_EX | fcntl.LOCK_NB, self.PROJECT_LOCK)

    def hold_pid(self) -> None:
        """Say that this runner is alive, for as long as it has the locks open (the
        byte of its pid; another runner of the same pid waits its turn)."""
        import fcntl

        self._lockf(fcntl.LOCK_EX, self.PID_LOCKS + os.getpid())

    def pid_alive(self, pid: int) -> bool:
        """Is a runner of this pid alive (does it hold its byte)? A process that is
        not a runner, or a runner that died, holds none."""
        import fcntl

        if pid == os.getpid():
            return True
        if not 0 < pid < 1 << 30:
            return False  # no process has that id
        if not self._lockf(fcntl.LOCK_EX | fcntl.LOCK_NB, self.PID_LOCKS + pid):
            return True  # held: that runner is alive
        assert self._lock_fd is not None
        fcntl.lockf(self._lock_fd, fcntl.LOCK_UN, 1, self.PID_LOCKS + pid)
        return False

    def unlock(self, task: str) -> None:
        import fcntl

        if task not in self._locked or self._lock_fd is None:
            return
        self._locked.discard(task)
        fcntl.lockf(self._lock_fd, fcntl.LOCK_UN, 1, _offset(task))

    def close(self) -> None:
        with self._mutex:
            if self._lock_fd is not None:
                os.close(self._lock_fd)  # releases every lock this process holds here
                self._lock_fd = None


_offsets: dict[str, int] = {}


def _offset(task: str) -> int:
    """The byte of the `locks` file that stands for this task."""
    off = _offsets.get(task)
    if off is None:
        off = _offsets[task] = int.from_bytes(digest(task.encode())[:4], "little") & 0x7FFFFFFF
    return off
