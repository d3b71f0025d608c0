"""Real servers for the remote cache protocol tests: BuildGrid (the Remote Execution API
over gRPC) and nginx (Bazel's HTTP cache protocol through its WebDAV module), each
started on a free port of 127.0.0.1 by the tests and stopped after them; test
certificates made with openssl; and two misbehaving peers of the tests' own: a socket
that accepts and never answers, and a relay that forwards slowly and can be cut.

BuildGrid comes from PyPI (`buildgrid`, BUILDGRID_VERSION) into a venv of its own,
never into runner's: it pulls in a server's worth of packages (SQLAlchemy, boto3, ...)
that runner neither needs nor should be tested against. The venv is made once and kept
under ~/.cache/runner-tests (RUNNER_TEST_BUILDGRID_VENV overrides the place); .ci/setup
makes it ahead of the tests:

    python3 tests/remote_servers.py buildgrid     # prints the venv's path
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

BUILDGRID_VERSION = "0.4.4"
START_TIMEOUT = 90.0  # seconds for a server to listen (BuildGrid takes a few)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, proc: subprocess.Popen, timeout: float = START_TIMEOUT) -> bool:
    """Wait until something listens on 127.0.0.1:port; False if `proc` ended first or
    time ran out."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            return False
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def stop_process(proc: subprocess.Popen, grace: float = 10.0) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# ---------------------------------------------------------------- BuildGrid


def buildgrid_venv_dir() -> Path:
    custom = os.environ.get("RUNNER_TEST_BUILDGRID_VENV")
    if custom:
        return Path(custom)
    return Path.home() / ".cache" / "runner-tests" / f"buildgrid-{BUILDGRID_VERSION}-venv"


def ensure_buildgrid() -> Path | str:
    """The bgd executable of the BuildGrid venv, made if it is not there yet; or why
    it cannot be had (a reason to skip with). Safe to call from several processes."""
    import fcntl

    venv = buildgrid_venv_dir()
    bgd = venv / "bin" / "bgd"
    complete = venv / "runner-tests-complete"  # written last: a venv without it is half made
    if complete.exists():
        return bgd
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(venv.parent / f"{venv.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if complete.exists():  # another process made it while this one waited
            return bgd
        shutil.rmtree(venv, ignore_errors=True)
        try:
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True,
                           capture_output=True, text=True, timeout=300)
            subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q",
                            "--disable-pip-version-check", f"buildgrid=={BUILDGRID_VERSION}"],
                           check=True, capture_output=True, text=True, timeout=900)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as e:
            shutil.rmtree(venv, ignore_errors=True)
            said = getattr(e, "stderr", "") or str(e)
            lines = [line for line in said.splitlines() if "is ignored" not in line]
            why = " ".join(lines)[-400:]
            return f"cannot install buildgrid=={BUILDGRID_VERSION} from PyPI: {why}"
        complete.write_text(f"buildgrid=={BUILDGRID_VERSION}\n")
    return bgd


def buildgrid_python(bgd: Path) -> Path:
    return bgd.parent / "python"


BUILDGRID_CONFIG = """\
server:
  - !channel
    address: "127.0.0.1:{port}"
    insecure-mode: {insecure}
{credentials}
authorization:
{authorization}
storages:
{storage}
caches:
  - !lru-action-cache &cache
    storage: *storage
    max-cached-refs: 10000
    allow-updates: {updates}
instances:
  - name: "{instance}"
    services:
      - !action-cache
        cache: *cache
      - !cas
        storage: *storage
      - !bytestream
        storage: *storage
"""


