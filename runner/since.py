"""`--since REF`: the tasks that a change since a git ref can affect.

What changed: the files that differ between REF and the working tree (committed since,
staged, unstaged, untracked) in the repository and in each of its submodules, compared
with the commit REF records for it; and ignored files that a task names exactly as an
input (git does not track them, so one that exists is not in REF). A submodule whose
files cannot be listed (added or removed since REF, not checked out, or its recorded
commit not fetched) counts as a change of everything under its directory.

Which tasks: those whose inputs, or the global inputs, match a changed file; those whose
code may have changed — a change to the tasksfile, or to a local module loaded with it,
selects every task (any task's constants, helpers or declaration may come from that
code), and a change to a local module only a task's body imports selects the tasks whose
code digest reads it (runner.code) — then what depends on them, and the deps those need.
"""

from __future__ import annotations

import os

from .errors import UserError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any

    from .graph import Graph
    from .loader import Project


class Changes:
    """What differs between a git ref and the working tree: files, and directories
    whose content is unknown (each stands for any file below it). Paths are relative
    to the project root, '/'-separated; "" is the whole project."""

    __slots__ = ("files", "dirs")

    def __init__(self, files: set[str], dirs: set[str]) -> None:
        self.files = files
        self.dirs = dirs

    def touches(self, path: str) -> bool:
        """Did this file change?"""
        return path in self.files or any(
            d == "" or path == d or path.startswith(d + "/") for d in self.dirs
        )

    def matches(self, patterns: Iterable[str]) -> bool:
        """Did a file these input patterns match (or might match) change?"""
        from . import globs

        patterns = list(patterns)
        if not patterns:
            return False
        return any(globs.matches(patterns, p) for p in self.files) or any(
            globs.may_match_below(p, d) for d in self.dirs for p in patterns
        )


