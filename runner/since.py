"""`--since REF`: the files that differ between a git ref and the working tree."""

from __future__ import annotations

import os

from .errors import UserError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .graph import Graph
    from .loader import Project


def changed_files(root: str, ref: str) -> set[str]:
    """Paths (relative to `root`, '/'-separated) that differ between `ref` and the
    working tree: committed since, staged, unstaged, and untracked (not ignored)."""
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
    paths: set[str] = set()
    for d in commit.diff(None):  # the working tree (staged and unstaged) against ref
        for p in (d.a_path, d.b_path):
            if p:
                paths.add(p)
    paths.update(repo.untracked_files)
    prefix = os.path.relpath(root, top).replace(os.sep, "/")
    if prefix == ".":
        return paths
    prefix += "/"
    return {p[len(prefix) :] for p in paths if p.startswith(prefix)}


def narrow_to_changes(
    ref: str, project: Project, graph: Graph, order: list[str]
) -> tuple[list[str], list[str]]:
    """Narrow a run to the tasks whose inputs changed since `ref`, what depends on
    them, and the deps those need; returns (new order, tasks left out)."""
    from . import globs

    changed = changed_files(project.root, ref)
    global_hit = any(globs.matches(project.config.global_inputs, p) for p in changed)
    direct = [
        n
        for n in order
        if global_hit or any(globs.matches(graph.tasks[n].inputs, p) for p in changed)
    ]
    affected = graph.dependents(direct, order)
    new_order = graph.select([n for n in order if n in affected]) if affected else []
    return new_order, [n for n in order if n not in new_order]