class BuildGrid:
    """`bgd server start` on a config of its own (see BUILDGRID_CONFIG): an in-memory
    CAS and action cache (the CAS in `storage_dir` if given). `jwt_secret`: requests
    need an HS256 token signed with it (`token()`); `tls`: a Certificates, served over
    TLS and, with `mutual`, asking for client certificates signed by its CA;
    `updates=False`: a read-only action cache."""

    def __init__(self, bgd: Path, workdir: Path, instance: str = "", jwt_secret: str | None = None,
                 tls: Certificates | None = None, mutual: bool = False,
                 updates: bool = True, storage_dir: Path | None = None) -> None:
        self.instance = instance
        self.jwt_secret = jwt_secret
        self.port = free_port()
        workdir.mkdir(parents=True, exist_ok=True)
        if jwt_secret:
            (workdir / "jwt.secret").write_text(jwt_secret)
            authorization = (f"  method: jwt\n  secret: {workdir / 'jwt.secret'}\n"
                             "  algorithm: hs256\n")
        else:
            authorization = "  method: none\n"
        credentials = ""
        if tls is not None:
            credentials = (f"    credentials:\n      tls-server-key: {tls.server_key}\n"
                           f"      tls-server-cert: {tls.server_cert}\n")
            if mutual:
                credentials += f"      tls-client-certs: {tls.ca_cert}\n"
        if storage_dir is None:
            storage = "  - !lru-storage &storage\n    size: 512MB"
        else:
            storage = f"  - !disk-storage &storage\n    path: {storage_dir}"
        config = workdir / "buildgrid.yml"
        config.write_text(BUILDGRID_CONFIG.format(storage=storage,
            port=self.port, insecure="false" if tls else "true", credentials=credentials,
            authorization=authorization, instance=instance,
            updates="true" if updates else "false"))
        self.log = workdir / "buildgrid.log"
        started = time.monotonic()
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [str(buildgrid_python(bgd)), str(bgd), "server", "start", str(config)],
                stdout=log, stderr=subprocess.STDOUT, cwd=workdir, start_new_session=True)
        if not wait_for_port(self.port, self.proc):
            self.stop()
            raise RuntimeError(f"BuildGrid did not start: {self.log.read_text()[-2000:]}")
        self.startup_seconds = time.monotonic() - started
        scheme = "grpcs" if tls else "grpc"
        host = "localhost" if tls else "127.0.0.1"
        self.url = f"{scheme}://{host}:{self.port}" + (f"/{instance}" if instance else "")

    def token(self, secret: str | None = None, lifetime: float = 3600.0) -> str:
        """An HS256 JWT that BuildGrid accepts (signed with `secret`, by default the
        server's own)."""
        key = (secret or self.jwt_secret or "").encode()
        return hs256_jwt(key, {"sub": "runner-tests", "exp": int(time.time() + lifetime)})

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()

    def kill(self) -> None:
        """Stop it at once, as a crash would (its connections are reset)."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def hs256_jwt(key: bytes, claims: dict) -> str:
    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps(claims).encode())
    signature = hmac.new(key, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(signature)}"


# ---------------------------------------------------------------- nginx

NGINX_CONF = """
{user}
daemon off;
pid {d}/nginx.pid;
error_log {d}/error.log;
events {{}}
http {{
    access_log off;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    server {{
        listen 127.0.0.1:{port} {ssl};
        {tls}
        root {d}/www;
        location /cache/ {{
            dav_methods PUT;
            create_full_put_path on;
            client_max_body_size 1g;
            {auth}
        }}
        location /slow/ {{
            alias {d}/www/cache/;
            limit_rate {slow_rate};
        }}
    }}
}}
"""


def nginx_binary() -> str | None:
    found = shutil.which("nginx")
    if found:
        return found
    return "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None


class Nginx:
    """nginx serving and taking PUTs under /cache/ (its files: `files`), and the same
    files read-only and slowly (`slow_rate` a second) under /slow/. `htpasswd`: basic
    auth; `bearer`: requests need that token; `tls`: HTTPS (and, with `mutual`, client
    certificates signed by its CA)."""

    def __init__(self, nginx: str, d: Path, htpasswd: Path | None = None,
                 tls: Certificates | None = None, mutual: bool = False,
                 bearer: str | None = None, slow_rate: str = "2m") -> None:
        (d / "www" / "cache").mkdir(parents=True)
        self.port = free_port()
        # Started as root, nginx would run its workers as `nobody`, who cannot enter the
        # test's temporary directory: keep them as the user running the tests.
        user = "user root;" if os.geteuid() == 0 else ""
        auth = f'auth_basic "cache"; auth_basic_user_file {htpasswd};' if htpasswd else ""
        if bearer:
            auth += f' if ($http_authorization != "Bearer {bearer}") {{ return 401; }}'
        tls_conf = ""
        if tls is not None:
            tls_conf = f"ssl_certificate {tls.server_cert}; ssl_certificate_key {tls.server_key};"
            if mutual:
                tls_conf += f" ssl_client_certificate {tls.ca_cert}; ssl_verify_client on;"
        conf = d / "nginx.conf"
        conf.write_text(NGINX_CONF.format(d=d, port=self.port, user=user, auth=auth,
                                          ssl="ssl" if tls else "", tls=tls_conf,
                                          slow_rate=slow_rate))
        self.proc = subprocess.Popen([nginx, "-c", str(conf), "-p", str(d)],
                                     stderr=subprocess.PIPE)
        if not wait_for_port(self.port, self.proc, 10):
            stop_process(self.proc)
            raise RuntimeError(f"nginx did not start: {self.proc.stderr.read().decode()[:500]}")
        self.files = d / "www" / "cache"
        scheme = "https" if tls else "http"
        host = "localhost" if tls else "127.0.0.1"
        self.base = f"{scheme}://{host}:{self.port}"
        self.url = f"{self.base}/cache"

    def stop(self) -> None:
        stop_process(self.proc)


def htpasswd(path: Path, user: str, password: str) -> Path:
    """An htpasswd file for nginx's auth_basic, its hash made by openssl (apr1)."""
    hashed = subprocess.run(["openssl", "passwd", "-apr1", password], check=True,
                            capture_output=True, text=True).stdout.strip()
    path.write_text(f"{user}:{hashed}\n")
    return path


