"""The file system's clock: when stat data can be trusted to show a change."""

from __future__ import annotations


def racy(mtime_ns: int, ctime_ns: int, recorded_ns: int) -> bool:
    """May a file change without its stat data changing, given that we read it at
    `recorded_ns`? True when it was modified within the timestamp granularity of that
    moment ("racy git"): a write in the same clock tick would leave mtime, ctime and
    size as they were. Linux file systems stamp with a clock that ticks every few ms
    (100 ms is a wide margin); one that keeps whole seconds (FAT keeps two) shows it
    in its timestamps."""
    window = 2_000_000_000 if mtime_ns % 1_000_000_000 == 0 else 100_000_000
    return max(mtime_ns, ctime_ns) >= recorded_ns - window
