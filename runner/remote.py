"""Sharing the cache: remote backends that hold cache entries and output blobs.

A backend is a key-value store of bytes: `get(name) -> bytes | None` (None: not there)
and `put(name, data)`. runner keeps two kinds of names in it:

    runner/v2/blobs/<digest>      a file output's content; checked against its digest
                                  on the way in, so a damaged or forged blob is refused
    runner/v2/entries/<key>       the outputs one fingerprint produced, written after
                                  their blobs, so an entry never names a missing one:
                                  JSON {"files": [{path, digest, mode, size}],
                                  "symlinks": [{path, target}], "directories": [{path,
                                  mode}], "duration"} (runner.entries.to_json)

An entry read from a backend is untrusted input: the planner applies runner.entries'
rule to it before any of its blobs is fetched, whatever the backend, and refuses it
whole if it breaks the rule (a path outside the task's outputs, a setuid mode, ...).
The `v2` in the names is the entry format: a runner never reads another format's.

Built in: `http(s)://...` (GET and PUT, as nginx's WebDAV module, a bucket behind a
proxy, or any artifact server speak) and `file://DIR` (a shared directory). Plugins add
others with the `runner_cache_backends` hook. A backend that fails is reported once and
left alone for the rest of the run: a remote cache that is down makes the build do the
work locally, never fail.

Every request, to any backend, has a total deadline (`remote_cache_timeout`) and is
waited for through runner.deadline: a server that accepts and then trickles a byte at a
time costs that long once, and a Ctrl-C is handled at once, whatever the remote does.
"""

from __future__ import annotations

import os

from . import deadline

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TypeVar

    from .entries import Output
    from .loader import Project

    T = TypeVar("T")

PREFIX = "runner/v2"
TIMEOUT = 10.0  # seconds for one socket operation (connect, one read), within the deadline
REQUEST_DEADLINE = 60.0  # seconds for a whole request, by default (Bazel's --remote_timeout)


class HttpCache:
    """GET and PUT on URL/NAME. 404 is a miss; anything else that is not 2xx fails."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        self.name = self.url

    def get(self, name: str) -> bytes | None:
        import urllib.error

        try:
            with _open(f"{self.url}/{name}") as r:
                data: bytes = r.read()
                return data
        except urllib.error.HTTPError as e:
            if e.code == 404:
                return None
            raise

    def put(self, name: str, data: bytes) -> None:
        import urllib.request

        req = urllib.request.Request(
            f"{self.url}/{name}",
            data=data,
            method="PUT",
            headers={"Content-Type": "application/octet-stream"},
        )
        with _open(req) as r:
            r.read()


def _open(req: Any) -> Any:
    """urlopen, within the deadline of the request under way (runner.deadline): each
    socket operation gets at most what is left, and the socket is shut down when the
    caller stops waiting, so that a read blocked on it returns."""
    import urllib.request

    d = deadline.current()
    if d is None:
        return urllib.request.urlopen(req, timeout=TIMEOUT)
    opener = urllib.request.build_opener(*_abortable_handlers(d))
    return opener.open(req, timeout=min(TIMEOUT, d.left()))


def _abortable_handlers(d: deadline.Deadline) -> list[Any]:
    """urllib's HTTP and HTTPS handlers, with connections that register their socket
    with `d` (urllib itself never shows the socket it reads from)."""
    import urllib.request

    class Abortable:
        def do_open(self, http_class: Any, req: Any, **kw: Any) -> Any:
            class Connection(http_class):
                def connect(self) -> None:
                    super().connect()
                    sock = self.sock  # the TLS socket, for https
                    d.on_abort(lambda: _shut_down(sock))

            return super().do_open(Connection, req, **kw)  # type: ignore[misc]

    class Http(Abortable, urllib.request.HTTPHandler):
        pass

    class Https(Abortable, urllib.request.HTTPSHandler):
        pass

    return [Http(), Https()]


def _shut_down(sock: Any) -> None:
    import socket

    sock.shutdown(socket.SHUT_RDWR)  # wakes a read blocked on it in another thread


class DirCache:
    """A directory (shared over NFS, a mounted volume ...): NAME is a file under it."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.name = f"file://{path}"

    def get(self, name: str) -> bytes | None:
        from .fingerprint import open_regular

        try:
            fd, _size = open_regular(os.path.join(self.path, name))  # never a FIFO's open
        except FileNotFoundError:
            return None
        with open(fd, "rb") as f:
            return f.read()

    def put(self, name: str, data: bytes) -> None:
        target = os.path.join(self.path, name)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        tmp = f"{target}.{os.getpid()}.tmp"
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, target)  # readers see all of it or nothing


