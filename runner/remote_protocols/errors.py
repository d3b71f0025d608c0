"""What can go wrong talking to a remote cache, as exceptions a caller can tell apart.

Each message names the server (its URL without credentials) and what failed; none ever
contains a token or a password (runner.remote_protocols.credentials redacts them from
whatever a server or a library said). A remote that runs out of time raises
runner.deadline's DeadlineExceeded, and one whose wait was given up, Interrupted.
"""

from __future__ import annotations


class RemoteError(Exception):
    """A remote cache that failed: unreachable, refused a request, or answered
    something that is not the protocol."""


class AuthFailed(RemoteError):
    """The server refused the credentials (or wants some): gRPC UNAUTHENTICATED or
    PERMISSION_DENIED, HTTP 401 or 403."""


class Unsupported(RemoteError):
    """A server that does not offer what runner needs: SHA-256 digests, or action
    cache updates when runner writes."""


class CorruptBlob(RemoteError):
    """A blob whose content is not what its digest says: damaged on the server or on
    the way, or a local file that changed while it was uploaded."""


class Malformed(RemoteError):
    """An action result that is not one runner would write: bytes that do not decode,
    a failed action, an output of a kind or form runner does not restore."""


class BadURL(ValueError):
    """A remote cache URL or credential setting that cannot be used as given."""
