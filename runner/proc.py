"""`sh`: running commands that runner can always stop.

Every command runs in a session (and so a process group) of its own, so that a Ctrl-C
in the terminal reaches runner alone and runner decides what to stop. Stopping a
command means stopping its whole tree: SIGTERM to its group and to every descendant
(found through /proc, so a grandchild that called setsid is not missed), a grace period
for them to exit cleanly, then SIGKILL for whatever is left.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

from .errors import Cancelled, TaskError
from .ptree import kill_trees

TYPE_CHECKING = False
if TYPE_CHECKING:
    import subprocess
    from collections.abc import Callable, Mapping, Sequence
    from typing import Any

    from .lifeline import Lifeline

_local = threading.local()


class Scope:
    """The commands one task has running; cancelling it stops them all."""

    def __init__(self, name: str = "") -> None:
        self.name = name
        self.reason: str | None = None
        self._procs: set[subprocess.Popen[bytes]] = set()
        self._lock = threading.Lock()
        self.cancelled_event = threading.Event()

    @property
    def cancelled(self) -> bool:
        return self.reason is not None

    def add(self, proc: subprocess.Popen[bytes]) -> bool:
        """Track a command; False (and the command is not tracked) once cancelled."""
        with self._lock:
            if self.reason is not None:
                return False
            self._procs.add(proc)
            return True

    def pids(self) -> list[int]:
        """The process ids of the commands running now."""
        with self._lock:
            return [p.pid for p in self._procs]

    def discard(self, proc: subprocess.Popen[bytes]) -> None:
        with self._lock:
            self._procs.discard(proc)

    def cancel(self, reason: str, grace: float) -> None:
        """Stop every command of this scope: SIGTERM, `grace` seconds, then SIGKILL."""
        with self._lock:
            if self.reason is None:
                self.reason = reason
            procs = list(self._procs)
        self.cancelled_event.set()
        kill_trees([p.pid for p in procs], grace)

    def kill_now(self) -> None:
        """SIGKILL every command of this scope at once (a second Ctrl-C)."""
        with self._lock:
            procs = list(self._procs)
        kill_trees([p.pid for p in procs], 0)


class TaskContext:
    """What `sh` needs to know about the task calling it."""

    def __init__(
        self,
        name: str,
        scope: Scope,
        root: str,
        output: Callable[[str, str, bool], None],
        command: Callable[[str], None],
        interactive: bool = False,
        grace: float = 5.0,
        command_done: Callable[[str, int, float], None] | None = None,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        lifeline: Lifeline | None = None,
    ) -> None:
        self.name = name
        self.cwd = cwd or root  # the task's working directory (absolute)
        self.env = env or {}  # what its .env files add to the process environment
        self.lifeline = lifeline  # records each command, so none outlives runner
        self.grace = grace  # seconds between SIGTERM and SIGKILL
        self.scope = scope
        self.root = root
        # (line, stream, partial) for each line a command prints; partial: the start
        # of a line not ended yet, shown after PARTIAL_AFTER seconds without a newline
        self.output = output
        self.command = command  # each command as it starts
        self.command_done = command_done  # (command, exit code, seconds) as each ends
        self.interactive = interactive  # commands may read the terminal (stdin)
        self.partial: dict[str, str] = {}  # what print() wrote after its last newline
        self.trace: Callable[..., tuple[Any, bool]] | None = None  # --audit (runner.audit)


def set_context(ctx: TaskContext | None) -> None:
    old = getattr(_local, "ctx", None)
    if ctx is None and old is not None:
        for stream, text in old.partial.items():  # a last line without its newline
            if text:
                old.output(text, stream, False)
        old.partial.clear()
    _local.ctx = ctx


class TaskStream:
    """Stands in for sys.stdout / sys.stderr during a run: what a task's own Python
    code prints becomes that task's output, line by line, like its commands' output
    (prefixed when tasks run in parallel, JSON events with --log-format json). Writes
    from other threads go straight through."""

    def __init__(self, real: Any, name: str) -> None:
        self.real = real
        self.name = name

    def write(self, text: str) -> int:
        ctx = current_context()
        if ctx is None:
            return self.real.write(text)
        buf = ctx.partial.get(self.name, "") + text
        *lines, rest = buf.split("\n")
        ctx.partial[self.name] = rest
        for line in lines:
            ctx.output(line.rstrip("\r"), self.name, False)
        return len(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        ctx = current_context()
        if ctx is None:
            self.real.flush()
        elif ctx.partial.get(self.name):  # print(..., end="", flush=True): show it now
            ctx.output(ctx.partial.pop(self.name), self.name, True)

    def __getattr__(self, name: str) -> Any:  # encoding, isatty, fileno, ...
        return getattr(self.real, name)


def current_context() -> TaskContext | None:
    return getattr(_local, "ctx", None)


def task_cwd() -> str:
    """The working directory of the task calling it (absolute); outside a task, the
    process's."""
    ctx = current_context()
    return ctx.cwd if ctx is not None else os.getcwd()


