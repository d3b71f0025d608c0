"""The run history: every run and each task's outcome go into the state store."""

from __future__ import annotations

import time

from . import events as ev

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, TextIO

    from .store import Store


class HistoryRecorder:
    """Listens to a run's events and writes the run to the store when it ends."""

    def __init__(self, store: Store, targets: list[str]) -> None:
        self.store = store
        self.targets = targets
        self.started = time.time()
        self.tasks: list[tuple[str, str, float]] = []
        self.saved = 0.0
        self.audit: ev.AuditFinished | None = None

    def __call__(self, e: ev.Event) -> None:
        if isinstance(e, ev.TaskFinished):
            self.tasks.append((e.task, e.status, e.duration))
            self.saved += e.saved or 0.0
        elif isinstance(e, ev.AuditFinished):
            self.audit = e
        elif isinstance(e, ev.RunFinished):
            self.store.add_run(
                e.run_id,
                self.started,
                time.time(),
                e.status,
                e.counts,
                self.saved,
                self.targets,
                self.tasks,
            )
            if self.audit is not None:
                self.store.mark_audited(e.run_id, self.audit.mode, self.audit.findings)


def history_command(
    cache_dir: str, task: str | None, limit: int, as_json: bool, out: TextIO
) -> int:
    """`runner history`: recent runs; with a task, its outcomes and durations."""
    import os

    from .store import Store

    if not os.path.exists(os.path.join(cache_dir, "state.db")):
        rows: list[dict[str, Any]] = []
    else:
        store = Store(cache_dir, readonly=True)
        try:
            rows = store.task_history(task, limit) if task else store.runs(limit)
        finally:
            store.close()
    if as_json:
        import json

        out.write(json.dumps(rows, indent=2) + "\n")
        return 0
    if not rows:
        out.write("no runs recorded yet\n" if not task else f"no runs of {task} recorded\n")
        return 0
    if task:
        _task_table(task, rows, out)
    else:
        _runs_table(rows, out)
    return 0


def _when(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def _runs_table(rows: list[dict[str, Any]], out: TextIO) -> None:
    out.write(
        f"{'started':<19}  {'status':<11} {'time':>8}  {'ran':>4} {'hit':>4} "
        f"{'rest.':>5} {'fail':>4}  tasks\n"
    )
    for r in rows:
        took = (r["ended"] or r["started"]) - r["started"]
        out.write(
            f"{_when(r['started']):<19}  {r['status'] or '?':<11} {took:>7.2f}s  "
            f"{r['ran'] or 0:>4} {r['hits'] or 0:>4} {r['restored'] or 0:>5} "
            f"{r['failed'] or 0:>4}  {r['targets'] or ''}{_audit_mark(r)}\n"
        )


def _audit_mark(run: dict[str, Any]) -> str:
    """`  [audit strict: 2 findings]` for a run made with --audit."""
    a = run.get("audit")
    if not a:
        return ""
    n = a["findings"]
    return f"  [audit {a['mode']}: {n or 'no'} finding{'s' * (n != 1)}]"


def _task_table(task: str, rows: list[dict[str, Any]], out: TextIO) -> None:
    ran = [r["duration"] for r in rows if r["status"] in ("ok", "failed")]
    out.write(f"{task}: last {len(rows)} runs, newest first\n")
    longest = max(ran, default=0.0) or 1.0
    for r in rows:
        bar = (
            "#" * max(1, round(20 * r["duration"] / longest))
            if r["status"] in ("ok", "failed")
            else ""
        )
        out.write(f"  {_when(r['finished'])}  {r['status']:<9} {r['duration']:>8.2f}s  {bar}\n")
    if ran:
        ran_sorted = sorted(ran)
        out.write(
            f"ran {len(ran)} times: median {ran_sorted[len(ran) // 2]:.2f}s, "
            f"fastest {ran_sorted[0]:.2f}s, slowest {ran_sorted[-1]:.2f}s\n"
        )
