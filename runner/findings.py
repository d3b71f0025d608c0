"""What an audited task did that its declaration does not cover (for --audit).

    Observed (reads, writes, removals, programs, env) ──judge()──▶ [Finding, ...]

A task's cache key covers its inputs, its env, its tools and, through their
fingerprints, everything its deps declare. A read is *covered* when the key would
change with the file: it matches the task's inputs, a dep's (transitively) inputs or
outputs, or `global_inputs`. A write is covered when the task's outputs match it (a
restore brings back exactly those). What is not covered is a finding, with the
pattern or name to declare.

Not judged, because no key could or should hold them: paths outside the project (the
standard library, site-packages, /usr, /proc, /dev, temporary directories); inside it,
runner's cache directory, `.git` and `__pycache__`, virtual environments and
site-packages directories, and for reads, files git ignores. Writes to ignored files
are judged (`dist/` is usually ignored, and an undeclared wheel there is the classic
mistake), except in hidden ignored places (`.mypy_cache/`, `.pytest_cache/`,
`.coverage`): tools' private state by convention.
"""

from __future__ import annotations

import os
import sys

from . import globs

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

    from .audit import Observed
    from .tasks import Task

READ = "read"
WRITE = "write"
REMOVE = "remove"
TOOL = "tool"
ENV = "env"

# Which declaration a finding of each kind asks to extend.
PARAM = {READ: "inputs", WRITE: "outputs", REMOVE: "outputs", TOOL: "tools", ENV: "env"}
SHOWN_PATHS = 3  # a finding about many files names this many in text


class Finding:
    """One thing a task did that its declaration does not cover: the files (or the
    tool, or the variable) and what to add to which `@task` parameter."""

    __slots__ = ("task", "kind", "names", "suggestion")

    task: str
    kind: str  # READ, WRITE, REMOVE, TOOL or ENV
    names: tuple[str, ...]  # project-relative paths, a tool's path, or a variable
    suggestion: str  # the pattern, tool name or variable to declare

    def __init__(self, task: str, kind: str, names: Iterable[str], suggestion: str) -> None:
        object.__setattr__(self, "task", task)
        object.__setattr__(self, "kind", kind)
        object.__setattr__(self, "names", tuple(names))
        object.__setattr__(self, "suggestion", suggestion)

    def __setattr__(self, key: str, value: object) -> None:
        raise AttributeError("Finding is immutable")

    @property
    def param(self) -> str:
        return PARAM[self.kind]

    @property
    def fix(self) -> str:
        """`inputs=[..., "config/*.toml"]`"""
        return f'{self.param}=[..., "{self.suggestion}"]'

    def text(self) -> str:
        """One line: `build read config/app.toml, which no input pattern matches: add
        inputs=[..., "config/app.toml"]`."""
        return f"{self.task} {self.sentence()}"

    def sentence(self) -> str:
        """text() without the task's name."""
        what = {
            READ: ("read", "no input pattern matches"),
            WRITE: ("wrote", "no output pattern matches"),
            REMOVE: ("removed", "no output pattern matches"),
            TOOL: ("ran", "tools= does not declare"),
            ENV: ("read the variable", "env= does not declare"),
        }[self.kind]
        if len(self.names) == 1:
            subject = f"{self.names[0]}, which {what[1]}"
        else:
            shown = ", ".join(self.names[:SHOWN_PATHS])
            more = ", ..." if len(self.names) > SHOWN_PATHS else ""
            subject = f"{len(self.names)} files {what[1]} ({shown}{more})"
        return f"{what[0]} {subject}: add {self.fix}"

    def __repr__(self) -> str:
        return f"Finding({self.text()!r})"


