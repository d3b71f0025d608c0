"""Bazel's HTTP cache protocol: `http(s)://host[:port]/prefix`, as bazel-remote, nginx's
WebDAV module and other artifact servers serve it.

    GET/PUT  PREFIX/ac/<sha256 of the action>   a serialized ActionResult message
    GET/PUT  PREFIX/cas/<sha256 of the blob>    the blob
    HEAD     PREFIX/cas/<sha256>                is it there (200) or not (404)

404 is a miss; 401 and 403 are AuthFailed; any other status that is not 2xx, a redirect
included (it would take the credentials to another place), is a RemoteError. Blobs are
streamed a chunk at a time, both ways (runner.remote_protocols.digests), so a transfer
holds one chunk in memory whatever the blob's size. Each exchange has a total deadline:
every socket operation waits at most what is left of it, and the socket is shut down
when the caller stops waiting (runner.deadline). Standard library only (http.client).
"""

from __future__ import annotations

import socket
from functools import partial

from .client import DEFAULT_TIMEOUT, MAX_ACTION_RESULT, Client
from .credentials import Credentials
from .digests import CHUNK, EMPTY, BlobSink
from .errors import AuthFailed, BadURL, RemoteError

TYPE_CHECKING = False
if TYPE_CHECKING:
    import http.client
    import ssl
    from collections.abc import Iterable, Sequence

    from .. import deadline
    from .client import Blob
    from .messages import Digest


