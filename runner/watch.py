"""`runner watch TASK [--run CMD]`: re-run a task when its inputs change, and restart
the long-running process it feeds (air-style hot reload, driven by the task graph).

    file events (watchfiles, two threads) ─▶ queue ◀─ signals, server exits, builds done
                                               │
                 main loop: debounce ─▶ content check ─▶ build (thread) ─▶ restart server

Only what can change a result is watched: the narrowest directories that can hold a
file the inputs match (recursively only where a pattern has `**` or several wildcard
segments), plus the tasksfile and pyproject.toml. Events for ignored paths, the cache
directory and the tasks' own outputs are dropped at once; the rest are compared, by
content digest, with what the last build saw, so a save that changes nothing (an
editor re-saving, a `touch`, a checkout rewriting identical files) triggers nothing.

The server runs under `runner.supervise`, which owns its whole process tree (a child
subreaper): a restart stops every process of the old tree, then starts the new one.
"""

from __future__ import annotations

import os
import queue
import signal
import sys
import threading
import time

from . import globs
from .errors import UserError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, TextIO

    from .executor import Executor, Outcome
    from .graph import Graph
    from .loader import Project

WATCH_STEP_MS = 20  # how often the watcher threads look for the end of a burst


def watch_command(
    opts: Any,
    project: Project,
    graph: Graph,
    invocations: list[tuple[str, dict[str, Any]]],
    args: dict[str, dict[str, Any]],
    out: TextIO,
    err: TextIO,
) -> int:
    import gc

    gc.enable()  # watch lives long (see runner.__main__)
    session = WatchSession(opts, project, graph, invocations, args, out, err)
    return session.run()


# ---------------------------------------------------------------- what to watch


def watch_roots(root: str, patterns: list[str]) -> tuple[list[str], list[str]]:
    """(directories to watch recursively, directories to watch alone) for these
    patterns: the fixed part of each pattern, recursive only when what follows can
    cross directories. A directory that does not exist yet is replaced by its nearest
    existing parent, watched alone (its creation is an event there)."""
    deep: set[str] = set()
    flat: set[str] = set()
    for pattern in patterns:
        negated, fixed, rest = globs.split_pattern(pattern)
        if negated:
            continue
        base = "/".join(fixed)
        if not rest:  # a file named exactly, or a directory
            if os.path.isdir(os.path.join(root, base)):
                deep.add(base)
            else:
                flat.add(base.rpartition("/")[0])
            continue
        (deep if len(rest) > 1 or "**" in rest else flat).add(base)
    deep = {_existing(root, d, flat) for d in deep}
    deep.discard("\0")
    flat = {d for d in flat if os.path.isdir(os.path.join(root, d))}
    # A recursive root covers everything under it.
    deep = {d for d in deep if not any(_under(d, o) for o in deep if o != d)}
    flat = {d for d in flat if not any(_under(d, o) or d == o for o in deep)}
    return sorted(deep), sorted(flat)


def _existing(root: str, rel: str, flat: set[str]) -> str:
    """`rel` if it is a directory; else its nearest existing parent goes in `flat`."""
    if os.path.isdir(os.path.join(root, rel)):
        return rel
    while rel:
        rel = rel.rpartition("/")[0]
        if os.path.isdir(os.path.join(root, rel)):
            flat.add(rel)
            break
    return "\0"


def _under(path: str, parent: str) -> bool:
    return parent == "" or path.startswith(parent + "/")


