"""Fingerprints: files to digests, and a task to its cache key.

The digest function is BLAKE3 (fast, and it hashes large files on several threads).
It is named once, here: everything else calls `digest()` and `hash_file()`.

A file's digest is trusted from the last run without reading the file when its
(inode, size, mtime, ctime) are unchanged — the way git's index and Bazel do — except
when its mtime or ctime lies within the file system's timestamp granularity of the
moment it was hashed ("racy git"): a write in that same tick would leave the stat data
unchanged, so such a file is hashed again.

The digest of a task's own code is runner.code's.
"""

from __future__ import annotations

import os
import stat as stat_mod
import struct
import sys
import time
from stat import S_ISREG

import blake3

from .fsclock import racy

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from typing import Any


DIGEST_NAME = "blake3"
FORMAT_VERSION = 2  # bump when the meaning of a fingerprint or of a cache entry changes
PYTHON = f"{sys.implementation.name}-{sys.version_info[0]}.{sys.version_info[1]}"
BIG_FILE = 1 << 20  # hashed with memory mapping (and BLAKE3's own threads) from here
POOL_MIN_FILES = 64  # cold hashing of at least this many files uses a thread pool
POOL_MIN_BYTES = 8 << 20


def digest(data: bytes) -> bytes:
    return blake3.blake3(data).digest()


class SpecialFile(OSError):
    """What was to be read as a file is a FIFO, a socket or a device."""


def open_regular(path: str) -> tuple[int, int]:
    """A read-only descriptor of the regular file at `path`, and its size; SpecialFile
    if it is not one. O_NONBLOCK: opening a FIFO (swapped in since the caller looked)
    would block until a writer came; this way it returns at once and fstat tells."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        st = os.fstat(fd)
        if not S_ISREG(st.st_mode):
            raise SpecialFile(f"{path} is not a regular file")
    except BaseException:
        os.close(fd)
        raise
    return fd, st.st_size


def hash_file(path: str) -> bytes:
    """The digest of a regular file's content (SpecialFile for anything else)."""
    fd, size = open_regular(path)
    with open(fd, "rb", closefd=True) as f:
        if size < BIG_FILE:
            return blake3.blake3(f.read()).digest()
        import mmap

        # Mapped, and hashed on several threads: the descriptor checked above, not the
        # path again (which may name something else by now).
        h = blake3.blake3(max_threads=blake3.blake3.AUTO)
        with mmap.mmap(fd, 0, access=mmap.ACCESS_READ) as m:
            h.update(m)
        return h.digest()


def stat_key(st: os.stat_result) -> tuple[int, int, int, int]:
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class FileSet:
    """Files with their stat data, digests and modes, packed for speed: a no-op run
    stats every file, packs the results and compares one bytes object with last
    run's. `digest` covers the paths, contents and executable bits (not stat data)."""

    __slots__ = ("paths", "stats", "digests", "modes", "digest", "_index", "_modes", "observed")

    def __init__(
        self,
        paths: list[str],
        stats: bytes,
        digests: bytes,
        modes: bytes,
        digest_: bytes | None = None,
    ) -> None:
        self.paths = paths
        self.stats = stats  # packed int64s (pack()): inode, size, mtime_ns, ctime_ns per file
        self.digests = digests  # 32 bytes per file
        self.modes = modes  # packed int64s: st_mode per file
        self._index: dict[str, int] | None = None
        self._modes: Any = None
        self.observed: bytes | None = None  # stat data as the last scan saw it
        if digest_ is None:
            m = ints(modes)
            parts = []
            for i, p in enumerate(paths):
                b = p.encode("utf-8", "surrogateescape")
                parts.append(
                    len(b).to_bytes(4, "little")
                    + b
                    + digests[32 * i : 32 * i + 32]
                    + (b"x" if m[i] & 0o111 else b"-")
                )
            digest_ = blake3.blake3(b"".join(parts)).digest()
        self.digest = digest_

    def __len__(self) -> int:
        return len(self.paths)

    def index(self, path: str) -> int | None:
        if self._index is None:
            self._index = {p: i for i, p in enumerate(self.paths)}
        return self._index.get(path)

    def get(self, path: str) -> tuple[bytes, int] | None:
        """(digest, mode) of a file, or None."""
        i = self.index(path)
        if i is None:
            return None
        if self._modes is None:
            self._modes = ints(self.modes)
        return self.digests[32 * i : 32 * i + 32], self._modes[i]

    def to_record(self) -> tuple[Any, ...]:
        return (self.paths, self.stats, self.digests, self.modes, self.digest)

    @classmethod
    def hashed(cls, files: list[tuple[str, os.stat_result, bytes, int]]) -> FileSet:
        """The set of files just hashed: (path, stat data, digest, when hashed)."""
        stats = [x for _p, st, _d, at in files for x in _stat_entry(stat_key(st), at)]
        modes = [st.st_mode for _p, st, _d, _at in files]
        return cls([f[0] for f in files], pack(stats), b"".join(f[2] for f in files), pack(modes))

    @classmethod
    def from_record(cls, rec: Any) -> FileSet | None:
        if not rec:
            return None
        paths, stats, digests, modes, d = rec
        return cls(paths, stats, digests, modes, d)


