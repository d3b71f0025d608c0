"""`--since REF`: only the tasks whose input files differ between a git ref and the working
tree (committed since, staged, unstaged and untracked; in submodules too; ignored files
named exactly as inputs), or whose code may have changed, and everything that depends
on them (SPEC §2 `--since`).

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
        import docstyle
        log("docs" + docstyle.SUFFIX)

    @task(deps=[lint], inputs=["tests/**"])
    def test():
        log("test")
"""

ALL = ("lint", "docs", "test")


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-c", "user.name=Runner Tests", "-c", "user.email=tests@example.com",
         "-c", "init.defaultBranch=main", "-c", "commit.gpgsign=false",
         "-c", "protocol.file.allow=always", *args],
        cwd=repo, capture_output=True, text=True)
    assert done.returncode == 0, f"git {' '.join(args)}: {done.stderr}"
    return done.stdout.strip()


def make_project(root: Path) -> Project:
    project = Project(root)
    project.write("tasklog.py", TASKLOG)
    project.write("docstyle.py", "SUFFIX = ''\n")
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


# ---------------------------------------------------------------- the tasks' code

def edit(project: Project, rel: str, old: str, new: str) -> None:
    text = project.read(rel)
    assert old in text
    project.write(rel, text.replace(old, new, 1))


def test_a_changed_task_body_selects_the_task(repo):
    """`-n` says "the task's code or definition changed"; --since must agree. A change
    to the tasksfile may reach any task (a constant, a helper, a declaration), so it
    selects every task."""
    edit(repo, "tasksfile.py", 'log("test")', 'log("test" + "")')
    run_since(repo, "HEAD")
    assert "test" in ran(repo)
    assert sorted(ran(repo)) == sorted(ALL)


def test_a_changed_declaration_selects_the_task(repo):
    first = git(repo.root, "rev-parse", "HEAD")
    edit(repo, "tasksfile.py", 'inputs=["docs/**"]', 'inputs=["docs/**", "README.md"]')
    commit_all(repo.root, "docs read the README")
    run_since(repo, first)
    assert "docs" in ran(repo)


def test_a_change_to_a_module_the_tasksfile_imports_selects_every_task(repo):
    edit(repo, "tasklog.py", "os.close(fd)", "os.close(fd)  # always")
    run_since(repo, "HEAD")
    assert sorted(ran(repo)) == sorted(ALL)


def test_a_change_to_a_module_imported_in_one_tasks_body_selects_that_task(repo):
    repo.write("docstyle.py", "SUFFIX = ''  # the same, said again\n")
    run_since(repo, "HEAD")
    assert ran(repo) == ["docs"]


def test_dry_run_says_why_a_task_whose_code_changed_is_selected(repo):
    assert repo.run(*ALL).code == 0
    repo.write("docstyle.py", "SUFFIX = ''  # the same, said again\n")
    r = run_since(repo, "HEAD", "-n")
    assert "code or definition changed" in r.out, r.out
    assert "left out" in r.out and "lint" in r.out


def test_a_changed_global_input_selects_every_task(repo):
    repo.write("pyproject.toml", '[tool.runner]\nglobal_inputs = ["VERSION"]\n')
    repo.write("VERSION", "1\n")
    commit_all(repo.root, "a version")
    repo.write("VERSION", "2\n")
    run_since(repo, "HEAD")
    assert sorted(ran(repo)) == sorted(ALL)


# ---------------------------------------------------------------- files git does not list

IGNORED_INPUT = """
    from tasklog import log

    @task(inputs=["config/local.env"])
    def deploy():
        log("deploy")

    @task(inputs=["secrets"])
    def sign():
        log("sign")

    @task(inputs=["src/**/*.py"])
    def lint():
        log("lint")
"""


@pytest.fixture
def ignoring(tmp_path: Path) -> Project:
    """A repository whose .gitignore hides files that tasks name exactly as inputs."""
    project = make_project(tmp_path / "repo")
    project.tasksfile(IGNORED_INPUT)
    project.write(".gitignore", "runs.log\n__pycache__/\nconfig/local.env\nsecrets/\n")
    git(project.root, "init", "-q")
    commit_all(project.root, "first")
    return project


def test_an_ignored_file_named_exactly_as_an_input_is_a_change(ignoring):
    ignoring.write("config/local.env", "TOKEN=1\n")
    r = ignoring.run("--since", "HEAD", "deploy", "sign", "lint")
    assert r.code == 0, r
    assert ran(ignoring) == ["deploy"]


def test_an_ignored_file_in_a_directory_named_as_an_input_is_a_change(ignoring):
    ignoring.write("secrets/key.pem", "KEY\n")
    r = ignoring.run("--since", "HEAD", "deploy", "sign", "lint")
    assert r.code == 0, r
    assert ran(ignoring) == ["sign"]


