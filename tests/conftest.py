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


# The files through which a GitHub Actions step writes its job summary, outputs,
# environment, PATH and state. Inside a GitHub job (the suite run by CI) they are the
# job's own: a runner started by a test would add its run's summary to the real one.
GITHUB_FILES = ("GITHUB_STEP_SUMMARY", "GITHUB_OUTPUT", "GITHUB_ENV", "GITHUB_PATH",
                "GITHUB_STATE")


@pytest.fixture(autouse=True)
def own_github_files(monkeypatch: pytest.MonkeyPatch,
                     tmp_path_factory: pytest.TempPathFactory) -> None:
    """Each test that runs inside a GitHub job gets empty files of its own for these, so
    whatever it starts writes nothing into the job it runs in."""
    present = [name for name in GITHUB_FILES if name in os.environ]
    if not present:
        return
    folder = tmp_path_factory.mktemp("github-files")
    for name in present:
        path = folder / name.lower()
        path.touch()
        monkeypatch.setenv(name, str(path))


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


# ---------------------------------------------------------------- runner watch
# Helpers for test_watch: a `runner watch` running in the background, its output as it
# comes, and what it watches and owns, read from /proc.


class Watching:
    """A running `runner watch ARGS...`: its output lines (stdout and stderr, each
    collected by a thread) and ways to wait for them. Use it as a context manager: on
    the way out a watch still running is killed."""

    def __init__(self, project: Project, *args: str, env: dict[str, str] | None = None,
                 new_session: bool = False) -> None:
        self.project = project
        self.proc = project.popen("watch", *args, env=env or clean_env(),
                                  start_new_session=new_session)
        self.pid = self.proc.pid
        self.out: list[str] = []
        self.err: list[str] = []
        self._readers = [
            threading.Thread(target=self._read, args=(self.proc.stdout, self.out), daemon=True),
            threading.Thread(target=self._read, args=(self.proc.stderr, self.err), daemon=True),
        ]
        for t in self._readers:
            t.start()

    @staticmethod
    def _read(stream: object, into: list[str]) -> None:
        for line in stream:  # type: ignore[attr-defined]
            into.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.out + self.err)

    def count(self, text: str) -> int:
        """How many lines (stdout and stderr) contain `text`."""
        return sum(text in line for line in self.out + self.err)

    def lines_with(self, text: str) -> list[str]:
        return [line for line in self.out + self.err if text in line]

    def wait_for(self, text: str, count: int = 1, timeout: float = 20.0) -> list[str]:
        """Wait until `count` lines contain `text`; those lines. Fails early if watch
        exits meanwhile."""
        def seen() -> bool:
            return self.count(text) >= count or self.proc.poll() is not None
        poll(seen, timeout)
        if self.count(text) < count:
            state = "runs" if self.proc.poll() is None else f"exited {self.proc.returncode}"
            raise AssertionError(f"wanted {count} line(s) with {text!r}; watch {state}; "
                                 f"output:\n{self.output}")
        return self.lines_with(text)

    def ready(self, *dirs: str, timeout: float = 20.0) -> None:
        """Wait for the first build's status line and for inotify watches on `dirs`
        (relative to the project root; "" is the root itself)."""
        self.wait_for("[watch] watching", timeout=timeout)
        want = set(dirs)
        ok = poll(lambda: want <= watched_dirs(self.pid, self.project.root), timeout)
        assert ok, f"not watching {want - watched_dirs(self.pid, self.project.root)}"

    def idle(self) -> bool:
        """Is no re-run under way: was the last re-run (`[watch] changed: ...`) followed
        by the status line that ends each one (`[watch] watching ...`)?"""
        last = ""
        for line in self.out:
            if line.startswith(("[watch] changed:", "[watch] watching")):
                last = line
        return not last.startswith("[watch] changed:")

    def settle(self, *files: str, quiet: float = 1.0, timeout: float = 30.0) -> None:
        """Wait until no re-run is under way and neither the output nor these files
        (relative to the project) have changed for `quiet` seconds."""
        def snapshot() -> tuple[object, ...]:
            sizes = []
            for rel in files:
                try:
                    sizes.append((self.project.root / rel).stat().st_size)
                except FileNotFoundError:
                    sizes.append(-1)
            return (len(self.out), len(self.err), *sizes)

        end = time.monotonic() + timeout
        last, since = snapshot(), time.monotonic()
        while time.monotonic() < end:
            time.sleep(0.05)
            now = snapshot()
            if now != last or not self.idle():
                last, since = now, time.monotonic()
            elif time.monotonic() - since >= quiet:
                return
        raise AssertionError(f"still busy after {timeout}s; output:\n{self.output}")

    def interrupt(self, sig: int = signal.SIGINT, timeout: float = 30.0) -> int:
        """Send `sig` (to watch's whole process group when it was started in a session of
        its own, as a terminal's Ctrl-C does) and wait for the exit code."""
        if self.proc.poll() is None:
            if self.proc.pid == os.getpgid(self.proc.pid):
                os.killpg(self.proc.pid, sig)
            else:
                self.proc.send_signal(sig)
        code = self.proc.wait(timeout=timeout)
        for t in self._readers:
            t.join(timeout=5)
        return code

    def __enter__(self) -> Watching:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            with contextlib.suppress(Exception):
                self.proc.wait(timeout=10)
        for stream in (self.proc.stdout, self.proc.stderr):
            with contextlib.suppress(Exception):
                stream.close()  # type: ignore[union-attr]


def watched_dirs(pid: int, root: Path) -> set[str]:
    """The directories under `root` (relative, "" for root) that process `pid` holds an
    inotify watch on, read from /proc/PID/fdinfo; "?INODE" for a watch outside root."""
    inodes: dict[int, str] = {}
    for dirpath, _dirs, _files in os.walk(root):
        with contextlib.suppress(OSError):
            rel = os.path.relpath(dirpath, root).replace(os.sep, "/")
            inodes[os.stat(dirpath).st_ino] = "" if rel == "." else rel
    found: set[str] = set()
    try:
        fds = os.listdir(f"/proc/{pid}/fdinfo")
    except OSError:
        return found
    for fd in fds:
        try:
            with open(f"/proc/{pid}/fdinfo/{fd}") as f:
                text = f.read()
        except OSError:
            continue
        for line in text.splitlines():
            if line.startswith("inotify wd:"):
                ino = int(line.split(" ino:")[1].split()[0], 16)
                found.add(inodes.get(ino, f"?{ino}"))
    return found


def descendants(pid: int) -> set[int]:
    """Every live or dead process below `pid` (children, theirs, ...), from /proc."""
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                raw = f.read()
        except OSError:
            continue
        ppid = int(raw[raw.rfind(b")") + 2:].split()[1])
        children.setdefault(ppid, []).append(int(name))
    found: set[int] = set()
    stack = list(children.get(pid, ()))
    while stack:
        p = stack.pop()
        if p not in found:
            found.add(p)
            stack.extend(children.get(p, ()))
    return found


def zombies_below(pid: int) -> set[int]:
    """The descendants of `pid` that have exited and were not reaped (state Z)."""
    return {p for p in descendants(pid) if _state(p) == "Z"}


def processes_mentioning(text: str) -> list[int]:
    """Live (non-zombie) processes whose command line contains `text` anywhere."""
    return [p for p in _processes_mentioning(text) if _state(p) not in (None, "Z")]


def pid_alive(pid: int) -> bool:
    """Does `pid` run (not a zombie)?"""
    return _state(pid) not in (None, "Z")