def pack(values: list[int]) -> bytes:
    """Integers as packed native int64s (what `ints` reads back). struct and
    memoryview, not array: importing array costs a no-op run 1.5 ms (it imports
    collections)."""
    return struct.pack(f"{len(values)}q", *values)


def ints(raw: bytes | bytearray) -> Any:
    """The integers of pack()'s bytes, as a view (writable over a bytearray)."""
    return memoryview(raw).cast("q")


EMPTY = FileSet([], b"", b"", b"")
_GONE = (-2, -2, -2, -2)


def scan(
    root: str, paths: list[str], previous: FileSet | None, *, links: bool = False
) -> tuple[FileSet, int]:
    """The current state of these files (relative paths; files that vanished are left
    out), reading only those whose stat data changed or was racy when last hashed.
    Returns the set and how many files were read. The set's `observed` is the stat
    data as this scan saw it (to tell, after a task ran, whether any input moved).
    `links` (outputs): a symlink is not followed; its digest is that of its target
    text, and a directory's is NO_DIGEST (as runner.entries keeps them)."""
    observed, vanished = stat_pack(root, paths, follow=not links)
    now = ints(observed)
    if (
        previous is not None
        and not vanished
        and observed == previous.stats
        and paths == previous.paths
    ):
        previous.observed = observed
        return previous, 0  # nothing moved: no file read, nothing recomputed
    if previous is not None and not vanished and paths == previous.paths:
        found = _rescan_same_files(root, paths, previous, observed, links)
        if found is not None:
            return found
    old_stats = ints(previous.stats) if previous is not None else None
    old_modes = ints(previous.modes) if previous is not None else None
    keep: dict[int, tuple[bytes, int]] = {}
    todo: list[tuple[int, str]] = []
    for i, p in enumerate(paths):
        if now[4 * i] == -2:
            continue
        j = previous.index(p) if previous is not None else None
        if j is not None and old_stats[4 * j : 4 * j + 4] == now[4 * i : 4 * i + 4]:  # type: ignore[index]
            keep[i] = (previous.digests[32 * j : 32 * j + 32], old_modes[j])  # type: ignore[index,union-attr]
        else:
            todo.append((i, f"{root}/{p}"))
    hashed = dict(_hash_all(todo, links)) if todo else {}
    out_paths: list[str] = []
    stats: list[int] = []
    digests = bytearray()
    modes: list[int] = []
    for i, p in enumerate(paths):
        if i in keep:
            d, mode = keep[i]
            stats.extend(now[4 * i : 4 * i + 4])
        elif i in hashed and hashed[i] is not None:
            key, d, mode, at = hashed[i]  # type: ignore[misc]
            stats.extend(_stat_entry(key, at))
        else:
            continue
        out_paths.append(p)
        digests += d
        modes.append(mode)
    if len(out_paths) == len(paths):
        out_paths = paths  # one list for the walk and the file set: stored once
    result = FileSet(out_paths, pack(stats), bytes(digests), pack(modes))
    if not vanished:
        result.observed = observed
    return result, len(todo)


def _rescan_same_files(
    root: str, paths: list[str], previous: FileSet, observed: bytes, links: bool
) -> tuple[FileSet, int] | None:
    """scan() when the files are those of `previous`, all still there (the common
    case): only the entries whose stat data moved change. None if a file vanished
    while it was read."""
    old = previous.stats
    todo = [
        (i, f"{root}/{p}")
        for i, p in enumerate(paths)
        if observed[32 * i : 32 * i + 32] != old[32 * i : 32 * i + 32]
    ]
    stats = bytearray(observed)
    digests = bytearray(previous.digests)
    modes = bytearray(previous.modes)
    mode_view = ints(modes)
    for i, got in _hash_all(todo, links):
        if got is None:
            return None
        key, d, mode, at = got
        stats[32 * i : 32 * i + 32] = pack(list(_stat_entry(key, at)))
        digests[32 * i : 32 * i + 32] = d
        mode_view[i] = mode
    mode_view.release()
    result = FileSet(paths, bytes(stats), bytes(digests), bytes(modes))
    result.observed = observed
    return result, len(todo)


def _stat_entry(key: tuple[int, int, int, int], hashed_at: int) -> tuple[int, int, int, int]:
    """The stat data kept for a file hashed at `hashed_at`: a racy entry is kept with
    no inode, so that it never matches and the file is read again next time."""
    ino, size, mtime, ctime = key
    return (ino if not racy(mtime, ctime, hashed_at) else -1, size, mtime, ctime)


