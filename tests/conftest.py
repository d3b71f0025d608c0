"""Fixtures: a temporary project with a tasksfile, and runner run on it as a user would
(a real `python -m runner` subprocess)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


class Result:
    def __init__(self, proc: subprocess.CompletedProcess[str]) -> None:
        self.code = proc.returncode
        self.out = proc.stdout
        self.err = proc.stderr

    @property
    def output(self) -> str:
        return self.out + self.err

    def __repr__(self) -> str:
        return f"Result(code={self.code}, out={self.out!r}, err={self.err!r})"


def clean_env(**extra: str) -> dict[str, str]:
    """The environment of a user's shell, minus what would change runner's behaviour."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("RUNNER_", "PYTEST_", "GITHUB_")) and k not in ("CI",)}
    env["NO_COLOR"] = "1"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.update(extra)
    return env


class Project:
    """A project directory under tmp_path, and a way to run runner in it."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def write(self, rel: str, text: str = "", mode: int | None = None) -> Path:
        p = self.root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(textwrap.dedent(text))
        if mode is not None:
            p.chmod(mode)
        return p

    def tasksfile(self, text: str) -> Path:
        return self.write("tasksfile.py", "from runner import task, sh, TaskError\n"
                          + textwrap.dedent(text))

    def read(self, rel: str) -> str:
        return (self.root / rel).read_text()

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "runner", *args]

    def run(self, *args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
            timeout: float = 60, input: str | None = None) -> Result:
        proc = subprocess.run(self.command(*args), cwd=cwd or self.root, env=env or clean_env(),
                              capture_output=True, text=True, timeout=timeout, input=input)
        return Result(proc)

    def popen(self, *args: str, env: dict[str, str] | None = None, **kw: object
              ) -> subprocess.Popen[str]:
        return subprocess.Popen(self.command(*args), cwd=self.root, env=env or clean_env(),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                **kw)  # type: ignore[call-overload]


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return Project(tmp_path)


# ---------------------------------------------------------------- processes and signals
# Helpers for the process and scheduling tests (test_sh, test_executor, test_signals,
# test_output). They look at real processes through /proc; nothing is mocked.

import contextlib  # noqa: E402
import queue  # noqa: E402
import random  # noqa: E402
import select  # noqa: E402
import signal  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402

TASKLIB = '''\
"""Helpers the test tasksfiles import: a shared event log and polling."""
import os
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent


def log(event):
    """Append one line to events.log (O_APPEND: lines from parallel tasks never mix)."""
    fd = os.open(ROOT / "events.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (event + "\\n").encode())
    finally:
        os.close(fd)


def logged():
    try:
        return (ROOT / "events.log").read_text().splitlines()
    except FileNotFoundError:
        return []


def wait_until(predicate, timeout=20.0):
    """Poll until predicate() is true; False if the deadline passed first."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.02)
    return bool(predicate())
'''


def use_tasklib(project: Project) -> None:
    """Put tasklib.py (log, logged, wait_until, ROOT) next to the tasksfile."""
    project.write("tasklib.py", TASKLIB)


def events_log(project: Project) -> list[str]:
    p = project.root / "events.log"
    return p.read_text().splitlines() if p.exists() else []


def poll(predicate: Callable[[], object], timeout: float = 20.0, interval: float = 0.02
         ) -> bool:
    """Poll until predicate() is true; False if the deadline passed first."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


def _state(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    return raw[raw.rfind(b")") + 2:].split()[0].decode()


def processes_with_arg(arg: str) -> list[int]:
    """Live (non-zombie) processes one of whose argv words is exactly `arg`."""
    want = arg.encode()
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as f:
                words = f.read().split(b"\0")
        except OSError:
            continue
        if want in words and _state(int(name)) not in (None, "Z"):
            found.append(int(name))
    return found


def _processes_mentioning(text: str) -> list[int]:
    want = text.encode()
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as f:
                if want in f.read():
                    found.append(int(name))
        except OSError:
            continue
    return found


@pytest.fixture
def marker() -> Iterator[Callable[[], str]]:
    """A factory of unique sleep durations (`sleep 287.403911`) to find a test's
    processes by; whatever still carries one is SIGKILLed when the test ends."""
    made: list[str] = []

    def new() -> str:
        m = f"{random.randint(200, 399)}.{random.randrange(100000, 999999)}"
        made.append(m)
        return m

    yield new
    for m in made:
        for pid in _processes_mentioning(m):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


def no_process_left(*markers: str, timeout: float = 5.0) -> bool:
    """True once no live process has any of these argv words (polled)."""
    return poll(lambda: not any(processes_with_arg(m) for m in markers), timeout)


def stop(proc: subprocess.Popen[str]) -> None:
    """Kill a runner we started (and what is left of its tree) if a test left it running."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
    with contextlib.suppress(Exception):
        proc.communicate(timeout=10)


class LineReader:
    """Reads a process's stdout line by line in a thread, so a test can wait for a
    line with a deadline while the process runs."""

    def __init__(self, stream: object) -> None:
        self.lines: list[str] = []
        self._q: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: object) -> None:
        for line in stream:  # type: ignore[attr-defined]
            self._q.put(line)
        self._q.put(None)

    def wait_for(self, predicate: Callable[[str], bool], timeout: float = 20.0) -> str:
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no matching line within {timeout}s; got {self.lines!r}")
            try:
                line = self._q.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                raise AssertionError(f"output ended without a matching line: {self.lines!r}")
            self.lines.append(line)
            if predicate(line):
                return line


def run_merged(project: Project, *args: str, env: dict[str, str] | None = None,
               timeout: float = 60) -> Result:
    """Run runner with stderr merged into stdout, to check what comes after what."""
    proc = subprocess.run(project.command(*args), cwd=project.root, env=env or clean_env(),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=timeout)
    return Result(proc)


def run_in_pty(project: Project, *args: str, env: dict[str, str] | None = None,
               timeout: float = 60) -> tuple[int, str]:
    """Run runner with a pseudo-terminal as its stdin, stdout and stderr; return its exit
    code and everything it wrote to the terminal."""
    master, slave = os.openpty()
    try:
        proc = subprocess.Popen(project.command(*args), cwd=project.root,
                                env=env or clean_env(TERM="xterm-256color"),
                                stdin=slave, stdout=slave, stderr=slave, close_fds=True)
    finally:
        os.close(slave)
    chunks: list[bytes] = []
    end = time.monotonic() + timeout
    try:
        while time.monotonic() < end:
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: every writer closed the terminal
                    break
                if not data:
                    break
                chunks.append(data)
            elif proc.poll() is not None:
                break  # exited, and nothing is left to read
        code = proc.wait(timeout=max(0.1, end - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    return code, b"".join(chunks).decode("utf-8", errors="replace")
