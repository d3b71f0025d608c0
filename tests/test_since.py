"""`--since REF`: only the tasks whose input files differ between a git ref and the working
tree (committed since, staged, unstaged and untracked), and everything that depends on
them (SPEC §2 `--since`).

Each test makes a real git repository in a temporary directory. Tasks append their name
to `runs.log` when they really run; the cache starts cold, so without `--since` every
task would run, and what runs.log shows is what `--since` selected.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from conftest import Project

TASKLOG = '''
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent


def log(line):
    fd = os.open(ROOT / "runs.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\\n").encode())
    finally:
        os.close(fd)
'''

TASKS = """
    from tasklog import log

    @task(inputs=["src/**/*.py"])
    def lint():
        log("lint")

    @task(inputs=["docs/**"])
    def docs():
        log("docs")

    @task(deps=[lint], inputs=["tests/**"])
    def test():
        log("test")
"""

ALL = ("lint", "docs", "test")


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-c", "user.name=Runner Tests", "-c", "user.email=tests@example.com",
         "-c", "init.defaultBranch=main", "-c", "commit.gpgsign=false", *args],
        cwd=repo, capture_output=True, text=True)
    assert done.returncode == 0, f"git {' '.join(args)}: {done.stderr}"
    return done.stdout.strip()


def make_project(root: Path) -> Project:
    project = Project(root)
    project.write("tasklog.py", TASKLOG)
    project.tasksfile(TASKS)
    project.write("src/app.py", "print('app')\n")
    project.write("src/pkg/util.py", "X = 1\n")
    project.write("docs/index.md", "# Docs\n")
    project.write("tests/test_app.py", "def test(): pass\n")
    project.write("README.md", "readme\n")
    project.write(".gitignore", "runs.log\n__pycache__/\nsrc/generated.py\n")
    return project


@pytest.fixture
def repo(tmp_path: Path) -> Project:
    """A project at the root of a git repository, everything committed once."""
    project = make_project(tmp_path / "repo")
    git(project.root, "init", "-q")
    commit_all(project.root, "first")
    return project


def commit_all(repo: Path, message: str) -> str:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def ran(project: Project) -> list[str]:
    p = project.root / "runs.log"
    return p.read_text().split() if p.exists() else []


def run_since(project: Project, ref: str, *extra: str):
    r = project.run("--since", ref, *extra, *ALL)
    assert r.code == 0, r
    return r


# ---------------------------------------------------------------- what is selected

def test_a_change_committed_since_ref_selects_its_task_and_its_dependents(repo):
    first = git(repo.root, "rev-parse", "HEAD")
    repo.write("src/app.py", "print('changed')\n")
    commit_all(repo.root, "second")
    run_since(repo, first)
    assert sorted(ran(repo)) == ["lint", "test"]


def test_a_staged_change_selects_its_task(repo):
    repo.write("docs/index.md", "# New docs\n")
    git(repo.root, "add", "docs/index.md")
    run_since(repo, "HEAD")
    assert ran(repo) == ["docs"]


def test_an_unstaged_change_selects_its_task(repo):
    assert repo.run("lint").code == 0   # lint is up to date: only a dep of test here
    repo.write("tests/test_app.py", "def test(): assert True\n")
    run_since(repo, "HEAD")
    assert ran(repo) == ["lint", "test"], "test must run, and lint (cached) must not again"


def test_an_untracked_file_in_a_new_directory_selects_its_task_and_dependents(repo):
    repo.write("src/newpkg/mod.py", "Y = 2\n")
    run_since(repo, "HEAD")
    assert sorted(ran(repo)) == ["lint", "test"]


def test_a_deleted_input_selects_its_task(repo):
    (repo.root / "src/pkg/util.py").unlink()
    run_since(repo, "HEAD")
    assert sorted(ran(repo)) == ["lint", "test"]


def test_only_changes_to_inputs_count_committed_or_untracked(repo):
    first = git(repo.root, "rev-parse", "HEAD")
    repo.write("README.md", "committed, but no task's input\n")
    commit_all(repo.root, "second")
    repo.write("docs/new.md", "untracked\n")
    run_since(repo, first)
    assert ran(repo) == ["docs"]


def test_an_ignored_file_is_not_a_change(repo):
    repo.write("src/generated.py", "# ignored by .gitignore\n")
    r = run_since(repo, "HEAD")
    assert ran(repo) == []
    assert "nothing to do" in r.out


def test_no_change_since_ref_is_nothing_to_do(repo):
    r = run_since(repo, "HEAD")
    assert "nothing to do" in r.out
    assert ran(repo) == []


def test_a_change_outside_every_input_is_nothing_to_do(repo):
    repo.write("README.md", "changed\n")
    r = run_since(repo, "HEAD")
    assert "nothing to do" in r.out
    assert ran(repo) == []


def test_dry_run_names_what_since_leaves_out(repo):
    repo.write("docs/index.md", "# New docs\n")
    r = run_since(repo, "HEAD", "-n")
    listed = [line.split()[1] for line in r.out.splitlines()
              if line.startswith("  ") and line.split()[0] in ("run", "skip", "restore")]
    assert listed == ["docs"], r.out
    left_out = [line for line in r.out.splitlines() if line.startswith("left out")]
    assert len(left_out) == 1 and "lint" in left_out[0] and "test" in left_out[0], r.out
    assert ran(repo) == []


# ---------------------------------------------------------------- errors

def test_a_ref_that_does_not_exist_is_a_usage_error(repo):
    r = repo.run("--since", "no-such-branch", *ALL)
    assert r.code == 2, r
    assert "no-such-branch" in r.err and "Traceback" not in r.err, r
    assert len(r.err.strip().splitlines()) == 1, r
    assert ran(repo) == []


def test_since_outside_a_git_repository_is_a_usage_error(tmp_path):
    project = make_project(tmp_path / "plain")
    r = project.run("--since", "HEAD", *ALL)
    assert r.code == 2, r
    assert "git" in r.err and "Traceback" not in r.err, r
    assert len(r.err.strip().splitlines()) == 1, r
    assert ran(project) == []


# ---------------------------------------------------------------- a project in a subdirectory

@pytest.fixture
def nested(tmp_path: Path) -> Project:
    """A project in services/api of a repository whose root has files of its own, with
    the same names as the project's inputs."""
    top = tmp_path / "mono"
    (top / "src").mkdir(parents=True)
    (top / "src/app.py").write_text("print('top level')\n")
    (top / "docs").mkdir()
    (top / "docs/index.md").write_text("# top level\n")
    project = make_project(top / "services/api")
    git(top, "init", "-q")
    commit_all(top, "first")
    return project


def test_in_a_subdirectory_project_paths_are_relative_to_the_project_root(nested):
    nested.write("src/app.py", "print('changed')\n")
    run_since(nested, "HEAD")
    assert sorted(ran(nested)) == ["lint", "test"]


def test_in_a_subdirectory_changes_elsewhere_in_the_repository_select_nothing(nested):
    top = nested.root.parent.parent
    (top / "src/app.py").write_text("print('changed at the top')\n")
    (top / "docs/index.md").write_text("# changed at the top\n")
    (top / "docs/extra.md").write_text("untracked at the top\n")
    r = run_since(nested, "HEAD")
    assert "nothing to do" in r.out
    assert ran(nested) == []


def test_in_a_subdirectory_a_run_from_a_deeper_directory_works_too(nested):
    nested.write("docs/guide/intro.md", "untracked\n")
    r = nested.run("--since", "HEAD", *ALL, cwd=nested.root / "src")
    assert r.code == 0, r
    assert ran(nested) == ["docs"]