def stat_pack(root: str, paths: list[str], *, follow: bool = True) -> tuple[bytes, bool]:
    """(inode, size, mtime_ns, ctime_ns) of each file, packed (see pack()), and
    whether any is gone (its entry is -2s). `follow=False` (outputs): a symlink's own
    stat data."""
    fd = root_fd(root)
    stat = os.stat
    try:
        # Comprehensions: a no-op run spends most of its time here.
        if follow:
            found = [stat(p, dir_fd=fd) for p in paths]
        else:
            found = [stat(p, dir_fd=fd, follow_symlinks=False) for p in paths]
    except (FileNotFoundError, NotADirectoryError):
        return _stat_pack_gone(fd, paths, follow), True
    packed = [x for st in found for x in (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)]
    return pack(packed), False


def _stat_pack_gone(fd: int, paths: list[str], follow: bool) -> bytes:
    """stat_pack when some file is gone."""
    now: list[int] = []
    for p in paths:
        try:
            st = os.stat(p, dir_fd=fd, follow_symlinks=follow)
        except (FileNotFoundError, NotADirectoryError):
            now.extend(_GONE)
            continue
        now.extend(stat_key(st))
    return pack(now)


_ROOT_FDS: dict[str, int] = {}


def root_fd(root: str, *, check: bool = False) -> int:
    """A descriptor of the project root, to stat files relative to it: the kernel then
    walks only the relative part, and a no-op run stats every input. Kept for the life
    of the process; `check` (once per run) opens it again if `root` now names another
    directory."""
    fd = _ROOT_FDS.get(root)
    if fd is not None:
        if not check:
            return fd
        here, there = os.stat(root), os.fstat(fd)
        if (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino):
            return fd
        os.close(fd)
    fd = _ROOT_FDS[root] = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    return fd


HashResult = tuple  # ((ino, size, mtime_ns, ctime_ns), digest, mode, hashed_at_ns)


NO_DIGEST = bytes(32)  # what a directory among outputs has for a digest


def _hash_one(item: tuple[int, str], stat: Any = os.stat) -> tuple[int, HashResult | None]:
    i, full = item
    try:
        st = stat(full)
        for _attempt in range(3):
            hashed_at = time.time_ns()
            d = hash_file(full)
            after = stat(full)
            if stat_key(after) == stat_key(st):
                break
            st = after  # it changed while it was read: read it again
    except (
        FileNotFoundError,
        IsADirectoryError,
        NotADirectoryError,
        PermissionError,
        SpecialFile,  # swapped for a FIFO or a socket since the walk: not read
    ):
        return i, None
    return i, (stat_key(st), d, st.st_mode, hashed_at)


def _hash_one_output(item: tuple[int, str]) -> tuple[int, HashResult | None]:
    """_hash_one for an output: a symlink is its target text, a directory nothing."""
    i, full = item
    try:
        st = os.lstat(full)
        if stat_mod.S_ISLNK(st.st_mode):
            hashed_at = time.time_ns()
            return i, (stat_key(st), digest(os.fsencode(os.readlink(full))), st.st_mode, hashed_at)
        if stat_mod.S_ISDIR(st.st_mode):
            return i, (stat_key(st), NO_DIGEST, st.st_mode, time.time_ns())
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return i, None
    # A file; its own stat data before and after (a link that replaced it meanwhile
    # shows in its mode, and is no longer the file the entry names).
    return _hash_one(item, os.lstat)


def _hash_all(
    todo: list[tuple[int, str]], links: bool = False
) -> list[tuple[int, HashResult | None]]:
    one = _hash_one_output if links else _hash_one
    if len(todo) < POOL_MIN_FILES:
        sizes = 0
        for _i, full in todo:
            try:
                sizes += os.stat(full).st_size
            except OSError:
                pass
        if sizes < POOL_MIN_BYTES:
            return [one(t) for t in todo]
    from concurrent.futures import ThreadPoolExecutor

    # hashlib-style digests release the GIL: threads hash on every core. Large files
    # use BLAKE3's own threads as well.
    workers = min(32, (os.cpu_count() or 1) * 2)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(one, todo, chunksize=8))


# ---------------------------------------------------------------- the key


