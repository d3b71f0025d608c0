"""A desktop notification through the platform's command: notify-send (Linux, BSD),
osascript (macOS)."""

from __future__ import annotations

import shutil
import subprocess
import sys


def show(title: str, text: str) -> None:
    from . import NotifyError

    if sys.platform == "darwin":
        script = f"display notification {_quote(text)} with title {_quote(title)}"
        argv = ["osascript", "-e", script]
    else:
        argv = ["notify-send", "--app-name=runner", title, text]
    if shutil.which(argv[0]) is None:
        raise NotifyError(f"no desktop notification: {argv[0]} is not on PATH")
    try:
        subprocess.run(argv, check=True, timeout=5, capture_output=True)
    except (OSError, subprocess.SubprocessError) as e:
        raise NotifyError(f"desktop notification failed: {argv[0]}: {e}") from None


def _quote(text: str) -> str:
    """An AppleScript string literal."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