def changed_files(root: str, ref: str, literals: Iterable[str] = ()) -> Changes:
    """What differs between `ref` and the working tree, for a project at `root`;
    `literals`: input paths named exactly (relative to root), which count when git
    ignores them."""
    try:
        import git
    except ImportError as e:  # pragma: no cover - gitpython is a dependency
        raise UserError(f"--since needs GitPython: {e}") from None
    try:
        repo = git.Repo(root, search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        raise UserError(f"--since {ref}: {root} is not in a git repository") from None
    except git.GitCommandNotFound:
        raise UserError("--since needs the git command, which is not installed") from None
    try:
        commit = repo.commit(ref)
    except (git.BadName, ValueError, git.GitCommandError):
        raise UserError(f"--since {ref}: no such git revision") from None
    top = repo.working_tree_dir
    if top is None:
        raise UserError(f"--since {ref}: the repository has no working tree")
    prefix = os.path.relpath(root, top).replace(os.sep, "/")
    prefix = "" if prefix == "." else prefix + "/"
    found = Changes(set(), set())
    _collect(repo, commit, "", [prefix + p for p in literals], found)
    return _below(found, prefix)


def _collect(repo: Any, commit: Any, at: str, literals: list[str], found: Changes) -> None:
    """Add what differs in `repo` (at `at` in the outermost work tree) between `commit`
    and its work tree, its submodules' changes included."""
    for d in commit.diff(None):  # the working tree (staged and unstaged) against ref
        if d.a_mode == _GITLINK and d.b_mode == _GITLINK:
            continue  # a submodule that moved or was edited: looked into below
        if d.a_mode == _GITLINK:
            found.dirs.add(at + d.a_path)  # a submodule removed since ref
        for p in (d.a_path, d.b_path):
            if p:
                found.files.add(at + p)
    found.files.update(at + p for p in repo.untracked_files)
    links = _gitlinks(repo)
    mine = [p for p in literals if not any(p == s or p.startswith(s + "/") for s in links)]
    found.files.update(at + p for p in _ignored(repo, mine))
    for path, recorded in links.items():
        inside = [p[len(path) + 1 :] for p in literals if p.startswith(path + "/")]
        _collect_submodule(repo, commit, path, recorded, at, inside, found)


def _collect_submodule(
    repo: Any, commit: Any, path: str, recorded: str, at: str, literals: list[str], found: Changes
) -> None:
    """A submodule of `repo` at `path` (its commit in the index: `recorded`): its own
    changes against the commit `commit` records for it."""
    import git

    try:
        then = (commit.tree / path).hexsha
    except KeyError:
        found.dirs.add(at + path)  # added since ref: everything in it is new
        return
    where = os.path.join(repo.working_tree_dir, path)
    try:
        sub = git.Repo(where)
        if os.path.realpath(str(sub.working_tree_dir)) != os.path.realpath(where):
            raise git.InvalidGitRepositoryError(path)  # an empty directory in a repository
        sub_commit = sub.commit(then)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        if then != recorded:
            found.dirs.add(at + path)  # not checked out, and it moved: its files are unknown
        return
    except (git.BadName, ValueError, git.GitCommandError):
        found.dirs.add(at + path)  # the commit ref records for it was never fetched
        return
    _collect(sub, sub_commit, f"{at}{path}/", literals, found)


_GITLINK = 0o160000


def _gitlinks(repo: Any) -> dict[str, str]:
    """The submodules in the index: path -> the commit recorded for it."""
    links = {}
    for entry in repo.git.ls_files("--stage", "-z").split("\0"):
        if entry.startswith("160000 "):
            meta, _, path = entry.partition("\t")
            links[path] = meta.split()[1]
    return links


def _ignored(repo: Any, paths: list[str]) -> list[str]:
    """The ignored, untracked files at these paths (files, or under directories)."""
    if not paths:
        return []
    out = repo.git.ls_files(
        "--others",
        "--ignored",
        "--exclude-standard",
        "-z",
        "--",
        *(f":(literal){p}" for p in paths),
    )
    return [p for p in out.split("\0") if p]


def _below(found: Changes, prefix: str) -> Changes:
    """`found` (relative to the work tree) relative to the project at `prefix`."""
    if not prefix:
        return found
    files = {p[len(prefix) :] for p in found.files if p.startswith(prefix)}
    dirs = set()
    for d in found.dirs:
        if d.startswith(prefix):
            dirs.add(d[len(prefix) :])
        elif prefix.startswith(d + "/"):
            dirs.add("")  # the whole project lies in it
    return Changes(files, dirs)


def narrow_to_changes(
    ref: str, project: Project, graph: Graph, order: list[str]
) -> tuple[list[str], list[str]]:
    """Narrow a run to the tasks a change since `ref` can affect (see the module's
    docstring), what depends on them, and the deps those need; returns (new order,
    tasks left out)."""
    from .code import CodeDigest

    tasks = [graph.tasks[n] for n in order]
    global_inputs = project.config.global_inputs
    literals = _literal_paths([p for t in tasks for p in t.inputs] + list(global_inputs))
    changes = changed_files(project.root, ref, literals)
    code = CodeDigest(project.root)

    def touched(files: Iterable[str]) -> bool:
        return any(changes.touches(_relative(f, project.root)) for f in files)

    everything = changes.matches(global_inputs) or touched(
        code.loaded_files() | {project.tasksfile}
    )
    direct = [
        t.name
        for t in tasks
        if everything or changes.matches(t.inputs) or touched(code.files_of(t))
    ]
    affected = graph.dependents(direct, order)
    new_order = graph.select([n for n in order if n in affected]) if affected else []
    return new_order, [n for n in order if n not in new_order]


def _literal_paths(patterns: Iterable[str]) -> list[str]:
    """The paths that input patterns without wildcards name (files or directories)."""
    from . import globs

    found: dict[str, None] = {}
    for p in patterns:
        negated, fixed, rest = globs.split_pattern(p)
        if not negated and not rest and fixed:
            found["/".join(fixed)] = None
    return list(found)


def _relative(path: str, root: str) -> str:
    return os.path.relpath(path, root).replace(os.sep, "/")
