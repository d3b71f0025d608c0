"""--audit: watch what each task really reads and writes, to catch what it does not
declare before it makes a false cache hit.

    task's Python code ──sys.addaudithook──┐
    os.environ reads ──recording mapping───┼──▶ Observed (per task) ──judge──▶ findings
    task's commands ──strace -f (sh)───────┘                                 (events)

Python code runs in the executor's worker threads, so its events are told apart by
thread: the hook records an event for the task whose thread raised it, and only while
that task's own code runs (what runner does on its behalf — `sh`'s own plumbing,
deleting stale outputs — is left out, and so are imports: code is the code digest's
business). The environment is read through a mapping that records the keys read by
task code (not by runner, nor the standard library's own conventions such as TMPDIR).
Each command `sh` starts runs under `strace -f` when strace is installed and can
trace here; its trace is read when the command has exited (runner.strace).

Nothing here is imported or installed on a run without --audit. An audit hook cannot be
removed: once installed it stays, and does nothing while no audited run is under way.
"""

from __future__ import annotations

import _thread
import itertools
import os
import sys

from . import events as ev
from . import findings as fnd

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any

    from .events import Bus
    from .graph import Graph
    from .tasks import Task

OFF = "off"
WARN = "warn"
STRICT = "strict"
MODES = (OFF, WARN, STRICT)

SHELL = "/bin/sh"  # what runs a string command (runner.proc)


class Observed:
    """What one attempt of a task did, as absolute paths and names, in order of first
    sight (and runner.strace's sink). `made`: files it created or replaced (reading
    them back later is not reading an input)."""

    __slots__ = ("reads", "writes", "removed", "dirs", "programs", "env", "made", "traces", "busy")

    def __init__(self) -> None:
        self.reads: dict[str, None] = {}
        self.writes: dict[str, None] = {}
        self.removed: dict[str, None] = {}
        self.dirs: dict[str, None] = {}  # directories listed
        self.programs: dict[str, None] = {}  # programs run
        self.env: dict[str, None] = {}  # variables read
        self.made: set[str] = set()
        self.traces: list[_Trace] = []  # commands run, whose traces are not read yet
        self.busy = False  # inside the hook: what it does itself is not the task's

    def read(self, path: str) -> None:
        if path not in self.made:
            self.reads[path] = None

    def write(self, path: str) -> None:
        self.writes[path] = None
        self.made.add(path)

    def remove(self, path: str) -> None:
        self.removed[path] = None

    def rename(self, src: str, dst: str) -> None:
        self.remove(src)
        self.write(dst)

    def listed(self, path: str) -> None:
        self.dirs[path] = None

    def ran(self, path: str) -> None:
        self.programs[path] = None

    def counts(self) -> dict[str, int]:
        """How much of each it did (the paths and names are in the findings)."""
        return {
            "read": len(self.reads),
            "written": len(self.writes),
            "removed": len(self.removed),
            "listed": len(self.dirs),
            "ran": len(self.programs),
            "env": len(self.env),
        }

    def flush(self) -> None:
        """Read the traces of the commands that have run: what they did comes before
        what the task's code does next."""
        traces, self.traces = self.traces, []
        for t in traces:
            t.read_into(self)


class _Trace:
    """One command run under strace: where its trace goes, where it started."""

    __slots__ = ("file", "cwd", "shell")

    def __init__(self, file: str, cwd: str, shell: bool) -> None:
        self.file, self.cwd, self.shell = file, cwd, shell

    def read_into(self, obs: Observed) -> None:
        from . import strace

        strace.parse(self.file, self.cwd, obs, shell_command=self.shell, shells=SHELLS)
        try:
            os.unlink(self.file)
        except OSError:
            pass


SHELLS = frozenset({SHELL, os.path.realpath(SHELL)})

# ---------------------------------------------------------------- the Python side

