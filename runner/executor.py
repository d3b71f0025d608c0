"""Running the selected tasks: parallel up to `jobs`, deps first, each at most once.

The main thread schedules and watches the clock; each running task has a worker
thread. When a task's deps are done, the planner decides whether it runs (a cache hit
never reaches a thread). Stopping — a Ctrl-C, SIGTERM, a task's timeout — cancels the
task's `Scope`: its commands get SIGTERM, a grace period, then SIGKILL. Everything that
happens goes out as events; nothing here prints.
"""

from __future__ import annotations

import _thread
import gc
import time

from . import events as ev
from .errors import Cancelled, StoreError, TaskError
from .plan import RESTORE, RUN, SKIP, Decision

try:  # the queue alone: the `queue` module imports threading, which a no-op run never needs
    from _queue import Empty, SimpleQueue
except ImportError:  # pragma: no cover - an interpreter without the C module
    from queue import Empty, SimpleQueue

try:  # the C module: `signal` wraps it in enums, and importing enum costs ~1 ms
    import _signal as signal
except ImportError:  # pragma: no cover - an interpreter without it
    import signal

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from .audit import Audit
    from .events import Bus
    from .graph import Graph
    from .plan import Planner
    from .proc import Scope

BACKOFF_BASE = 0.5  # seconds before the first retry; doubles for each one after
BACKOFF_MAX = 30.0
ABANDON_AFTER = 2.0  # seconds past the grace period before a stuck task thread is left


class Outcome:
    """The result of a run: each task's final event, in run order."""

    def __init__(
        self,
        results: dict[str, ev.TaskFinished],
        order: list[str],
        duration: float,
        interrupted: bool,
        deps: dict[str, tuple[str, ...]] | None = None,
    ) -> None:
        self.results = results
        self.order = order
        self.duration = duration
        self.interrupted = interrupted
        self.deps = deps or {}
        self.audit_failed = False  # --audit=strict found something (runner.audit)

    @property
    def failed(self) -> list[str]:
        """The tasks that failed (not those an interrupt cancelled)."""
        return [n for n in self.order if n in self.results and self.results[n].status == ev.FAILED]

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return 130
        stopped = any(r.status == ev.CANCELLED for r in self.results.values())
        return 1 if self.failed or stopped or self.audit_failed else 0

    def counts(self) -> dict[str, int]:
        c: dict[str, int] = {}
        for r in self.results.values():
            c[r.status] = c.get(r.status, 0) + 1
        return c

    @property
    def saved(self) -> float:
        """The time cache hits saved: what their cached runs took."""
        return sum(r.saved or 0.0 for r in self.results.values())

    def critical_path(self) -> list[str]:
        """The chain of tasks that decided the wall time: each one waited for the one
        before it, and the last one ended the run. (The longest path through the
        graph, weighted by each task's duration.)"""
        finish: dict[str, float] = {}
        via: dict[str, str | None] = {}
        for name in self.order:
            before = max(self.deps.get(name, ()), key=lambda d: finish.get(d, 0.0), default=None)
            r = self.results.get(name)
            finish[name] = (finish[before] if before else 0.0) + (r.duration if r else 0.0)
            via[name] = before
        if not finish:
            return []
        node: str | None = max(self.order, key=lambda n: finish[n])
        path = []
        while node is not None:
            path.append(node)
            node = via[node]
        return path[::-1]


class _Ready:
    """The tasks whose deps are all done, earliest in the run order first. (The order
    comes from the graph, which checked it for cycles with graphlib.)"""

    def __init__(self, graph: Graph, order: list[str]) -> None:
        import heapq

        self._heapq = heapq
        self.order = order
        self.position = {n: i for i, n in enumerate(order)}
        self.missing = {n: len(graph.deps(n)) for n in order}
        self.dependents: dict[str, list[str]] = {n: [] for n in order}
        for n in order:
            for d in graph.deps(n):
                self.dependents[d].append(n)
        self.heap = [self.position[n] for n in order if not self.missing[n]]
        heapq.heapify(self.heap)

    def __bool__(self) -> bool:
        return bool(self.heap)

    def pop(self) -> str:
        return self.order[self._heapq.heappop(self.heap)]

    def done(self, name: str) -> None:
        for m in self.dependents[name]:
            self.missing[m] -= 1
            if not self.missing[m]:
                self._heapq.heappush(self.heap, self.position[m])