class Scope:
    """What a build of TASK depends on, and how a changed path relates to it."""

    def __init__(
        self, project: Project, graph: Graph, targets: list[str], ignore: list[str]
    ) -> None:
        self.project = project
        self.graph = graph
        self.order = graph.select(targets)
        self.services = [n for n in self.order if graph.tasks[n].service]
        self.build_order = [n for n in self.order if not graph.tasks[n].service]
        tasks = [graph.tasks[n] for n in self.order]
        self.inputs: list[tuple[str, ...]] = [t.inputs for t in tasks if t.inputs]
        self.outputs = [p for t in tasks for p in t.outputs]
        self.global_inputs = list(project.config.global_inputs)
        self.ignore = ignore
        self.cache_dir = os.path.relpath(project.cache_dir, project.root).replace(os.sep, "/")
        self.control = {
            os.path.relpath(project.tasksfile, project.root).replace(os.sep, "/"),
            "pyproject.toml",
        }
        self.ignores = globs.Ignores(project.root)
        self.patterns = (
            [p for ps in self.inputs for p in ps] + self.global_inputs + sorted(self.control)
        )
        self.deep, self.flat = watch_roots(project.root, self.patterns)
        self.bases = [
            "/".join(fixed)
            for neg, fixed, _rest in map(globs.split_pattern, self.patterns)
            if not neg
        ]

    def could_hold(self, rel_dir: str) -> bool:
        """Can a file the inputs match lie under this directory (which came or went
        whole: `mv`, a checkout, `rm -r`)?"""
        return any(
            not b or b == rel_dir or _under(rel_dir, b) or _under(b, rel_dir) for b in self.bases
        )

    def relevant(self, rel: str) -> bool:
        """Can a change of this path (relative to the root) change a result?"""
        if rel in self.control:
            return True
        parts = rel.split("/")
        if globs.ALWAYS_SKIPPED.intersection(parts) or rel.startswith(self.cache_dir + "/"):
            return False
        if self.ignore and globs.matches(self.ignore, rel):
            return False
        if self.outputs and globs.matches(self.outputs, rel):
            return False  # what a task writes does not trigger it again
        hit = [ps for ps in self.inputs if globs.matches(ps, rel)]
        if self.global_inputs and globs.matches(self.global_inputs, rel):
            hit.append(tuple(self.global_inputs))
        if not hit:
            return False
        # Ignored by git, unless a pattern names the file or points into the ignored
        # directory (as when the inputs are expanded).
        if any(self._explicit(p, rel) for ps in hit for p in ps):
            return True
        return not self.ignores.path_ignored(rel)

    def _explicit(self, pattern: str, rel: str) -> bool:
        negated, fixed, rest = globs.split_pattern(pattern)
        if negated or not globs.match(pattern, rel):
            return False
        base = "/".join(fixed)
        return not rest or bool(base and self.ignores.path_ignored(base, is_dir=True))


# ---------------------------------------------------------------- the server