_active: dict[int, Observed] = {}  # worker thread -> what its task's code does
_hooked = False
_RUNNER = os.path.dirname(os.path.abspath(__file__)) + os.sep
_HERE = os.path.abspath(__file__)
_stdlib_memo: dict[str, bool] = {}


def _stdlib_dirs() -> tuple[str, ...]:
    import sysconfig

    paths = sysconfig.get_paths()
    return tuple({paths["stdlib"] + os.sep, paths["platstdlib"] + os.sep})


_STDLIB: tuple[str, ...] = ()


def _is_stdlib(filename: str) -> bool:
    got = _stdlib_memo.get(filename)
    if got is None:
        got = filename.startswith("<frozen ") or (
            filename.startswith(_STDLIB)
            and "site-packages" not in filename
            and "dist-packages" not in filename
        )
        _stdlib_memo[filename] = got
    return got


TASK, RUNNER, IMPORT = "task", "runner", "import"


def _origin() -> str:
    """Whose code raised the event being handled: the task's (its own or a library it
    called), runner's, or the import system's."""
    f: Any = sys._getframe(1)
    while f is not None:
        name = f.f_code.co_filename
        if name == _HERE:
            f = f.f_back
            continue
        if name.startswith("<frozen importlib"):
            return IMPORT
        if name.startswith(_RUNNER):
            return RUNNER
        if not _is_stdlib(name):
            return TASK
        f = f.f_back
    return RUNNER


# The functions of os and collections.abc that read one variable by its name (through
# __getitem__); the others that do (items(), copy(), ...) read them all.
_KEY_READERS = frozenset(("get", "__contains__", "getenv", "setdefault", "pop"))
_MAPPING_CODE = frozenset(("<frozen os>", "<frozen _collections_abc>", os.__file__))
_SUBSCRIPT: frozenset[int] = frozenset()  # opcodes of `x[key]`, set when auditing starts


def _task_reads_a_variable() -> bool:
    """Is the os.environ.__getitem__ under way the task's code reading one variable by
    its name (`os.environ["X"]`, `os.getenv("X")`, `"X" in os.environ`)? Not when it is a
    copy of the whole environment (`dict(os.environ)`: no variable is declared by that),
    nor runner's own reads, nor the standard library's (TMPDIR, HOME: the machine's
    conventions)."""
    f: Any = sys._getframe(2)  # (1 is __getitem__)
    if f.f_code.co_filename in _MAPPING_CODE:
        while f is not None and f.f_code.co_filename in _MAPPING_CODE:
            if f.f_code.co_name not in _KEY_READERS:
                return False
            f = f.f_back
    elif not _subscript(f):
        return False  # called from C: dict(), {**...}, a copy
    if f is None:
        return False
    name = f.f_code.co_filename
    return not name.startswith(_RUNNER) and not _is_stdlib(name)


def _subscript(f: Any) -> bool:
    """Is frame f executing `x[key]`? (Its last instruction, past the inline caches an
    interpreter that specialises code leaves behind.)"""
    code = f.f_code.co_code
    i = f.f_lasti
    while i > 0 and code[i] == 0:  # CACHE entries follow their instruction
        i -= 2
    return 0 <= i < len(code) and code[i] in _SUBSCRIPT


def _hook(event: str, args: tuple[Any, ...]) -> None:
    obs = _active.get(_thread.get_ident())
    if obs is None or obs.busy:
        return
    handle = _HANDLERS.get(event)
    if handle is None:
        return
    obs.busy = True
    try:
        handle(obs, args)
    except Exception:  # noqa: S110 - an audit must never break the task it watches
        pass
    finally:
        obs.busy = False


def _by_task(obs: Observed) -> bool:
    """Did the task's code raise the event being handled? Then the traces of the
    commands it ran before are read first: what they did came first."""
    if _origin() != TASK:
        return False
    if obs.traces:
        obs.flush()
    return True