class Scope:
    """What is not judged and what counts as declared, for one run: the project root,
    its ignore rules, runner's own files, the interpreter's directories."""

    def __init__(self, root: str, cache_dir: str, global_inputs: Iterable[str]) -> None:
        self.root = root
        self.roots = tuple({root.rstrip("/") + "/", os.path.realpath(root).rstrip("/") + "/"})
        self.cache_rel = os.path.relpath(cache_dir, root).replace(os.sep, "/")
        self.global_inputs = tuple(global_inputs)
        self.ignores = globs.Ignores(root)
        self._ignored: dict[str, bool] = {}
        self._venv: dict[str, bool] = {}
        python = {
            os.path.realpath(p)
            for p in (sys.executable, getattr(sys, "_base_executable", sys.executable))
            if p
        }
        self.python = frozenset(python)  # the interpreter: its version is in every key
        import sysconfig

        # The interpreter's directories inside the project (a virtual environment
        # there); those around it (a project in /usr/src) must not hide it.
        paths = sysconfig.get_paths()
        self.scripts = paths["scripts"].rstrip("/") + "/"  # installed distributions' commands
        dirs = {sys.prefix, sys.exec_prefix, sys.base_prefix, *paths.values()}
        self.python_dirs = tuple(
            d.rstrip("/") + "/"
            for d in dirs
            if d and any(os.path.realpath(d).startswith(r) for r in self.roots)
        )

    def relative(self, path: str) -> str | None:
        """The project-relative path of an absolute one, or None outside the project."""
        for r in self.roots:
            if path.startswith(r):
                return path[len(r) :]
        return None

    def excluded(self, path: str, rel: str) -> bool:
        """Never judged: runner's state, version control, bytecode, Python installs."""
        parts = rel.split("/")
        if parts[0] == self.cache_rel or rel.startswith(self.cache_rel + "/"):
            return True
        if any(p in globs.ALWAYS_SKIPPED or p in ("site-packages", "dist-packages") for p in parts):
            return True
        if path.startswith(self.python_dirs):
            return True
        return self._in_venv(parts)

    def _in_venv(self, parts: list[str]) -> bool:
        """Is the path inside a virtual environment (a directory with pyvenv.cfg)?"""
        for i in range(1, len(parts)):
            d = "/".join(parts[:i])
            known = self._venv.get(d)
            if known is None:
                known = self._venv[d] = os.path.exists(os.path.join(self.root, d, "pyvenv.cfg"))
            if known:
                return True
        return False

    def ignored(self, rel: str) -> bool:
        got = self._ignored.get(rel)
        if got is None:
            got = self._ignored[rel] = self.ignores.path_ignored(rel)
        return got


class Declared:
    """What one task's key covers: its patterns, its deps', its tools and env."""

    def __init__(
        self,
        task: Task,
        dep_tasks: Iterable[Task],
        scope: Scope,
        *,
        dotenv_keys: Iterable[str] = (),
        path: str = "",
    ) -> None:
        self.task = task
        self.covered = [list(t.inputs) + list(t.outputs) for t in dep_tasks]
        self.covered.append(list(scope.global_inputs))
        self.env = frozenset(task.env) | frozenset(dotenv_keys)
        self.path = path  # the PATH its commands see, to resolve tools= names
        self._tools: frozenset[str] | None = None

    def reads(self, rel: str) -> bool:
        t = self.task
        if globs.matches(t.inputs, rel) or globs.matches(t.outputs, rel):
            return True
        return rel in t.tools or any(globs.matches(c, rel) for c in self.covered if c)

    def writes(self, rel: str) -> bool:
        return globs.matches(self.task.outputs, rel)

    def tool(self, path: str, root: str, rel: str | None) -> bool:
        real = os.path.realpath(path)
        names = {os.path.basename(path), os.path.basename(real)}
        if any(os.path.basename(t) in names for t in self.task.tools):
            return True
        if rel is not None and (rel in self.task.tools or globs.matches(self.task.inputs, rel)):
            return True
        if self._tools is None:
            from .tools import Tools

            finder = Tools(root)
            self._tools = frozenset(
                p for p in (finder.executable(t, self.path) for t in self.task.tools) if p
            )
        return real in self._tools


