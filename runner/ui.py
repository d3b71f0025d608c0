"""Turning events into what the user sees: plain lines, JSON lines, or (on a terminal)
a rich live view. Only the live view imports rich."""

from __future__ import annotations

import os
import time

from . import events as ev

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TextIO

    from .executor import Outcome


def use_live_view(out: TextIO, quiet: bool, log_format: str) -> bool:
    """The live view is for people at a terminal, not for pipes, files or CI logs."""
    if quiet or log_format != "text" or os.environ.get("CI") or os.environ.get("NO_LIVE"):
        return False
    if os.environ.get("TERM") == "dumb":
        return False
    try:
        return out.isatty()
    except (AttributeError, ValueError):
        return False


def _dur(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.2f}s"
    m, s = divmod(seconds, 60)
    return f"{int(m)}m{s:04.1f}s"


STATUS_WORD = {
    ev.OK: "ok",
    ev.CACHED: "cached",
    ev.RESTORED: "restored",
    ev.FAILED: "FAILED",
    ev.SKIPPED: "skipped",
    ev.CANCELLED: "cancelled",
}


class PlainRenderer:
    """Plain lines: for pipes, files and CI logs. Task output is prefixed with the task
    name (`build | ...`) when several tasks can run at once."""

    def __init__(
        self,
        out: TextIO,
        err: TextIO,
        *,
        prefix: bool,
        width: int = 0,
        verbose: bool = False,
        quiet: bool = False,
    ) -> None:
        self.out = out
        self.err = err
        self.prefix = prefix
        self.width = width
        self.verbose = verbose
        self.quiet = quiet
        self.broken = False
        # The (task, stream) whose line was started by a partial write and has not
        # ended yet, and where it is being written.
        self._open: tuple[str, str] | None = None
        self._open_on: TextIO | None = None

    def _write(self, stream: TextIO, text: str, end: str = "\n") -> None:
        if self.broken:
            return
        try:
            if self._open_on is not None:  # end the partial line before anything else
                self._open_on.write("\n")
                self._open_on.flush()
                self._open = self._open_on = None
            stream.write(text + end)
            stream.flush()
        except BrokenPipeError:  # `runner ... | head`: stop writing, keep running
            self.broken = True

    def _tag(self, task: str) -> str:
        return f"{task:<{self.width}} | " if self.prefix else ""

    def _output(self, e: ev.TaskOutput) -> None:
        """A line of a task's output, on runner's stdout or stderr as the task wrote
        it; a partial line is written as it is and continued by what follows it."""
        stream = self.err if e.stream == "stderr" else self.out
        key = (e.task, e.stream)
        if self._open == key:
            text = e.line
            self._open = self._open_on = None  # continued: no newline in between
        else:
            text = self._tag(e.task) + e.line
        if e.partial:
            self._write(stream, text, end="")
            self._open, self._open_on = key, stream
        else:
            self._write(stream, text)

    def __call__(self, e: ev.Event) -> None:
        if isinstance(e, ev.TaskOutput):
            self._output(e)
        elif isinstance(e, ev.RunStopping):
            self._write(self.err, stopping_line(e))
        elif isinstance(e, ev.TaskWaiting):
            self._write(self.err, waiting_line(e))
        elif self.quiet:
            if isinstance(e, ev.TaskFinished) and e.status == ev.FAILED:
                self._write(self.err, self._failure_line(e))
        elif isinstance(e, ev.TaskCommand):
            self._write(self.out, f"{self._tag(e.task)}$ {e.cmd}")
        elif isinstance(e, ev.TaskStarted):
            extra = f" (attempt {e.attempt})" if e.attempt > 1 else ""
            why = f": {e.reason}" if self.verbose and e.reason and e.attempt == 1 else ""
            self._write(self.out, f"> {e.task}{extra}{why}")
        elif isinstance(e, ev.TaskRetrying):
            first = e.error.splitlines()[0] if e.error else "failed"
            self._write(
                self.err, f"{e.task}: {first}; retrying in {e.delay:g}s (attempt {e.attempt})"
            )
        elif isinstance(e, ev.TaskFinished):
            if e.status == ev.CACHED and not self.verbose:
                return  # up to date: counted in the summary, not worth a line each
            self._write(self.out if e.ok else self.err, self._finished_line(e))

    def _finished_line(self, e: ev.TaskFinished) -> str:
        word = STATUS_WORD.get(e.status, e.status)
        if e.status == ev.FAILED:
            return self._failure_line(e)
        if e.status in (ev.CACHED, ev.RESTORED, ev.SKIPPED):
            why = f" ({e.reason})" if e.reason and (self.verbose or e.status != ev.CACHED) else ""
            return f"{word} {e.task}{why}"
        return f"{word} {e.task} ({_dur(e.duration)})"

    def _failure_line(self, e: ev.TaskFinished) -> str:
        # An exit code is a command's: a Python exception has none worth showing.
        code = f"exit {e.exit_code}, " if e.exit_code is not None and e.cmd else ""
        return f"FAILED {e.task} ({code}{_dur(e.duration)})"

    def summary(self, outcome: Outcome) -> None:
        """The end of the run: a count line; with several tasks, the status and time
        of each that did something (up-to-date ones are only counted); failures last."""
        if not self.quiet:
            shown = [n for n in outcome.order if outcome.results[n].status != ev.CACHED]
            if len(outcome.order) > 1 and shown:
                self._write(self.out, "")
            self._write(self.out, summary_line(outcome))
            if len(outcome.order) > 1 and shown:
                w = max(len(n) for n in shown)
                for name in shown:
                    r = outcome.results[name]
                    word = STATUS_WORD.get(r.status, r.status)
                    self._write(self.out, f"  {word:<9} {name:<{w}}  {summary_detail(r)}".rstrip())
            path = critical_path_line(outcome)
            if path:
                self._write(self.out, path)
        failures = [outcome.results[n] for n in outcome.failed]
        if failures:
            self._write(self.err, "")
            self._write(self.err, "failures:")
            for r in failures:
                for line in failure_lines(r, self.verbose):
                    self._write(self.err, line)


