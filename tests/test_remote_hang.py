"""A remote cache that accepts a connection and then trickles one byte a second never
hangs the build (SPEC §4a: "a remote that is down, slow or wrong never fails or hangs
the build"): each request has a total deadline (`remote_cache_timeout`), after which
the remote is dropped with one warning and the build goes on locally; a Ctrl-C or a
SIGTERM while a request is under way stops the run at once, exit 130.

The server is real: a socket server on 127.0.0.1 in a thread of the test, which reads a
request's head and then sends one byte a second, never a complete answer.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
from conftest import Project, clean_env, poll, stop

TASKS = """
@task(inputs=["src/*.txt"], outputs=["out/all.txt"])
def build():
    import pathlib
    pathlib.Path("out").mkdir(exist_ok=True)
    with open("runs.log", "a") as log:
        log.write("build\\n")
    sh("cat src/*.txt > out/all.txt")
"""

NO_GRACE_TO_HIDE_BEHIND = """
[tool.runner]
kill_timeout = 600
"""


class Trickler:
    """Accepts connections on 127.0.0.1; after each request's head it sends one byte a
    second (an HTTP status line that never ends). With `trickle="PUT"`, GETs get a
    404 at once and only uploads trickle. Stops by itself after `limit` seconds."""

    def __init__(self, trickle: str = "ALL", limit: float = 120.0) -> None:
        self.trickle = trickle
        self.limit = limit
        self.requests: list[str] = []  # "GET /path" of each request seen
        self.trickling = threading.Event()  # set once a request is being trickled
        self._stop = threading.Event()
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self._sock.settimeout(0.2)
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}/cache"
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    def _accept(self) -> None:
        end = time.monotonic() + self.limit
        while not self._stop.is_set() and time.monotonic() < end:
            try:
                conn, _ = self._sock.accept()
            except (TimeoutError, OSError):
                continue
            t = threading.Thread(target=self._serve, args=(conn, end), daemon=True)
            self._threads.append(t)
            t.start()

    def _serve(self, conn: socket.socket, end: float) -> None:
        conn.settimeout(1.0)
        with conn:
            head = b""
            try:
                while b"\r\n\r\n" not in head and len(head) < 65536:
                    chunk = conn.recv(4096)
                    if not chunk:
                        return
                    head += chunk
            except OSError:
                return
            method, _, rest = head.decode("latin-1").partition(" ")
            self.requests.append(f"{method} {rest.split(' ')[0]}")
            if self.trickle != "ALL" and method != self.trickle:
                conn.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n"
                             b"Connection: close\r\n\r\n")
                return
            self.trickling.set()
            for byte in b"HTTP/1.1 200 OK" * 1000:
                if self._stop.is_set() or time.monotonic() > end:
                    return
                try:
                    conn.sendall(bytes([byte]))
                except OSError:
                    return  # the client gave up
                self._stop.wait(1.0)

    def close(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=5)
        self._sock.close()


@pytest.fixture
def trickler():
    made: list[Trickler] = []

    def start(trickle: str = "ALL") -> Trickler:
        t = Trickler(trickle)
        made.append(t)
        return t

    yield start
    for t in made:
        t.close()


def checkout(tmp_path: Path) -> Project:
    p = Project(tmp_path / "checkout")
    p.root.mkdir()
    p.tasksfile(TASKS)
    p.write("src/a.txt", "alpha\n")
    return p


def runs(p: Project) -> int:
    log = p.root / "runs.log"
    return len(log.read_text().split()) if log.exists() else 0


def test_a_trickling_remote_costs_its_deadline_once_then_the_build_goes_on_locally(
        tmp_path, trickler):
    server = trickler()
    p = checkout(tmp_path)
    began = time.monotonic()
    r = p.run("--remote-cache", server.url, "build", timeout=60,
              env=clean_env(RUNNER_REMOTE_CACHE_TIMEOUT="2"))
    took = time.monotonic() - began
    assert r.code == 0, r
    assert runs(p) == 1
    assert p.read("out/all.txt") == "alpha\n"
    assert r.err.count("remote cache") == 1, r.err  # one warning, then left alone
    assert "within 2s" in r.err and "working without it" in r.err, r.err
    assert "Traceback" not in r.err
    assert len(server.requests) == 1, server.requests  # dropped: never asked again
    assert took < 30, took


def wait_until_trickling(proc: subprocess.Popen[str], server: Trickler) -> None:
    ok = poll(lambda: server.trickling.is_set() or proc.poll() is not None, 30)
    if not ok or proc.poll() is not None:
        out, err = proc.communicate(timeout=10) if proc.poll() is not None else ("", "")
        stop(proc)
        pytest.fail(f"runner never waited on the server: {out!r} {err!r}")
    time.sleep(0.5)  # well inside the wait for the answer


def exit_code_within(proc: subprocess.Popen[str], seconds: float) -> tuple[int, str]:
    try:
        out, err = proc.communicate(timeout=seconds)
    except subprocess.TimeoutExpired:
        stop(proc)
        pytest.fail(f"runner did not exit within {seconds}s of the signal")
    return proc.returncode, out + err


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_stops_a_run_waiting_for_a_trickling_lookup(tmp_path, trickler, sig):
    server = trickler()
    p = checkout(tmp_path)
    p.write("pyproject.toml", NO_GRACE_TO_HIDE_BEHIND)
    # The default deadline (60 s): only the signal can end this run in time.
    proc = p.popen("--remote-cache", server.url, "build")
    try:
        wait_until_trickling(proc, server)
        proc.send_signal(sig)
        code, output = exit_code_within(proc, 10)
        assert code == 130, output
        assert runs(p) == 0, output  # nothing started after the interrupt
        assert "Traceback" not in output
    finally:
        stop(proc)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_stops_a_run_waiting_for_a_trickling_upload(tmp_path, trickler, sig):
    server = trickler("PUT")  # lookups miss at once; the upload after the task trickles
    p = checkout(tmp_path)
    p.write("pyproject.toml", NO_GRACE_TO_HIDE_BEHIND)
    proc = p.popen("--remote-cache", server.url, "build")
    try:
        wait_until_trickling(proc, server)
        assert runs(p) == 1  # the task ran; runner is sending its outputs
        proc.send_signal(sig)
        code, output = exit_code_within(proc, 10)
        assert code == 130, output
        assert "Traceback" not in output
    finally:
        stop(proc)
    # The result was stored locally before the upload began: the next run (without
    # the remote) finds it.
    r = p.run("build")
    assert r.code == 0, r
    assert runs(p) == 1


def test_a_fifo_in_a_shared_directory_cache_is_a_failed_remote_not_a_hang(tmp_path):
    import os

    shared = tmp_path / "shared"
    first = checkout(tmp_path)
    assert first.run("--remote-cache", f"file://{shared}", "build").code == 0
    entries = list((shared / "runner" / "v2" / "entries").iterdir())
    assert len(entries) == 1
    entries[0].unlink()
    os.mkfifo(entries[0])  # what a reader of it would wait on forever
    (first.root / ".runner").rename(tmp_path / "local-state-aside")
    (first.root / "out" / "all.txt").unlink()
    r = first.run("--remote-cache", f"file://{shared}", "build", timeout=30)
    assert r.code == 0, r
    assert runs(first) == 2  # built locally
    assert r.err.count("remote cache") == 1, r.err