def judge(obs: Observed, declared: Declared, scope: Scope, shells: frozenset[str]) -> list[Finding]:
    """The findings of one task's run: undeclared reads, writes, removals, tools, env."""
    name = declared.task.name
    reads: list[str] = []
    writes: list[str] = []
    removed: list[str] = []
    for path in obs.reads:
        rel = _judged(path, scope)
        if rel is None or scope.ignored(rel) or declared.reads(rel):
            continue
        if not os.path.isfile(path):
            continue  # not a file: a directory, or gone (its own intermediate)
        reads.append(rel)
    for path in obs.writes:
        rel = _judged(path, scope)
        if rel is None or declared.writes(rel) or not os.path.isfile(path):
            continue  # declared, or gone again by the end (a temporary file)
        if scope.ignored(rel) and _hidden(rel):
            continue
        writes.append(rel)
    for path in obs.removed:
        rel = _judged(path, scope)
        if rel is None or path in obs.made or declared.writes(rel) or os.path.lexists(path):
            continue
        if scope.ignored(rel):
            continue
        removed.append(rel)
    found = [Finding(name, READ, group, pattern) for pattern, group in suggest(reads)]
    found += [Finding(name, WRITE, group, pattern) for pattern, group in suggest(writes)]
    found += [Finding(name, REMOVE, [p], p) for p in sorted(set(removed))]
    found += _tools(obs, declared, scope, shells)
    found += [Finding(name, ENV, [k], k) for k in obs.env if k not in declared.env]
    return found


def _tools(
    obs: Observed, declared: Declared, scope: Scope, shells: frozenset[str]
) -> list[Finding]:
    found = []
    seen: set[str] = set()
    for path in obs.programs:
        real = os.path.realpath(path)
        if real in seen or real in scope.python or real in shells:
            continue
        seen.add(real)
        rel = scope.relative(path)
        if declared.tool(path, scope.root, rel):
            continue
        found.append(
            Finding(declared.task.name, TOOL, [path], _tool_name(path, rel, declared, scope))
        )
    return found


def _tool_name(path: str, rel: str | None, declared: Declared, scope: Scope) -> str:
    """What to put in tools=: the name when the command's PATH finds this program by it
    or it is a script of the interpreter's (a distribution of that name, by its
    version), else its project-relative path, else its absolute path."""
    import shutil

    name = os.path.basename(path)
    if path.startswith(scope.scripts):
        return name
    found = shutil.which(name, path=declared.path)
    if found is not None and os.path.realpath(found) == os.path.realpath(path):
        return name
    return rel if rel is not None else path


def _judged(path: str, scope: Scope) -> str | None:
    """The project-relative path, if the path is one the audit judges."""
    rel = scope.relative(path)
    if rel is None or not rel or scope.excluded(path, rel):
        return None
    return rel


def _hidden(rel: str) -> bool:
    return any(p.startswith(".") for p in rel.split("/"))


def suggest(paths: Iterable[str]) -> list[tuple[str, list[str]]]:
    """The patterns to declare for these files, each with the files it stands for: a
    file alone (or at the root) by its path; several of one extension in one directory
    as `dir/*.ext`; those spread over the directories below one top-level directory as
    `top/**/*.ext`."""
    by_dir: dict[tuple[str, str], list[str]] = {}
    for p in sorted(set(paths)):
        d, _, base = p.rpartition("/")
        by_dir.setdefault((d, _ext(base)), []).append(p)
    by_top: dict[tuple[str, str], list[tuple[str, list[str]]]] = {}
    for (d, ext), group in by_dir.items():
        by_top.setdefault((d.split("/")[0] if d else "", ext), []).append((d, group))
    out: list[tuple[str, list[str]]] = []
    for (top, ext), dirs in by_top.items():
        if top and len(dirs) > 1:
            out.append((f"{top}/**/*{ext}", [p for _d, g in dirs for p in g]))
            continue
        for d, group in dirs:
            if len(group) == 1 or not d:  # (the root's files by name: `*` is too wide)
                out.extend((p, [p]) for p in group)
            else:
                out.append((f"{d}/*{ext}", group))
    return sorted(out)


def _ext(base: str) -> str:
    """`.toml` for `app.toml`; '' for `Makefile` or `.env` (a dot file has none)."""
    stem, dot, ext = base.rpartition(".")
    return f".{ext}" if dot and stem else ""
