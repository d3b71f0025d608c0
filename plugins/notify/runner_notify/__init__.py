"""runner-notify: say so when a long run is over, for whoever went to do something else.

When a run took at least `after` seconds (and was not interrupted: then the user is
there), the plugin rings the terminal bell (only when standard output is a terminal),
shows a desktop notification (`desktop = true`: notify-send, or osascript on macOS),
and POSTs a JSON summary to `webhook` (a Slack-style `text`, and the run's id, status,
exit code, duration, task counts, critical path and the time the cache saved).

    [tool.runner-notify]
    after = 30          # seconds; 0: every run
    bell = true
    desktop = false
    webhook = "https://hooks.example.com/..."
    timeout = 5         # seconds the POST may take

`RUNNER_NOTIFY_AFTER`, `_BELL`, `_DESKTOP`, `_WEBHOOK` and `_TIMEOUT` override the table.
A notification that fails (the webhook is down) is a warning; the run's result stands.
"""

from __future__ import annotations

import os
import sys

from .settings import Settings, read_settings

TYPE_CHECKING = False
if TYPE_CHECKING:
    from runner.loader import Project

__version__ = "0.1.0"
__all__ = ["__version__", "runner_add_tasks", "runner_run_finished"]


class NotifyError(Exception):
    """A notification could not be delivered."""


# The project being run, as `runner_add_tasks` found it (None: not called, as when
# runner is used as a library without its loader).
_settings: Settings | None = None
_project_name = ""


def runner_add_tasks(project: Project) -> list[object]:
    """No tasks: this is where a plugin meets the project, so the settings are read
    (and a bad one stops runner with exit 2, before anything runs)."""
    global _settings, _project_name
    _settings = read_settings(project.root, os.environ)
    _project_name = os.path.basename(project.root)
    return []


def runner_run_finished(
    run_id: str,
    status: str,
    duration: float,
    exit_code: int,
    counts: dict[str, int],
    critical_path: list[str],
    saved: float,
) -> None:
    settings = _settings or read_settings(os.getcwd(), os.environ)
    if status == "interrupted" or duration < settings.after:
        return
    text = summary(status, duration, counts)
    failures = []
    if settings.bell:
        ring_bell()
    if settings.desktop:
        from .desktop import show

        try:
            show(f"runner: {status}", text)
        except NotifyError as e:
            failures.append(str(e))
    if settings.webhook:
        from .webhook import post

        body = {
            "text": text,
            "project": _project_name,
            "run_id": run_id,
            "status": status,
            "exit_code": exit_code,
            "duration": round(duration, 3),
            "counts": counts,
            "critical_path": critical_path,
            "saved": round(saved, 3),
        }
        try:
            post(settings.webhook, body, settings.timeout)
        except NotifyError as e:
            failures.append(str(e))
    if failures:  # runner reports it as a warning; the run's result stands
        raise NotifyError("; ".join(failures))


def summary(status: str, duration: float, counts: dict[str, int]) -> str:
    """`myproject: failed in 1m02s (3 ok, 1 failed, 2 cached)`."""
    if duration < 60:
        took = f"{duration:.1f}s"
    else:
        took = f"{int(duration // 60)}m{int(duration % 60):02d}s"
    tally = ", ".join(f"{n} {what}" for what, n in counts.items() if n)
    return f"{_project_name or 'runner'}: {status} in {took}" + (f" ({tally})" if tally else "")


def ring_bell() -> None:
    """BEL to the terminal; nothing when standard output is a pipe or a file."""
    out = sys.stdout
    try:
        if out.isatty():
            out.write("\a")
            out.flush()
    except (AttributeError, OSError, ValueError):
        pass
