"""The Remote Execution API v2 over gRPC: `grpc://host:port[/instance]`, `grpcs://` for
TLS, as BuildGrid, Buildbarn, BuildBuddy, NativeLink, bazel-remote and EngFlow serve it.

    Capabilities.GetCapabilities                   asked once: SHA-256 must be offered;
                                                   its batch size limit is kept
    ActionCache.GetActionResult / UpdateActionResult
    ContentAddressableStorage.FindMissingBlobs / BatchUpdateBlobs / BatchReadBlobs
    ByteStream.Write / Read                        blobs too big for a batch, streamed a
                                                   chunk at a time from and to files:
        {instance}/uploads/{uuid}/blobs/{hash}/{size}   and   {instance}/blobs/{hash}/{size}

grpcio is imported when the first client is made (never on runner's other paths), and
its generic calls are used (`channel.unary_unary(path, ...)`): the messages are
runner.remote_protocols.messages, so protobuf is not needed. Every call has a total
deadline (gRPC's `timeout`, what is left of runner.deadline's) and is cancelled when
the caller stops waiting. A bearer token goes in each call's metadata (`authorization:
Bearer ...`); grpcs:// trusts the system's CAs or `ca_file`, and presents a client
certificate when one is set.
"""

from __future__ import annotations

from functools import partial

from . import messages as m
from .client import DEFAULT_TIMEOUT, Client
from .credentials import Credentials, read_pem
from .digests import EMPTY, BlobSink, digest_of
from .errors import AuthFailed, BadURL, CorruptBlob, RemoteError, Unsupported
from .wire import DecodeError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence
    from typing import Any

    from .. import deadline
    from .client import Blob

CAS = f"{m.REAPI}.ContentAddressableStorage"
DEFAULT_BATCH = 4 << 20  # bytes: a batch when the server sets no limit (gRPC's default max)
BLOB_OVERHEAD = 128  # bytes a blob adds to a batch message besides its content, at most
MAX_BATCH_COUNT = 500  # blobs in one batch request (BuildGrid's limit; others take more)
MAX_MESSAGE = 16 << 20  # bytes: the largest message runner sends or accepts
NOT_FOUND = 5  # google.rpc.Code


