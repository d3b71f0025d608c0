"""The content-addressed store: one file per output content, named by its digest.

    cas/ab/cdef...   the content whose BLAKE3 digest is abcdef...
    tmp/PID-XXXX     a blob being copied in, or an output staged for a restore
                     (PID-XXXX.staging: where a restore staged files elsewhere)

A blob is copied in while it is hashed and renamed into place only if its digest is
right, so the store never holds a half-written or mislabelled blob; a restore copies
each blob into tmp/ and checks it against its digest again before any output is
touched (runner.restore). Temporary files carry the pid of their runner: those of a
runner that died are cleared at the next start (runner.store). A fan-out directory
that is not one, or a blob that is not a file, is repaired (runner.layout).
"""

from __future__ import annotations

import os
import stat
import time

from . import layout
from .errors import StoreError
from .fingerprint import stat_key

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import BinaryIO

# O_NONBLOCK: opening a FIFO swapped in for an output or a blob would wait for a writer;
# this way it returns at once, and fstat tells it is not a file.
_READ = os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK
# tmp/PID-XXXX.staging: the directories a restore staged files in, on another file
# system (runner.restore).
STAGING_NOTE = ".staging"


class Blobs:
    """The blobs under a cache directory. Their user (runner.store) holds the lock that
    says its runner is alive before it makes a temporary file."""

    def __init__(self, cache_dir: str, warn: Callable[[str], None] | None = None) -> None:
        self.dir = cache_dir
        self.tmp = os.path.join(cache_dir, "tmp")
        self.warn = warn or (lambda msg: None)

    def path(self, d: bytes) -> str:
        h = d.hex()
        return os.path.join(self.dir, "cas", h[:2], h[2:])

    def has(self, d: bytes) -> bool:
        return os.path.exists(self.path(d))

    def new_tmp(self) -> str:
        """A fresh name in tmp/, carrying this runner's pid."""
        return os.path.join(self.tmp, f"{os.getpid()}-{os.urandom(6).hex()}")

    def ingest(self, src: str) -> tuple[os.stat_result, bytes, int] | None:
        """Hash an output while copying it into the store (one read for both): its stat
        data (a file that changed while it was read is read again), its digest and
        when it was hashed; None if it is gone or no longer a file (it is opened
        without following a symlink)."""
        tmp = self.new_tmp()
        try:
            try:
                fd = os.open(src, _READ | os.O_NOFOLLOW)
            except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
                return None
            except OSError as e:
                if e.errno == 40:  # ELOOP: a symlink now
                    return None
                raise
            try:
                for _attempt in range(3):
                    st = os.fstat(fd)
                    if not stat.S_ISREG(st.st_mode):
                        return None
                    hashed_at = time.time_ns()
                    os.lseek(fd, 0, os.SEEK_SET)
                    d = self._copy_in(fd, tmp)
                    if stat_key(os.fstat(fd)) == stat_key(st):
                        break
                    remove_file(tmp)  # it changed while it was read: read it again
                else:
                    return None  # it keeps changing: not an output to keep
            finally:
                os.close(fd)
            self._place(tmp, d)
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
        if os.path.isfile(self.path(d)):
            return
        tmp = self.new_tmp()
        try:
            with self._create(tmp) as f:
                f.write(data)
            self._place(tmp, d)
        except OSError as e:
            remove_file(tmp)
            raise StoreError(f"cannot store a blob in the cache: {e.strerror or e}") from None

    def stage(self, d: bytes) -> str | None:
        """A copy of blob `d` in tmp/, checked against its digest (its path); None if
        the blob is missing or damaged (a damaged one is deleted, so that the next run
        stores it anew)."""
        blob = self.path(d)
        try:
            fd = os.open(blob, _READ)
        except (FileNotFoundError, NotADirectoryError):
            return None
        tmp = self.new_tmp()
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                layout.repair_blob(self.dir, blob, self.warn)
                return None
            if self._copy_in(fd, tmp) != d:
                remove_file(tmp)
                remove_file(blob)
                return None
        except BaseException:
            remove_file(tmp)
            raise
        finally:
            os.close(fd)
        return tmp

    def _copy_in(self, fd: int, tmp: str) -> bytes:
        """Copy what `fd` reads to a new file `tmp` while hashing it; the digest."""
        import blake3

        h = blake3.blake3()
        with open(fd, "rb", closefd=False) as fin, self._create(tmp) as fout:
            while chunk := fin.read(1 << 20):
                h.update(chunk)
                fout.write(chunk)
        return h.digest()

    def _create(self, tmp: str) -> BinaryIO:
        """A new temporary file open for writing; tmp/ is made again if it went."""
        try:
            return open(tmp, "xb")
        except (FileNotFoundError, NotADirectoryError):
            layout.ensure_directory(self.dir, "tmp", self.warn)
            return open(tmp, "xb")

    def _place(self, tmp: str, d: bytes) -> None:
        """Rename a checked temporary file to its blob's name (kept if already there),
        repairing a fan-out directory or a blob that is not what it must be."""
        dest = self.path(d)
        try:
            if stat.S_ISREG(os.lstat(dest).st_mode):
                remove_file(tmp)
                return
            layout.repair_blob(self.dir, dest, self.warn)
        except FileNotFoundError:
            pass
        except NotADirectoryError:
            layout.repair_fan_out(self.dir, os.path.dirname(dest), self.warn)
        try:
            os.replace(tmp, dest)
        except (FileNotFoundError, NotADirectoryError):
            layout.repair_fan_out(self.dir, os.path.dirname(dest), self.warn)
            os.replace(tmp, dest)


def remove_file(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
