"""`--since REF`: the files that differ between a git ref and the working tree."""

from __future__ import annotations

import os

from .errors import UserError


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