def _path(p: Any) -> str | None:
    """An absolute path from an event's path argument (None for an fd)."""
    if isinstance(p, int) or p is None:
        return None
    p = os.fsdecode(os.fspath(p))
    return os.path.normpath(os.path.abspath(p))


def _on_open(obs: Observed, args: tuple[Any, ...]) -> None:
    path = _path(args[0])
    if path is None or not _by_task(obs):
        return
    mode, flags = args[1], args[2]
    if isinstance(flags, int) and flags >= 0:
        acc = flags & os.O_ACCMODE
        trunc = flags & os.O_TRUNC
        writes = acc != os.O_RDONLY or bool(flags & (os.O_CREAT | os.O_TRUNC))
        reads = acc != os.O_WRONLY and not trunc
    else:
        m = mode or "r"
        writes = any(c in m for c in "wax+")
        reads = "r" in m or "+" in m and "w" not in m
    if reads:
        obs.read(path)
    if writes:
        obs.write(path)


def _on_listdir(obs: Observed, args: tuple[Any, ...]) -> None:
    path = _path(args[0] if args and args[0] is not None else ".")
    if path is not None and _by_task(obs):
        obs.listed(path)


def _on_remove(obs: Observed, args: tuple[Any, ...]) -> None:
    path = _path(args[0])
    if path is not None and _by_task(obs):
        obs.remove(path)


def _on_rename(obs: Observed, args: tuple[Any, ...]) -> None:
    src, dst = _path(args[0]), _path(args[1])
    if src is not None and dst is not None and _by_task(obs):
        obs.rename(src, dst)


def _on_link(obs: Observed, args: tuple[Any, ...]) -> None:
    dst = _path(args[1])
    if dst is not None and _by_task(obs):
        obs.write(dst)


def _on_truncate(obs: Observed, args: tuple[Any, ...]) -> None:
    path = _path(args[0])
    if path is not None and _by_task(obs):
        obs.write(path)


def _on_spawn(program: int, args_at: int, env_at: int | None, cwd_at: int | None = None) -> Any:
    """A handler for an event that starts a program: which argument names it."""

    def handle(obs: Observed, args: tuple[Any, ...]) -> None:
        prog, argv = args[program], args[args_at]
        if prog is None and isinstance(argv, (str, bytes)):  # a command line: its first word
            prog = next(iter(os.fsdecode(argv).split()), None)
        elif prog is None:
            prog = argv[0] if argv else None
        if prog is None:
            return
        env = args[env_at] if env_at is not None else None
        cwd = args[cwd_at] if cwd_at is not None else None
        found = _which(os.fsdecode(os.fspath(prog)), env, cwd)
        if found is None:
            return
        if _origin() == RUNNER and (found in _tracers or found in SHELLS):
            return  # sh's own: a command under strace (seen in its trace), or its shell
        obs.ran(found)

    return handle


_tracers: set[str] = set()


def _which(prog: str, env: Mapping[str, str] | None, cwd: Any) -> str | None:
    if "/" in prog:
        base = os.fsdecode(os.fspath(cwd)) if cwd is not None else os.getcwd()
        return os.path.normpath(os.path.join(base, prog))
    import shutil

    path = (env if env is not None else os.environ).get("PATH", os.defpath)
    found = shutil.which(prog, path=path)
    return os.path.normpath(os.path.abspath(found)) if found else None


def _on_system(obs: Observed, args: tuple[Any, ...]) -> None:
    words = os.fsdecode(args[0]).split()
    if words and _by_task(obs):
        found = _which(words[0], None, None)
        if found is not None:
            obs.ran(found)


_HANDLERS: dict[str, Callable[[Observed, tuple[Any, ...]], None]] = {
    "open": _on_open,
    "os.listdir": _on_listdir,
    "os.scandir": _on_listdir,
    "os.remove": _on_remove,
    "os.rename": _on_rename,
    "os.link": _on_link,
    "os.symlink": _on_link,
    "os.truncate": _on_truncate,
    "subprocess.Popen": _on_spawn(0, 1, 3, 2),
    "os.posix_spawn": _on_spawn(0, 1, 2),
    "os.exec": _on_spawn(0, 1, 2),
    "os.spawn": _on_spawn(1, 2, 3),
    "os.system": _on_system,
}


