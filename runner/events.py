"""What happens during a run, as events: the executor emits them, the UI, the state
store and plugins listen. The executor never prints."""

from __future__ import annotations

import _thread

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

# A finished task's status.
OK = "ok"  # ran and succeeded
CACHED = "cached"  # up to date: skipped, outputs already in place
RESTORED = "restored"  # up to date: outputs restored from the cache
FAILED = "failed"  # ran and failed (or timed out)
SKIPPED = "skipped"  # not run: a dep failed, or the run stopped first
CANCELLED = "cancelled"  # stopped while it ran (interrupt)

SUCCESS = frozenset((OK, CACHED, RESTORED))


class Event:
    """Base of all events; `to_dict()` is the JSON log line."""

    __slots__ = ()
    kind = "event"

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"event": self.kind}
        k: str
        for k in self.__slots__:
            v = getattr(self, k)
            if v is not None:
                d[k] = v
        return d

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.to_dict()})"


class RunStarted(Event):
    __slots__ = ("run_id", "tasks", "jobs")
    kind = "run_started"

    def __init__(self, run_id: str, tasks: list[str], jobs: int) -> None:
        self.run_id, self.tasks, self.jobs = run_id, tasks, jobs


class TaskStarted(Event):
    __slots__ = ("task", "reason", "attempt")
    kind = "task_started"

    def __init__(self, task: str, reason: str | None = None, attempt: int = 1) -> None:
        self.task, self.reason, self.attempt = task, reason, attempt


class TaskCommand(Event):
    __slots__ = ("task", "cmd")
    kind = "task_command"

    def __init__(self, task: str, cmd: str) -> None:
        self.task, self.cmd = task, cmd


class TaskOutput(Event):
    """A line a task wrote to `stream` (stdout or stderr). `partial`: the start of a
    line that has not ended yet (a progress bar, pytest's dots), shown after a short
    wait; what follows on the same stream continues it."""

    __slots__ = ("task", "line", "stream", "partial")
    kind = "task_output"

    def __init__(
        self, task: str, line: str, stream: str = "stdout", partial: bool | None = None
    ) -> None:
        self.task, self.line, self.stream = task, line, stream
        self.partial = partial or None  # None, not False: absent from a JSON line


class TaskWaiting(Event):
    """Another runner in the same project is running this task: this one waits for it
    (then finds its result in the cache)."""

    __slots__ = ("task",)
    kind = "task_waiting"

    def __init__(self, task: str) -> None:
        self.task = task


class TaskRetrying(Event):
    __slots__ = ("task", "attempt", "delay", "error")
    kind = "task_retrying"

    def __init__(self, task: str, attempt: int, delay: float, error: str) -> None:
        self.task, self.attempt, self.delay, self.error = task, attempt, delay, error


class TaskFinished(Event):
    """A task is done: ran (ok, failed, cancelled), was up to date (cached, restored)
    or did not run (skipped). `saved` is the time a cache hit saved, in seconds."""

    __slots__ = (
        "task",
        "status",
        "duration",
        "exit_code",
        "error",
        "cmd",
        "reason",
        "saved",
        "fingerprint",
    )
    kind = "task_finished"

    def __init__(
        self,
        task: str,
        status: str,
        duration: float = 0.0,
        exit_code: int | None = None,
        error: str | None = None,
        cmd: str | None = None,
        reason: str | None = None,
        saved: float | None = None,
        fingerprint: str | None = None,
    ) -> None:
        self.task, self.status, self.duration = task, status, duration
        self.exit_code, self.error, self.cmd = exit_code, error, cmd
        self.reason, self.saved = reason, saved
        self.fingerprint = fingerprint  # hex, for a cached task

    @property
    def ok(self) -> bool:
        return self.status in SUCCESS


class RunStopping(Event):
    """The run was told to stop (Ctrl-C, SIGTERM) while tasks ran: their `processes`
    have `grace` seconds to exit before they are killed; a second Ctrl-C kills now."""

    __slots__ = ("grace", "processes", "tasks")
    kind = "run_stopping"

    def __init__(self, grace: float, processes: int, tasks: int) -> None:
        self.grace, self.processes, self.tasks = grace, processes, tasks


class CommandFinished(Event):
    __slots__ = ("task", "cmd", "exit_code", "duration")
    kind = "command_finished"

    def __init__(self, task: str, cmd: str, exit_code: int, duration: float) -> None:
        self.task, self.cmd, self.exit_code, self.duration = task, cmd, exit_code, duration


class AuditFinding(Event):
    """--audit: something a task did that its declaration does not cover: `what` is
    read, write, remove, tool or env; `names` the files, the program or the variable;
    `suggestion` what to add to the task's `param` (inputs, outputs, tools, env)."""

    __slots__ = ("task", "what", "names", "param", "suggestion", "text")
    kind = "audit_finding"

    def __init__(
        self, task: str, what: str, names: list[str], param: str, suggestion: str, text: str
    ) -> None:
        self.task, self.what, self.names = task, what, names
        self.param, self.suggestion, self.text = param, suggestion, text


class AuditFinished(Event):
    """--audit: the audit of the run is over. `mode` warn or strict; `findings` how many;
    `audited` the tasks judged; `not_audited` the tasks that did not run (up to date) or
    always run (not cached), with why; `commands` whether commands were traced, and
    `note` why not; `observed`: per task that ran, how many files it read, wrote,
    removed, directories it listed, programs it ran, variables it read."""

    __slots__ = ("mode", "findings", "audited", "not_audited", "commands", "note", "observed")
    kind = "audit_finished"

    def __init__(
        self,
        mode: str,
        findings: int,
        audited: list[str],
        not_audited: dict[str, str],
        commands: bool,
        note: str | None = None,
        observed: dict[str, dict[str, int]] | None = None,
    ) -> None:
        self.mode, self.findings, self.audited = mode, findings, audited
        self.not_audited, self.commands, self.note = not_audited, commands, note
        self.observed = observed or {}


class RunFinished(Event):
    """The run is over. `critical_path`: the chain of tasks, each waiting for the one
    before, that decided the wall time; `saved`: the time cache hits saved."""

    __slots__ = ("run_id", "status", "duration", "exit_code", "counts", "critical_path", "saved")
    kind = "run_finished"

    def __init__(
        self,
        run_id: str,
        status: str,
        duration: float,
        exit_code: int,
        counts: dict[str, int],
        critical_path: list[str] | None = None,
        saved: float = 0.0,
    ) -> None:
        self.run_id, self.status, self.duration = run_id, status, duration
        self.exit_code, self.counts = exit_code, counts
        self.critical_path, self.saved = critical_path or [], saved


class Bus:
    """Delivers each event to every subscriber, one event at a time (events come from
    the executor's worker threads)."""

    def __init__(self) -> None:
        self._subscribers: list[Callable[[Event], None]] = []
        self._lock = _thread.allocate_lock()

    def subscribe(self, fn: Callable[[Event], None]) -> None:
        self._subscribers.append(fn)

    def emit(self, event: Event) -> None:
        with self._lock:
            for fn in self._subscribers:
                fn(event)