def summary_detail(r: ev.TaskFinished) -> str:
    """A task's row in the summary: how long it ran, or why it did not run. (Why a
    restore was needed was said when it happened.)"""
    if r.status in (ev.OK, ev.FAILED, ev.CANCELLED):
        return _dur(r.duration)
    return (r.reason or "") if r.status == ev.SKIPPED else ""


def summary_line(outcome: Outcome) -> str:
    counts = outcome.counts()
    order = (ev.OK, ev.CACHED, ev.RESTORED, ev.FAILED, ev.CANCELLED, ev.SKIPPED)
    parts = [f"{counts[s]} {STATUS_WORD[s].lower()}" for s in order if counts.get(s)]
    saved = sum(r.saved or 0.0 for r in outcome.results.values())
    tail = f", {_dur(saved)} saved by the cache" if saved >= 0.01 else ""
    head = "interrupted" if outcome.interrupted else ("failed" if outcome.failed else "done")
    return f"{head} in {_dur(outcome.duration)}: {', '.join(parts) or 'nothing to do'}{tail}"


def critical_path_line(outcome: Outcome) -> str | None:
    """`critical path: build 0.30s -> test 1.20s`, when several tasks ran."""
    ran = [r for r in outcome.results.values() if r.status in (ev.OK, ev.FAILED)]
    if len(ran) < 2:
        return None
    path = outcome.critical_path()
    steps = " -> ".join(
        f"{n} {_dur(outcome.results[n].duration)}"
        for n in path
        if outcome.results[n].status in (ev.OK, ev.FAILED)
    )
    return f"critical path: {steps}" if steps else None


def stopping_line(e: ev.RunStopping) -> str:
    """What a first Ctrl-C waits for, and how not to."""
    if e.processes:
        what = f"{e.processes} process{'' if e.processes == 1 else 'es'}"
    else:
        what = f"{e.tasks} task{'' if e.tasks == 1 else 's'}"
    return f"stopping: waiting up to {e.grace:g}s for {what} (Ctrl-C again to kill now)"


def waiting_line(e: ev.TaskWaiting) -> str:
    return f"{e.task}: waiting for another runner, which is running it"


