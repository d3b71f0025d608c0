"""`runner cache info|clean|prune`: looking at the cache and making it smaller."""

from __future__ import annotations

import os

from .errors import StoreError, UsageError
from .store import Store

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, TextIO

    from .loader import Project

_SIZES = {
    "": 1,
    "b": 1,
    "k": 1 << 10,
    "kb": 1 << 10,
    "m": 1 << 20,
    "mb": 1 << 20,
    "g": 1 << 30,
    "gb": 1 << 30,
    "t": 1 << 40,
    "tb": 1 << 40,
}
_AGES = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_size(text: str) -> int:
    """`500M`, `1G`, `1.5GB`, `2048` (bytes)."""
    t = text.strip().lower()
    num = t.rstrip("kmgtb")
    unit = t[len(num) :]
    try:
        value = float(num)
    except ValueError:
        value = -1
    if unit not in _SIZES or value < 0:
        raise UsageError(f"--max-size expects a size like 500M or 1G, got {text!r}")
    return int(value * _SIZES[unit])


def parse_age(text: str) -> float:
    """`30d`, `12h`, `90m`, `2w`, `45s`."""
    t = text.strip().lower()
    unit = t[-1:] if t[-1:] in _AGES else ""
    try:
        value = float(t[:-1] if unit else t)
    except ValueError:
        value = -1
    if not unit or value < 0:
        raise UsageError(f"--older-than expects an age like 30d, 12h or 90m, got {text!r}")
    return value * _AGES[unit]


def human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def cache_command(
    sub: str,
    project: Project,
    max_size: str | None,
    older_than: str | None,
    out: TextIO,
    err: TextIO,
    *,
    as_json: bool = False,
) -> int:
    if sub != "prune" and (max_size or older_than):
        raise UsageError("--max-size and --older-than go with `runner cache prune`")
    cache_dir = project.cache_dir
    if sub == "info":
        return _info(cache_dir, out, as_json)

    def warn(message: str) -> None:
        err.write(f"runner: warning: {message}\n")

    store = Store(cache_dir, warn=warn)
    try:
        if not store.locks.own_project():
            raise StoreError(
                f"another runner is working in {project.root}; try again when it is done"
            )
        if sub == "clean":
            store.clean()
            out.write(f"cleaned the cache in {cache_dir} (the run history is kept)\n")
            return 0
        if max_size is None and older_than is None:
            raise UsageError("`runner cache prune` needs --max-size SIZE and/or --older-than AGE")
        removed, freed = store.prune(
            max_size=parse_size(max_size) if max_size is not None else None,
            older_than=parse_age(older_than) if older_than is not None else None,
        )
        out.write(
            f"pruned {removed} cache entr{'y' if removed == 1 else 'ies'}, freed {human(freed)}\n"
        )
        return 0
    finally:
        store.close()


def _info(cache_dir: str, out: TextIO, as_json: bool) -> int:
    info: dict[str, Any]
    if not os.path.exists(os.path.join(cache_dir, "state.db")):
        info = {
            "entries": 0,
            "entries_size": 0,
            "tasks": 0,
            "blobs": 0,
            "blob_bytes": 0,
            "hit_rate": None,
            "runs_counted": 0,
        }
    else:
        store = Store(cache_dir, readonly=True)
        try:
            info = store.info()
        finally:
            store.close()
        info.pop("runs", None)
    if as_json:
        import json

        out.write(json.dumps({"cache_dir": cache_dir, **info}, indent=2) + "\n")
        return 0
    rate = info["hit_rate"]
    out.write(
        f"cache:     {cache_dir}\n"
        f"size:      {human(info['blob_bytes'])} in {info['blobs']} blobs\n"
        f"entries:   {info['entries']} (outputs of {human(info['entries_size'])}) "
        f"for {info['tasks']} tasks\n"
        f"hit rate:  "
        + (
            f"{rate:.0%} over the last {info['runs_counted']} runs\n"
            if rate is not None
            else "no runs recorded yet\n"
        )
    )
    return 0