class _Job:
    """One task's code, as a worker thread runs it."""

    __slots__ = ("fn", "args", "ident", "finished")

    def __init__(self, fn: Callable[..., None], args: tuple[Any, ...]) -> None:
        self.fn = fn
        self.args = args
        self.ident = 0  # the thread running it, once one does
        self.finished = _thread.allocate_lock()  # released when fn has returned
        self.finished.acquire()

    def wait(self, timeout: float) -> bool:
        """Has fn returned (waiting up to `timeout` seconds)?"""
        if self.finished.acquire(timeout=timeout):
            self.finished.release()
            return True
        return False


class _Workers:
    """The threads that run tasks' code. One whose task is done waits for the next:
    handing a thread work costs a third of starting one, which counts in a chain of
    short tasks."""

    def __init__(self) -> None:
        self._idle: list[SimpleQueue[_Job | None]] = []
        self._lock = _thread.allocate_lock()
        self._closed = False

    def start(self, job: _Job) -> None:
        with self._lock:
            inbox = self._idle.pop() if self._idle else None
        if inbox is None:
            import threading

            inbox = SimpleQueue()
            threading.Thread(target=self._serve, args=(inbox,), name="task", daemon=True).start()
        inbox.put(job)

    def _serve(self, inbox: SimpleQueue[_Job | None]) -> None:
        while True:
            try:
                job = inbox.get()
                if job is None:
                    return
                job.ident = _thread.get_ident()
                try:
                    job.fn(*job.args)
                finally:
                    job.ident = 0  # no stop may reach this thread for that task now
                    job.finished.release()
            except Cancelled:
                pass  # a stop that came as its task's code returned
            with self._lock:
                if self._closed:
                    return
                self._idle.append(inbox)

    def close(self) -> None:
        """Let the idle threads end (busy ones end when their task does)."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for inbox in idle:
            inbox.put(None)


class _Running:
    __slots__ = ("job", "scope", "started", "deadline", "stop_at", "stop_status")

    def __init__(self, job: _Job, scope: Scope) -> None:
        self.job = job
        self.scope = scope
        self.started = time.monotonic()
        self.deadline: float | None = None  # the timeout of the current attempt
        self.stop_at: float | None = None  # when we gave up waiting politely
        self.stop_status: str | None = None


class Executor:
    def __init__(
        self,
        graph: Graph,
        order: list[str],
        args: dict[str, dict[str, Any]],
        *,
        planner: Planner,
        bus: Bus,
        jobs: int,
        keep_going: bool,
        root: str,
        grace: float = 5.0,
        interactive: bool = False,
        audit: Audit | None = None,
    ) -> None:
        self.graph = graph
        self.order = order
        self.args = args
        self.planner = planner
        self.bus = bus
        self.jobs = max(1, jobs)
        self.keep_going = keep_going
        self.root = root
        self.grace = grace
        self.interactive = interactive
        self.audit = audit  # --audit: records what each task does (None: off)
        self._q: SimpleQueue[tuple[Any, ...]] = SimpleQueue()
        self._restore_streams: Any = None  # set once a task's code is about to run
        self._workers = _Workers()
        self._results: dict[str, ev.TaskFinished] = {}
        self._running: dict[str, _Running] = {}
        self._waiting: set[str] = set()  # tasks another runner holds; we wait for it
        self._signals = 0
        self._stop_requested = False  # set by the signal handler itself, before the queue
        self._lifeline: Any = None  # runner.lifeline, from the first task that does work
        self._culprit: dict[str, str] = {}  # a task not run -> the failed task it waited on
        self._first_failure: str | None = None

    # ------------------------------------------------------------------ main loop
    def run(self) -> Outcome:
        started = time.monotonic()
        ready = _Ready(self.graph, self.order)
        stopping = False
        self.planner.load(self.order, self.args)
        restore = self._install_signal_handlers()
        try:
            while True:
                while ready and not self._signals and (stopping or len(self._running) < self.jobs):
                    name = ready.pop()
                    # After a failure nothing starts; a task that is up to date is
                    # still reported so (make -k's answer without -k, minus the work).
                    done = self._settle_stopped(name) if stopping else self._start_or_settle(name)
                    if done is not None:
                        stopping |= self._finish(name, done, ready)
                if (
                    not self._running
                    and (stopping or not ready)
                    and (stopping or not self._waiting)
                ):
                    break
                item = self._next_item()
                if item is None:
                    continue
                if item[0] == "done":
                    _, name, result = item
                    if name in self._running:
                        stopping |= self._finish(name, result, ready)
                elif item[0] == "attempt":
                    _, name, at = item
                    run = self._running.get(name)
                    timeout = self.graph.tasks[name].timeout
                    if run is not None and timeout is not None and run.stop_at is None:
                        run.deadline = at + timeout
                elif item[0] == "locked":
                    name = item[1]
                    self._waiting.discard(name)
                    if stopping:
                        self.planner.unlock(name)
                        continue
                    done = self._start_or_settle(name)
                    if done is not None:
                        stopping |= self._finish(name, done, ready)
                elif item[0] == "signal":
                    stopping = True
                    self._on_signal()
        finally:
            self._workers.close()
            restore()
            self.planner.finish()
            if self._lifeline is not None:
                self._lifeline.close()
        for name in self.order:  # what the run never reached
            if name not in self._results:
                culprit = self._first_failure
                if self._stop_requested or self._signals or culprit is None:
                    reason = "interrupted"
                else:
                    reason = _not_run(culprit)
                self._results[name] = ev.TaskFinished(name, ev.SKIPPED, reason=reason)
        return Outcome(
            self._results,
            self.order,
            time.monotonic() - started,
            interrupted=self._stop_requested,
            deps={n: self.graph.deps(n) for n in self.order},
        )

    def _start_or_settle(self, name: str) -> ev.TaskFinished | None:
        """Start the task in a thread, or return its result when it does not run (or
        None while another runner holds it: a thread waits for that)."""
        deps = self.graph.deps(name)
        skipped = self._skipped_for_a_dep(name)
        if skipped is not None:
            return skipped
        if not self.planner.lock(name, wait=False):
            import threading

            self._waiting.add(name)
            self.bus.emit(ev.TaskWaiting(name))
            threading.Thread(
                target=self._wait_for_lock, args=(name,), daemon=True, name=f"wait:{name}"
            ).start()
            return None
        decision = self.planner.decide(
            name, self.args[name], {d: self._results[d].status for d in deps}
        )
        if self._stop_requested and decision.action == RUN:
            # A Ctrl-C came while the decision waited on a remote cache: the run is
            # stopping, nothing more starts.
            return ev.TaskFinished(name, ev.SKIPPED, reason="interrupted")
        if decision.action != SKIP and self._lifeline is None:
            self._start_lifeline()
        if decision.action == RESTORE:
            why_not = self.planner.restore(name)
            if why_not is not None:
                decision = Decision(RUN, [why_not])
        if decision.action != RUN:
            status = ev.RESTORED if decision.action == RESTORE else ev.CACHED
            return ev.TaskFinished(name, status, reason=decision.reason, saved=decision.saved)
        from .proc import Scope

        if not gc.isenabled():
            # The task's own code runs: it may make garbage only the collector finds.
            # What exists now (the tasksfile, the records) lives as long as the run:
            # frozen, the collector never walks it again.
            gc.freeze()
            gc.enable()
        self._capture_streams()
        scope = Scope(name)
        job = _Job(self._work, (name, decision, scope))
        self._running[name] = _Running(job, scope)
        self._workers.start(job)
        return None

    def _start_lifeline(self) -> None:
        """Before the run's first task runs or is restored: stop what runners killed
        in this project left running (it could write into the outputs about to be
        made), and start recording this run's commands (runner.lifeline)."""
        from .lifeline import Lifeline, stop_leftovers

        store = self.planner.store
        if store is not None:
            stop_leftovers(store.dir, self.grace, self.planner.warn)
        self._lifeline = Lifeline(store.dir if store is not None else None, self.grace)

    def _skipped_for_a_dep(self, name: str) -> ev.TaskFinished | None:
        """The task cannot run: a dep failed (or was not run for that reason)."""
        for d in self.graph.deps(name):
            if self._results[d].status not in ev.SUCCESS:
                culprit = self._culprit.get(d, d)
                self._culprit[name] = culprit
                return ev.TaskFinished(name, ev.SKIPPED, reason=_not_run(culprit))
        return None

    def _settle_stopped(self, name: str) -> ev.TaskFinished:
        """After a failure stopped the run (without -k): the task does not run, but if
        it is up to date it is reported as cached, as `-n` would show it."""
        skipped = self._skipped_for_a_dep(name)
        if skipped is not None:
            return skipped
        culprit = self._first_failure or "an earlier task"
        self._culprit[name] = culprit
        not_run = ev.TaskFinished(name, ev.SKIPPED, reason=_not_run(culprit))
        if not self.planner.lock(name, wait=False):
            return not_run
        deps = {d: self._results[d].status for d in self.graph.deps(name)}
        decision = self.planner.decide(name, self.args[name], deps)
        if decision.action != SKIP:
            return not_run
        return ev.TaskFinished(name, ev.CACHED, reason=decision.reason, saved=decision.saved)

    def _wait_for_lock(self, name: str) -> None:
        self.planner.lock(name, wait=True)
        self._q.put(("locked", name))

    def _finish(self, name: str, result: ev.TaskFinished, ready: _Ready) -> bool:
        """Record a task's result; True when the run must stop scheduling."""
        self._running.pop(name, None)
        self.planner.unlock(name)
        key = self.planner.key(name)
        if key is not None and self.graph.tasks[name].cache:
            result.fingerprint = key.hex()
        self._results[name] = result
        if result.status == ev.FAILED and self._first_failure is None:
            self._first_failure = name
        self.bus.emit(result)
        ready.done(name)
        return result.status in (ev.FAILED, ev.CANCELLED) and not self.keep_going

    def _next_item(self) -> tuple[Any, ...] | None:
        """The next message from a worker or a signal; None when it is time to look at
        the clock (a timeout struck, or a stopped task that never answered)."""
        now = time.monotonic()
        wake = [r.deadline for r in self._running.values() if r.deadline is not None]
        wake += [r.stop_at for r in self._running.values() if r.stop_at is not None]
        wait = max(0.0, min(wake) - now) if wake else None
        try:
            return self._q.get(timeout=wait)
        except Empty:
            pass
        now = time.monotonic()
        for name, run in list(self._running.items()):
            if run.deadline is not None and now >= run.deadline:
                timeout = self.graph.tasks[name].timeout
                self._stop(name, run, f"timed out after {timeout:g}s", ev.FAILED)
            elif run.stop_at is not None and now >= run.stop_at:
                # The task's commands are dead, but its Python code has not returned
                # (it is blocked outside of runner's reach): leave the thread behind.
                self._q.put(
                    (
                        "done",
                        name,
                        ev.TaskFinished(
                            name,
                            run.stop_status or ev.CANCELLED,
                            time.monotonic() - run.started,
                            exit_code=124 if run.stop_status == ev.FAILED else None,
                            error=run.scope.reason,
                        ),
                    )
                )
                run.stop_at = None
        return None

    def _stop(self, name: str, run: _Running, reason: str, status: str) -> None:
        """Cancel a running task: its commands are stopped in the background."""
        run.deadline = None
        run.stop_status = status
        run.stop_at = time.monotonic() + self.grace + ABANDON_AFTER
        import threading

        threading.Thread(
            target=_cancel, args=(run, reason, self.grace), daemon=True, name=f"stop:{name}"
        ).start()

    def cancel(self) -> None:
        """Stop the run from another thread, as a Ctrl-C would (`watch --restart-build`)."""
        self._interrupt()
        self._q.put(("signal", None))

    def _interrupt(self) -> None:
        """What a stop does at once, wherever the main thread is: no task starts after
        the decision under way, and no remote request is waited for any more."""
        self._stop_requested = True
        self.planner.interrupt()

    def _on_signal(self) -> None:
        self._signals += 1
        if self._signals == 1 and self._running:
            from .ptree import tree_of

            pids = [pid for run in self._running.values() for pid in run.scope.pids()]
            processes = len(tree_of(pids)) if pids else 0
            self.bus.emit(ev.RunStopping(self.grace, processes, len(self._running)))
        for name, run in list(self._running.items()):
            if self._signals == 1:
                self._stop(name, run, "interrupted", ev.CANCELLED)
            else:  # a second Ctrl-C: no more grace
                run.scope.kill_now()
                run.stop_at = time.monotonic()

    def _install_signal_handlers(self) -> Any:
        def handler(signum: int, frame: object) -> None:
            self._interrupt()  # flags only: this may run in the middle of anything
            self._q.put(("signal", signum))

        previous = {}
        try:
            for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                previous[s] = signal.signal(s, handler)
        except ValueError:
            pass  # not the main thread (watch runs builds in another): its caller handles them

        def restore() -> None:
            for s, h in previous.items():
                signal.signal(s, h)
            if self._restore_streams is not None:
                self._restore_streams()
                self._restore_streams = None

        return restore

    def _capture_streams(self) -> None:
        """Before the first task's code runs: what it prints goes to its own output (a
        `TaskStream` routes print() by the thread that calls it)."""
        if self._restore_streams is not None:
            return
        import sys

        from .proc import TaskStream

        streams = (sys.stdout, sys.stderr)
        sys.stdout = TaskStream(sys.stdout, "stdout")
        sys.stderr = TaskStream(sys.stderr, "stderr")

        def restore_streams() -> None:
            sys.stdout, sys.stderr = streams

        self._restore_streams = restore_streams

    # ------------------------------------------------------------------ worker
    def _work(self, name: str, decision: Decision, scope: Scope) -> None:
        from .proc import TaskContext, set_context

        task = self.graph.tasks[name]
        bus = self.bus
        ctx = TaskContext(
            name,
            scope,
            self.root,
            output=lambda line, stream, partial: bus.emit(
                ev.TaskOutput(name, line, stream, partial)
            ),
            command=lambda cmd: bus.emit(ev.TaskCommand(name, cmd)),
            command_done=lambda cmd, code, secs: bus.emit(
                ev.CommandFinished(name, cmd, code, secs)
            ),
            interactive=self.interactive,
            grace=self.grace,
            cwd=_workdir(self.root, task.cwd),
            env=self.planner.dotenv_overlay(task),
            lifeline=self._lifeline,
        )
        if self.audit is not None:
            ctx.trace = self.audit.tracer(name)
        set_context(ctx)
        started = time.monotonic()
        attempt = 1
        try:
            missing = _workdir_problem(self.root, task.cwd)
            if missing is None:
                self.planner.prepare(name)
            while missing is None:  # (else it cannot start: below)
                self._q.put(("attempt", name, time.monotonic()))
                bus.emit(ev.TaskStarted(name, decision.reason, attempt))
                error = self._attempt(name)
                if error is None:
                    result = self._store(name, time.monotonic() - started)
                    break
                if isinstance(error, _Stopped) or scope.cancelled:
                    result = self._stopped_result(name, scope, started)
                    break
                if attempt <= task.retries:
                    delay = min(BACKOFF_BASE * 2 ** (attempt - 1), BACKOFF_MAX)
                    bus.emit(ev.TaskRetrying(name, attempt + 1, delay, error.message))
                    if scope.cancelled_event.wait(delay):
                        result = self._stopped_result(name, scope, started)
                        break
                    attempt += 1
                    continue
                result = ev.TaskFinished(
                    name,
                    ev.FAILED,
                    time.monotonic() - started,
                    exit_code=error.exit_code,
                    error=error.message,
                    cmd=error.cmd,
                )
                break
            else:  # its working directory is missing: it fails without running
                result = ev.TaskFinished(name, ev.FAILED, 0.0, exit_code=1, error=missing)
        finally:
            set_context(None)
        if result.status == ev.FAILED:
            self.planner.remember_failure(name)  # what -n compares with next time
        if self.audit is not None and missing is None:
            self.audit.finish(name)
        if result.status == ev.CANCELLED or result.exit_code == 124:
            self.planner.discard(name)
        self._q.put(("done", name, result))

    def _attempt(self, name: str) -> _Failure | None:
        """Run the task's code once (watched, with --audit)."""
        task = self.graph.tasks[name]
        if self.audit is None:
            return _run_attempt(task.call, self.args[name])
        self.audit.begin(name)
        try:
            return _run_attempt(task.call, self.args[name])
        finally:
            self.audit.end(name)

    def _store(self, name: str, duration: float) -> ev.TaskFinished:
        """The task succeeded: its outputs go into the cache (if it made them all,
        and unless --audit=strict found something it does not declare)."""
        missing = self.planner.check_outputs(name)
        if missing is not None:
            return ev.TaskFinished(name, ev.FAILED, duration, exit_code=1, error=missing)
        held = self.audit.hold(name) if self.audit is not None else None
        if held is not None:
            return ev.TaskFinished(name, ev.OK, duration, exit_code=0, reason=held)
        try:
            why_not = self.planner.record(name, duration)
        except StoreError as e:
            return ev.TaskFinished(
                name,
                ev.FAILED,
                duration,
                exit_code=1,
                error=f"the task succeeded, but its result cannot be cached: {e}",
            )
        return ev.TaskFinished(name, ev.OK, duration, exit_code=0, reason=why_not)

    def _stopped_result(self, name: str, scope: Scope, started: float) -> ev.TaskFinished:
        reason = scope.reason or "cancelled"
        timed_out = reason.startswith("timed out")
        return ev.TaskFinished(
            name,
            ev.FAILED if timed_out else ev.CANCELLED,
            time.monotonic() - started,
            exit_code=124 if timed_out else None,
            error=reason,
        )