def failure_lines(r: ev.TaskFinished, verbose: bool) -> list[str]:
    lines = (r.error or "failed").splitlines()
    head = [f"  {r.task}: {lines[0]}"]
    if r.cmd and r.cmd not in lines[0]:
        head.append(f"    command: {r.cmd}")
    if r.exit_code is not None and r.cmd and f"exit code {r.exit_code}" not in lines[0]:
        head.append(f"    exit code: {r.exit_code}")
    if verbose and len(lines) > 1:
        head.extend("    " + line for line in lines[1:])
    return head


class JsonRenderer:
    """One JSON object per event, each with the run id and a timestamp (and what
    plugins add to every line, such as a trace id)."""

    def __init__(
        self,
        out: TextIO,
        run_id: str,
        fields: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    ) -> None:
        self.out = out
        self.run_id = run_id
        self.fields = fields

    def __call__(self, e: ev.Event) -> None:
        import json

        d = e.to_dict()
        if self.fields is not None:
            d.update(self.fields(d))
        d["run_id"] = self.run_id
        d["ts"] = round(time.time(), 6)
        if isinstance(d.get("duration"), float):
            d["duration"] = round(d["duration"], 6)
        if isinstance(e, ev.TaskFinished) and e.error:
            d["error"] = e.error.splitlines()[0]
        try:
            self.out.write(json.dumps(d, separators=(",", ":")) + "\n")
            self.out.flush()
        except BrokenPipeError:
            pass

    def summary(self, outcome: Outcome) -> None:
        pass


