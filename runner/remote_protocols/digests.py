"""Digests: how runner names its actions and blobs on a Remote Execution API cache.

Blobs. A CAS blob is named by the SHA-256 of its content and its size (`Digest`), as
every REAPI server and Bazel HTTP cache checks. runner's local store is addressed by
BLAKE3 instead, so the two meet on the way: an upload hashes the local blob with
SHA-256 (`file_digest`) and then streams it, hashing it again, and holds back its last
chunk until that second hash matches (`verified_chunks`: a file that changed in
between is never committed); a download streams into a new temporary file while
hashing (`BlobSink`) and keeps it only if size and SHA-256 match, then hands it to the
local store, which computes its BLAKE3 as it ingests it.

Actions. runner's fingerprint of a task (the key of its local cache entry) becomes the
action digest an action cache is asked for:

    preimage = b"runner-action-v1\\0" + fingerprint
    action   = Digest(hash=sha256(preimage).hexdigest(), size_bytes=len(preimage))

that is, the digest of the preimage as if it were a blob. `runner-action-v1` is the
format of what runner stores under it (runner.remote_protocols.conversion): a change
to that format changes the string, so that a runner never reads another format's
results, and no Bazel action (whose digest is that of an Action message) can collide
with a runner action.
"""

from __future__ import annotations

import hashlib
import os

from .errors import CorruptBlob
from .messages import Digest

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator

ACTION_FORMAT = b"runner-action-v1\0"
CHUNK = 1 << 20  # bytes read, sent or written at a time: what a transfer holds in memory
_HEX = frozenset("0123456789abcdef")


def digest_of(data: bytes) -> Digest:
    return Digest(hash=hashlib.sha256(data).hexdigest(), size_bytes=len(data))


def is_valid(d: Digest | None) -> bool:
    """Is this what a server sent for a digest a SHA-256 digest?"""
    return d is not None and len(d.hash) == 64 and _HEX.issuperset(d.hash) and d.size_bytes >= 0


def named(d: Digest) -> str:
    """A digest as resource names and messages write it: HASH/SIZE."""
    return f"{d.hash}/{d.size_bytes}"


EMPTY = digest_of(b"")  # every CAS holds it implicitly: never uploaded nor downloaded


def action_digest(fingerprint: bytes) -> Digest:
    """The action cache key of runner's fingerprint (see the module's docstring)."""
    return digest_of(ACTION_FORMAT + fingerprint)


def file_digest(path: str) -> Digest:
    """The SHA-256 digest of a file's content, read a chunk at a time."""
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
            size += len(chunk)
    return Digest(hash=h.hexdigest(), size_bytes=size)


def verified_chunks(path: str, digest: Digest, chunk: int = CHUNK) -> Iterator[bytes]:
    """The content of the file at `path`, a chunk at a time, checked against `digest`
    before the last chunk is given out: CorruptBlob instead of it if the file is not
    (or no longer) what `digest` names, so that an upload is never completed with the
    wrong content. An empty file gives no chunk."""
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        held = f.read(chunk)
        while held:
            following = f.read(chunk)
            h.update(held)
            size += len(held)
            if not following and (size != digest.size_bytes or h.hexdigest() != digest.hash):
                raise CorruptBlob(f"{path} changed since it was hashed (blob {named(digest)})")
            yield held
            held = following
    if size != digest.size_bytes:
        raise CorruptBlob(f"{path} changed since it was hashed (blob {named(digest)})")


class BlobSink:
    """A new file at `path` (created, never overwritten: O_EXCL) that a download writes
    into; `finish()` checks size and SHA-256 against `digest` and raises CorruptBlob if
    they do not match. On any failure (and on close without finish) the file is
    removed: a caller finds either a complete, verified blob at `path` or nothing."""

    __slots__ = ("path", "digest", "_fd", "_hash", "_size", "_done")

    def __init__(self, path: str, digest: Digest) -> None:
        self.path = path
        self.digest = digest
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW
        self._fd = os.open(path, flags, 0o600)
        self._hash = hashlib.sha256()
        self._size = 0
        self._done = False

    def write(self, data: bytes) -> None:
        self._size += len(data)
        if self._size > self.digest.size_bytes:
            raise CorruptBlob(f"blob {named(self.digest)}: the server sent more than its size")
        self._hash.update(data)
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view) :]

    def finish(self) -> None:
        if self._size != self.digest.size_bytes:
            raise CorruptBlob(f"blob {named(self.digest)}: the server sent {self._size} bytes")
        if self._hash.hexdigest() != self.digest.hash:
            raise CorruptBlob(f"blob {named(self.digest)}: its content does not match its SHA-256")
        self._done = True

    def __enter__(self) -> BlobSink:
        return self

    def __exit__(self, *exc: object) -> None:
        os.close(self._fd)
        if not self._done:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
