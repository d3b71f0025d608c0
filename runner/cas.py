"""The content-addressed store: one file per output content, named by its digest.

    cas/ab/cdef...   the content whose BLAKE3 digest is abcdef...
    tmp/             where a blob is written before it is renamed into place

A blob is copied in while it is hashed and renamed into place only if its digest is
right, so the store never holds a half-written or mislabelled blob; restoring checks
every blob against its digest again before any output is touched.
"""

from __future__ import annotations

import os
import time

from .errors import StoreError
from .fingerprint import SpecialFile, open_regular, stat_key

TYPE_CHECKING = False
if TYPE_CHECKING:
    pass


class Blobs:
    """The blobs under a cache directory."""

    def __init__(self, cache_dir: str) -> None:
        self.dir = cache_dir

    def path(self, d: bytes) -> str:
        h = d.hex()
        return os.path.join(self.dir, "cas", h[:2], h[2:])

    def has(self, d: bytes) -> bool:
        return os.path.exists(self.path(d))

    def ingest(self, src: str) -> tuple[os.stat_result, bytes, int] | None:
        """Hash an output while copying it into the store (one read for both): its stat
        data (taken before and after: a file that changed while it was read is read
        again), its digest and when it was hashed; None if it is gone."""
        tmp = self._tmp_name()
        try:
            for _attempt in range(3):
                st = os.stat(src)
                hashed_at = time.time_ns()
                d = _copy_hashing(src, tmp, None)
                after = os.stat(src)
                if stat_key(after) == stat_key(st):
                    break
                remove_file(tmp)
                st = after
            dest = self.path(d)
            if os.path.exists(dest):
                remove_file(tmp)
            else:
                os.makedirs(os.path.dirname(dest), exist_ok=True)
                os.replace(tmp, dest)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError, SpecialFile):
            remove_file(tmp)  # gone, or a FIFO or a socket now: nothing to store
            return None
        except OSError as e:
            remove_file(tmp)
            if e.errno == 28:  # ENOSPC
                raise StoreError(f"cannot store {src} in the cache: the disk is full") from None
            raise StoreError(f"cannot store {src} in the cache: {e.strerror or e}") from None
        except BaseException:
            remove_file(tmp)
            raise
        return st, d, hashed_at

    def put_bytes(self, data: bytes, d: bytes) -> None:
        """Store content whose digest the caller checked (a blob from a remote cache)."""
        dest = self.path(d)
        if os.path.exists(dest):
            return
        tmp = self._tmp_name()
        try:
            with open(tmp, "xb") as f:
                f.write(data)
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            os.replace(tmp, dest)
        except OSError as e:
            remove_file(tmp)
            raise StoreError(f"cannot store a blob in the cache: {e.strerror or e}") from None

    def restore(self, outputs: list[tuple[str, bytes, int, int]], root: str) -> bool:
        """Put each output in place from its blob, all or nothing: every blob is
        copied and checked into a temporary file beside its target first; only when all
        are good are they renamed into place. False (nothing changed) when a blob is
        missing or fails its digest."""
        staged: list[tuple[str, str, int]] = []
        damaged = []
        try:
            for path, d, mode, _size in outputs:
                target = os.path.join(root, path)
                os.makedirs(os.path.dirname(target) or root, exist_ok=True)
                tmp = f"{target}.runner-tmp-{os.getpid()}"
                staged.append((tmp, target, mode))
                try:
                    _copy_hashing(self.path(d), tmp, d)
                except _DigestMismatch:
                    damaged.append(self.path(d))
            if not damaged:
                for tmp, target, mode in staged:
                    os.chmod(tmp, mode & 0o7777)
                    os.replace(tmp, target)
                return True
        except OSError:
            pass
        for tmp, _t, _m in staged:
            remove_file(tmp)
        for blob in damaged:
            remove_file(blob)  # gone, so that the next run stores it anew
        return False

    def _tmp_name(self) -> str:
        return os.path.join(self.dir, "tmp", f"{os.getpid()}-{os.urandom(6).hex()}")


class _DigestMismatch(Exception):
    pass


def _copy_hashing(src: str, dest: str, expected: bytes | None) -> bytes:
    """Copy src to dest (a new file) while hashing; return the digest, or raise if it
    is not the one expected."""
    import blake3

    h = blake3.blake3()
    fd, _size = open_regular(src)  # never a FIFO's open, which would wait for a writer
    with open(fd, "rb") as fin, open(dest, "xb") as fout:
        while chunk := fin.read(1 << 20):
            h.update(chunk)
            fout.write(chunk)
    d = h.digest()
    if expected is not None and d != expected:
        remove_file(dest)
        raise _DigestMismatch(src)
    return d


def remove_file(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
