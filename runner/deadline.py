"""Waiting on I/O that runner does not control (a remote cache) without being stuck in it.

    value = deadline.call(fetch, 60.0, interrupt)

runs `fetch` on a helper thread and waits for it, no longer than the total deadline and
no longer than until `interrupt` is set. A total deadline, because per-read timeouts
alone never end a request to a server that trickles a byte a second: each read returns
within its timeout. An interrupt, because the thread that waits may be the one that
handles Ctrl-C (the executor's main thread): it must be free to go back to that at once.

Inside `fetch`, `current()` is the request's `Deadline`. Its `left()` bounds each
blocking step (a socket's timeout), and `on_abort()` registers how to unblock that step
when the caller stops waiting (shutting the socket down), so that the helper thread ends
soon after. What nothing can unblock (a DNS lookup, a read on a hung NFS mount) stays on
its helper thread until it returns by itself; the caller has moved on either way.

It knows nothing of caches or protocols: any backend (HTTP, gRPC, a directory) waits the
same way.
"""

from __future__ import annotations

import threading
import time

try:  # the C queue: its put() may be called from a signal handler
    from _queue import Empty, SimpleQueue
except ImportError:  # pragma: no cover - an interpreter without the C module
    from queue import Empty, SimpleQueue

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TypeVar

    T = TypeVar("T")

POLL = 0.05  # seconds: how soon a waiting caller notices an interrupt


class DeadlineExceeded(TimeoutError):
    """The request did not complete within its total deadline."""


class Interrupted(Exception):
    """The wait was given up because the run is stopping."""


class Interrupt:
    """A flag that makes every wait watching it give up: set once, from any thread or
    from a signal handler (setting it is one attribute store, which takes no lock)."""

    __slots__ = ("reason",)

    def __init__(self) -> None:
        self.reason: str | None = None

    def set(self, reason: str = "interrupted") -> None:
        if self.reason is None:
            self.reason = reason

    def __bool__(self) -> bool:
        return self.reason is not None


class Deadline:
    """The time one request has left, and how to unblock it when that runs out."""

    __slots__ = ("seconds", "end", "interrupt", "_aborts", "_aborted", "_lock")

    def __init__(self, seconds: float, interrupt: Interrupt | None = None) -> None:
        self.seconds = seconds
        self.end = time.monotonic() + seconds
        self.interrupt = interrupt
        self._aborts: list[Callable[[], Any]] = []
        self._aborted = False
        self._lock = threading.Lock()

    def left(self) -> float:
        """Seconds left (> 0); DeadlineExceeded or Interrupted when there are none."""
        if self.interrupt is not None and self.interrupt.reason is not None:
            raise Interrupted(self.interrupt.reason)
        left = self.end - time.monotonic()
        if left <= 0:
            raise DeadlineExceeded(f"no complete answer within {self.seconds:g}s")
        return left

    def on_abort(self, hook: Callable[[], Any]) -> None:
        """Call `hook` when the caller stops waiting (at once if it already has)."""
        with self._lock:
            if not self._aborted:
                self._aborts.append(hook)
                return
        _quietly(hook)

    def abort(self) -> None:
        """The caller stopped waiting: unblock what the request is blocked in."""
        with self._lock:
            self._aborted = True
            hooks, self._aborts = self._aborts, []
        for hook in hooks:
            _quietly(hook)


_local = threading.local()


def current() -> Deadline | None:
    """The deadline of the request this thread is running for `call`, if any."""
    return getattr(_local, "deadline", None)


def call(fn: Callable[[], T], seconds: float, interrupt: Interrupt | None = None) -> T:
    """fn()'s result (or its exception), waited for on this thread no longer than
    `seconds` in all (DeadlineExceeded) and no longer than until `interrupt` is set
    (Interrupted). fn runs on a helper thread, where `current()` is its deadline."""
    d = Deadline(seconds, interrupt)
    results: SimpleQueue[tuple[bool, Any]] = SimpleQueue()

    def run() -> None:
        _local.deadline = d
        try:
            results.put((True, fn()))
        except BaseException as e:  # handed to the caller, who raises it
            results.put((False, e))

    threading.Thread(target=run, name="request", daemon=True).start()
    try:
        while True:
            wait = min(POLL, d.left())
            try:
                ok, value = results.get(timeout=wait)
                break
            except Empty:
                continue
    except BaseException:  # out of time, interrupted, or a Ctrl-C / Cancelled raised here
        d.abort()
        raise
    if ok:
        return value
    raise value


def _quietly(hook: Callable[[], Any]) -> None:
    try:
        hook()
    except Exception:
        pass  # unblocking is best effort: the caller has moved on either way
