"""Whether a task must run, and why: the one place the executor and `-n` ask.

For each task, when its deps are done, `decide` computes its fingerprint and compares
it with the cache: the same fingerprint seen before, with the outputs that run left in
place, is a skip; with outputs missing, altered or joined by stale files, a restore;
anything else runs, with the reasons `-n` and `-v` print. After a task succeeds,
`record` stores its outputs under its fingerprint — unless an input changed while it
ran, in which case nothing is stored (the result matches no single state of the
inputs).
"""

from __future__ import annotations

import os
import time

from . import entries as ent
from . import fingerprint as fp
from . import globs
from .code import CodeDigest
from .fsclock import racy

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from typing import Any

    from .graph import Graph
    from .loader import Project
    from .store import Store
    from .tasks import Task

RUN = "run"
SKIP = "skip"  # up to date, outputs in place
RESTORE = "restore"  # up to date, outputs restored from the cache

# What `decide` is told about a dep: how it ended in this run, or for a dry run,
# whether it would run.
WILL_RUN = "will run"
# The record of a task's last failed run is kept under this prefix and its name (no
# task name starts with ':').
FAILED = ":failed:"


SHOWN_REASONS = 3  # a reason line names this many and counts the rest

_LEFT_OUT = "left out of its fingerprint"


class Decision:
    """What to do with a task, with the reasons `-n` and `-v` print."""

    __slots__ = ("action", "reasons", "saved")

    def __init__(self, action: str, reasons: list[str], saved: float | None = None) -> None:
        self.action = action
        self.reasons = reasons
        self.saved = saved  # for a hit: how long the cached run took

    @property
    def reason(self) -> str:
        """The reasons in one line: the first few, and how many more (`-n -v` lists
        them all)."""
        shown = self.reasons[:SHOWN_REASONS]
        more = len(self.reasons) - len(shown)
        return "; ".join(shown) + (f"; and {more} more" if more else "")

    def __repr__(self) -> str:
        return f"Decision({self.action!r}, {self.reasons!r})"


