"""Credentials for a remote cache, and keeping them out of every message.

    token        a bearer token: `authorization: Bearer TOKEN` on every request
                 (gRPC metadata or an HTTP header); RUNNER_REMOTE_CACHE_TOKEN
    username,    HTTP basic auth (http(s):// only): from the URL's userinfo
    password     (https://user:password@host/...), or the user there and the password
                 in RUNNER_REMOTE_CACHE_PASSWORD
    ca_file      PEM certificates to trust instead of the system's (a private CA);
                 RUNNER_REMOTE_CACHE_CA_FILE
    client_cert, a PEM client certificate and its key, for servers that want mutual
    client_key   TLS; RUNNER_REMOTE_CACHE_CLIENT_CERT, RUNNER_REMOTE_CACHE_CLIENT_KEY

A token and basic auth together are refused (BadURL): a server gets one Authorization.
`redact` removes the secrets from any text before it is shown: a server's error
message, an exception a library raised, a URL.
"""

from __future__ import annotations

from .errors import BadURL

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

ENV_TOKEN = "RUNNER_REMOTE_CACHE_TOKEN"
ENV_PASSWORD = "RUNNER_REMOTE_CACHE_PASSWORD"
ENV_CA_FILE = "RUNNER_REMOTE_CACHE_CA_FILE"
ENV_CLIENT_CERT = "RUNNER_REMOTE_CACHE_CLIENT_CERT"
ENV_CLIENT_KEY = "RUNNER_REMOTE_CACHE_CLIENT_KEY"


class Credentials:
    """What a client presents to a server, and what it trusts. Its repr shows which
    are set, never their values."""

    __slots__ = ("token", "username", "password", "ca_file", "client_cert", "client_key")

    def __init__(
        self,
        token: str | None = None,
        username: str | None = None,
        password: str | None = None,
        ca_file: str | None = None,
        client_cert: str | None = None,
        client_key: str | None = None,
    ) -> None:
        self.token = token or None
        self.username = username or None
        self.password = password or None
        self.ca_file = ca_file or None
        self.client_cert = client_cert or None
        self.client_key = client_key or None
        if self.token and (self.username or self.password):
            raise BadURL("remote cache: both a bearer token and basic auth are set; use one")
        if bool(self.client_cert) != bool(self.client_key):
            raise BadURL(
                "remote cache: a client certificate needs its key, and a key its certificate"
            )

    @classmethod
    def from_env(cls, environ: Mapping[str, str], username: str | None = None) -> Credentials:
        """The credentials the RUNNER_REMOTE_CACHE_* variables set (`username`: the
        user a URL names, whose password may come from the environment)."""
        return cls(
            token=environ.get(ENV_TOKEN),
            username=username,
            password=environ.get(ENV_PASSWORD) if username else None,
            ca_file=environ.get(ENV_CA_FILE),
            client_cert=environ.get(ENV_CLIENT_CERT),
            client_key=environ.get(ENV_CLIENT_KEY),
        )

    def with_userinfo(self, username: str | None, password: str | None) -> Credentials:
        """These credentials with the user and password a URL gave (they win)."""
        if not username:
            return self
        return Credentials(
            self.token,
            username,
            password or self.password,
            self.ca_file,
            self.client_cert,
            self.client_key,
        )

    def secrets(self) -> list[str]:
        return [s for s in (self.token, self.password) if s]

    def redact(self, text: str) -> str:
        """`text` with every secret replaced by ***."""
        for secret in self.secrets():
            text = text.replace(secret, "***")
        return text

    def __repr__(self) -> str:
        shown = [n for n in self.__slots__ if getattr(self, n)]
        return f"Credentials({', '.join(shown)})"


def read_pem(path: str | None, what: str) -> bytes | None:
    """A PEM file's bytes (for gRPC, which takes them rather than a path)."""
    if path is None:
        return None
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise BadURL(f"remote cache: cannot read the {what} {path}: {e.strerror or e}") from None
