"""`python -m runner` and the `runner` console script."""

from __future__ import annotations

import gc
import sys

from .cli import main, run_entry


def entry() -> int:
    # A command that runs no task's own Python code is short and leaves few cycles
    # behind: the cyclic collector would only walk every object of the tasksfile and
    # the records, again and again. It is switched back on before a task's code runs
    # (runner.executor) and for `runner watch`, which lives long.
    gc.disable()
    code = run_entry(main)
    # Exiting: teardown still flushes files and runs atexit handlers, without the
    # collector's last pass over every object (a few ms with 1,000 tasks).
    gc.freeze()
    return code


if __name__ == "__main__":
    sys.exit(entry())