# ---------------------------------------------------------------- certificates


class Certificates:
    """A test CA, a server certificate for localhost and 127.0.0.1, and a client
    certificate, all signed by the CA (openssl)."""

    def __init__(self, d: Path) -> None:
        d.mkdir(parents=True, exist_ok=True)
        self.ca_key, self.ca_cert = d / "ca.key", d / "ca.pem"
        self.server_key, self.server_cert = d / "server.key", d / "server.pem"
        self.client_key, self.client_cert = d / "client.key", d / "client.pem"
        self.other_ca_cert = d / "other-ca.pem"
        ssl = ["openssl"]
        _run(ssl + ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=runner test CA", "-keyout", self.ca_key, "-out", self.ca_cert])
        _run(ssl + ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=another CA", "-keyout", d / "other-ca.key",
                    "-out", self.other_ca_cert])
        self._signed(d, "server", "/CN=localhost",
                     "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth")
        self._signed(d, "client", "/CN=runner test client", "extendedKeyUsage=clientAuth")

    def _signed(self, d: Path, name: str, subject: str, extensions: str) -> None:
        ext = d / f"{name}.ext"
        ext.write_text(extensions + "\n")
        _run(["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", subject,
              "-keyout", d / f"{name}.key", "-out", d / f"{name}.csr"])
        _run(["openssl", "x509", "-req", "-in", d / f"{name}.csr", "-CA", self.ca_cert,
              "-CAkey", self.ca_key, "-CAcreateserial", "-days", "2", "-extfile", ext,
              "-out", d / f"{name}.pem"])


def _run(cmd: list) -> None:
    subprocess.run([str(c) for c in cmd], check=True, capture_output=True, timeout=60)


# ---------------------------------------------------------------- misbehaving peers


class Silent:
    """Accepts connections on 127.0.0.1 and never sends a byte (nor closes them until
    it is closed, or `limit` seconds have passed)."""

    def __init__(self, limit: float = 120.0) -> None:
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self._sock.settimeout(0.2)
        self.port = self._sock.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self._stop = threading.Event()
        self._end = time.monotonic() + limit
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set() and time.monotonic() < self._end:
            try:
                conn, _ = self._sock.accept()
                self.accepted.append(conn)
            except OSError:
                continue
        self._close_all()

    def _close_all(self) -> None:
        for conn in self.accepted:
            conn.close()
        self._sock.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)


class Relay:
    """Forwards connections from a port of its own to 127.0.0.1:`upstream`, the
    server's answers at most `rate` bytes a second, counting them (`forwarded`); when
    the server closes or resets a connection, so does the relay. Stops by itself
    after `limit` seconds."""

    def __init__(self, upstream: int, rate: int, limit: float = 120.0) -> None:
        self.upstream = upstream
        self.rate = rate
        self.forwarded = 0
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self._sock.settimeout(0.2)
        self.port = self._sock.getsockname()[1]
        self._end = time.monotonic() + limit
        self._stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop.is_set() and time.monotonic() < self._end:
            try:
                client, _ = self._sock.accept()
            except OSError:
                continue
            server = socket.create_connection(("127.0.0.1", self.upstream))
            threading.Thread(target=self._pump, args=(client, server, 0), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, self.rate),
                             daemon=True).start()
        self._sock.close()

    def _pump(self, src: socket.socket, dst: socket.socket, rate: int) -> None:
        src.settimeout(0.5)
        chunk = max(1, rate // 20) if rate else 65536
        try:
            while not self._stop.is_set() and time.monotonic() < self._end:
                try:
                    data = src.recv(chunk)
                except TimeoutError:
                    continue
                if not data:
                    break
                dst.sendall(data)
                if rate:
                    self.forwarded += len(data)
                    time.sleep(len(data) / rate)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def close(self) -> None:
        self._stop.set()


if __name__ == "__main__":
    if sys.argv[1:] == ["buildgrid"]:
        found = ensure_buildgrid()
        print(found)
        sys.exit(0 if isinstance(found, Path) else 1)
    sys.exit(f"usage: {sys.argv[0]} buildgrid")