class GrpcCache(Client):
    """A Remote Execution API cache at `url` (see the module's docstring)."""

    def __init__(
        self,
        url: str,
        credentials: Credentials | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        interrupt: deadline.Interrupt | None = None,
    ) -> None:
        super().__init__(credentials or Credentials(), timeout, interrupt)
        self.target, self.instance, self.tls = _parse(url)
        if self.credentials.username:
            raise BadURL(f"remote cache {url}: gRPC takes a bearer token, not basic auth")
        self.name = f"{'grpcs' if self.tls else 'grpc'}://{self.target}" + (
            f"/{self.instance}" if self.instance else ""
        )
        token = self.credentials.token
        self._metadata = (("authorization", f"Bearer {token}"),) if token else None
        self._channel = self._open_channel()
        self._capabilities: m.CacheCapabilities | None = None

    def close(self) -> None:
        self._channel.close()

    # ------------------------------------------------------------ capabilities

    def capabilities(self) -> m.CacheCapabilities:
        """The server's cache capabilities (asked once); Unsupported without SHA-256."""
        if self._capabilities is None:
            request = m.GetCapabilitiesRequest(instance_name=self.instance)
            path = m.method(f"{m.REAPI}.Capabilities", "GetCapabilities")
            raw = self._within(partial(self._unary, path, request))
            caps = self._decoded(m.ServerCapabilities, raw, path).cache_capabilities
            if caps is None or m.SHA256 not in caps.digest_functions:
                raise Unsupported(self._say("it does not offer SHA-256 digests"))
            self._capabilities = caps
        return self._capabilities

    def can_update(self) -> bool:
        """Does the server take action results from this client?"""
        updates = self.capabilities().action_cache_update_capabilities
        return updates is not None and updates.update_enabled

    def batch_limit(self) -> int:
        """The most bytes one batch request may carry: the server's limit, or gRPC's
        default message size when it sets none."""
        server = self.capabilities().max_batch_total_size_bytes
        return min(server, DEFAULT_BATCH) if server > 0 else DEFAULT_BATCH

    # ------------------------------------------------------------ action cache

    def get_action_result(self, action: m.Digest) -> bytes | None:
        self.capabilities()
        request = m.GetActionResultRequest(
            instance_name=self.instance, action_digest=action, digest_function=m.SHA256
        )
        path = m.method(f"{m.REAPI}.ActionCache", "GetActionResult")
        return self._within(partial(self._unary, path, request, missing_ok=True))

    def update_action_result(self, action: m.Digest, result: bytes) -> None:
        if not self.can_update():
            raise Unsupported(self._say("it does not accept action results (read-only)"))
        try:
            decoded = m.ActionResult.decode(result)
        except DecodeError as e:
            raise ValueError(f"not an ActionResult: {e}") from None
        request = m.UpdateActionResultRequest(
            instance_name=self.instance,
            action_digest=action,
            action_result=decoded,
            digest_function=m.SHA256,
        )
        path = m.method(f"{m.REAPI}.ActionCache", "UpdateActionResult")
        self._within(partial(self._unary, path, request))

    # ------------------------------------------------------------ CAS

    def find_missing(self, digests: Sequence[m.Digest]) -> list[m.Digest]:
        self.capabilities()
        asked = list(dict.fromkeys(x for x in digests if x != EMPTY))
        missing: list[m.Digest] = []
        path = m.method(CAS, "FindMissingBlobs")
        for i in range(0, len(asked), MAX_BATCH_COUNT):
            request = m.FindMissingBlobsRequest(
                instance_name=self.instance,
                blob_digests=asked[i : i + MAX_BATCH_COUNT],
                digest_function=m.SHA256,
            )
            raw = self._within(partial(self._unary, path, request))
            missing += self._decoded(m.FindMissingBlobsResponse, raw, path).missing_blob_digests
        return missing

    def upload(self, blobs: Sequence[Blob]) -> None:
        limit = self.batch_limit()
        batch: list[Blob] = []
        size = 0
        for b in blobs:
            cost = b.digest.size_bytes + BLOB_OVERHEAD
            if b.digest == EMPTY:
                continue
            if cost > limit:
                self._within(partial(self._write, b))
                continue
            if size + cost > limit or len(batch) == MAX_BATCH_COUNT:
                self._within(partial(self._batch_update, batch))
                batch, size = [], 0
            batch.append(b)
            size += cost
        if batch:
            self._within(partial(self._batch_update, batch))

    def download(self, digest: m.Digest, into: str) -> bool:
        with BlobSink(into, digest) as sink:
            if digest == EMPTY:
                pass
            elif digest.size_bytes + BLOB_OVERHEAD > self.batch_limit():
                if not self._within(partial(self._read, digest, sink)):
                    return False
            else:
                data = self._within(partial(self._batch_read, digest))
                if data is None:
                    return False
                sink.write(data)
            sink.finish()
        return True

    def read_blob(self, digest: m.Digest) -> bytes | None:
        if digest.size_bytes + BLOB_OVERHEAD > self.batch_limit():
            raise RemoteError(self._say(f"blob {digest.hash} is larger than runner reads whole"))
        data = self._within(partial(self._batch_read, digest))
        if data is not None and digest_of(data) != digest:
            raise CorruptBlob(self._say(f"blob {digest.hash} does not match its SHA-256"))
        return data

    # ------------------------------------------------------------ calls

    def _batch_update(self, blobs: list[Blob], d: deadline.Deadline) -> None:
        request = m.BatchUpdateBlobsRequest(
            instance_name=self.instance,
            requests=[m.BatchUpdateRequest(digest=b.digest, data=b.content()) for b in blobs],
            digest_function=m.SHA256,
        )
        path = m.method(CAS, "BatchUpdateBlobs")
        raw = self._unary(path, request, d)
        for r in self._decoded(m.BatchUpdateBlobsResponse, raw, path).responses:
            if r.status is not None and r.status.code != 0:
                blob = r.digest.hash if r.digest else "?"
                raise RemoteError(self._say(f"storing blob {blob}: {_status(r.status)}"))

    def _batch_read(self, digest: m.Digest, d: deadline.Deadline) -> bytes | None:
        request = m.BatchReadBlobsRequest(
            instance_name=self.instance, digests=[digest], digest_function=m.SHA256
        )
        path = m.method(CAS, "BatchReadBlobs")
        raw = self._unary(path, request, d)
        for r in self._decoded(m.BatchReadBlobsResponse, raw, path).responses:
            if r.digest != digest:
                continue
            code = r.status.code if r.status is not None else 0
            if code == NOT_FOUND:
                return None
            if code != 0:
                assert r.status is not None
                raise RemoteError(self._say(f"reading blob {digest.hash}: {_status(r.status)}"))
            return r.data
        raise RemoteError(self._say(f"{path}: no answer for blob {digest.hash}"))

    def _write(self, blob: Blob, d: deadline.Deadline) -> None:
        """ByteStream.Write: the blob in chunks, the last one only once it is checked."""
        import uuid

        size = blob.digest.size_bytes
        resource = f"{self._prefix()}uploads/{uuid.uuid4()}/blobs/{blob.digest.hash}/{size}"
        failure: list[BaseException] = []

        def requests() -> Iterator[m.WriteRequest]:
            offset = 0
            try:
                for chunk in blob.chunks():
                    yield m.WriteRequest(
                        resource_name=resource if offset == 0 else "",
                        write_offset=offset,
                        finish_write=offset + len(chunk) == size,
                        data=chunk,
                    )
                    offset += len(chunk)
            except Exception as e:  # grpc itself only says "Exception iterating requests"
                failure.append(e)
                raise

        path = m.method(m.BYTESTREAM, "Write")
        call = self._channel.stream_unary(path, request_serializer=_encode)
        future = call.future(requests(), timeout=d.left(), metadata=self._metadata)
        d.on_abort(future.cancel)
        try:
            raw = future.result()
        except Exception as e:
            if failure:
                raise failure[0] from None
            raise self._failure(path, e) from None
        committed = self._decoded(m.WriteResponse, raw, path).committed_size
        if committed not in (size, -1):
            raise RemoteError(self._say(f"{path}: {committed} of {size} bytes committed"))

    def _read(self, digest: m.Digest, sink: BlobSink, d: deadline.Deadline) -> bool:
        """ByteStream.Read into `sink`; False if the server does not have the blob."""
        resource = f"{self._prefix()}blobs/{digest.hash}/{digest.size_bytes}"
        path = m.method(m.BYTESTREAM, "Read")
        call = self._channel.unary_stream(path, request_serializer=_encode)
        stream = call(
            m.ReadRequest(resource_name=resource), timeout=d.left(), metadata=self._metadata
        )
        d.on_abort(stream.cancel)
        try:
            for raw in stream:
                sink.write(self._decoded(m.ReadResponse, raw, path).data)
        except CorruptBlob:
            stream.cancel()
            raise
        except Exception as e:
            if _code(e) == "NOT_FOUND":
                return False
            raise self._failure(path, e) from None
        return True

    def _unary(
        self, path: str, request: Any, d: deadline.Deadline, missing_ok: bool = False
    ) -> bytes | None:
        """One unary call's answer (its bytes); None for NOT_FOUND if `missing_ok`."""
        call = self._channel.unary_unary(path, request_serializer=_encode)
        future = call.future(request, timeout=d.left(), metadata=self._metadata)
        d.on_abort(future.cancel)
        try:
            raw: bytes = future.result()
            return raw
        except Exception as e:
            if missing_ok and _code(e) == "NOT_FOUND":
                return None
            raise self._failure(path, e) from None

    def _decoded(self, message: type[Any], raw: bytes | None, path: str) -> Any:
        try:
            return message.decode(raw or b"")
        except DecodeError as e:
            said = self._say(f"{path}: an answer that is not a {message.__name__}: {e}")
            raise RemoteError(said) from None

    def _failure(self, path: str, e: Exception) -> Exception:
        """The error to raise for a failed call (a deadline's own when time ran out)."""
        from .. import deadline

        code = _code(e)
        if code is None:
            return RemoteError(self._say(f"{path}: {type(e).__name__}: {e}"))
        details = getattr(e, "details", lambda: "")() or ""
        said = self._say(f"{path}: {code}" + (f": {details}" if details else ""))
        if code in ("UNAUTHENTICATED", "PERMISSION_DENIED"):
            return AuthFailed(said)
        if code == "DEADLINE_EXCEEDED":
            return deadline.DeadlineExceeded(said)
        return RemoteError(said)

    def _prefix(self) -> str:
        return f"{self.instance}/" if self.instance else ""

    def _open_channel(self) -> Any:
        try:
            import grpc
        except ImportError:
            raise BadURL(
                f"remote cache {self.name}: grpc:// needs grpcio (pip install 'runner-tasks[grpc]')"
            ) from None

        options = [
            ("grpc.max_receive_message_length", MAX_MESSAGE),
            ("grpc.max_send_message_length", MAX_MESSAGE),
            ("grpc.primary_user_agent", "runner"),
        ]
        if not self.tls:
            return grpc.insecure_channel(self.target, options=options)
        c = self.credentials
        tls = grpc.ssl_channel_credentials(
            root_certificates=read_pem(c.ca_file, "CA file"),
            private_key=read_pem(c.client_key, "client key"),
            certificate_chain=read_pem(c.client_cert, "client certificate"),
        )
        return grpc.secure_channel(self.target, tls, options=options)


def _parse(url: str) -> tuple[str, str, bool]:
    """(host:port, instance name, TLS?) of grpc(s)://host:port[/instance]."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in ("grpc", "grpcs"):
        raise BadURL(f"remote cache {url!r}: expected grpc(s)://host:port[/instance]")
    target, _, instance = rest.partition("/")
    if "@" in target:
        raise BadURL(
            f"remote cache {scheme}://...: a token goes in RUNNER_REMOTE_CACHE_TOKEN, not the URL"
        )
    host, colon, port = target.rpartition(":")
    if not colon or not host or not port.isdigit():
        raise BadURL(f"remote cache {url!r}: expected grpc(s)://host:port[/instance]")
    return target, instance.strip("/"), scheme == "grpcs"


def _encode(message: Any) -> bytes:
    data: bytes = message.encode()
    return data


def _code(e: Exception) -> str | None:
    """The gRPC status code's name of a failed call, if it is one."""
    code = getattr(e, "code", None)
    if not callable(code):
        return None
    try:
        value = code()
    except Exception:
        return None
    return getattr(value, "name", None)


def _status(s: m.Status) -> str:
    return f"status {s.code}" + (f": {s.message}" if s.message else "")