class Fingerprint:
    """A task's cache key and the parts it was made of (kept so that `-n` can say which
    part changed). Digests only: env values and arguments are never kept in clear."""

    __slots__ = ("key", "version", "code", "args", "env", "deps", "inputs", "glob", "tools")

    def __init__(
        self,
        *,
        version: str,
        code: bytes,
        args: dict[str, bytes],
        env: dict[str, bytes],
        deps: dict[str, bytes],
        inputs: FileSet,
        glob: bytes,
        last: Mapping[str, Any] | None = None,
        tools: dict[str, bytes] | None = None,
    ) -> None:
        self.version, self.code, self.args, self.env = version, code, args, env
        self.deps, self.inputs, self.glob = deps, inputs, glob
        self.tools = tools or {}
        if (
            last is not None
            and last.get("code") == code
            and last.get("glob") == glob
            and last.get("version") == version
            and last.get("deps") == deps
            and last.get("args") == args
            and last.get("env") == env
            and last.get("tools", {}) == self.tools
            and (last.get("inputs") or (None,) * 5)[4] == inputs.digest
        ):
            self.key = last["key"]  # every part as last time: the same key, not recomputed
            return
        h = blake3.blake3()
        for part in (version.encode(), code, glob, inputs.digest):
            h.update(len(part).to_bytes(4, "little") + part)
        tables = [(b"A", args), (b"E", env), (b"D", deps)]
        if self.tools:  # (only then: the keys of tasks without tools stay as they were)
            tables.append((b"T", self.tools))
        for label, table in tables:
            h.update(label + len(table).to_bytes(4, "little"))
            for name in sorted(table):
                n = name.encode()
                h.update(len(n).to_bytes(4, "little") + n + table[name])
        self.key = h.digest()

    def to_record(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "code": self.code,
            "args": self.args,
            "env": self.env,
            "deps": self.deps,
            "glob": self.glob,
            **({"tools": self.tools} if self.tools else {}),
        }


def version_tag(task_name: str) -> str:
    return f"runner-cache-{FORMAT_VERSION} {PYTHON} {DIGEST_NAME} {task_name}"


def arg_digests(args: Mapping[str, Any]) -> dict[str, bytes]:
    return {k: digest(repr(v).encode()) for k, v in args.items()}


_ENV = blake3.blake3(derive_key_context="runner 2026 env values v1").digest()


def env_digests(names: Iterable[str], environ: Mapping[str, str]) -> dict[str, bytes]:
    """A keyed digest of each variable's value (or of its absence)."""
    out = {}
    for n in names:
        v = environ.get(n)
        data = b"unset" if v is None else b"set:" + v.encode("utf-8", "surrogateescape")
        out[n] = blake3.blake3(data, key=_ENV).digest()
    return out


def describe_changes(
    old: Mapping[str, Any] | None,
    new: Fingerprint,
    new_dep_status: Mapping[str, str],
) -> list[str]:
    """Why `new` differs from the fingerprint of the task's last recorded run: every
    difference (`Decision.reason` shows the first few)."""
    if old is None:
        return ["never ran"]
    if old.get("pruned"):
        return ["its cache entry was pruned (runner cache prune)"]
    out: list[str] = []
    if old.get("version") != new.version:
        out.append("runner's cache format or the Python version changed")
    if old.get("code") != new.code:
        out.append("the task's code or definition changed")
    for label, mine, theirs in (
        ("argument", new.args, old.get("args", {})),
        ("env", new.env, old.get("env", {})),
        ("tool", new.tools, old.get("tools", {})),
    ):
        for n in sorted(set(mine) | set(theirs)):
            if mine.get(n) != theirs.get(n):
                out.append(f"{label} {n} changed")
    old_deps = old.get("deps", {})
    for d in sorted(set(new.deps) | set(old_deps)):
        if new.deps.get(d) != old_deps.get(d):
            status = new_dep_status.get(d)
            out.append(
                f"dep {d} re-ran"
                if status == "ok"
                else f"dep {d} will run"
                if status == "will run"
                else f"dep {d} changed"
            )
    if old.get("glob") != new.glob:
        out.append("a global input changed")
    before = FileSet.from_record(old.get("inputs")) or EMPTY
    now = new.inputs
    if before.digest != now.digest and before.paths == now.paths:
        # The same files (the common case): compare their digests and modes in place.
        old_modes, new_modes = ints(before.modes), ints(now.modes)
        for i, p in enumerate(now.paths):
            if before.digests[32 * i : 32 * i + 32] != now.digests[32 * i : 32 * i + 32]:
                out.append(f"input {p} changed")
            elif (old_modes[i] ^ new_modes[i]) & 0o111:
                out.append(f"input {p} changed mode")
    elif before.digest != now.digest:
        for p in sorted(set(now.paths) | set(before.paths)):
            a, b = before.get(p), now.get(p)
            if a is None:
                out.append(f"new file {p}")
            elif b is None:
                out.append(f"input {p} removed")
            elif a[0] != b[0]:
                out.append(f"input {p} changed")
            elif (a[1] ^ b[1]) & 0o111:
                out.append(f"input {p} changed mode")
    if not out:
        out.append("fingerprint changed")
    return out