def _recording_environ(real: Any) -> Any:
    """A stand-in for os.environ over the same data that records, for the task whose
    thread reads it, each variable its code reads by name."""

    class RecordingEnviron(type(real)):  # type: ignore[misc]
        def __getitem__(self, key: str) -> str:
            obs = _active.get(_thread.get_ident())
            if obs is not None and not obs.busy:
                obs.busy = True
                try:
                    if _task_reads_a_variable():
                        obs.env[key] = None
                finally:
                    obs.busy = False
            return super().__getitem__(key)

    return RecordingEnviron(
        real._data, real.encodekey, real.decodekey, real.encodevalue, real.decodevalue
    )


# ---------------------------------------------------------------- one audited run


class Audit:
    """An audited run: installs the recorders, wraps the tasks' commands in strace,
    and judges each task that ran against its declaration."""

    def __init__(
        self,
        mode: str,
        graph: Graph,
        root: str,
        cache_dir: str,
        global_inputs: list[str],
        bus: Bus,
        dotenv: Callable[[Task], Mapping[str, str]] | None = None,
    ) -> None:
        self.mode = mode
        self.graph = graph
        self.root = root
        self.cache_dir = cache_dir
        self.bus = bus
        self.dotenv = dotenv or (lambda task: {})
        self.scope = fnd.Scope(root, cache_dir, global_inputs)
        self.strace: str | None = None
        self.untraced: str | None = None  # why commands are not traced, if they are not
        self.findings: dict[str, list[fnd.Finding]] = {}
        self.counts: dict[str, dict[str, int]] = {}
        self._observed: dict[str, Observed] = {}
        self._tmp: str | None = None
        self._real_environ: Any = None
        self._n = itertools.count(1)  # (next() is atomic: tasks run commands at once)

    # -- lifetime
    def start(self) -> None:
        """Before the first task runs: the hook, the environment, strace."""
        global _hooked, _STDLIB, _SUBSCRIPT
        _STDLIB = _stdlib_dirs()
        import opcode

        _SUBSCRIPT = frozenset(
            opcode.opmap[n] for n in ("BINARY_SUBSCR", "BINARY_OP") if n in opcode.opmap
        )
        if not _hooked:
            sys.addaudithook(_hook)
            _hooked = True
        self._real_environ = os.environ
        # Rebound, not cleared: the stand-in shares the real mapping's data.
        os.environ = _recording_environ(os.environ)  # noqa: B003
        self.strace, self.untraced = _find_strace()
        if self.strace is not None:
            import tempfile

            where = os.path.join(self.cache_dir, "tmp")
            try:
                os.makedirs(where, exist_ok=True)
                # PID-...: the store clears what tmp/ holds of runners that are gone,
                # and knows this runner's own by the pid in front.
                self._tmp = tempfile.mkdtemp(prefix=f"{os.getpid()}-audit-", dir=where)
            except OSError as e:
                self.strace, self.untraced = None, f"cannot keep traces in {where} ({e.strerror})"
                return
            _tracers.add(os.path.realpath(self.strace))
            _tracers.add(self.strace)

    def stop(self) -> None:
        """After the run: everything as it was."""
        _active.clear()
        if self._real_environ is not None:
            os.environ = self._real_environ  # noqa: B003
            self._real_environ = None
        if self._tmp is not None:
            import shutil

            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    # -- while a task runs (in its worker thread)
    def tracer(self, name: str) -> Callable[..., tuple[Any, bool]] | None:
        """What `sh` calls to run a command of this task under strace (None when
        commands are not traced)."""
        if self.strace is None or self._tmp is None:
            return None
        strace, tmp = self.strace, self._tmp
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)

        def trace(argv: Any, shell: bool, cwd: str | None, env: Mapping[str, str] | None) -> Any:
            if not shell and "/" not in argv[0]:
                import shutil

                path = (env if env is not None else os.environ).get("PATH", os.defpath)
                if shutil.which(argv[0], path=path) is None:
                    return argv, shell  # let sh say it cannot run it, as without audit
            obs = self._observed.get(name)
            if obs is None:
                return argv, shell
            file = os.path.join(tmp, f"{safe}.{next(self._n)}.trace")
            from .strace import command_line

            obs.traces.append(_Trace(file, cwd or os.getcwd(), shell))
            command = [SHELL, "-c", argv] if shell else list(argv)
            return command_line(strace, file, command), False

        return trace

    def begin(self, name: str) -> None:
        """The task's code is about to run (an attempt): record what it does."""
        obs = self._observed[name] = Observed()
        _active[_thread.get_ident()] = obs

    def end(self, name: str) -> None:
        """Its code has returned."""
        _active.pop(_thread.get_ident(), None)

    def finish(self, name: str) -> list[fnd.Finding]:
        """The findings of the task's last attempt (judged once), sent as events."""
        done = self.findings.get(name)
        if done is not None:
            return done
        obs = self._observed.get(name) or Observed()
        obs.busy = True  # reading traces from the worker thread: not the task's doing
        obs.flush()
        task = self.graph.tasks[name]
        if not task.cache:
            found: list[fnd.Finding] = []  # it always runs: nothing it reads goes stale
        else:
            declared = fnd.Declared(
                task,
                [self.graph.tasks[d] for d in _all_deps(self.graph, name)],
                self.scope,
                dotenv_keys=self.dotenv(task),
                path=os.environ.get("PATH", os.defpath),
            )
            found = fnd.judge(obs, declared, self.scope, SHELLS | _tracers)
        self.findings[name] = found
        self.counts[name] = obs.counts()
        for f in found:
            self.bus.emit(
                ev.AuditFinding(name, f.kind, list(f.names), f.param, f.suggestion, f.text())
            )
        return found

    def judged(self, order: list[str]) -> list[str]:
        """The tasks of `order` that ran and were judged (cached ones: the others always
        run), in order."""
        return [n for n in order if n in self.findings and self.graph.tasks[n].cache]

    def hold(self, name: str) -> str | None:
        """In strict mode, why the task's result must not be stored (None: store it).
        Each finding is said as a warning in the task's output."""
        found = self.finish(name)
        if self.mode != STRICT or not found:
            return None
        for f in found:
            self.bus.emit(ev.TaskOutput(name, f"runner: warning: audit: {f.text()}", "stderr"))
        n = len(found)
        return f"not cached: the audit found {n} undeclared thing{'s' * (n != 1)} (--audit=strict)"


def _all_deps(graph: Graph, name: str) -> list[str]:
    """Every task this one depends on, directly or not."""
    seen: dict[str, None] = {}
    stack = list(graph.deps(name))
    while stack:
        d = stack.pop()
        if d not in seen:
            seen[d] = None
            stack.extend(graph.deps(d))
    return list(seen)


def _find_strace() -> tuple[str | None, str | None]:
    """strace's path when it is installed and can trace here; else why not."""
    import shutil

    found = shutil.which("strace")
    if found is None:
        return None, "strace is not installed (Debian/Ubuntu: apt-get install strace)"
    import subprocess

    from .strace import command_line

    try:
        probe = subprocess.run(
            command_line(found, os.devnull, ["/bin/true"]),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        return None, f"strace cannot run here ({e})"
    if probe.returncode != 0:
        why = probe.stderr.decode(errors="replace").strip().splitlines()
        return None, f"strace cannot trace here ({why[-1] if why else f'exit {probe.returncode}'})"
    return found, None