def task_environ() -> dict[str, str]:
    """The environment the task calling it gives its commands: the process's, over
    the variables of its .env files."""
    ctx = current_context()
    return {**ctx.env, **os.environ} if ctx is not None and ctx.env else dict(os.environ)


class Output(str):
    """What `sh` returns: the captured output (empty unless capture=True), with the
    command's exit code."""

    exit_code: int

    def __new__(cls, text: str, exit_code: int) -> Output:
        self = super().__new__(cls, text)
        self.exit_code = exit_code
        return self

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


def sh(
    cmd: str | Sequence[str | os.PathLike[str]],
    *,
    cwd: str | os.PathLike[str] | None = None,
    env: Mapping[str, str | None] | None = None,
    check: bool = True,
    capture: bool = False,
    timeout: float | None = None,
) -> Output:
    """Run a command: a string through the shell, a list without one.

    Output is streamed line by line (prefixed with the task's name when tasks run in
    parallel); `capture=True` returns standard output instead (standard error is still
    streamed). A non-zero exit raises `TaskError` with the exit code unless
    `check=False`. The command runs in its own process group and is killed, with all
    its descendants, when the task is cancelled or `timeout` seconds pass.
    """
    ctx = current_context()
    shell = isinstance(cmd, str)
    if shell:
        argv: str | list[str] = cmd  # type: ignore[assignment]
        shown = cmd
    else:
        try:
            argv = [os.fspath(a) for a in cmd]
        except TypeError:
            raise TypeError(
                f"sh(): a command is a string or a list of strings, got {cmd!r}"
            ) from None
        if not argv:
            raise ValueError("sh(): empty command")
        import shlex

        shown = shlex.join(argv)
    assert isinstance(shown, str)
    scope = ctx.scope if ctx else None
    if scope is not None and scope.cancelled:
        raise Cancelled(scope.reason)
    full_env = None
    if ctx is not None and ctx.env:
        full_env = {**ctx.env, **os.environ}
    if env is not None:
        full_env = dict(os.environ) if full_env is None else full_env
        for k, v in env.items():
            if v is None:
                full_env.pop(k, None)
            else:
                full_env[k] = str(v)
    if ctx is not None:  # relative to the task's directory, wherever runner was started
        cwd = ctx.cwd if cwd is None else os.path.join(ctx.cwd, cwd)
    if ctx is not None and ctx.trace is not None:  # --audit: the command runs under strace
        argv, shell = ctx.trace(argv, shell, cwd, full_env)
    if ctx is not None:
        ctx.command(shown)
    lifeline = ctx.lifeline if ctx is not None else None
    if lifeline is not None:
        lifeline.arm()
    began = time.monotonic()
    try:
        proc = _start(
            argv,
            shell=shell,
            cwd=None if cwd is None else os.fspath(cwd),
            env=full_env,
            stdin_null=not (ctx is None or ctx.interactive),
        )
    except OSError as e:
        if cwd is not None and not os.path.isdir(cwd):
            problem = f"directory {cwd} does not exist"
        else:
            problem = e.strerror or str(e)
        raise TaskError(f"cannot run {shown}: {problem}", exit_code=127, cmd=shown) from None
    if lifeline is not None:
        lifeline.started(proc.pid)
    if scope is not None and not scope.add(proc):
        kill_trees([proc.pid], 0)  # cancelled while it started
        proc.wait()
        raise Cancelled(scope.reason)
    try:
        captured, timed_out = _pump(proc, ctx, capture, timeout)
    except BaseException:
        kill_trees([proc.pid], 0)
        proc.wait()
        raise
    finally:
        if scope is not None:
            scope.discard(proc)
    rc = proc.wait()
    code = rc if rc >= 0 else 128 - rc
    if ctx is not None and ctx.command_done is not None:
        ctx.command_done(shown, 124 if timed_out else code, time.monotonic() - began)
    if scope is not None and scope.cancelled:
        raise Cancelled(scope.reason)
    text = captured.decode("utf-8", errors="replace") if capture else ""
    if timed_out:
        raise TaskError(
            f"command timed out after {timeout:g}s: {shown}",
            exit_code=124,
            cmd=shown,
            output=text or None,
        )
    if check and rc != 0:
        how = f"exit code {rc}" if rc > 0 else f"signal {_signame(-rc)}"
        raise TaskError(
            f"command failed with {how}: {shown}", exit_code=code, cmd=shown, output=text or None
        )
    return Output(text, code)