# ---------------------------------------------------------------- git submodules

VENDORED = """
    from tasklog import log

    @task(inputs=["vendor/lib/src/**/*.py"])
    def vendored():
        log("vendored")

    @task(inputs=["src/**/*.py"])
    def lint():
        log("lint")
"""


@pytest.fixture
def with_submodule(tmp_path: Path) -> Project:
    """A repository with a real submodule at vendor/lib (a second repository, added with
    `git submodule add`), a task whose inputs lie inside it and one whose do not."""
    lib = tmp_path / "lib"
    (lib / "src").mkdir(parents=True)
    (lib / "src" / "x.py").write_text("X = 1\n")
    (lib / "README").write_text("lib\n")
    git(lib, "init", "-q")
    commit_all(lib, "lib")
    project = make_project(tmp_path / "repo")
    project.tasksfile(VENDORED)
    git(project.root, "init", "-q")
    git(project.root, "submodule", "--quiet", "add", str(lib), "vendor/lib")
    commit_all(project.root, "first")
    return project


def run_vendored(project: Project, ref: str) -> list[str]:
    r = project.run("--since", ref, "vendored", "lint")
    assert r.code == 0, r
    return ran(project)


def test_a_change_in_a_submodules_work_tree_selects_its_task(with_submodule):
    with_submodule.write("vendor/lib/src/x.py", "X = 2\n")
    assert run_vendored(with_submodule, "HEAD") == ["vendored"]


def test_a_new_file_in_a_submodule_selects_its_task(with_submodule):
    with_submodule.write("vendor/lib/src/y.py", "Y = 1\n")
    assert run_vendored(with_submodule, "HEAD") == ["vendored"]


def test_a_submodule_pointer_change_selects_its_task(with_submodule):
    first = git(with_submodule.root, "rev-parse", "HEAD")
    sub = with_submodule.root / "vendor" / "lib"
    (sub / "src" / "x.py").write_text("X = 3\n")
    commit_all(sub, "lib moves on")
    git(with_submodule.root, "add", "vendor/lib")
    git(with_submodule.root, "commit", "-q", "-m", "bump lib")
    assert run_vendored(with_submodule, first) == ["vendored"]


def test_a_submodule_pointer_change_counts_in_a_clone_that_did_not_check_it_out(
        with_submodule, tmp_path):
    """A CI checkout without submodules: the submodule's directory is empty, so its
    files cannot be compared; a moved pointer counts as a change of everything in it."""
    first = git(with_submodule.root, "rev-parse", "HEAD")
    sub = with_submodule.root / "vendor" / "lib"
    (sub / "src" / "x.py").write_text("X = 3\n")
    commit_all(sub, "lib moves on")
    git(with_submodule.root, "add", "vendor/lib")
    git(with_submodule.root, "commit", "-q", "-m", "bump lib")
    git(tmp_path, "clone", "-q", str(with_submodule.root), "clone")
    clone = Project(tmp_path / "clone")
    assert not (clone.root / "vendor" / "lib" / "src").exists()
    assert run_vendored(clone, first) == ["vendored"]
    assert run_vendored(clone, "HEAD") == ["vendored"], "a second run: nothing new"


def test_a_submodule_removed_since_the_ref_selects_the_tasks_whose_inputs_lay_in_it(
        with_submodule):
    first = git(with_submodule.root, "rev-parse", "HEAD")
    git(with_submodule.root, "rm", "-q", "vendor/lib")
    commit_all(with_submodule.root, "drop lib")
    assert run_vendored(with_submodule, first) == ["vendored"]


def test_a_change_in_a_submodule_outside_every_input_selects_nothing(with_submodule):
    with_submodule.write("vendor/lib/README", "changed\n")
    r = with_submodule.run("--since", "HEAD", "vendored", "lint")
    assert r.code == 0, r
    assert "nothing to do" in r.out
    assert ran(with_submodule) == []


def test_a_submodule_added_since_the_ref_selects_the_tasks_whose_inputs_lie_in_it(tmp_path):
    lib = tmp_path / "lib"
    (lib / "src").mkdir(parents=True)
    (lib / "src" / "x.py").write_text("X = 1\n")
    git(lib, "init", "-q")
    commit_all(lib, "lib")
    project = make_project(tmp_path / "repo")
    project.tasksfile(VENDORED)
    git(project.root, "init", "-q")
    first = commit_all(project.root, "first")
    git(project.root, "submodule", "--quiet", "add", str(lib), "vendor/lib")
    commit_all(project.root, "add lib")
    assert run_vendored(project, first) == ["vendored"]


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