class Planner:
    """Decides, for each task when its deps are done, whether it runs; stores what
    successful runs produced. With `store=None` (--no-cache) every task runs."""

    def __init__(
        self,
        graph: Graph,
        project: Project,
        store: Store | None,
        *,
        force: bool = False,
        dry_run: bool = False,
        remote: Any = None,
        environ: Mapping[str, str] | None = None,
        warn: Callable[[str], None] | None = None,
    ) -> None:
        self.graph = graph
        self.remote = remote  # runner.remote.Remote: shared caches, or None
        self.project = project
        self.root = project.root
        self.store = store
        self.force = force
        self.dry_run = dry_run
        self.environ = os.environ if environ is None else environ
        self.warn = warn or (lambda msg: None)
        self.skip_dirs = [os.path.relpath(project.cache_dir, project.root).replace(os.sep, "/")]
        fp.root_fd(self.root, check=True)
        self._code = CodeDigest(self.root)
        self._records: dict[str, dict[str, Any]] | None = None
        self._fps: dict[str, fp.Fingerprint | _Known] = {}
        self._inputs: dict[str, fp.FileSet] = {}
        self._walks: dict[str, dict[str, Any]] = {}
        self._pending: dict[str, dict[str, Any]] = {}  # record updates after a hit
        self._rescanned: set[str] = set()  # tasks whose input stat data moved
        self._entries: dict[str, dict[str, Any]] = {}  # the entry a restore will use
        self._before: dict[str, dict[str, Any]] = {}  # outputs as a running task found them
        self._used: list[bytes] = []  # cache entries used by hits, to mark in the store
        self._global: bytes | None = None
        self._ignore_stats: dict[str, Any] = {}  # stat of each ignore file, this run
        self._virtual: dict[str, tuple[bytes, int] | None] = {}  # dry run: restored files
        # runner.snapshot: the tasks the last run's snapshot found up to date (name ->
        # its entry), and the entries of the tasks this run found up to date as their
        # records say (None: snapshots are off for this run).
        self._covered: dict[str, tuple[Any, ...]] = {}
        self._order: list[str] = []
        self._evidence: dict[str, tuple[Any, ...]] | None = None
        self._dotenv: Any = None  # runner.dotenv.Dotenv, once a task has .env files
        self._tools: Any = None  # runner.tools.Tools, once a task has tools
        self._tool_states: dict[str, dict[str, Any]] = {}  # what to trust them by next time
        self._warned: set[tuple[str, str]] = set()  # (task, input pattern) warned about

    # ------------------------------------------------------------ fingerprints
    def _record(self, name: str) -> dict[str, Any] | None:
        if self._records is None:
            self._records = {}
            if self.store is not None:
                self._records = self.store.records(self.graph.tasks)
        return self._records.get(name)

    def load(self, names: list[str], args: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        """Before a run of these tasks (deps first), with their arguments: those the
        snapshot of their last run still finds up to date are (runner.snapshot); read
        the records of the others in one query."""
        if self.store is None or self._records is not None:
            return
        self._order = list(names)
        if not self.dry_run and not self.force and args is not None:
            self._evidence = {}
            self._covered = self._from_snapshot(names, args)
        self._records = self.store.records([n for n in names if n not in self._covered])

    def _from_snapshot(
        self, names: list[str], args: Mapping[str, Mapping[str, Any]]
    ) -> dict[str, tuple[Any, ...]]:
        """The tasks, from the start of the order, that the snapshot of the last run
        of `names` finds up to date; the first that is not (or is not cached: it
        runs, and may change what the tasks after it read) ends them."""
        from . import snapshot

        assert self.store is not None
        snap = self.store.snapshot(snapshot.name_of(names))
        if snap is None or snap["glob"] != self._global_digest():
            return {}
        tasks = self.graph.tasks
        entries = {e[0]: e for e in snap["tasks"]}
        check = snapshot.Checker(self.root, snap)

        def digests_match(e: tuple[Any, ...]) -> bool:
            task = tasks[e[0]]
            a = args.get(e[0])
            return (
                e[2] == self._code.of_task(task)
                and e[3] == (fp.arg_digests(a) if a else {})
                and e[4] == (fp.env_digests(task.env, self.environ_of(task)) if task.env else {})
            )

        covered: dict[str, tuple[Any, ...]] = {}
        for name in names:
            e = entries.get(name)
            # (A task with tools is decided from its record, which holds their stat data.)
            if e is None or not tasks[name].cache or tasks[name].tools:
                break
            if not check.holds(e, digests_match):
                break
            covered[name] = e
        return covered

    def fingerprint(self, name: str, args: Mapping[str, Any]) -> fp.Fingerprint:
        """The task's fingerprint now (its deps' must be computed first)."""
        task = self.graph.tasks[name]
        rec = self._record(name)
        files = self._expand_inputs(name, task, rec)
        for pattern in self._walks[name].get("unmatched", ()):
            self._warn_unmatched(name, pattern)
        previous = fp.FileSet.from_record(rec.get("inputs")) if rec else None
        inputs, _read = fp.scan(self.root, files, previous)
        if self._virtual and task.inputs:
            inputs = self._overlay(task, inputs)
        self._inputs[name] = inputs
        if inputs is not previous or self._walks[name] is not (rec or {}).get("walk"):
            self._rescanned.add(name)
        fps = self._fps
        tools = self._tools_of(name, task, rec) if task.tools else None
        result = fp.Fingerprint(
            version=fp.version_tag(name),
            code=self._code.of_task(task),
            args=fp.arg_digests(args) if args else {},
            env=fp.env_digests(task.env, self.environ_of(task)) if task.env else {},
            deps={d: fps[d].key for d in self.graph.deps(name) if d in fps},
            inputs=inputs,
            glob=self._global_digest(),
            last=rec,
            tools=tools,
        )
        self._fps[name] = result
        return result

    def _tools_of(self, name: str, task: Task, rec: dict[str, Any] | None) -> dict[str, bytes]:
        """The digests of the task's tools (runner.tools), trusted by stat data."""
        if self._tools is None:
            from .tools import Tools

            self._tools = Tools(self.root)
        found = self._tools.of_task(task, self.environ_of(task), (rec or {}).get("tool_state"))
        self._tool_states[name] = found.record
        if found.record != (rec or {}).get("tool_state"):
            self._rescanned.add(name)  # their new stat data is kept even on a hit
        return found.digests

    def environ_of(self, task: Task) -> Mapping[str, str]:
        """The environment as the task sees it: the process's, over its .env files."""
        if not task.dotenv and not self.project.config.dotenv:
            return self.environ
        return self.dotenv().view(task)

    def check_dotenv(self, names: list[str]) -> None:
        """Read the .env files of these tasks: a broken one stops the run before it
        starts (exit 2)."""
        tasks = [self.graph.tasks[n] for n in names]
        if self.project.config.dotenv or any(t.dotenv for t in tasks):
            self.dotenv().check(tasks)

    def dotenv_overlay(self, task: Task) -> dict[str, str]:
        """What the task's .env files add to the process environment."""
        if not task.dotenv and not self.project.config.dotenv:
            return {}
        return self.dotenv().overlay(task)

    def dotenv(self) -> Any:
        """The .env files of this run's tasks (runner.dotenv.Dotenv), read once."""
        if self._dotenv is None:
            from .dotenv import Dotenv

            self._dotenv = Dotenv(self.root, self.project.config.dotenv, self.environ)
        return self._dotenv

    def _warn_unmatched(self, name: str, pattern: str) -> None:
        """An input pattern that matches no file (once per run): likely a typo, and a
        task whose inputs match nothing is up to date forever."""
        if (name, pattern) not in self._warned:
            self._warned.add((name, pattern))
            self.warn(f"task '{name}': input pattern '{pattern}' matches no file")

    def _overlay(self, task: Task, found: fp.FileSet) -> fp.FileSet:
        """A dry run restores nothing, but the run would: a task whose inputs include
        outputs a dep would restore sees them as the restore would leave them."""
        files = {p: found.get(p) for p in found.paths}
        for p, state in self._virtual.items():
            if globs.matches(task.inputs, p):
                files[p] = state
        paths = sorted(p for p, s in files.items() if s is not None)
        digests = b"".join(files[p][0] for p in paths)  # type: ignore[index]
        modes = fp.pack([files[p][1] for p in paths])  # type: ignore[index]
        return fp.FileSet(paths, b"", digests, modes)

    def key(self, name: str) -> bytes | None:
        f = self._fps.get(name)
        return f.key if f else None

    def _expand_inputs(self, name: str, task: Task, rec: dict[str, Any] | None) -> list[str]:
        """The files the task's inputs match. When every directory the last walk read
        is unchanged (and no ignore file changed), the answer is the last one: no
        directory is listed again."""
        walk = rec.get("walk") if rec else None
        if walk is not None and walk["patterns"] == task.inputs and self._walk_still_valid(walk):
            self._walks[name] = walk
            self._report_special(walk.get("special", ()), f"task {name}: input", _LEFT_OUT)
            return walk["files"]
        started = time.time_ns()
        w = globs.expand(self.root, task.inputs, skip=self.skip_dirs)
        self._walks[name] = {
            "patterns": task.inputs,
            "at": started,
            "files": w.files,
            "dirs": [(d, *_dir_stat(self.root, d)) for d in w.dirs],
            "ignores": [
                (f, _file_stat(self.root, f)) for f in {".git/info/exclude", *w.ignore_files}
            ],
            "absent": w.absent,
            "special": w.special,
            "unmatched": w.unmatched,
        }
        self._report_special(w.special, f"task {name}: input", _LEFT_OUT)
        return w.files

    def _report_special(self, paths: Any, what: str, consequence: str) -> None:
        """Warn about the FIFOs, sockets and devices some patterns matched (never
        opened: a FIFO's reader waits for a writer, a device may never end)."""
        for p in paths:
            kind = globs.describe_special(self.root, p)
            self.warn(f"{what} {p} is {kind}, not a regular file: {consequence}")

    def _walk_still_valid(self, walk: dict[str, Any]) -> bool:
        """Did none of the directories the last walk read change (nor an ignore file)?"""
        at = walk["at"]
        for rel, mtime, ino in walk["dirs"]:
            if _dir_stat(self.root, rel) != (mtime, ino):
                return False
            if racy(mtime, mtime, at):
                return False  # listed within the clock's granularity of a change
        for rel in walk.get("absent", ()):
            if os.path.lexists(os.path.join(self.root, rel)):
                return False  # a file named exactly has appeared
        memo = self._ignore_stats
        for rel, st in walk["ignores"]:
            now = memo.get(rel, memo)
            if now is memo:
                now = memo[rel] = _file_stat(self.root, rel)
            if now != st:
                return False
        return True

    def _global_digest(self) -> bytes:
        """The digest of the project's `global_inputs`, part of every fingerprint."""
        if self._global is None:
            patterns = self.project.config.global_inputs
            if not patterns:
                self._global = b""
            else:
                if self._records is None and self.store is not None:
                    rec = self.store.records([":global"]).get(":global") or {}
                else:
                    rec = self._record(":global") or {}
                walk = globs.expand(self.root, patterns, skip=self.skip_dirs)
                files = walk.files
                self._report_special(
                    walk.special, "global_inputs:", "left out of every task's fingerprint"
                )
                previous = fp.FileSet.from_record(rec.get("inputs"))
                found, _read = fp.scan(self.root, files, previous)
                self._global = found.digest
                if found is not previous and self.store is not None and not self.dry_run:
                    self.store.save_record(":global", {"inputs": found.to_record()})
        return self._global

    # ------------------------------------------------------------ deciding
    def decide(self, name: str, args: Mapping[str, Any], deps: Mapping[str, str]) -> Decision:
        """Run, skip or restore, and why. `deps`: each dep's status in this run."""
        covered = self._covered.get(name)
        if covered is not None:
            self._fps[name] = _Known(covered[1])
            return Decision(SKIP, ["up to date"], saved=covered[5])
        task = self.graph.tasks[name]
        if self.store is None:
            self.fingerprint(name, args)
            return Decision(RUN, ["the cache is off (--no-cache)"])
        if self.dry_run:
            coming = [d for d, s in deps.items() if s == WILL_RUN]
            if coming and task.cache:
                # Its inputs may include what that dep writes: it cannot be known yet.
                self.fingerprint(name, args)
                return Decision(RUN, [f"dep {d} will run" for d in coming])
        new = self.fingerprint(name, args)
        if task.service:
            return Decision(RUN, ["a service task is never cached"])
        if not task.cache:
            return Decision(
                RUN,
                [
                    "not cached: no inputs declared"
                    if not task.inputs
                    else "not cached: cache=False"
                ],
            )
        if self.force:
            return Decision(RUN, ["forced (-B)"])
        rec = self._record(name)
        entry = None
        if rec is not None and rec.get("key") == new.key:
            entry = {"outputs": rec["outputs"], "duration": rec.get("duration", 0.0)}
        elif self.store is not None:
            entry = self.store.entry(new.key)
        if entry is None and self.remote:
            if self.dry_run:
                found = self.remote.entry(new.key)
                if found is not None and self._remote_refusal(name, task, *found) is None:
                    return Decision(RESTORE, ["its outputs are in the remote cache"])
            else:
                entry = self._from_remote(name, new.key)
        if entry is None:
            return Decision(RUN, self._changes(name, rec, new, deps))
        return self._check_outputs(name, task, new, rec, entry)

    def _changes(
        self,
        name: str,
        rec: dict[str, Any] | None,
        new: fp.Fingerprint,
        deps: Mapping[str, str],
    ) -> list[str]:
        """Why a task with no cache entry for its fingerprint runs: what changed since
        its last run — the failed one, when it failed after its last success."""
        assert self.store is not None
        failed = self.store.records([FAILED + name]).get(FAILED + name)
        if failed is not None and failed.get("failed", 0) > (rec or {}).get("used", 0):
            if failed.get("key") == new.key:
                return ["the last run failed"]
            return fp.describe_changes(failed, new, deps)
        return fp.describe_changes(rec, new, deps)

    def remember_failure(self, name: str) -> None:
        """A cached task failed: keep its fingerprint's parts, for `_changes`."""
        new = self._fps.get(name)
        task = self.graph.tasks[name]
        if self.store is None or self.dry_run or not task.cache:
            return
        if not isinstance(new, fp.Fingerprint) or name not in self._inputs:
            return
        rec = new.to_record()
        rec.update(key=new.key, inputs=self._inputs[name].to_record(), failed=time.time())
        self.store.save_record(FAILED + name, rec)

    def _check_outputs(
        self,
        name: str,
        task: Task,
        new: fp.Fingerprint,
        rec: dict[str, Any] | None,
        entry: dict[str, Any],
    ) -> Decision:
        """A cache hit: are the outputs that run produced in place, byte for byte?"""
        assert self.store is not None
        if rec is not None and rec.get("key") == new.key and self._outputs_as_left(task, rec):
            # The outputs as the last run of this entry left or checked them, their stat
            # data unchanged, and no pattern that could match a stale file: in place,
            # byte for byte. The common case, checked cheaply.
            # A task with an input pattern that matches nothing stays out of snapshots,
            # so that every run warns about it; one with tools is decided by its record.
            if (
                self._evidence is not None
                and name not in self._rescanned
                and not task.tools
                and not self._walks[name].get("unmatched")
            ):
                from .snapshot import entry as snapshot_entry

                self._evidence[name] = snapshot_entry(
                    name,
                    new.key,
                    new.code,
                    new.args,
                    new.env,
                    entry["duration"],
                    rec["walk"],
                    rec["inputs"],
                    rec["out"],
                )
            if name in self._rescanned or time.time() - rec.get("used", 0) > 3600:
                # A touched input's new stat data, for next time; and, at most hourly,
                # when the entry was last used (for `cache prune`).
                out = fp.FileSet.from_record(rec["out"]) or fp.EMPTY
                self._pending[name] = self._updated_record(name, new, entry, out)
            return Decision(SKIP, ["up to date"], saved=entry["duration"])
        try:
            outputs = ent.from_rows(entry["outputs"])
        except ent.Malformed:
            return Decision(RUN, ["the cache entry is damaged (not of runner's form)"])
        expected = {o.path: o for o in outputs}
        # Files the outputs match that the cached run did not make (stale): only a
        # pattern with a wildcard, or naming a directory, can match one.
        wild = [
            p
            for p in task.outputs
            if globs.has_magic(p) or p not in expected or expected[p].kind == ent.DIRECTORY
        ]
        present = self._output_files(wild) if wild else []
        previous = fp.FileSet.from_record(rec.get("out")) if rec else None
        found, _read = fp.scan(self.root, list(expected), previous, links=True)
        reasons = []
        # The outputs as the last run of this entry left or checked them, their stat data
        # unchanged: in place, byte for byte (the common case, checked cheaply).
        verified = found is previous and rec is not None and rec.get("key") == new.key
        for p, o in () if verified else expected.items():
            now = found.get(p)
            if now is None:
                reasons.append(f"output {p} missing (restorable)")
            elif now[0] != o.digest or not ent.same_mode(now[1], o.mode):
                reasons.append(f"output {p} changed (restorable)")
        stale = [p for p in present if p not in expected and not self._is_input(task, p)]
        reasons += [f"stale output {p} (will be removed)" for p in stale]
        if reasons:
            refused = ent.refusal(outputs, task.outputs, self.root, self.skip_dirs)
            if refused is not None:
                self.warn(f"refused the cache entry of task {name}: {refused}")
                return Decision(RUN, [f"the cache entry was refused: {refused}"])
            missing = [
                o.path
                for o in outputs
                if o.kind == ent.FILE
                and not self.store.blobs.has(o.digest)
                and (found.get(o.path) or (b"",))[0] != o.digest
            ]
            if missing:
                return Decision(
                    RUN, ["the cache entry is incomplete (an output's blob is missing)"]
                )
            if self.dry_run:  # what the restore would leave, for the tasks that follow
                self._virtual.update(
                    {o.path: (o.digest, o.mode) for o in outputs if o.kind == ent.FILE}
                )
                self._virtual.update({p: None for p in stale})
            self._entries[name] = {
                "entry": entry,
                "outputs": outputs,
                "stale": stale,
                "record": self._updated_record(name, new, entry, found),
            }
            return Decision(RESTORE, reasons, saved=entry["duration"])
        if (
            rec is None
            or found is not previous
            or name in self._rescanned
            or time.time() - rec.get("used", 0) > 3600
        ):
            # A touched file's new stat data, for next time; and, at most hourly, when
            # the entry was last used (for `cache prune`).
            self._pending[name] = self._updated_record(name, new, entry, found)
        return Decision(SKIP, ["up to date"], saved=entry["duration"])

    def _output_files(self, patterns: Sequence[str]) -> list[str]:
        """What these output patterns match now (symlinks and empty directories too)."""
        return self._output_walk(patterns).files

    def _output_walk(self, patterns: Sequence[str]) -> globs.Walk:
        """The walk of these output patterns: `.files` as _output_files, `.special` the
        FIFOs, sockets and devices they match (never opened)."""
        return globs.expand(self.root, patterns, skip=self.skip_dirs, gitignore=False, outputs=True)

    def _outputs_as_left(self, task: Task, rec: dict[str, Any]) -> bool:
        """Are the outputs of the task's last run exactly as it left or checked them
        (same stat data), with no output pattern that could match another file?"""
        out = rec.get("out")
        if not out:
            return False
        paths = out[0]
        if (
            len(paths) != len(task.outputs)
            or sorted(task.outputs) != paths
            or paths != ent.row_paths(rec["outputs"])
            or any(globs.has_magic(p) for p in paths)
        ):
            return False  # a wildcard pattern, or an output the run did not make
        now, vanished = fp.stat_pack(self.root, paths, follow=False)
        return not vanished and now == out[1]

    def _save_snapshot(self) -> None:
        """Keep the entries of the tasks this run found up to date as their records say,
        from the start of the order up to the first task that ran, changed, or is not
        cached (runner.snapshot) — when that is more than the last snapshot held."""
        evidence, self._evidence = self._evidence, None
        if evidence is None or self.store is None:
            return
        tasks = self.graph.tasks
        entries = []
        for name in self._order:
            e = self._covered.get(name) or evidence.get(name)
            if e is None or not tasks[name].cache:
                break
            entries.append(e)
        if len(entries) > len(self._covered):
            from . import snapshot

            self.store.save_snapshot(
                snapshot.name_of(self._order), snapshot.make(entries, self._global_digest())
            )

    def _from_remote(self, name: str, key: bytes) -> dict[str, Any] | None:
        """A remote cache's entry for this fingerprint, brought into the local store
        (its blobs checked against their digests); None if no backend has all of it,
        or if the entry breaks the rule (runner.entries: then said, once)."""
        assert self.store is not None and self.remote is not None
        found = self.remote.entry(key)
        if found is None:
            return None
        backend, entry = found
        if self._remote_refusal(name, self.graph.tasks[name], backend, entry, warn=True):
            return None
        for o in entry["outputs"]:
            if o.kind == ent.FILE and not self.store.blobs.has(o.digest):
                data = self.remote.blob(backend, o.digest)
                if data is None:
                    return None  # incomplete or damaged over there: a miss
                self.store.blobs.put_bytes(data, o.digest)
        rows = ent.to_rows(entry["outputs"])
        self.store.put_entry(key, name, rows, entry["duration"])
        return {"outputs": rows, "duration": entry["duration"]}

    def _remote_refusal(
        self, name: str, task: Task, backend: Any, entry: dict[str, Any], warn: bool = False
    ) -> str | None:
        """Why a remote's entry must not be used (runner.entries' rule), or None."""
        refused = ent.refusal(entry["outputs"], task.outputs, self.root, self.skip_dirs)
        if refused is not None and warn:
            where = getattr(backend, "name", type(backend).__name__)
            self.warn(f"remote cache {where}: refused its entry for task {name}: {refused}")
        return refused

    def _updated_record(
        self, name: str, new: fp.Fingerprint, entry: dict[str, Any], outputs: fp.FileSet
    ) -> dict[str, Any]:
        rec = new.to_record()
        rec.update(
            key=new.key,
            inputs=self._inputs[name].to_record(),
            walk=self._walks[name],
            outputs=entry["outputs"],
            out=outputs.to_record(),
            duration=entry["duration"],
            used=time.time(),
        )
        if name in self._tool_states:
            rec["tool_state"] = self._tool_states[name]
        return rec

    def _is_input(self, task: Task, path: str) -> bool:
        return any(globs.match(p, path) for p in task.inputs if not p.startswith("!"))

    # ------------------------------------------------------------ acting
    def restore(self, name: str) -> str | None:
        """Put the outputs of the cached run back; None when done, or why the cache
        cannot (a blob is damaged or gone, the entry breaks the rule): then the task
        must run."""
        from . import restore as put_back

        assert self.store is not None
        plan = self._entries.pop(name)
        task = self.graph.tasks[name]
        outputs = plan["outputs"]
        try:
            why = put_back.restore(
                outputs, self.root, self.store.blobs, task.outputs, self.skip_dirs
            )
        except ent.Refused as e:
            self.warn(f"refused the cache entry of task {name}: {e}")
            return f"the cache entry was refused: {e}"
        if why is not None:
            return why
        put_back.remove(self.root, plan["stale"])
        record = plan["record"]
        paths = [o.path for o in outputs]
        record["out"] = fp.scan(self.root, paths, None, links=True)[0].to_record()
        self._save(name, record)
        self._used.append(record["key"])
        return None

    def prepare(self, name: str) -> None:
        """Before a task runs: for a cached one, delete what its outputs match (it
        makes them again; a file it no longer makes must not survive as if it had),
        but files that are also its inputs (a formatter rewriting sources); for any,
        note the stat data of the outputs that are left, for `discard`."""
        task = self.graph.tasks[name]
        if self.dry_run or not task.outputs:
            return
        w = self._output_walk(task.outputs)
        found = w.files
        if self.store is not None and task.cache:
            from .restore import remove

            kept = [p for p in found if self._is_input(task, p)]
            # A FIFO it makes again is unlinked, never opened.
            remove(self.root, [p for p in found + w.special if not self._is_input(task, p)])
            found = kept
        self._before[name] = {p: _lstat_key(self.root, p) for p in found}

    def discard(self, name: str) -> None:
        """A task was stopped mid-run: delete the outputs it wrote (they may be half
        written), as make deletes the target of an interrupted recipe. What it wrote is
        what its outputs match now that was not there before it started, or is there
        with other stat data (a new inode or ctime: `cp -p` and `tar x` keep the
        mtime of their source, so that alone tells nothing)."""
        task = self.graph.tasks[name]
        before = self._before.pop(name, {})
        if not task.outputs or self.dry_run:
            return
        from .restore import remove

        remove(
            self.root,
            [
                p
                for p in self._output_files(task.outputs)
                if not self._is_input(task, p) and before.get(p) != _lstat_key(self.root, p)
            ],
        )

    def check_outputs(self, name: str) -> str | None:
        """After a task succeeded: each output it names exactly must exist (a task
        that did not make it fails, as in Bazel); a pattern that matched nothing is
        warned about. The failure's message, or None."""
        task = self.graph.tasks[name]
        if not task.outputs or self.dry_run:
            return None
        walk = self._output_walk(task.outputs)
        for pattern in walk.unmatched:
            if globs.has_magic(pattern) or os.path.isdir(os.path.join(self.root, pattern)):
                self.warn(f"task '{name}': output pattern '{pattern}' matched no file")
        missing = walk.absent  # the paths named exactly that are not there
        if not missing:
            return None
        shown = ", ".join(missing[:SHOWN_REASONS])
        more = f" and {len(missing) - SHOWN_REASONS} more" if len(missing) > SHOWN_REASONS else ""
        return (
            f"the task did not make its declared output{'s' if len(missing) > 1 else ''} "
            f"{shown}{more}"
        )

    def record(self, name: str, duration: float) -> str | None:
        """A task succeeded: store its outputs under its fingerprint. Returns why
        nothing was stored, or None."""
        task = self.graph.tasks[name]
        new = self._fps.get(name)
        if (
            self.store is None
            or self.dry_run
            or not isinstance(new, fp.Fingerprint)
            or not task.cache
        ):
            return None
        moved = self._inputs_moved(name)
        if moved:
            return f"input {moved} changed while the task ran: its result is not cached"
        self._before.pop(name, None)
        files: list[str] = []
        if task.outputs:
            w = self._output_walk(task.outputs)
            files = w.files
            self._report_special(
                w.special, f"task {name}: output", "not stored in the cache (nor restored)"
            )
        # Each output is hashed while it is copied into the store: read once.
        outputs: list[ent.Output] = []
        hashed: list[tuple[str, os.stat_result, bytes, int]] = []
        for p in files:
            got = ent.capture(self.root, p, self.store.blobs)
            if got is None:
                if os.path.lexists(os.path.join(self.root, p)):
                    return f"output {p} changed while it was stored: its result is not cached"
                continue  # gone since the task ended
            output, st, hashed_at = got
            outputs.append(output)
            hashed.append((p, st, output.digest, hashed_at))
        refused = ent.refusal(outputs, task.outputs, self.root, self.skip_dirs)
        if refused is not None:
            # An entry runner would refuse to restore is not made (said: it runs again
            # each time).
            self.warn(f"task {name}: {refused}: its result is not cached")
            return f"{refused}: its result is not cached"
        made = fp.FileSet.hashed(hashed)
        rows = ent.to_rows(outputs)
        entry = {"outputs": rows, "duration": duration}
        record = self._updated_record(name, new, entry, made)
        self.store.put_entry(new.key, name, rows, duration, record=record)
        if self.remote:
            self.remote.push(new.key, outputs, duration, self.store.blobs.path)
        return None

    def _inputs_moved(self, name: str) -> str | None:
        """An input that changed since the fingerprint was taken, or that appeared or
        vanished meanwhile (files the task writes itself excepted). Stat data tell,
        except for a file modified within the clock's granularity of when it was
        hashed: an edit in that same tick leaves them as they were, so its content is
        compared (the racy-git rule, as a no-op run applies it)."""
        task = self.graph.tasks[name]
        before = self._inputs.get(name, fp.EMPTY)
        walk = self._walks.get(name)
        # The same files as before the run (no directory listing changed) with the same
        # stat data: nothing moved, but for what only content can tell. The common
        # case, checked cheaply.
        if (
            before.observed is not None
            and walk is not None
            and self._walk_still_valid(walk)
            and fp.stat_pack(self.root, before.paths)[0] == before.observed
        ):
            return self._racy_input_changed(task, before)
        now = globs.expand(self.root, task.inputs, skip=self.skip_dirs).files if task.inputs else []
        old = fp.ints(before.stats)
        for p in sorted(set(now) | set(before.paths)):
            if task.outputs and globs.matches(task.outputs, p):
                continue  # it writes this input itself (in place)
            i = before.index(p)
            try:
                st = os.stat(os.path.join(self.root, p))
            except OSError:
                if i is not None:
                    return p
                continue
            if i is None:
                return p
            was = tuple(old[4 * i : 4 * i + 4])
            if was[1:] != fp.stat_key(st)[1:] or (was[0] != -1 and was[0] != st.st_ino):
                return p
            if was[0] == -1 and self._content_changed(before, i, p):
                return p  # racy when hashed: its stat data cannot tell
        return None

    def _racy_input_changed(self, task: Task, before: fp.FileSet) -> str | None:
        """The first input that was racy when hashed (kept with no inode: see
        fingerprint._stat_entry) and whose content is no longer what was hashed."""
        stats = fp.ints(before.stats)
        for i, p in enumerate(before.paths):
            if stats[4 * i] != -1 or (task.outputs and globs.matches(task.outputs, p)):
                continue
            if self._content_changed(before, i, p):
                return p
        return None

    def _content_changed(self, before: fp.FileSet, i: int, path: str) -> bool:
        """Does the input's content differ from its digest in `before` (entry i)?"""
        try:
            now = fp.hash_file(os.path.join(self.root, path))
        except OSError:
            return True  # gone, or no longer a regular file
        return now != before.digests[32 * i : 32 * i + 32]

    def _save(self, name: str, record: dict[str, Any]) -> None:
        if self.store is not None and not self.dry_run:
            self.store.save_record(name, record)

    def interrupt(self) -> None:
        """The run is stopping: stop waiting on remote caches (safe in a signal
        handler: it sets a flag)."""
        if self.remote is not None:
            self.remote.interrupt.set()

    def lock(self, name: str, wait: bool) -> bool:
        # A task a snapshot found up to date is not locked: nothing is written for it,
        # and its outputs were as it left them (another runner that ran it since would
        # have changed their stat data).
        if self.store is None or self.dry_run or name in self._covered:
            return True
        return self.store.locks.lock(name, wait)

    def unlock(self, name: str) -> None:
        if self.store is not None and not self.dry_run:
            self.store.locks.unlock(name)

    def finish(self) -> None:
        """After the run: save what hits refreshed (touched files), mark used entries,
        keep a snapshot of a run that found every cached task up to date."""
        if self.store is None or self.dry_run:
            return
        self._save_snapshot()
        self.store.save_records(self._pending)
        self._used += [r["key"] for r in self._pending.values()]
        self._pending.clear()
        self.store.touch_entries(self._used)


class _Known:
    """The fingerprint of a task a snapshot found up to date: its key is all that the
    tasks after it need."""

    __slots__ = ("key",)

    def __init__(self, key: bytes) -> None:
        self.key = key


def _dir_stat(root: str, rel: str) -> tuple[int, int]:
    try:
        st = os.stat(rel or ".", dir_fd=fp.root_fd(root))
    except OSError:
        return (-1, -1)
    return (st.st_mtime_ns, st.st_ino)


def _file_stat(root: str, rel: str) -> tuple[int, int, int, int] | None:
    try:
        return fp.stat_key(os.stat(os.path.join(root, rel)))
    except OSError:
        return None


def _lstat_key(root: str, rel: str) -> tuple[int, int, int, int] | None:
    try:
        return fp.stat_key(os.stat(rel, dir_fd=fp.root_fd(root), follow_symlinks=False))
    except OSError:
        return None
