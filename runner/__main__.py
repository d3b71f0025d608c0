"""`python -m runner` and the `runner` console script."""

from __future__ import annotations

import sys

from .cli import main, run_entry


def entry() -> int:
    return run_entry(main)


if __name__ == "__main__":
    sys.exit(entry())
