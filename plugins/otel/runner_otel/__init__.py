"""runner-otel: OpenTelemetry traces of runner's runs.

Each run is one trace: a `run` span, a `task NAME` span per task below it (attributes:
`runner.task.status`, `runner.task.cache` — ran, hit, restored or none —,
`runner.task.exit_code`, `runner.task.fingerprint`), and an `sh PROGRAM` span per
command below its task (`process.command_line`, `process.exit.code`). Every line of
`--log-format json` carries the run's `trace_id`. A `TRACEPARENT` variable (W3C trace
context) makes the run a part of that trace instead (a CI job's, say).

Spans go to the process's tracer provider if it has one, else to OTLP over HTTP when
`OTEL_EXPORTER_OTLP_ENDPOINT` is set, else to the console (stderr); see
`runner_otel.provider`. OpenTelemetry is imported when a run starts, never by
`runner --list`.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from .spans import RunTrace

__version__ = "0.1.0"
__all__ = [
    "__version__",
    "runner_command_finished",
    "runner_command_started",
    "runner_log_fields",
    "runner_run_finished",
    "runner_run_started",
    "runner_task_finished",
    "runner_task_started",
]

_runs: dict[str, RunTrace] = {}  # the runs in progress
_trace_ids: dict[str, str] = {}  # run id -> trace id, kept for the run's last log lines
_KEEP = 64  # trace ids remembered (`runner watch` makes a run per change)


def runner_run_started(run_id: str, tasks: list[str], jobs: int) -> None:
    from .provider import tracer_provider

    tracer = tracer_provider().get_tracer("runner_otel", __version__)  # first: checks the SDK
    from .spans import RunTrace

    run = _runs[run_id] = RunTrace(tracer, run_id, tasks, jobs, parent=_parent_context())
    _trace_ids[run_id] = run.trace_id
    while len(_trace_ids) > _KEEP:
        del _trace_ids[next(iter(_trace_ids))]


def runner_task_started(run_id: str, task: str, reason: str | None, attempt: int) -> None:
    run = _runs.get(run_id)
    if run is not None:
        run.task_started(task, reason, attempt)


def runner_command_started(run_id: str, task: str, cmd: str) -> None:
    run = _runs.get(run_id)
    if run is not None:
        run.command_started(task, cmd)


def runner_command_finished(run_id: str, task: str, cmd: str, exit_code: int) -> None:
    run = _runs.get(run_id)
    if run is not None:
        run.command_finished(task, cmd, exit_code)


def runner_task_finished(
    run_id: str,
    task: str,
    status: str,
    duration: float,
    exit_code: int | None,
    cache: str,
    fingerprint: str | None,
    error: str | None,
) -> None:
    run = _runs.get(run_id)
    if run is not None:
        run.task_finished(task, status, duration, exit_code, cache, fingerprint, error)


def runner_run_finished(
    run_id: str,
    status: str,
    exit_code: int,
    counts: dict[str, int],
    critical_path: list[str],
    saved: float,
) -> None:
    run = _runs.pop(run_id, None)
    if run is None:
        return
    from .provider import flush, tracer_provider

    run.finished(status, exit_code, counts, critical_path, saved)
    flush(tracer_provider())


def runner_log_fields(run_id: str) -> dict[str, Any] | None:
    trace_id = _trace_ids.get(run_id)
    return {"trace_id": trace_id} if trace_id else None


def _parent_context() -> Any:
    """The trace a `TRACEPARENT` variable names, or None (a new trace)."""
    traceparent = os.environ.get("TRACEPARENT")
    if not traceparent:
        return None
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    carrier = {"traceparent": traceparent, "tracestate": os.environ.get("TRACESTATE", "")}
    return TraceContextTextMapPropagator().extract(carrier)
