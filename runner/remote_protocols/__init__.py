"""Remote cache protocols: the Remote Execution API v2 over gRPC and Bazel's HTTP cache
protocol, so that runner's cache can be shared through servers teams already run
(bazel-remote, BuildBuddy, Buildbarn, NativeLink, BuildGrid, EngFlow, nginx WebDAV).

    client = connect(url, credentials, timeout=60.0, interrupt=None)
    cache = ActionCache(client)          # lookup / fetch / store runner's entries

    wire.py         the protobuf wire format (standard library only)
    messages.py     the REAPI, ByteStream and google.rpc messages runner exchanges
    digests.py      SHA-256 blob digests, action keys, streaming checks
    credentials.py  tokens, basic auth, TLS files; secrets kept out of messages
    client.py       what a protocol client offers; a deadline for each request
    http_cache.py   http(s)://host[:port]/prefix   (/ac/, /cas/)
    grpc_cache.py   grpc(s)://host:port[/instance]  (needs grpcio: the `grpc` extra)
    conversion.py   runner's outputs <-> ActionResult
    cache.py        ActionCache: entries by fingerprint over any client

Nothing here is imported by runner's other paths until a remote cache is used, and
grpcio only when a grpc:// URL is.
"""

from __future__ import annotations

from .client import DEFAULT_TIMEOUT
from .credentials import Credentials
from .errors import BadURL

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .. import deadline
    from .client import Client

SCHEMES = ("grpc://", "grpcs://", "http://", "https://")


def connect(
    url: str,
    credentials: Credentials | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    interrupt: deadline.Interrupt | None = None,
) -> Client:
    """The protocol client for a remote cache URL (BadURL if it is none of SCHEMES)."""
    if url.startswith(("grpc://", "grpcs://")):
        from .grpc_cache import GrpcCache

        return GrpcCache(url, credentials, timeout, interrupt)
    if url.startswith(("http://", "https://")):
        from .http_cache import HttpCache

        return HttpCache(url, credentials, timeout, interrupt)
    raise BadURL(f"remote cache {url!r}: expected one of {', '.join(SCHEMES)}")
