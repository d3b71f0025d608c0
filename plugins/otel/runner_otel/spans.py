"""The spans of one run: the run's own, one per task below it, one per `sh` command
below its task. Runner's events arrive one at a time (its event bus delivers them in
order, from whichever worker thread), so parents are passed explicitly rather than
through OpenTelemetry's thread-local current span."""

from __future__ import annotations

import shlex
import time

from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

TYPE_CHECKING = False
if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.trace import Span, Tracer

# Task statuses that are errors of the task's span (skipped is not: the task did nothing).
FAILED = ("failed", "cancelled")


class RunTrace:
    """One run as a trace: spans are opened and closed as its events arrive."""

    def __init__(
        self,
        tracer: Tracer,
        run_id: str,
        tasks: list[str],
        jobs: int,
        parent: Context | None = None,
    ) -> None:
        self.tracer = tracer
        self.run = tracer.start_span(
            "run",
            context=parent,
            attributes={
                "runner.run.id": run_id,
                "runner.run.tasks": tasks,
                "runner.run.jobs": jobs,
            },
        )
        self.trace_id = format(self.run.get_span_context().trace_id, "032x")
        self._tasks: dict[str, Span] = {}
        self._commands: dict[str, list[tuple[str, Span]]] = {}

    def task_started(self, task: str, reason: str | None, attempt: int) -> None:
        span = self._tasks.get(task)
        if span is None:
            span = self._tasks[task] = self._start(f"task {task}", self.run)
            span.set_attributes({"runner.task.name": task, "runner.task.reason": reason or ""})
        else:
            span.add_event("retry", {"runner.task.attempt": attempt})
        span.set_attribute("runner.task.attempts", attempt)

    def command_started(self, task: str, cmd: str) -> None:
        span = self._start(command_name(cmd), self._tasks.get(task, self.run))
        span.set_attributes({"process.command_line": cmd, "runner.task.name": task})
        self._commands.setdefault(task, []).append((cmd, span))

    def command_finished(self, task: str, cmd: str, exit_code: int) -> None:
        running = self._commands.get(task, [])
        for i in range(len(running) - 1, -1, -1):
            if running[i][0] == cmd:
                span = running.pop(i)[1]
                span.set_attribute("process.exit.code", exit_code)
                if exit_code != 0:
                    span.set_status(Status(StatusCode.ERROR, f"exit code {exit_code}"))
                span.end()
                return

    def task_finished(
        self,
        task: str,
        status: str,
        duration: float,
        exit_code: int | None,
        cache: str,
        fingerprint: str | None,
        error: str | None,
    ) -> None:
        span = self._tasks.pop(task, None)
        if span is None:  # up to date, or skipped: it never started; it took `duration`
            span = self._start(f"task {task}", self.run, time.time_ns() - int(duration * 1e9))
            span.set_attribute("runner.task.name", task)
        span.set_attributes({"runner.task.status": status, "runner.task.cache": cache})
        if exit_code is not None:
            span.set_attribute("runner.task.exit_code", exit_code)
        if fingerprint:
            span.set_attribute("runner.task.fingerprint", fingerprint)
        if status in FAILED:
            span.set_status(Status(StatusCode.ERROR, (error or status).splitlines()[0]))
        for _cmd, command in self._commands.pop(task, []):  # cut short (cancelled)
            command.end()
        span.end()

    def finished(
        self,
        status: str,
        exit_code: int,
        counts: dict[str, int],
        critical_path: list[str],
        saved: float,
    ) -> None:
        for task in list(self._tasks):  # never finished: the run was interrupted
            self.task_finished(task, "cancelled", 0.0, None, "none", None, "interrupted")
        self.run.set_attributes(
            {
                "runner.run.status": status,
                "runner.run.exit_code": exit_code,
                "runner.run.critical_path": critical_path,
                "runner.run.saved_seconds": saved,
                **{f"runner.run.count.{k}": v for k, v in counts.items()},
            }
        )
        if status != "ok":
            self.run.set_status(Status(StatusCode.ERROR, status))
        self.run.end()

    def _start(self, name: str, parent: Span, start_time: int | None = None) -> Span:
        return self.tracer.start_span(
            name, context=trace.set_span_in_context(parent), start_time=start_time
        )


def command_name(cmd: str) -> str:
    """A command's span name: `sh` and the program (`sh pytest` for `python -m pytest`),
    few enough distinct names for a tracing backend to group them."""
    try:
        words = shlex.split(cmd)
    except ValueError:
        words = cmd.split()
    while words and "=" in words[0] and words[0].partition("=")[0].isidentifier():
        words.pop(0)  # FOO=1 make: make
    if not words:
        return "sh"
    program = words[0].rsplit("/", 1)[-1]
    if program.startswith("python") and len(words) > 2 and words[1] == "-m":
        program = words[2]
    return f"sh {program}"