class WholeLines:
    """Hands a renderer that wants whole lines (JSON lines, GitHub's groups) each line
    of a task's output once it has ended: partial writes are held until the rest of
    the line comes, or the task finishes."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.held: dict[tuple[str, str], str] = {}

    def __call__(self, e: ev.Event) -> None:
        if isinstance(e, ev.TaskOutput):
            key = (e.task, e.stream)
            if e.partial:
                self.held[key] = self.held.get(key, "") + e.line
                return
            if key in self.held:
                e = ev.TaskOutput(e.task, self.held.pop(key) + e.line, e.stream)
        elif isinstance(e, ev.TaskFinished):
            for key in [k for k in self.held if k[0] == e.task]:
                self.inner(ev.TaskOutput(e.task, self.held.pop(key), key[1]))
        self.inner(e)

    def summary(self, outcome: Outcome) -> None:
        self.inner.summary(outcome)


class LiveRenderer:
    """A live view of the running tasks and their elapsed time (and the line each is
    writing, until it ends), above which task output scrolls; a summary table at the
    end. A command's standard error goes to runner's when that is not this terminal
    (`2>/dev/null`, `2>log`)."""

    def __init__(
        self, out: TextIO, err: TextIO, *, prefix: bool, width: int, verbose: bool
    ) -> None:
        from rich.console import Console
        from rich.live import Live

        self.console = Console(file=out, highlight=False)
        self.plain = PlainRenderer(out, out, prefix=prefix, width=width, verbose=verbose)
        self.errors = (
            None if _is_terminal(err) else PlainRenderer(err, err, prefix=prefix, width=width)
        )
        self.running: dict[str, float] = {}
        self.partial: dict[tuple[str, str], str] = {}  # lines started, not ended yet
        self.live = Live(
            console=self.console,
            refresh_per_second=8,
            transient=True,
            get_renderable=self._view,
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self.live.start()

    def _view(self) -> Any:
        from rich.table import Table
        from rich.text import Text

        table = Table.grid(padding=(0, 1))
        now = time.monotonic()
        for name, since in list(self.running.items()):
            started = [text for (task, _s), text in list(self.partial.items()) if task == name]
            line = started[-1].rsplit("\r", 1)[-1] if started else ""  # a bar redraws
            table.add_row(
                "[yellow]●[/]",
                name,
                f"[dim]{_dur(now - since)}[/]",
                Text(line, no_wrap=True, overflow="ellipsis"),
            )
        return table

    def _output(self, e: ev.TaskOutput) -> None:
        from rich.text import Text

        if e.stream == "stderr" and self.errors is not None:
            self.errors(e)
            return
        key = (e.task, e.stream)
        if e.partial:
            self.partial[key] = self.partial.get(key, "") + e.line
            return
        line = self.partial.pop(key, "") + e.line
        self.console.print(Text(self.plain._tag(e.task) + line), soft_wrap=True)

    def __call__(self, e: ev.Event) -> None:
        from rich.text import Text

        if isinstance(e, ev.TaskStarted):
            self.running.setdefault(e.task, time.monotonic())
            if e.attempt > 1:
                self.console.print(Text(f"{e.task}: attempt {e.attempt}", style="yellow"))
            return
        if isinstance(e, ev.TaskOutput):
            self._output(e)
            return
        if isinstance(e, ev.TaskCommand):
            self.console.print(
                Text(f"{self.plain._tag(e.task)}$ {e.cmd}", style="dim"), soft_wrap=True
            )
            return
        if isinstance(e, ev.TaskRetrying):
            first = e.error.splitlines()[0] if e.error else "failed"
            self.console.print(Text(f"{e.task}: {first}; retrying in {e.delay:g}s", style="yellow"))
            return
        if isinstance(e, (ev.RunStopping, ev.TaskWaiting)):
            line = stopping_line(e) if isinstance(e, ev.RunStopping) else waiting_line(e)
            self.console.print(Text(line, style="yellow"))
            return
        if isinstance(e, ev.TaskFinished):
            for key in [k for k in self.partial if k[0] == e.task]:  # a last, unended line
                self._output(ev.TaskOutput(e.task, "", key[1]))
            self.running.pop(e.task, None)
            style = {
                ev.OK: "green",
                ev.FAILED: "bold red",
                ev.CANCELLED: "red",
                ev.SKIPPED: "dim",
                ev.CACHED: "cyan",
                ev.RESTORED: "cyan",
            }[e.status]
            mark = {ev.OK: "✓", ev.FAILED: "✗", ev.CANCELLED: "✗"}.get(e.status, "·")
            self.console.print(Text(f"{mark} {self.plain._finished_line(e)}", style=style))

    def summary(self, outcome: Outcome) -> None:
        from rich.table import Table
        from rich.text import Text

        self.live.stop()
        # The count line on a line of its own: as a table title it would wrap at the
        # table's width.
        self.console.print(Text(summary_line(outcome)), soft_wrap=True)
        shown = [n for n in outcome.order if outcome.results[n].status != ev.CACHED]
        if len(outcome.order) > 1 and shown:
            table = Table(box=None, show_header=True, header_style="bold")
            table.add_column("task")
            table.add_column("status")
            table.add_column("time", justify="right")
            for name in shown:
                r = outcome.results[name]
                style = (
                    "red" if r.status in (ev.FAILED, ev.CANCELLED) else ("green" if r.ok else "dim")
                )
                table.add_row(name, f"[{style}]{STATUS_WORD[r.status]}[/]", summary_detail(r))
            self.console.print(table)
        path = critical_path_line(outcome)
        if path:
            self.console.print(Text(path, style="dim"), soft_wrap=True)
        failures = [outcome.results[n] for n in outcome.failed]
        if failures:
            self.console.print(Text("failures:", style="bold red"))
            for r in failures:
                for line in failure_lines(r, self.plain.verbose):
                    self.console.print(Text(line), soft_wrap=True)

    def close(self) -> None:
        self.live.stop()


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def make_renderer(
    out: TextIO,
    err: TextIO,
    *,
    log_format: str,
    quiet: bool,
    verbose: bool,
    prefix: bool,
    width: int,
    run_id: str,
    log_fields: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> Any:
    if log_format == "json":
        return WholeLines(JsonRenderer(out, run_id, log_fields))
    if os.environ.get("GITHUB_ACTIONS") == "true" and not quiet:
        from .ci.report import GitHubRenderer  # groups, annotations, the job summary

        return WholeLines(GitHubRenderer(out, err, prefix=prefix, width=width, verbose=verbose))
    if use_live_view(out, quiet, log_format):
        return LiveRenderer(out, err, prefix=prefix, width=width, verbose=verbose)
    return PlainRenderer(out, err, prefix=prefix, width=width, verbose=verbose, quiet=quiet)
