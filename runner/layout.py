"""The cache directory's layout, checked and repaired.

`cas/` (and each of its `ab/` fan-out directories) and `tmp/` are directories, `locks`
is a file. Anything else in their place (a file where a directory belongs, a directory
where the file does) is damage, not something to trust or to fail on forever: it is
reported in one line, moved aside as NAME.damaged-N (as runner.store does with a
damaged state.db; a fan-out directory's stand-in is removed), and made anew, and the
run goes on. What the store held there is then missing, which costs re-runs, never an
output: the outputs in the project are not touched for it.
"""

from __future__ import annotations

import os
import stat

from .errors import StoreError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    Warn = Callable[[str], None]


def ensure_directory(cache_dir: str, name: str, warn: Warn) -> str:
    """cache_dir/name as a directory (made if missing, repaired if something else is
    there); its path."""
    path = os.path.join(cache_dir, name)
    try:
        if stat.S_ISDIR(os.stat(path).st_mode):
            return path
    except FileNotFoundError:
        if not os.path.lexists(path):  # a dangling link stands in its place otherwise
            return _make_directory(path)
    except NotADirectoryError:
        raise StoreError(f"cannot use the cache directory {cache_dir}: not a directory") from None
    move_aside(cache_dir, name, "a file, not a directory", warn)
    return _make_directory(path)


def ensure_not_directory(cache_dir: str, name: str, warn: Warn) -> None:
    """Where a file of the store belongs (`locks`), no directory."""
    path = os.path.join(cache_dir, name)
    if os.path.isdir(path):
        move_aside(cache_dir, name, "a directory, not a file", warn)


def repair_fan_out(cache_dir: str, directory: str, warn: Warn) -> None:
    """A blob's directory (cas/ab) that is not one: remove what stands there, make it."""
    rel = os.path.relpath(directory, cache_dir)
    if not os.path.lexists(directory) or os.path.isdir(directory):
        os.makedirs(directory, exist_ok=True)
        return
    _remove(directory)
    warn(
        f"the cache directory {cache_dir} was damaged: {rel} was a file, not a directory; "
        "removed it"
    )
    os.makedirs(directory, exist_ok=True)


def repair_blob(cache_dir: str, path: str, warn: Warn) -> None:
    """Where a blob belongs, a directory (or something else that is not a file)."""
    rel = os.path.relpath(path, cache_dir)
    _remove(path)
    warn(f"the cache directory {cache_dir} was damaged: {rel} was not a file; removed it")


def move_aside(cache_dir: str, name: str, what: str, warn: Warn) -> None:
    """Keep what stands at cache_dir/name as NAME.damaged-N, and say so."""
    path = os.path.join(cache_dir, name)
    n = 1
    while os.path.lexists(f"{path}.damaged-{n}"):
        n += 1
    try:
        os.rename(path, f"{path}.damaged-{n}")
    except FileNotFoundError:
        return  # another runner repaired it first
    except OSError as e:
        raise StoreError(f"cannot repair {path}: {e.strerror or e}") from None
    warn(
        f"the cache directory {cache_dir} was damaged: {name} was {what}; moved it to "
        f"{name}.damaged-{n} and made a new one"
    )


def _make_directory(path: str) -> str:
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as e:
        raise StoreError(f"cannot create {path}: {e.strerror or e}") from None
    return path


def _remove(path: str) -> None:
    import shutil

    try:
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)
    except FileNotFoundError:
        pass
