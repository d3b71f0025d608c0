"""What every remote cache client offers (HTTP and gRPC alike), and how each of its
requests is waited for.

    get_action_result(action) -> bytes | None      the ActionResult stored for it
    update_action_result(action, result: bytes)
    can_update() -> bool                            False: a read-only server says so
    find_missing(digests) -> list[Digest]           those the CAS does not hold
    upload(blobs: [Blob])                           files streamed, bytes sent
    download(digest, into) -> bool                  into a new file, SHA-256 checked
    read_blob(digest) -> bytes | None               a small blob (a Tree), checked
    close()

Each request (an HTTP exchange, a gRPC call; an upload or download of many blobs is
several) has a total deadline of `timeout` seconds and is given up once `interrupt` is
set, through runner.deadline: called inside `deadline.call`, a client uses that call's
deadline; called outside one, it makes one per request. Its `name` is the URL without
credentials, the one thing to show a user.
"""

from __future__ import annotations

from .. import deadline
from .digests import CHUNK, verified_chunks

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence
    from typing import TypeVar

    from .credentials import Credentials
    from .messages import Digest

    T = TypeVar("T")

DEFAULT_TIMEOUT = 60.0  # seconds for one request in all (Bazel's --remote_timeout)
MAX_ACTION_RESULT = 16 << 20  # bytes: an action result longer than this is not runner's


class Blob:
    """A blob to upload: a file (streamed from `path`, checked against `digest` on the
    way) or bytes in memory (a Tree message)."""

    __slots__ = ("digest", "path", "data")

    def __init__(self, digest: Digest, path: str | None = None, data: bytes | None = None) -> None:
        assert (path is None) != (data is None), "a blob is a file or bytes"
        self.digest = digest
        self.path = path
        self.data = data

    def chunks(self) -> Iterator[bytes]:
        if self.path is not None:
            return verified_chunks(self.path, self.digest)
        data = self.data or b""
        return (data[i : i + CHUNK] for i in range(0, len(data), CHUNK))

    def content(self) -> bytes:
        """All of it (for a batch of small blobs)."""
        return b"".join(self.chunks())


class Client:
    """The common part of the protocol clients: their name, credentials, deadlines."""

    name: str

    def __init__(
        self,
        credentials: Credentials,
        timeout: float = DEFAULT_TIMEOUT,
        interrupt: deadline.Interrupt | None = None,
    ) -> None:
        self.credentials = credentials
        self.timeout = timeout
        self.interrupt = interrupt

    def _within(self, request: Callable[[deadline.Deadline], T]) -> T:
        """request(its deadline), waited for no longer than the deadline or the
        interrupt allow."""
        d = deadline.current()
        if d is not None:
            return request(d)

        def run() -> T:
            inner = deadline.current()
            assert inner is not None
            return request(inner)

        return deadline.call(run, self.timeout, self.interrupt)

    def _say(self, text: str) -> str:
        """A message about this remote, with no secret in it."""
        return self.credentials.redact(f"remote cache {self.name}: {text}")

    # The protocol: see the module's docstring.
    def get_action_result(self, action: Digest) -> bytes | None:
        raise NotImplementedError

    def update_action_result(self, action: Digest, result: bytes) -> None:
        raise NotImplementedError

    def can_update(self) -> bool:
        """Does the server take action results (as far as it says)?"""
        return True

    def find_missing(self, digests: Sequence[Digest]) -> list[Digest]:
        raise NotImplementedError

    def upload(self, blobs: Sequence[Blob]) -> None:
        raise NotImplementedError

    def download(self, digest: Digest, into: str) -> bool:
        raise NotImplementedError

    def read_blob(self, digest: Digest) -> bytes | None:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