def _workdir(root: str, cwd: str | None) -> str:
    import os

    return root if cwd is None else os.path.join(root, cwd)


def _workdir_problem(root: str, cwd: str | None) -> str | None:
    """Why the task's working directory cannot be used (None if it can): it must be a
    directory inside the project when the task starts (a dep may have made it)."""
    if cwd is None:
        return None
    import os

    full = os.path.join(root, cwd)
    if not os.path.isdir(full):
        return f"its working directory {cwd}/ does not exist (cwd={cwd!r})"
    real, top = os.path.realpath(full), os.path.realpath(root)
    if real != top and not real.startswith(top + os.sep):
        return f"its working directory {cwd}/ leads outside the project (to {real})"
    return None


def _not_run(culprit: str) -> str:
    """Why a task did not run after a failure: one wording, with or without -k."""
    return f"not run: {culprit} failed"


class _Failure:
    """Why one attempt of a task failed."""

    def __init__(self, message: str, exit_code: int = 1, cmd: str | None = None) -> None:
        self.message = message
        self.exit_code = exit_code
        self.cmd = cmd


class _Stopped(_Failure):
    pass


def _run_attempt(call: Any, args: dict[str, Any]) -> _Failure | None:
    try:
        call(args)
    except Cancelled as e:
        return _Stopped(str(e) or "cancelled")
    except TaskError as e:
        return _Failure(str(e), e.exit_code, e.cmd)
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
        if code == 0:
            return None
        return _Failure(f"the task called sys.exit({e.code!r})", code)
    except Exception as e:
        return _Failure(_describe(e))
    return None


def _describe(e: BaseException) -> str:
    """`file:line: Type: message` at the innermost frame of the user's code; the whole
    traceback follows on the next lines (shown with -v)."""
    import os
    import traceback

    here = os.path.dirname(os.path.abspath(__file__)) + os.sep
    where = ""
    for frame in traceback.extract_tb(e.__traceback__):
        if not frame.filename.startswith(here):
            from .errors import _short

            where = f"{_short(frame.filename)}:{frame.lineno}: "
    head = f"{where}{type(e).__name__}: {e}"
    trace = "".join(traceback.format_exception(type(e), e, e.__traceback__))
    return head + "\n" + trace


def _cancel(run: _Running, reason: str, grace: float) -> None:
    run.scope.cancel(reason, grace)  # returns when the task's commands are gone
    if not run.job.wait(0.5) and run.job.ident:
        # Pure Python code is still running (no command to kill): raise Cancelled
        # inside it, which takes effect at its next bytecode.
        import ctypes

        ctypes.pythonapi.PyThreadState_SetAsyncExc(
            ctypes.c_ulong(run.job.ident), ctypes.py_object(Cancelled)
        )