class Service:
    """One supervised long-running process; restarted by stopping the old tree first."""

    def __init__(
        self,
        label: str,
        supervise_args: list[str],
        grace: float,
        sig: str,
        events: queue.SimpleQueue[tuple[Any, ...]],
        source: bytes | None = None,
    ) -> None:
        self.label = label
        # A service task's tasksfile, as watch loaded it: the supervisor reads it on
        # its standard input (`--source -`), so that a tasksfile broken on disk since
        # does not keep the server from starting again.
        self.source = source
        # The supervisor runs as a script, not `-m runner.supervise`: it starts sooner
        # without importing the runner package; a command needs no site-packages (-S).
        script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "supervise.py")
        flags = ["-S", "-E"] if supervise_args[:1] == ["--"] else []
        self.argv = [
            sys.executable,
            *flags,
            script,
            "--grace",
            str(grace),
            "--signal",
            sig,
            *supervise_args,
        ]
        self.grace = grace
        self.events = events
        self.proc: Any = None
        self.generation = 0

    def start(self) -> None:
        import subprocess

        self.generation += 1
        feed = self.source is not None
        self.proc = subprocess.Popen(
            self.argv,
            start_new_session=True,
            close_fds=True,
            stdin=subprocess.PIPE if feed else subprocess.DEVNULL,
        )
        if feed:
            try:
                self.proc.stdin.write(self.source)
                self.proc.stdin.close()
            except OSError:
                pass  # it died before reading: its exit says why
        threading.Thread(
            target=self._wait,
            args=(self.proc, self.generation),
            daemon=True,
            name=f"service:{self.label}",
        ).start()

    def _wait(self, proc: Any, generation: int) -> None:
        code = proc.wait()
        self.events.put(("exited", self, generation, code))

    def stop(self, hurry: threading.Event | None = None) -> None:
        """Stop the whole tree and wait until it is gone (the next one may need its
        port). Once `hurry` is set (a second Ctrl-C), the tree is killed at once."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        self.generation += 1  # its exit is not news
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            end = time.monotonic() + self.grace + 2.0
            delay = 0.0005
            while proc.poll() is None:
                if (hurry is not None and hurry.is_set()) or time.monotonic() > end:
                    # Asked to, or the supervisor is stuck: kill the tree now.
                    from .proc import kill_trees

                    kill_trees([proc.pid], 0)
                    proc.wait()
                    break
                time.sleep(delay)
                delay = min(delay * 2, 0.02)

    def processes(self) -> int:
        """How many processes of the supervised tree run (the supervisor not counted)."""
        from .ptree import tree_of

        if self.proc is None or self.proc.poll() is not None:
            return 0
        return len(tree_of([self.proc.pid]) - {self.proc.pid})

    def pid(self, wait: float = 0.5) -> int | None:
        """The pid of the supervised process (the supervisor's child), waiting up to
        `wait` seconds for the supervisor to start it."""
        from .ptree import read_table

        end = time.monotonic() + wait
        while self.proc is not None and self.proc.poll() is None:
            sup = self.proc.pid
            kids = [p for p, (ppid, *_rest) in read_table().items() if ppid == sup]
            if kids:
                return min(kids)
            if time.monotonic() > end:
                break
            time.sleep(0.01)
        return None


# ---------------------------------------------------------------- the loop


class WatchSession:
    def __init__(
        self,
        opts: Any,
        project: Project,
        graph: Graph,
        invocations: list[tuple[str, dict[str, Any]]],
        args: dict[str, dict[str, Any]],
        out: TextIO,
        err: TextIO,
    ) -> None:
        self.opts = opts
        self.project = project
        self.invocations = invocations  # the tasks and the options given to each
        self.targets = [name for name, _ in invocations]
        self.args = args
        self.out = out
        self.err = err
        cfg = project.config.table("watch")
        self.debounce = cfg["debounce_ms"] / 1000
        self.grace = cfg["kill_timeout"]
        self.signal = cfg["signal"]
        self.clear = opts.clear or cfg["clear"]
        self.ignore = list(cfg["ignore"])
        self.events: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()
        self.scope = Scope(project, graph, self.targets, self.ignore)
        self.tasksfile_source = self._read_tasksfile()  # what the tasks were loaded from
        self.known: dict[str, bytes | None] = {}  # path -> digest the last build saw
        self.known_dirs: set[str] = set()  # the directories those are in
        self.control_digest = self._control_digest()
        self.services: list[Service] = []
        self.watchers: list[threading.Thread] = []
        self.stop_watching = threading.Event()
        self.build_thread: threading.Thread | None = None
        self.executor: Executor | None = None
        self.pending: list[str] = []  # changed during the build: build again after it
        self.last_build: float | None = None
        self.signals = 0
        self.hurry = threading.Event()  # set by a second Ctrl-C: kill, do not wait
        self._set_services()

    # ------------------------------------------------------------ lifecycle
    def run(self) -> int:
        restore = self._install_signal_handlers()
        try:
            self._start_watchers()
            self._build(["(start)"])
            code = self._loop()
        finally:
            self._stop_watchers()
            if self.build_thread is not None and self.executor is not None:
                self.executor.cancel()
                self.build_thread.join()
            for s in self.services:
                s.stop(self.hurry)
            restore()  # last: a second Ctrl-C meanwhile must reach our handler
        return code

    def _loop(self) -> int:
        while True:
            item = self.events.get()
            kind = item[0]
            if kind == "signal":
                self._say_stopping()
                return 130
            if kind == "changes":
                paths = set(item[1])
                if self._collect(paths):
                    return 130
                self._on_changes(paths)
            elif kind == "built":
                self._on_built(item[1])
            elif kind == "exited":
                _, service, generation, code = item
                if generation == service.generation:
                    self._say(
                        f"{service.label} exited with code {code}"
                        + (
                            "; restarting it"
                            if self.opts.restart_on_exit
                            else "; waiting for a change"
                        )
                    )
                    service.proc = None
                    if self.opts.restart_on_exit:
                        service.start()

    def _collect(self, paths: set[str]) -> bool:
        """Debounce: take more changes until `debounce` passes without any. True if a
        signal came meanwhile."""
        deadline = time.monotonic() + self.debounce
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            try:
                item = self.events.get(timeout=left)
            except queue.Empty:
                return False
            if item[0] == "changes":
                paths.update(item[1])
                deadline = time.monotonic() + self.debounce
            elif item[0] == "signal":
                self.events.put(item)
                return True
            else:
                self.events.put(item)  # handled after this burst
                return False

    # ------------------------------------------------------------ changes
    def _on_changes(self, paths: set[str]) -> None:
        changed = self._content_changes(paths)
        if not changed:
            return
        if self.build_thread is not None:
            self.pending += [p for p in changed if p not in self.pending]
            if self.opts.restart_build and self.executor is not None:
                self._say("change during the build: cancelling it")
                self.executor.cancel()
            return
        self._build(changed)

    def _content_changes(self, paths: set[str]) -> list[str]:
        """The paths whose content differs from what the last build saw (a new file
        that inputs match, a deleted input included). The tasksfile and pyproject.toml
        reload the task graph when their content changed."""
        from .fingerprint import hash_file

        changed = []
        control = sorted(p for p in paths if p in self.scope.control)
        if control and self._control_digest() != self.control_digest and self._reload():
            changed += control
        for rel in sorted(self._files_of(paths - self.scope.control)):
            if not self.scope.relevant(rel):
                continue
            try:
                now: bytes | None = hash_file(os.path.join(self.project.root, rel))
            except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
                now = None
            except OSError:
                continue
            before = self.known.get(rel, b"?")
            if before == b"?" and now is None:
                continue  # came and went between two looks
            if now != before:
                changed.append(rel)
            self.known[rel] = now
        return changed

    def _files_of(self, paths: set[str]) -> set[str]:
        """The files these event paths stand for. A directory that arrived whole (moved
        in, created with its files) stands for the files in it — and may be where the
        inputs point, so the watchers follow it; one that left whole stands for the
        inputs that were in it."""
        root = self.project.root
        files: set[str] = set()
        arrived = []
        for rel in paths:
            full = os.path.join(root, rel)
            if os.path.isdir(full):
                if self.scope.could_hold(rel):
                    arrived.append(rel)
            elif os.path.lexists(full):
                files.add(rel)
            else:
                files.add(rel)
                files.update(p for p in self.known if p.startswith(rel + "/"))
        if arrived:
            if watch_roots(root, self.scope.patterns) != (self.scope.deep, self.scope.flat):
                self.scope.deep, self.scope.flat = watch_roots(root, self.scope.patterns)
                self._stop_watchers()
                self._start_watchers()  # before the walk: nothing created now is missed
            for rel in arrived:
                for dirpath, dirnames, names in os.walk(os.path.join(root, rel)):
                    dirnames[:] = [d for d in dirnames if d not in globs.ALWAYS_SKIPPED]
                    sub = os.path.relpath(dirpath, root).replace(os.sep, "/")
                    files.update(f"{sub}/{n}" for n in names)
        return files

    def _control_digest(self) -> bytes:
        from .fingerprint import digest

        parts = []
        for rel in sorted(self.scope.control):
            try:
                with open(os.path.join(self.project.root, rel), "rb") as f:
                    parts.append(f.read())
            except OSError:
                parts.append(b"")
        return digest(b"\0".join(parts))

    def _read_tasksfile(self) -> bytes | None:
        try:
            with open(self.project.tasksfile, "rb") as f:
                return f.read()
        except OSError:
            return None

    def _reload(self) -> bool:
        """Load the tasksfile again; on an error keep the old graph and say so. The
        tasks' arguments are worked out again: the options given on the command line
        over the new defaults."""
        from . import config as config_mod
        from .cli import _task_args
        from .graph import Graph
        from .loader import load_tasks

        self.control_digest = self._control_digest()
        source = self._read_tasksfile()
        try:
            self.project.config = config_mod.load(self.project.root)
            tasks = load_tasks(self.project.tasksfile, self.project.root, source=source)
            if self.project.plugins is not None:
                tasks += self.project.plugins.add_tasks(self.project)
            graph = Graph(tasks)
            scope = Scope(self.project, graph, self.targets, self.ignore)
            args = _task_args(graph, scope.order, self.invocations)
        except UserError as e:
            self._say(f"{e.message} — still watching with the tasks as they were", err=True)
            return False
        roots_moved = (scope.deep, scope.flat) != (self.scope.deep, self.scope.flat)
        self.scope = scope
        self.args = args
        self.tasksfile_source = source
        self._say("tasksfile reloaded")
        if roots_moved:
            self._stop_watchers()
            self._start_watchers()
        self._set_services()
        return True

    # ------------------------------------------------------------ building
    def _build(self, changed: list[str]) -> None:
        if self.clear and self.out.isatty():
            self.out.write("\x1b[2J\x1b[H")
        if changed != ["(start)"]:
            shown = ", ".join(changed[:5]) + (
                f" (+{len(changed) - 5} more)" if len(changed) > 5 else ""
            )
            self._say(f"changed: {shown}")
        self.build_thread = threading.Thread(
            target=self._build_in_thread, daemon=True, name="watch:build"
        )
        self.build_thread.start()

    def _build_in_thread(self) -> None:
        from .run import execute, make_planner

        outcome = None
        order = self.scope.build_order
        planner = None
        if order:
            try:
                planner = make_planner(
                    self.project,
                    self.scope.graph,
                    self.err,
                    no_cache=self.opts.no_cache,
                    force=self.opts.force,
                    remote_cache=self.opts.remote_cache,
                )
                outcome = execute(
                    self.project,
                    self.scope.graph,
                    order,
                    self.args,
                    planner,
                    self.out,
                    self.err,
                    jobs=self.opts.jobs,
                    quiet=self.opts.quiet,
                    verbose=bool(self.opts.verbose),
                    started=self._set_executor,
                )
                self._remember_inputs(planner)
            except Exception as e:  # a store error, a bug: report it and keep watching
                self._say(f"the build could not run: {e}", err=True)
            finally:
                if planner is not None and planner.store is not None:
                    planner.store.close()
        self.events.put(("built", outcome))

    def _set_executor(self, executor: Executor) -> None:
        self.executor = executor

    def _remember_inputs(self, planner: Any) -> None:
        """What the build saw of every input: the reference for the next events. (A
        task the snapshot of its last run found up to date was not looked at one by
        one: its record says what its inputs are.)"""
        from .fingerprint import FileSet

        filesets = list(planner._inputs.values())
        if planner._covered and planner.store is not None:
            for rec in planner.store.records(list(planner._covered)).values():
                found = FileSet.from_record(rec.get("inputs"))
                if found is not None:
                    filesets.append(found)
        for files in filesets:
            for i, p in enumerate(files.paths):
                self.known[p] = files.digests[32 * i : 32 * i + 32]
        dirs = set()
        for p in self.known:
            while "/" in p:
                p = p.rpartition("/")[0]
                if p in dirs:
                    break
                dirs.add(p)
        self.known_dirs = dirs  # replaced whole: the watcher threads read it

    def _on_built(self, outcome: Outcome | None) -> None:
        self.build_thread = None
        self.executor = None
        ok = outcome is None or (
            not outcome.failed and not outcome.interrupted and outcome.exit_code == 0
        )
        if outcome is not None:
            self.last_build = outcome.duration
        if self.pending:
            changed, self.pending = self.pending, []
            self._build(changed)
            return
        if ok:
            self._restart_services()
        elif self.services and any(s.proc is not None for s in self.services):
            self._say("the build failed: the server keeps running the last good build")
        self._status()

    def _set_services(self) -> None:
        """The processes to keep running: --run CMD, and each service task."""
        wanted: list[tuple[str, list[str]]] = []
        if self.opts.run:
            wanted.append((self.opts.run, ["--", "/bin/sh", "-c", self.opts.run]))
        for name in self.scope.services:
            import json

            argv = ["--task", name, "--tasksfile", self.project.tasksfile]
            argv += ["--root", self.project.root, "--args", json.dumps(self.args.get(name, {}))]
            if self.tasksfile_source is not None:
                argv += ["--source", "-"]
            wanted.append((name, argv))
        sources = [None if argv[0] == "--" else self.tasksfile_source for _, argv in wanted]
        if [s.label for s in self.services] == [w[0] for w in wanted]:
            for s, (_, argv), source in zip(self.services, wanted, sources, strict=True):
                s.argv[s.argv.index("--signal") + 2 :] = argv
                s.source = source
            return
        for s in self.services:
            s.stop()
        self.services = [
            Service(label, argv, self.grace, self.signal, self.events, source)
            for (label, argv), source in zip(wanted, sources, strict=True)
        ]

    def _restart_services(self) -> None:
        for s in self.services:
            s.stop()  # the old tree is gone before the new one starts (its port is free)
        for s in self.services:
            s.start()

    def _status(self) -> None:
        files = sum(1 for d in self.known.values() if d is not None)  # not the deleted
        parts = [f"watching {files} file{'' if files == 1 else 's'}"]
        if not files:
            parts[0] += f" ({self._why_no_files()})"
        if self.last_build is not None:
            parts.append(f"last build {self.last_build:.2f} s")
        for s in self.services:
            pid = s.pid()
            if pid is not None:
                parts.append(f"server pid {pid}")
        self._say(" · ".join(parts))

    def _why_no_files(self) -> str:
        """Why a build watches no input file: said once it is done."""
        declared = [n for n in self.scope.order if self.scope.graph.tasks[n].inputs]
        if not declared:
            names = " and ".join(f"'{n}'" for n in self.targets)
            deps = " or its deps" if len(self.scope.order) > len(self.targets) else ""
            return (
                f"no input declared: give {names}{deps} inputs=[...] to re-run on a change; "
                "the tasksfile is watched"
            )
        patterns = ", ".join(p for n in declared for p in self.scope.graph.tasks[n].inputs)
        return f"the inputs match no file yet: {patterns}"

    def _say_stopping(self) -> None:
        """The first Ctrl-C: what watch waits for, and how not to."""
        n = sum(s.processes() for s in self.services)
        if n:
            self._say(
                f"stopping: waiting up to {self.grace:g}s for {n} "
                f"process{'' if n == 1 else 'es'} (Ctrl-C again to kill now)"
            )
        else:
            self._say("stopping")

    def _say(self, text: str, err: bool = False) -> None:
        stream = self.err if err else self.out
        try:
            stream.write(f"[watch] {text}\n")
            stream.flush()
        except (BrokenPipeError, ValueError):
            pass

    # ------------------------------------------------------------ watching
    def _start_watchers(self) -> None:
        self.stop_watching = threading.Event()
        for recursive, dirs in ((True, self.scope.deep), (False, self.scope.flat)):
            if dirs:
                paths = [os.path.join(self.project.root, d) for d in dirs]
                t = threading.Thread(
                    target=self._watch,
                    args=(paths, recursive, self.stop_watching),
                    daemon=True,
                    name=f"watch:{'deep' if recursive else 'flat'}",
                )
                t.start()
                self.watchers.append(t)

    def _watch(self, paths: list[str], recursive: bool, stop: threading.Event) -> None:
        import watchfiles

        root = self.project.root + os.sep

        def keep(change: Any, path: str) -> bool:
            if not path.startswith(root):
                return False
            rel = path[len(root) :].replace(os.sep, "/")
            if self.scope.relevant(rel):
                return True
            # A directory that came or went whole: its files are looked at later.
            return os.path.isdir(path) or rel in self.known_dirs

        try:
            for batch in watchfiles.watch(
                *paths,
                watch_filter=keep,
                debounce=10_000,
                step=WATCH_STEP_MS,
                stop_event=stop,
                rust_timeout=0,
                raise_interrupt=False,
                recursive=recursive,
            ):
                self.events.put(
                    ("changes", [p[len(root) :].replace(os.sep, "/") for _, p in batch])
                )
        except Exception as e:  # a directory vanished under the watcher: say so
            if not stop.is_set():
                self._say(f"watching {', '.join(paths)} failed: {e}", err=True)

    def _stop_watchers(self) -> None:
        self.stop_watching.set()
        for t in self.watchers:
            t.join(timeout=2)
        self.watchers = []

    def _install_signal_handlers(self) -> Any:
        def handler(signum: int, frame: object) -> None:
            self.signals += 1
            if self.signals > 1:  # again: kill the server and the build, no grace
                self.hurry.set()
                if self.executor is not None:
                    self.executor.cancel()
            self.events.put(("signal", signum))

        sigs = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
        previous = {s: signal.signal(s, handler) for s in sigs}

        def restore() -> None:
            for s, h in previous.items():
                signal.signal(s, h)

        return restore