class HttpCache(Client):
    """A Bazel HTTP cache at `url` (see the module's docstring)."""

    def __init__(
        self,
        url: str,
        credentials: Credentials | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        interrupt: deadline.Interrupt | None = None,
    ) -> None:
        import urllib.parse

        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise BadURL(f"remote cache {url!r}: expected http(s)://host[:port]/prefix")
        try:
            self.port = parts.port
        except ValueError:
            raise BadURL(f"remote cache {parts.hostname}: the port is not a number") from None
        creds = (credentials or Credentials()).with_userinfo(
            urllib.parse.unquote(parts.username or ""), urllib.parse.unquote(parts.password or "")
        )
        super().__init__(creds, timeout, interrupt)
        self.https = parts.scheme == "https"
        self.host = parts.hostname
        self.prefix = parts.path.rstrip("/")
        netloc = self.host if self.port is None else f"{self.host}:{self.port}"
        self.name = f"{parts.scheme}://{netloc}{self.prefix}"
        self._headers = _auth_headers(creds)
        self._conn: http.client.HTTPConnection | None = None
        self._sock: socket.socket | None = None  # the connection's, kept by its answers

    # ------------------------------------------------------------ the protocol

    def get_action_result(self, action: Digest) -> bytes | None:
        return self._within(lambda d: self._get_small(d, f"ac/{action.hash}", "action result"))

    def update_action_result(self, action: Digest, result: bytes) -> None:
        self._within(lambda d: self._put(d, f"ac/{action.hash}", (result,), len(result)))

    def find_missing(self, digests: Sequence[Digest]) -> list[Digest]:
        return [x for x in digests if x != EMPTY and not self._within(partial(self._has, x))]

    def upload(self, blobs: Sequence[Blob]) -> None:
        for b in blobs:
            if b.digest != EMPTY:
                self._within(partial(self._put_blob, b))

    def download(self, digest: Digest, into: str) -> bool:
        with BlobSink(into, digest) as sink:
            if digest != EMPTY and not self._within(lambda d: self._get_into(d, digest, sink)):
                return False
            sink.finish()
        return True

    def read_blob(self, digest: Digest) -> bytes | None:
        from .digests import digest_of

        data = self._within(lambda d: self._get_small(d, f"cas/{digest.hash}", "blob"))
        if data is not None and digest_of(data) != digest:
            from .errors import CorruptBlob

            raise CorruptBlob(self._say(f"blob {digest.hash} does not match its SHA-256"))
        return data

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        self._sock = None

    # ------------------------------------------------------------ exchanges

    def _get_small(self, d: deadline.Deadline, name: str, what: str) -> bytes | None:
        resp = self._exchange(d, "GET", name)
        if resp.status == 404:
            self._drain(d, resp)
            return None
        self._check(d, resp, f"GET {name}")
        data = bytearray()
        while chunk := self._read(d, resp, CHUNK):
            data += chunk
            if len(data) > MAX_ACTION_RESULT:
                self.close()
                raise RemoteError(self._say(f"GET {name}: a {what} over {MAX_ACTION_RESULT} bytes"))
        return bytes(data)

    def _get_into(self, d: deadline.Deadline, digest: Digest, sink: BlobSink) -> bool:
        name = f"cas/{digest.hash}"
        resp = self._exchange(d, "GET", name)
        if resp.status == 404:
            self._drain(d, resp)
            return False
        self._check(d, resp, f"GET {name}")
        try:
            while chunk := self._read(d, resp, CHUNK):
                sink.write(chunk)
        except BaseException:
            self.close()  # the rest of the body is still on the way: never reuse it
            raise
        return True

    def _has(self, digest: Digest, d: deadline.Deadline) -> bool:
        name = f"cas/{digest.hash}"
        resp = self._exchange(d, "HEAD", name)
        self._drain(d, resp)
        if resp.status == 404:
            return False
        self._check(d, resp, f"HEAD {name}")
        length = resp.getheader("Content-Length")
        # One of another size is a damaged copy: reported missing, it is uploaded again.
        return length is None or length == str(digest.size_bytes)

    def _put_blob(self, b: Blob, d: deadline.Deadline) -> None:
        self._put(d, f"cas/{b.digest.hash}", b.chunks(), b.digest.size_bytes)

    def _put(self, d: deadline.Deadline, name: str, body: Iterable[bytes], size: int) -> None:
        resp = self._exchange(d, "PUT", name, body, size)
        self._drain(d, resp)
        self._check(d, resp, f"PUT {name}")

    def _exchange(
        self,
        d: deadline.Deadline,
        method: str,
        name: str,
        body: Iterable[bytes] = (),
        size: int | None = None,
    ) -> http.client.HTTPResponse:
        """Send a request (its body a chunk at a time) and read the head of its answer."""
        import http.client

        conn = self._connection(d)
        sock = self._sock
        assert sock is not None
        d.on_abort(lambda: _shut_down(sock))
        try:
            sock.settimeout(d.left())
            conn.putrequest(method, f"{self.prefix}/{name}", skip_accept_encoding=True)
            for header, value in self._headers:
                conn.putheader(header, value)
            if size is not None:
                conn.putheader("Content-Type", "application/octet-stream")
                conn.putheader("Content-Length", str(size))
            conn.endheaders()
            try:
                for chunk in body:
                    sock.settimeout(d.left())
                    conn.send(chunk)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the server answered before it read it all (401, 413): read that
            sock.settimeout(d.left())
            return conn.getresponse()
        except (OSError, http.client.HTTPException) as e:
            self.close()
            if isinstance(e, TimeoutError):
                d.left()  # DeadlineExceeded, when that is why
            raise RemoteError(self._say(f"{method} {name}: {type(e).__name__}: {e}")) from None
        except BaseException:
            self.close()
            raise

    def _connection(self, d: deadline.Deadline) -> http.client.HTTPConnection:
        """The open connection, or a new one (kept for the next exchange)."""
        import http.client

        if self._conn is not None and self._conn.sock is not None:
            return self._conn
        conn: http.client.HTTPConnection
        if self.https:
            conn = http.client.HTTPSConnection(
                self.host, self.port, timeout=d.left(), context=self._tls_context()
            )
        else:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=d.left())
        try:
            conn.connect()
        except OSError as e:
            conn.close()
            if isinstance(e, TimeoutError):
                d.left()
            raise RemoteError(self._say(f"cannot connect: {e}")) from None
        self._conn, self._sock = conn, conn.sock
        return conn

    def _tls_context(self) -> ssl.SSLContext:
        import ssl

        c = self.credentials
        try:
            ctx = ssl.create_default_context(cafile=c.ca_file)
            if c.client_cert:
                ctx.load_cert_chain(c.client_cert, c.client_key)
        except (OSError, ssl.SSLError) as e:
            raise BadURL(self._say(f"cannot use its TLS files: {e}")) from None
        return ctx

    def _read(self, d: deadline.Deadline, resp: http.client.HTTPResponse, amount: int) -> bytes:
        import http.client

        try:
            if self._sock is not None:
                self._sock.settimeout(d.left())
            data = resp.read(amount)
            if not data and resp.length:  # read(amount) says nothing of a short body
                raise http.client.IncompleteRead(b"", resp.length)
            return data
        except (OSError, http.client.HTTPException) as e:
            self.close()
            if isinstance(e, TimeoutError):
                d.left()
            raise RemoteError(self._say(f"the answer broke off: {type(e).__name__}: {e}")) from None

    def _drain(self, d: deadline.Deadline, resp: http.client.HTTPResponse) -> None:
        """Read the rest of an answer whose body does not matter (a short one), so that
        the connection can carry the next request."""
        while self._read(d, resp, CHUNK):
            pass
        if resp.will_close:
            self.close()

    def _check(self, d: deadline.Deadline, resp: http.client.HTTPResponse, what: str) -> None:
        if 200 <= resp.status < 300:
            return
        self._drain(d, resp)
        said = self._say(f"{what}: HTTP {resp.status} {resp.reason}")
        raise (AuthFailed if resp.status in (401, 403) else RemoteError)(said)


def _auth_headers(c: Credentials) -> list[tuple[str, str]]:
    if c.token:
        return [("Authorization", f"Bearer {c.token}")]
    if c.username:
        import base64

        pair = f"{c.username}:{c.password or ''}".encode()
        return [("Authorization", f"Basic {base64.b64encode(pair).decode()}")]
    return []


def _shut_down(sock: socket.socket | None) -> None:
    if sock is not None:
        sock.shutdown(socket.SHUT_RDWR)  # wakes a read blocked on it in another thread