class _Child:
    """A command started with posix_spawn: what `sh` needs of a Popen."""

    def __init__(self, pid: int, stdout: int, stderr: int | None) -> None:
        self.pid = pid
        self.stdout: Any = _Pipe(stdout)
        self.stderr: Any = _Pipe(stderr) if stderr is not None else None
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self) -> int:
        while self.returncode is None:
            try:
                _pid, status = os.waitpid(self.pid, 0)
            except InterruptedError:
                continue
            self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode


class _Pipe:
    """The reading end of a command's output pipe."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def fileno(self) -> int:
        return self.fd

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _start(
    argv: str | list[str],
    *,
    shell: bool,
    cwd: str | None,
    env: Mapping[str, str] | None,
    stdin_null: bool,
) -> Any:
    """Start a command in a session of its own, its stdout and stderr on two pipes
    (each stream stays what it was, to the end: runner's own stdout and stderr, or
    the JSON log's `stream`). posix_spawn
    (vfork and exec, and no `subprocess` to import) in the common case; Popen when the
    command must start in another directory, which posix_spawn cannot do portably."""
    elsewhere = cwd is not None and cwd != os.getcwd()
    own_path = (
        not shell and env is not None and env.get("PATH") != os.environ.get("PATH")
    )  # posix_spawnp would search runner's PATH, not the command's
    if elsewhere or own_path:
        import subprocess

        return subprocess.Popen(
            argv,
            shell=shell,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL if stdin_null else None,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            close_fds=True,
        )
    args: list[str] = ["/bin/sh", "-c", argv] if isinstance(argv, str) else list(argv)
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    actions: list[tuple[Any, ...]] = []
    if stdin_null:
        actions.append((os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0))
    actions += [(os.POSIX_SPAWN_DUP2, out_w, 1), (os.POSIX_SPAWN_DUP2, err_w, 2)]
    try:
        spawn = os.posix_spawn if shell or "/" in args[0] else os.posix_spawnp
        pid = spawn(
            args[0],
            args,
            os.environ if env is None else env,
            file_actions=actions,
            setsid=True,
            # Python ignores SIGPIPE, and an ignored signal stays ignored across exec:
            # the command gets the defaults back, as subprocess gives them.
            setsigdef=_DEFAULT_SIGNALS,
        )
    except BaseException:
        _close(out_r)
        _close(err_r)
        raise
    finally:
        _close(out_w)
        _close(err_w)
    return _Child(pid, out_r, err_r)


_DEFAULT_SIGNALS = [
    getattr(signal, n) for n in ("SIGPIPE", "SIGXFZ", "SIGXFSZ") if hasattr(signal, n)
]


def _close(fd: int | None) -> None:
    if fd is not None:
        try:
            os.close(fd)
        except OSError:
            pass


def _pump(
    proc: Any, ctx: TaskContext | None, capture: bool, timeout: float | None
) -> tuple[bytes, bool]:
    """Stream the command's output until it exits; return what was captured and
    whether the timeout struck. The pipes are not read to EOF after the command exits:
    a background process it started may hold them open for as long as it lives."""
    import selectors

    emit = ctx.output if ctx is not None else _write_through
    sel = selectors.DefaultSelector()
    streams: dict[int, tuple[str, bytearray]] = {}
    assert proc.stdout is not None
    out_fd = proc.stdout.fileno()
    streams[out_fd] = ("stdout", bytearray())
    sel.register(out_fd, selectors.EVENT_READ)
    if proc.stderr is not None:
        streams[proc.stderr.fileno()] = ("stderr", bytearray())
        sel.register(proc.stderr.fileno(), selectors.EVENT_READ)
    pidfd = _pidfd(proc.pid)
    if pidfd is not None:
        sel.register(pidfd, selectors.EVENT_READ)
    captured = bytearray()
    deadline = None if timeout is None else time.monotonic() + timeout
    exited = timed_out = False
    unended: dict[int, float] = {}  # fd -> since when its buffer holds a line's start

    def take(fd: int, data: bytes) -> None:
        stream, buf = streams[fd]
        if capture and stream == "stdout":
            captured.extend(data)
            return
        buf.extend(data)
        while True:
            nl = buf.find(b"\n")
            if nl < 0:
                break
            emit(buf[:nl].decode("utf-8", errors="replace").rstrip("\r"), stream, False)
            del buf[: nl + 1]
            unended.pop(fd, None)
        if buf:
            unended.setdefault(fd, time.monotonic())

    def show_unended() -> None:
        """Lines started PARTIAL_AFTER ago without a newline (pytest's dots, a
        progress bar) are shown as they are; the rest of the line follows later."""
        now = time.monotonic()
        for fd, since in list(unended.items()):
            if now - since >= PARTIAL_AFTER:
                stream, buf = streams[fd]
                cut = _whole_characters(buf)
                if cut:
                    emit(buf[:cut].decode("utf-8", errors="replace"), stream, True)
                    del buf[:cut]
                del unended[fd]
                if buf:
                    unended[fd] = now

    try:
        while not exited:
            wait = 0.1 if pidfd is None else None
            if deadline is not None:
                left = max(0.0, deadline - time.monotonic())
                wait = left if wait is None else min(wait, left)
            if unended:
                due = max(0.0, min(unended.values()) + PARTIAL_AFTER - time.monotonic())
                wait = due if wait is None else min(wait, due)
            ready = sel.select(wait)
            if unended:
                show_unended()
            for key, _ in ready:
                fd = key.fd
                if fd == pidfd:
                    exited = True
                    continue
                data = os.read(fd, 65536)
                if data:
                    take(fd, data)
                else:
                    sel.unregister(fd)
            if pidfd is None and proc.poll() is not None:
                exited = True
            if not exited and deadline is not None and time.monotonic() >= deadline:
                timed_out = True
                kill_trees([proc.pid], ctx.grace if ctx is not None else 5.0)
                exited = True
        # The command is gone: take what it left in the pipes, without waiting for
        # processes that still hold them.
        for fd in list(streams):
            os.set_blocking(fd, False)
            try:
                while data := os.read(fd, 65536):
                    take(fd, data)
            except BlockingIOError:
                pass
        for _fd, (stream, buf) in streams.items():
            if buf:
                emit(buf.decode("utf-8", errors="replace").rstrip("\r"), stream, False)
    finally:
        sel.close()
        if pidfd is not None:
            os.close(pidfd)
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
    return bytes(captured), timed_out


PARTIAL_AFTER = 0.15  # seconds a line's start waits for its end before it is shown


def _whole_characters(buf: bytearray) -> int:
    """How much of `buf` to show so as not to cut a UTF-8 character in two."""
    n = len(buf)
    for back in range(1, min(4, n) + 1):
        byte = buf[n - back]
        if byte & 0xC0 != 0x80:  # ASCII or the first byte of a character
            size = 1 if byte < 0x80 else 2 if byte >> 5 == 6 else 3 if byte >> 4 == 14 else 4
            return n if back >= size else n - back
    return n


def _pidfd(pid: int) -> int | None:
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None  # not Linux >= 5.3: poll instead


def _write_through(line: str, stream: str, partial: bool = False) -> None:
    out = sys.stderr if stream == "stderr" else sys.stdout
    out.write(line if partial else line + "\n")
    out.flush()


def _signame(num: int) -> str:
    try:
        return signal.Signals(num).name
    except ValueError:
        return str(num)


# ---------------------------------------------------------------- PID 1


def run_as_init(entry: Callable[[], int]) -> int:
    """Be a container's init: fork, let the child run `entry`, pass signals on to it,
    and reap every process that ends up ours (orphans are re-parented to PID 1; an
    init that does not wait for them fills the process table with zombies). Reaping
    everything is safe here because this process runs no other code."""
    sys.stdout.flush()
    sys.stderr.flush()
    child = os.fork()
    if child == 0:
        code = 1
        try:
            code = entry()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)

    def forward(signum: int, frame: object) -> None:
        try:
            os.kill(child, signum)
        except ProcessLookupError:
            pass

    for s in (
        signal.SIGINT,
        signal.SIGTERM,
        signal.SIGHUP,
        signal.SIGQUIT,
        signal.SIGUSR1,
        signal.SIGUSR2,
    ):
        signal.signal(s, forward)
    while True:
        try:
            pid, status = os.waitpid(-1, 0)
        except ChildProcessError:
            return 1
        if pid == child:
            code = os.waitstatus_to_exitcode(status)
            return code if code >= 0 else 128 - code
