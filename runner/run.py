"""One run of some tasks: the planner, the executor, the UI and the history wired to one
event bus. The CLI calls it once; `runner watch` once per change."""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TextIO

    from .executor import Executor, Outcome
    from .graph import Graph
    from .loader import Project
    from .plan import Planner


def make_planner(
    project: Project,
    graph: Graph,
    err: TextIO,
    *,
    no_cache: bool = False,
    force: bool = False,
    readonly: bool = False,
    remote_cache: str | None = None,
) -> Planner:
    """The planner of a run: the local store (unless --no-cache) and the remote caches
    (the URL given or configured, and those plugins add)."""
    from .plan import Planner
    from .store import Store

    def warn(message: str) -> None:
        err.write(f"runner: warning: {message}\n")

    store = None if no_cache else Store(project.cache_dir, readonly=readonly, warn=warn)
    remote = None
    if store is not None and (
        remote_cache or project.config.remote_cache or project.plugins is not None
    ):
        from .remote import Remote, backends

        found = backends(project, remote_cache)
        timeout = project.config.remote_cache_timeout
        remote = Remote(found, warn, timeout) if found else None
    return Planner(graph, project, store, force=force, dry_run=readonly, remote=remote, warn=warn)


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def execute(
    project: Project,
    graph: Graph,
    order: list[str],
    args: dict[str, dict[str, Any]],
    planner: Planner,
    out: TextIO,
    err: TextIO,
    *,
    jobs: int | None = None,
    log_format: str = "text",
    quiet: bool = False,
    verbose: bool = False,
    keep_going: bool = False,
    started: Callable[[Executor], None] | None = None,
    audit: str = "off",
) -> Outcome:
    """Run `order` (deps first); `started` gets the executor (to cancel it from
    another thread); `audit`: off, warn or strict (runner.audit)."""
    from .events import Bus, RunFinished, RunStarted
    from .executor import Executor
    from .ui import make_renderer

    config = project.config
    # Tasks run in the project root, wherever runner was started (as make -C does):
    # their Python code and their commands see the same relative paths.
    os.chdir(project.root)
    jobs = jobs or config.jobs or cpu_count()
    parallel = jobs > 1 and not graph.is_chain(order)
    run_id = os.urandom(8).hex()
    bus = Bus()
    plugins = project.plugins
    if plugins is not None:  # first: a plugin's run_started may set what the log shows
        bus.subscribe(plugins.bridge(run_id))
    renderer = make_renderer(
        out,
        err,
        log_format=log_format,
        quiet=quiet,
        verbose=verbose,
        prefix=parallel,
        width=max(len(n) for n in order),
        run_id=run_id,
        log_fields=(lambda line: plugins.log_fields(run_id, line)) if plugins is not None else None,
    )
    bus.subscribe(renderer)
    if planner.store is not None:
        from .history import HistoryRecorder

        planner.store.locks.share_project()
        bus.subscribe(HistoryRecorder(planner.store, order))
    bus.emit(RunStarted(run_id, order, jobs))
    auditor = None
    if audit != "off":
        from .audit import Audit

        auditor = Audit(
            audit,
            graph,
            project.root,
            project.cache_dir,
            config.global_inputs,
            bus,
            dotenv=planner.dotenv_overlay,
        )
    executor = Executor(
        graph,
        order,
        args,
        planner=planner,
        bus=bus,
        jobs=jobs,
        keep_going=keep_going,
        root=project.root,
        grace=config.kill_timeout,
        interactive=not parallel,
        audit=auditor,
    )
    if started is not None:
        started(executor)
    if auditor is None:
        outcome = executor.run()
    else:
        auditor.start()
        try:
            outcome = executor.run()
        finally:
            auditor.stop()
        _end_audit(auditor, outcome, bus)
    failed = outcome.failed or outcome.audit_failed
    status = "interrupted" if outcome.interrupted else ("failed" if failed else "ok")
    bus.emit(
        RunFinished(
            run_id,
            status,
            outcome.duration,
            outcome.exit_code,
            outcome.counts(),
            outcome.critical_path(),
            outcome.saved,
        )
    )
    renderer.summary(outcome)
    if auditor is not None and log_format != "json":
        from .audit_report import report_text

        out.write(report_text(auditor, outcome))
    return outcome


def _end_audit(auditor: Any, outcome: Outcome, bus: Any) -> None:
    """The audit's verdict: an event with its counts; in strict mode a finding fails
    the run."""
    from .audit_report import not_audited
    from .events import AuditFinished

    found = sum(len(f) for f in auditor.findings.values())
    if auditor.mode == "strict" and found:
        outcome.audit_failed = True
    bus.emit(
        AuditFinished(
            auditor.mode,
            found,
            auditor.judged(outcome.order),
            not_audited(auditor, outcome),
            auditor.strace is not None,
            auditor.untraced,
            auditor.counts,
        )
    )


def dry_run(
    order: list[str],
    graph: Graph,
    args: dict[str, dict[str, Any]],
    planner: Any,
    out: TextIO,
    skipped: list[str],
    since: str | None,
    verbose: bool = False,
) -> int:
    """What would run, in order, and why (with `verbose`, every reason, one a line);
    nothing runs and nothing is written."""
    from .plan import RUN, WILL_RUN

    width = max(len(n) for n in order)
    status: dict[str, str] = {}
    lines = []
    planner.load(order)
    for name in order:
        decision = planner.decide(name, args[name], {d: status[d] for d in graph.deps(name)})
        status[name] = WILL_RUN if decision.action == RUN else "cached"
        lines.append(f"  {decision.action:<8} {name:<{width}}  {decision.reason}")
        if verbose and len(decision.reasons) > 1:
            lines += [f"  {'':<8} {'':<{width}}    {r}" for r in decision.reasons]
    n_run = sum(1 for s in status.values() if s == WILL_RUN)
    out.write(f"dry run: {n_run} of {len(order)} tasks would run; in order:\n")
    out.write("\n".join(lines) + "\n")
    if skipped:
        out.write(f"left out, no input or code changed since {since}: {', '.join(skipped)}\n")
    return 0