def backend_for(url: str) -> Any:
    """The built-in backend for a URL: http(s):// or file://."""
    from .errors import UsageError

    if url.startswith(("http://", "https://")):
        return HttpCache(url)
    if url.startswith("file://"):
        return DirCache(url[len("file://") :])
    raise UsageError(f"remote cache {url!r}: expected an http(s):// or file:// URL")


def backends(project: Project, url: str | None) -> list[Any]:
    """The backends of a run: the URL (flag, RUNNER_REMOTE_CACHE or `remote_cache`),
    then those plugins add."""
    found = []
    url = url or project.config.remote_cache
    if url:
        found.append(backend_for(url))
    if project.plugins is not None:
        for made in project.plugins.call("runner_cache_backends", project=project):
            found += list(made)
    return found


class Remote:
    """The backends of one run, each dropped at its first failure (with one warning).
    Each request has `timeout` seconds in all; once `interrupt` is set (the run is
    stopping), no request is waited for any more."""

    def __init__(self, backends: list[Any], warn: Any, timeout: float = REQUEST_DEADLINE) -> None:
        self.backends = list(backends)
        self.warn = warn
        self.timeout = timeout
        self.interrupt = deadline.Interrupt()

    def __bool__(self) -> bool:
        return bool(self.backends)

    def _ask(self, method: Callable[..., T], *args: Any) -> T:
        """method(*args) (a backend's get or put), within the deadline;
        deadline.Interrupted once the run is stopping."""
        return deadline.call(lambda: method(*args), self.timeout, self.interrupt)

    def _drop(self, backend: Any, e: Exception) -> None:
        name = getattr(backend, "name", type(backend).__name__)
        self.warn(
            f"remote cache {name} failed ({type(e).__name__}: {e}); "
            "working without it for the rest of this run"
        )
        if backend in self.backends:
            self.backends.remove(backend)

    def entry(self, key: bytes) -> tuple[Any, dict[str, Any]] | None:
        """The first backend holding an entry for this fingerprint, and the entry
        ({"outputs": [runner.entries.Output], "duration"}; not yet checked against the
        rule: runner.plan does that)."""
        import json

        from .entries import from_json

        name = f"{PREFIX}/entries/{key.hex()}"
        for backend in list(self.backends):
            try:
                data = self._ask(backend.get, name)
            except deadline.Interrupted:
                return None
            except Exception as e:  # any failure of a remote: degrade to local work
                self._drop(backend, e)
                continue
            if data is None:
                continue
            try:
                raw = json.loads(data)
                outputs = from_json(raw)
                return backend, {"outputs": outputs, "duration": float(raw["duration"])}
            except (ValueError, KeyError, TypeError) as e:
                self._drop(backend, e)
        return None

    def blob(self, backend: Any, d: bytes) -> bytes | None:
        """An output's content from the backend, if its digest matches."""
        from .fingerprint import digest

        try:
            data = self._ask(backend.get, f"{PREFIX}/blobs/{d.hex()}")
        except deadline.Interrupted:
            return None
        except Exception as e:
            self._drop(backend, e)
            return None
        if data is None or digest(data) != d:
            return None
        return bytes(data)

    def push(
        self,
        key: bytes,
        outputs: list[Output],
        duration: float,
        blob_path: Callable[[bytes], str],
    ) -> None:
        """Share a run's outputs (read from the local store, where they are checked):
        the blobs first, then the entry that names them."""
        import json

        from .entries import FILE, to_json

        manifest = json.dumps({**to_json(outputs), "duration": duration}).encode()
        for backend in list(self.backends):
            try:
                for o in outputs:
                    if o.kind != FILE:
                        continue
                    with open(blob_path(o.digest), "rb") as f:
                        data = f.read()
                    self._ask(backend.put, f"{PREFIX}/blobs/{o.digest.hex()}", data)
                self._ask(backend.put, f"{PREFIX}/entries/{key.hex()}", manifest)
            except deadline.Interrupted:
                return
            except Exception as e:
                self._drop(backend, e)
