"""A run inside GitHub Actions: the plain lines, with each task's output folded into a
`::group::`, an `::error::` annotation for each failure, and a markdown table of the
run appended to the job summary (`$GITHUB_STEP_SUMMARY`).

GitHub cannot nest groups, and tasks that run at once would interleave their lines, so
one task at a time owns the open group and streams into it; the others' lines wait, and
come out as a group of their own when that task finishes.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from .. import events as ev
from ..ui import STATUS_WORD, PlainRenderer, summary_line
from ..ui import _dur as duration_text

if TYPE_CHECKING:
    from typing import TextIO

    from ..executor import Outcome

CACHE_WORD = {
    ev.OK: "ran",
    ev.FAILED: "ran",
    ev.CANCELLED: "ran",
    ev.CACHED: "hit",
    ev.RESTORED: "restored",
}
STATUS_MARK = {
    ev.OK: "✅",
    ev.CACHED: "✅",
    ev.RESTORED: "✅",
    ev.FAILED: "❌",
    ev.CANCELLED: "🚫",
    ev.SKIPPED: "⏭️",
}


def escape_data(text: str) -> str:
    """A workflow command's message, as GitHub's runner reads it back."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """A workflow command's property value (`title=...`): also no `:` or `,`."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


class GitHubRenderer(PlainRenderer):
    """PlainRenderer's lines, grouped per task and annotated for GitHub Actions."""

    def __init__(
        self, out: TextIO, err: TextIO, *, prefix: bool, width: int = 0, verbose: bool = False
    ) -> None:
        # Inside a group every line is one task's: no `task | ` prefix is needed.
        super().__init__(out, err, prefix=False, width=width, verbose=verbose)
        self.held: dict[str, list[str]] = {}  # the lines of tasks that wait for the group
        self.open: str | None = None  # the task whose group is open
        self.continued: set[str] = set()  # tasks whose group was closed for another's

    def __call__(self, e: ev.Event) -> None:
        if isinstance(e, ev.TaskFinished):
            self._finish_group(e.task)
            super().__call__(e)
            if e.status == ev.FAILED:
                self._write(self.out, failure_annotation(e))
            return
        grouped = self._task_line(e)
        if grouped is None:
            super().__call__(e)
            return
        task, line = grouped
        if self.open in (None, task):
            self._stream(task, line)
        else:
            self.held.setdefault(task, []).append(line)

    def _task_line(self, e: ev.Event) -> tuple[str, str] | None:
        """The task an event belongs to and the line it adds to that task's group ('' for
        none); None for events that are not one task's."""
        if isinstance(e, ev.TaskOutput):
            return e.task, e.line
        if isinstance(e, ev.TaskCommand):
            return e.task, f"$ {e.cmd}"
        if isinstance(e, ev.TaskRetrying):
            first = e.error.splitlines()[0] if e.error else "failed"
            return e.task, f"{first}; retrying in {e.delay:g}s (attempt {e.attempt})"
        if isinstance(e, ev.TaskStarted) and e.attempt > 1:
            return e.task, f"attempt {e.attempt}"
        if isinstance(e, ev.TaskStarted):
            return e.task, f"runs: {e.reason}" if self.verbose and e.reason else ""
        return None

    def _stream(self, task: str, line: str) -> None:
        if self.open is None:
            if not line and not self.held.get(task):
                return
            more = " (continued)" if task in self.continued else ""
            self._write(self.out, f"::group::{escape_data(task)}{more}")
            self.open = task
            for held in self.held.pop(task, []):
                if held:
                    self._write(self.out, held)
        if line:
            self._write(self.out, line)

    def _finish_group(self, task: str) -> None:
        """Close the task's group (or print its held lines as one) before its result."""
        if self.open == task:
            self._write(self.out, "::endgroup::")
            self.open = None
            return
        lines = [line for line in self.held.pop(task, []) if line]
        if lines:
            if self.open is not None:  # groups do not nest: the open one goes on later
                self._write(self.out, "::endgroup::")
                self.continued.add(self.open)
                self.open = None
            self._write(self.out, f"::group::{escape_data(task)}")
            for line in lines:
                self._write(self.out, line)
            self._write(self.out, "::endgroup::")

    def summary(self, outcome: Outcome) -> None:
        if self.open is not None:
            self._write(self.out, "::endgroup::")
            self.open = None
        for task in list(self.held):
            self._finish_group(task)
        super().summary(outcome)
        path = os.environ.get("GITHUB_STEP_SUMMARY")
        if path:
            try:
                with open(path, "a", encoding="utf-8") as f:
                    f.write(summary_markdown(outcome))
            except OSError as error:
                self._write(self.err, f"runner: warning: cannot write the job summary: {error}")


def failure_annotation(e: ev.TaskFinished) -> str:
    """`::error title=...::message` for a failed task: the red box on the run's page."""
    lines = (e.error or "failed").splitlines()
    message = [lines[0]]
    if e.cmd and e.cmd not in lines[0]:
        message.append(f"command: {e.cmd}")
    if e.exit_code is not None and "exit code" not in lines[0]:
        message.append(f"exit code: {e.exit_code}")
    title = f"task {e.task} failed"
    return f"::error title={escape_property(title)}::{escape_data(chr(10).join(message))}"


def summary_markdown(outcome: Outcome) -> str:
    """The run as a markdown table: task, status, duration, cache, time saved."""
    rows = [
        f"### runner: {summary_line(outcome)}",
        "",
        "| task | status | duration | cache | time saved |",
        "| --- | --- | ---: | --- | ---: |",
    ]
    for name in outcome.order:
        r = outcome.results.get(name)
        if r is None:
            continue
        ran = r.status in (ev.OK, ev.FAILED, ev.CANCELLED)
        status = f"{STATUS_MARK.get(r.status, '')} {STATUS_WORD.get(r.status, r.status)}"
        rows.append(
            " | ".join(
                (
                    f"| `{name}`",
                    status.strip(),
                    duration_text(r.duration) if ran else "",
                    CACHE_WORD.get(r.status, ""),
                    duration_text(r.saved) if r.saved else "",
                )
            )
            + " |"
        )
    failures = [outcome.results[n] for n in outcome.failed]
    if failures:
        rows += ["", "**Failures**", ""]
        for r in failures:
            first = (r.error or "failed").splitlines()[0]
            rows.append(f"- `{r.task}`: {_markdown_text(first)}")
    return "\n".join(rows) + "\n\n"


def _markdown_text(text: str) -> str:
    """Text that markdown shows as it is (an error message may hold `*`, `<` or `|`)."""
    out = []
    for ch in text:
        out.append("\\" + ch if ch in "\\`*_{}[]()#+-.!|<>~" else ch)
    return "".join(out)
