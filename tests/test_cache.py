"""SPEC §1 (the cache key), §2 (-n, -v, -B, --no-cache, `hash`) and §4 (state on disk):
the content-hash cache, tested from the outside.

"A false cache hit is the worst bug this project can have; a needless re-run is the
second." Every task in these tests appends its name to `runs.log` each time it really
runs, so a test can count runs: a hit adds no line, a run adds one.
"""

from __future__ import annotations

import ctypes
import os
import re
import shutil
import signal
import subprocess
import textwrap
import time
from pathlib import Path

import pytest
from conftest import clean_env, poll, processes_with_arg, stop

RAN = '''\
import os
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent


def ran(name):
    """Note that a task really ran: one line in runs.log."""
    with open(ROOT / "runs.log", "a") as f:
        f.write(name + "\\n")
'''

# Outside the racy-git window (a file written within ~100 ms of being hashed is read
# again next time, by design): waited for only where a test needs a file to be
# trusted from its stat data.
PAST_RACY_WINDOW = 0.3


def tasks(project, body: str) -> None:
    """A tasksfile with `ran(name)`, `ROOT`, `os`, `time` and `Path`, then `body`."""
    project.tasksfile(RAN + textwrap.dedent(body))


def runs(project, name: str | None = None) -> int:
    """How many times the task ran (every task when name is None)."""
    p = project.root / "runs.log"
    lines = p.read_text().splitlines() if p.exists() else []
    return len(lines) if name is None else lines.count(name)


def ok(project, *args: str, env: dict[str, str] | None = None):
    r = project.run(*args, env=env)
    assert r.code == 0, r
    return r


def planned(result, task: str) -> tuple[str, str]:
    """(action, reason) of a task in `runner -n` output."""
    for line in result.out.splitlines():
        m = re.match(r"\s+(run|skip|restore)\s+(\S+)\s+(.*)$", line)
        if m and m.group(2) == task:
            return m.group(1), m.group(3)
    raise AssertionError(f"task {task} not in the dry run: {result!r}")


def write_bytes(project, rel: str, data: bytes) -> Path:
    p = project.root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)
    return p


def blobs(project) -> list[Path]:
    return sorted(p for p in (project.root / ".runner" / "cas").rglob("*") if p.is_file())


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """(size, mtime_ns) of every file and directory under root, .runner/ included."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            p = os.path.join(dirpath, n)
            st = os.lstat(p)
            found[os.path.relpath(p, root)] = (st.st_size, st.st_mtime_ns)
    return found


def leftovers(project) -> list[str]:
    """Temporary files a restore left behind."""
    return [str(p) for p in project.root.rglob("*runner-tmp*")]


class FileOpens:
    """Counts the times any process opens one file (Linux inotify, IN_OPEN): shows
    whether runner read an input or trusted its stat data."""

    IN_OPEN = 0x20

    def __init__(self, path: Path) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        self.fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if self.fd < 0:
            pytest.skip("inotify is not available")
        if libc.inotify_add_watch(self.fd, str(path).encode(), self.IN_OPEN) < 0:
            os.close(self.fd)
            pytest.skip("inotify cannot watch the file")

    def count(self) -> int:
        """Opens since the last call."""
        n = 0
        while True:
            try:
                data = os.read(self.fd, 65536)
            except BlockingIOError:
                return n
            i = 0
            while i + 16 <= len(data):
                mask = int.from_bytes(data[i + 4:i + 8], "little")
                length = int.from_bytes(data[i + 12:i + 16], "little")
                n += bool(mask & self.IN_OPEN)
                i += 16 + length

    def close(self) -> None:
        os.close(self.fd)


# ---------------------------------------------------------------- a project to cache

BUILD = """
    @task(inputs=["src/**/*.py"], outputs=["dist/*.txt"])
    def build():
        \"\"\"Concatenate the sources.\"\"\"
        ran("build")
        (ROOT / "dist").mkdir(exist_ok=True)
        text = "".join(p.relative_to(ROOT).as_posix() + ":" + p.read_text()
                       for p in sorted((ROOT / "src").rglob("*.py")))
        (ROOT / "dist" / "x.txt").write_text(text)
"""

BUILD_AND_TEST = BUILD + """
    @task(deps=[build], inputs=["tests/**/*.py"], env=["PYTEST_ADDOPTS"])
    def test(k: str = ""):
        \"\"\"Pretend to test.\"\"\"
        ran("test")
"""


def build_project(project, text: str = BUILD) -> None:
    tasks(project, text)
    project.write("src/a.py", "A = 1\n")
    project.write("src/pkg/b.py", "B = 2\n")
    project.write("tests/test_a.py", "def test_a(): pass\n")


# ---------------------------------------------------------------- no-op

def test_a_second_run_runs_nothing(project):
    build_project(project, BUILD_AND_TEST)
    ok(project, "test")
    r = ok(project, "test")
    assert runs(project) == 2
    assert "cached" in r.out


def test_touch_without_content_change_is_a_hit(project):
    build_project(project)
    ok(project, "build")
    os.utime(project.root / "src" / "a.py")
    ok(project, "build")
    assert runs(project, "build") == 1


def test_rewriting_an_input_with_the_same_content_is_a_hit(project):
    build_project(project)
    ok(project, "build")
    (project.root / "src" / "a.py").unlink()
    project.write("src/a.py", "A = 1\n")
    ok(project, "build")
    assert runs(project, "build") == 1


def test_after_a_touch_the_next_run_does_not_read_the_file_again(project):
    build_project(project)
    time.sleep(PAST_RACY_WINDOW)
    ok(project, "build")
    src = project.root / "src" / "a.py"
    opens = FileOpens(src)
    try:
        os.utime(src)
        time.sleep(PAST_RACY_WINDOW)
        ok(project, "build")
        assert opens.count() >= 1, "a touched file is read once to see its content"
        ok(project, "build")
        assert opens.count() == 0, "its stat data is trusted from then on"
    finally:
        opens.close()
    assert runs(project, "build") == 1


# ---------------------------------------------------------------- input files

def test_changing_an_input_files_content_reruns(project):
    build_project(project)
    ok(project, "build")
    project.write("src/a.py", "A = 10\n")
    ok(project, "build")
    assert runs(project, "build") == 2
    assert "src/a.py:A = 10" in project.read("dist/x.txt")


def test_double_star_covers_files_at_any_depth(project):
    build_project(project)
    project.write("src/p/q/r/deep.py", "D = 1\n")
    ok(project, "build")
    project.write("src/p/q/r/deep.py", "D = 2\n")
    ok(project, "build")
    assert runs(project, "build") == 2


def test_a_same_size_edit_right_after_a_run_is_seen(project):
    build_project(project)
    ok(project, "build")
    project.write("src/a.py", "A = 7\n")  # same size, within the same clock tick maybe
    ok(project, "build")
    assert runs(project, "build") == 2
    assert "A = 7" in project.read("dist/x.txt")


def test_an_edit_that_keeps_size_and_mtime_is_seen(project):
    build_project(project)
    src = project.root / "src" / "a.py"
    time.sleep(PAST_RACY_WINDOW)
    ok(project, "build")
    before = src.stat()
    src.write_text("A = 9\n")
    os.utime(src, ns=(before.st_atime_ns, before.st_mtime_ns))
    ok(project, "build")
    assert runs(project, "build") == 2


def test_a_new_file_matching_an_input_glob_reruns(project):
    build_project(project)
    ok(project, "build")
    project.write("src/pkg/c.py", "C = 3\n")
    ok(project, "build")
    assert runs(project, "build") == 2


def test_a_new_file_in_a_new_nested_directory_reruns(project):
    build_project(project)
    ok(project, "build")
    project.write("src/new/deeper/c.py", "C = 3\n")
    ok(project, "build")
    assert runs(project, "build") == 2


def test_a_deleted_input_file_reruns(project):
    build_project(project)
    ok(project, "build")
    (project.root / "src" / "pkg" / "b.py").unlink()
    ok(project, "build")
    assert runs(project, "build") == 2
    assert "b.py" not in project.read("dist/x.txt")


def test_a_file_the_glob_does_not_match_is_not_an_input(project):
    build_project(project)
    ok(project, "build")
    project.write("src/notes.txt", "not python\n")
    project.write("README.md", "readme\n")
    ok(project, "build")
    assert runs(project, "build") == 1


def test_moving_an_input_to_another_directory_matching_the_same_glob_reruns(project):
    build_project(project)
    ok(project, "build")
    (project.root / "src" / "other").mkdir()
    (project.root / "src" / "pkg" / "b.py").rename(project.root / "src" / "other" / "b.py")
    ok(project, "build")
    assert runs(project, "build") == 2
    assert "src/other/b.py:B = 2" in project.read("dist/x.txt")


def test_an_input_that_becomes_executable_reruns(project):
    build_project(project)
    ok(project, "build")
    (project.root / "src" / "a.py").chmod(0o755)
    ok(project, "build")
    assert runs(project, "build") == 2


# ---------------------------------------------------------------- .gitignore

GITIGNORED = """
    @task(inputs=["src/**/*.txt"])
    def build():
        ran("build")

    @task(inputs=["src/**/*.txt", "src/gen/named.txt"])
    def named():
        ran("named")
"""


def gitignored_project(project) -> None:
    tasks(project, GITIGNORED)
    subprocess.run(["git", "init", "-q"], cwd=project.root, check=True)
    project.write(".gitignore", "src/gen/\n*.log\n")
    project.write("src/a.txt", "a\n")
    project.write("src/gen/made.txt", "generated\n")
    project.write("src/gen/named.txt", "named\n")


def test_a_file_ignored_by_gitignore_is_not_an_input(project):
    gitignored_project(project)
    ok(project, "build")
    project.write("src/gen/made.txt", "generated again\n")
    project.write("src/gen/new.txt", "new\n")
    ok(project, "build")
    assert runs(project, "build") == 1


def test_an_ignored_file_named_explicitly_is_an_input(project):
    gitignored_project(project)
    ok(project, "named")
    project.write("src/gen/named.txt", "renamed\n")
    ok(project, "named")
    assert runs(project, "named") == 2


def test_a_file_no_longer_ignored_becomes_an_input(project):
    gitignored_project(project)
    ok(project, "build")
    project.write(".gitignore", "*.log\n")
    ok(project, "build")
    assert runs(project, "build") == 2


def test_a_glob_inside_an_ignored_directory_still_matches(project):
    tasks(project, """
        @task(inputs=["src/gen/*.txt"])
        def build():
            ran("build")
    """)
    project.write(".gitignore", "src/gen/\n")
    project.write("src/gen/made.txt", "one\n")
    ok(project, "build")
    project.write("src/gen/made.txt", "two\n")
    ok(project, "build")
    assert runs(project, "build") == 2


def test_a_negated_pattern_leaves_files_out_of_the_inputs(project):
    tasks(project, """
        @task(inputs=["src/**/*.txt", "!src/gen/**"])
        def build():
            ran("build")
    """)
    project.write("src/a.txt", "a\n")
    project.write("src/gen/made.txt", "one\n")
    ok(project, "build")
    project.write("src/gen/made.txt", "two\n")
    ok(project, "build")
    assert runs(project, "build") == 1
    project.write("src/a.txt", "b\n")
    ok(project, "build")
    assert runs(project, "build") == 2


def test_a_new_gitignore_that_ignores_an_input_takes_it_out_of_the_inputs(project):
    tasks(project, GITIGNORED)
    project.write("src/a.txt", "a\n")
    project.write("src/gen/made.txt", "generated\n")
    time.sleep(PAST_RACY_WINDOW)  # so that the last directory listing can be trusted
    ok(project, "build")
    project.write(".gitignore", "src/gen/\n")
    ok(project, "build")  # the set of inputs changed (one fewer): a run
    project.write("src/gen/made.txt", "generated again\n")
    ok(project, "build")  # no longer an input: nothing to do
    assert runs(project, "build") == 2


def test_a_new_gitignore_that_re_includes_a_file_makes_it_an_input(project):
    tasks(project, GITIGNORED)
    subprocess.run(["git", "init", "-q"], cwd=project.root, check=True)
    with open(project.root / ".git" / "info" / "exclude", "a") as f:
        f.write("*.local.txt\n")
    project.write("src/a.txt", "a\n")
    project.write("src/keep.local.txt", "one\n")
    time.sleep(PAST_RACY_WINDOW)  # so that the last directory listing can be trusted
    ok(project, "build")
    project.write(".gitignore", "!keep.local.txt\n")
    ok(project, "build")  # a new input: a run
    project.write("src/keep.local.txt", "two\n")
    ok(project, "build")  # it changed: another
    assert runs(project, "build") == 3


# ---------------------------------------------------------------- the task's code

CODE = """
    import helpers

    GREETING = "hello"


    def render(text):
        return text.upper()


    @task(inputs=["src/*.txt"], outputs=["out/*.txt"])
    def build():
        \"\"\"Build it.\"\"\"
        ran("build")
        (ROOT / "out").mkdir(exist_ok=True)
        text = render((ROOT / "src" / "a.txt").read_text()) + GREETING + helpers.suffix()
        (ROOT / "out" / "a.txt").write_text(text)


    @task(inputs=["src/*.txt"])
    def other():
        \"\"\"Something else.\"\"\"
        ran("other")
"""


def code_project(project) -> None:
    tasks(project, CODE)
    project.write("helpers.py", "def suffix():\n    return '!'\n")
    project.write("src/a.txt", "a\n")


def edit_tasksfile(project, old: str, new: str) -> None:
    path = project.root / "tasksfile.py"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def test_changing_the_task_body_reruns(project):
    code_project(project)
    ok(project, "build")
    edit_tasksfile(project, '+ GREETING +', '+ GREETING + "?" +')
    ok(project, "build")
    assert runs(project, "build") == 2
    assert project.read("out/a.txt") == "A\nhello?!"


def test_changing_a_helper_function_the_task_calls_reruns(project):
    code_project(project)
    ok(project, "build")
    edit_tasksfile(project, "return text.upper()", "return text.lower()")
    ok(project, "build")
    assert runs(project, "build") == 2


def test_changing_a_module_level_constant_the_task_reads_reruns(project):
    code_project(project)
    ok(project, "build")
    edit_tasksfile(project, 'GREETING = "hello"', 'GREETING = "howdy"')
    ok(project, "build")
    assert runs(project, "build") == 2


def test_changing_an_unrelated_task_does_not_rerun(project):
    code_project(project)
    ok(project, "build")
    edit_tasksfile(project, 'ran("other")', 'ran("other")\n    print("changed")')
    ok(project, "build")
    assert runs(project, "build") == 1


def test_adding_a_task_does_not_rerun_the_others(project):
    code_project(project)
    ok(project, "build")
    edit_tasksfile(project, "import helpers\n",
                   'import helpers\n\n\n@task\ndef newcomer():\n    print("new")\n')
    ok(project, "build")
    assert runs(project, "build") == 1


def test_changing_only_the_docstring_does_not_rerun(project):
    code_project(project)
    ok(project, "build")
    edit_tasksfile(project, '"""Build it."""', '"""Build it, and say so at length."""')
    ok(project, "build")
    assert runs(project, "build") == 1


def test_changing_only_comments_and_blank_lines_does_not_rerun(project):
    code_project(project)
    ok(project, "build")
    edit_tasksfile(project, '    ran("build")\n', '    # a comment\n\n    ran("build")\n')
    ok(project, "build")
    assert runs(project, "build") == 1


def test_changing_a_local_module_the_task_uses_reruns(project):
    code_project(project)
    ok(project, "build")
    project.write("helpers.py", "def suffix():\n    return '?'\n")
    ok(project, "build")
    assert runs(project, "build") == 2
    assert project.read("out/a.txt") == "A\nhello?"


def test_changing_a_function_imported_from_a_local_module_reruns(project):
    tasks(project, """
        from helpers import suffix

        @task(inputs=["src/*.txt"])
        def build():
            ran("build" + suffix())
    """)
    project.write("helpers.py", "def suffix():\n    return ''\n")
    project.write("src/a.txt", "a\n")
    ok(project, "build")
    project.write("helpers.py", "def suffix():\n    return '-2'\n")
    ok(project, "build")
    assert runs(project) == 2


def test_changing_a_local_module_that_a_used_module_imports_reruns(project):
    tasks(project, """
        import helpers

        @task(inputs=["src/*.txt"])
        def build():
            ran("build" + helpers.suffix())
    """)
    project.write("helpers.py", "from wording import word\n\n"
                                "def suffix():\n    return word()\n")
    project.write("wording.py", "def word():\n    return ''\n")
    project.write("src/a.txt", "a\n")
    ok(project, "build")
    project.write("wording.py", "def word():\n    return '-2'\n")
    ok(project, "build")
    assert runs(project) == 2


def test_changing_a_submodule_of_a_local_package_the_task_uses_reruns(project):
    tasks(project, """
        import tools.naming

        @task(inputs=["src/*.txt"])
        def build():
            ran("build" + tools.naming.suffix())
    """)
    project.write("tools/__init__.py", "")
    project.write("tools/naming.py", "def suffix():\n    return ''\n")
    project.write("src/a.txt", "a\n")
    ok(project, "build")
    project.write("tools/naming.py", "def suffix():\n    return '-2'\n")
    ok(project, "build")
    assert runs(project) == 2


def test_changing_a_path_constant_the_task_reads_reruns(project):
    tasks(project, """
        SOURCE = Path("src/a.txt")

        @task(inputs=["src/*.txt"])
        def build():
            ran("build:" + (ROOT / SOURCE).read_text())
    """)
    project.write("src/a.txt", "a")
    project.write("src/b.txt", "b")
    ok(project, "build")
    edit_tasksfile(project, 'Path("src/a.txt")', 'Path("src/b.txt")')
    ok(project, "build")
    assert (project.root / "runs.log").read_text().splitlines() == ["build:a", "build:b"]


def test_changing_a_helpers_default_argument_reruns(project):
    tasks(project, """
        def label(suffix="-1"):
            return "build" + suffix

        @task(inputs=["src/*.txt"])
        def build():
            ran(label())
    """)
    project.write("src/a.txt", "a")
    ok(project, "build")
    edit_tasksfile(project, 'suffix="-1"', 'suffix="-2"')
    ok(project, "build")
    assert (project.root / "runs.log").read_text().splitlines() == ["build-1", "build-2"]


def test_changing_a_decorated_helper_function_reruns(project):
    tasks(project, """
        import functools

        @functools.lru_cache
        def label():
            return "build-1"

        @task(inputs=["src/*.txt"])
        def build():
            ran(label())
    """)
    project.write("src/a.txt", "a")
    ok(project, "build")
    edit_tasksfile(project, '"build-1"', '"build-2"')
    ok(project, "build")
    assert (project.root / "runs.log").read_text().splitlines() == ["build-1", "build-2"]


def test_changing_the_declared_outputs_reruns(project):
    code_project(project)
    ok(project, "build")
    edit_tasksfile(project, 'outputs=["out/*.txt"]', 'outputs=["out/*.txt", "out/*.log"]')
    ok(project, "build")
    assert runs(project, "build") == 2


# ---------------------------------------------------------------- arguments and env

ARGS = """
    @task(inputs=["src/*.txt"], outputs=["out/k.txt"])
    def build(k: str = "none"):
        ran("build")
        (ROOT / "out").mkdir(exist_ok=True)
        (ROOT / "out" / "k.txt").write_text(k)
"""


def test_a_different_argument_value_reruns(project):
    tasks(project, ARGS)
    project.write("src/a.txt", "a\n")
    ok(project, "build", "--k=a")
    ok(project, "build", "--k=b")
    assert runs(project, "build") == 2
    assert project.read("out/k.txt") == "b"


def test_returning_to_an_earlier_argument_value_is_a_hit_that_restores_its_outputs(project):
    tasks(project, ARGS)
    project.write("src/a.txt", "a\n")
    ok(project, "build", "--k=a")
    ok(project, "build", "--k=b")
    ok(project, "build", "--k=a")
    assert runs(project, "build") == 2
    assert project.read("out/k.txt") == "a"


ENV = """
    @task(inputs=["src/*.txt"], env=["PYTEST_ADDOPTS"])
    def test():
        ran("test")
"""


def test_changing_a_declared_env_variable_reruns(project):
    tasks(project, ENV)
    project.write("src/a.txt", "a\n")
    ok(project, "test", env=clean_env(PYTEST_ADDOPTS="-x"))
    ok(project, "test", env=clean_env(PYTEST_ADDOPTS="-q"))
    assert runs(project, "test") == 2


def test_an_empty_env_value_is_not_the_same_as_unset(project):
    tasks(project, ENV)
    project.write("src/a.txt", "a\n")
    ok(project, "test")
    ok(project, "test", env=clean_env(PYTEST_ADDOPTS=""))
    assert runs(project, "test") == 2


def test_an_undeclared_env_variable_does_not_rerun(project):
    tasks(project, ENV)
    project.write("src/a.txt", "a\n")
    ok(project, "test", env=clean_env(PYTEST_ADDOPTS="-x", UNRELATED="1"))
    ok(project, "test", env=clean_env(PYTEST_ADDOPTS="-x", UNRELATED="2"))
    assert runs(project, "test") == 1


def test_env_values_never_appear_in_clear_under_the_cache_dir(project):
    tasks(project, ENV)
    project.write("src/a.txt", "a\n")
    secret = "s3cr3t-Value-7f1c9e2a"
    for value in (secret, secret + "-rotated"):
        env = clean_env(PYTEST_ADDOPTS=value)
        ok(project, "-v", "test", env=env)
        ok(project, "-n", "test", env=env)
        ok(project, "hash", "test", env=env)
    files = [p for p in (project.root / ".runner").rglob("*") if p.is_file()]
    assert files
    for p in files:
        data = p.read_bytes()
        assert secret.encode() not in data, p
        assert secret.encode("utf-16-le") not in data, p


# ---------------------------------------------------------------- deps and global inputs

def test_changing_a_deps_input_reruns_the_dependent_too(project):
    build_project(project, BUILD_AND_TEST)
    ok(project, "test")
    project.write("src/a.py", "A = 100\n")
    ok(project, "test")
    assert (runs(project, "build"), runs(project, "test")) == (2, 2)


def test_a_dependent_whose_deps_are_unchanged_does_not_rerun(project):
    build_project(project, BUILD_AND_TEST)
    ok(project, "test")
    project.write("tests/test_a.py", "def test_a(): assert True\n")
    ok(project, "test")
    assert (runs(project, "build"), runs(project, "test")) == (1, 2)


CHAIN = BUILD + """
    @task(deps=[build], inputs=["dist/*.txt"])
    def check():
        ran("check")
"""


def test_restoring_a_deps_output_does_not_rerun_the_dependent(project):
    build_project(project, CHAIN)
    ok(project, "check")
    (project.root / "dist" / "x.txt").unlink()
    ok(project, "check")
    assert (runs(project, "build"), runs(project, "check")) == (1, 1)


def test_dry_run_after_a_deleted_output_predicts_what_the_run_does(project):
    build_project(project, CHAIN)
    ok(project, "check")
    (project.root / "dist" / "x.txt").unlink()
    dry = ok(project, "-n", "check")
    ok(project, "check")
    assert runs(project, "check") == 1  # the run restores build and skips check
    assert planned(dry, "build")[0] == "restore"
    assert planned(dry, "check")[0] == "skip", dry.out


GLOBAL = """
    @task(inputs=["src/*.txt"])
    def one():
        ran("one")

    @task(inputs=["lib/*.txt"])
    def two():
        ran("two")
"""


def test_changing_a_global_input_reruns_every_task(project):
    tasks(project, GLOBAL)
    project.write("pyproject.toml", '[tool.runner]\nglobal_inputs = ["config/*.cfg"]\n')
    project.write("config/base.cfg", "level = 1\n")
    project.write("src/a.txt", "a\n")
    project.write("lib/b.txt", "b\n")
    ok(project, "one", "two")
    ok(project, "one", "two")
    assert runs(project) == 2
    project.write("config/base.cfg", "level = 2\n")
    ok(project, "one", "two")
    assert (runs(project, "one"), runs(project, "two")) == (2, 2)


# ---------------------------------------------------------------- outputs

BINARY = bytes(range(256)) * 3 + b"\x00\xff tail"

BIN = """
    @task(inputs=["src/*.bin"], outputs=["out/**/*.bin", "out/tool.sh"])
    def build():
        ran("build")
        data = (ROOT / "src" / "in.bin").read_bytes()
        (ROOT / "out" / "deep").mkdir(parents=True, exist_ok=True)
        (ROOT / "out" / "deep" / "rev.bin").write_bytes(data[::-1])
        (ROOT / "out" / "same.bin").write_bytes(data)
        tool = ROOT / "out" / "tool.sh"
        tool.write_text("#!/bin/sh\\necho %d\\n" % len(data))
        tool.chmod(0o755)
"""


def bin_project(project) -> None:
    tasks(project, BIN)
    write_bytes(project, "src/in.bin", BINARY)


def out_bytes(project) -> dict[str, bytes]:
    out = project.root / "out"
    return {p.relative_to(out).as_posix(): p.read_bytes()
            for p in sorted(out.rglob("*")) if p.is_file()}


def test_a_deleted_output_is_restored_byte_for_byte_without_running(project):
    bin_project(project)
    ok(project, "build")
    first = out_bytes(project)
    (project.root / "out" / "deep" / "rev.bin").unlink()
    ok(project, "build")
    assert runs(project, "build") == 1
    assert out_bytes(project) == first
    assert first["deep/rev.bin"] == BINARY[::-1]


def test_a_deleted_output_directory_is_restored(project):
    bin_project(project)
    ok(project, "build")
    first = out_bytes(project)
    shutil.rmtree(project.root / "out")
    r = ok(project, "build")
    assert runs(project, "build") == 1
    assert out_bytes(project) == first
    assert "restored" in r.out


def test_an_altered_output_is_restored(project):
    bin_project(project)
    ok(project, "build")
    first = out_bytes(project)
    write_bytes(project, "out/same.bin", b"tampered" + BINARY[8:])  # same size
    ok(project, "build")
    assert runs(project, "build") == 1
    assert out_bytes(project) == first


def test_a_restored_output_keeps_its_executable_bit(project):
    bin_project(project)
    ok(project, "build")
    tool = project.root / "out" / "tool.sh"
    tool.unlink()
    ok(project, "build")
    assert runs(project, "build") == 1
    assert tool.stat().st_mode & 0o777 == 0o755


def test_an_output_whose_mode_changed_is_restored(project):
    bin_project(project)
    ok(project, "build")
    tool = project.root / "out" / "tool.sh"
    tool.chmod(0o644)
    ok(project, "build")
    assert runs(project, "build") == 1
    assert tool.stat().st_mode & 0o777 == 0o755


def test_returning_to_an_earlier_input_state_restores_that_states_outputs(project):
    bin_project(project)
    ok(project, "build")
    first = out_bytes(project)
    write_bytes(project, "src/in.bin", b"second state")
    ok(project, "build")
    assert out_bytes(project) != first
    write_bytes(project, "src/in.bin", BINARY)
    ok(project, "build")
    assert runs(project, "build") == 2
    assert out_bytes(project) == first


def test_an_output_in_a_gitignored_directory_is_stored_and_restored(project):
    tasks(project, """
        @task(inputs=["src/*.txt"], outputs=["dist/*.whl"])
        def build():
            ran("build")
            (ROOT / "dist").mkdir(exist_ok=True)
            (ROOT / "dist" / "app.whl").write_bytes(b"PK" + bytes(range(50)))
    """)
    project.write(".gitignore", "dist/\n")
    project.write("src/a.txt", "a")
    ok(project, "build")
    (project.root / "dist" / "app.whl").unlink()
    ok(project, "build")
    assert runs(project, "build") == 1
    assert (project.root / "dist" / "app.whl").read_bytes() == b"PK" + bytes(range(50))


PER_SOURCE = """
    @task(inputs=["src/*.txt"], outputs=["out/*.txt"])
    def build():
        ran("build")
        (ROOT / "out").mkdir(exist_ok=True)
        for p in (ROOT / "src").glob("*.txt"):
            (ROOT / "out" / p.name).write_text(p.read_text().upper())
"""


def test_a_restore_removes_outputs_the_cached_run_did_not_produce(project):
    tasks(project, PER_SOURCE)
    project.write("src/a.txt", "a\n")
    ok(project, "build")
    project.write("src/c.txt", "c\n")
    ok(project, "build")
    assert (project.root / "out" / "c.txt").exists()
    (project.root / "src" / "c.txt").unlink()
    ok(project, "build")
    assert runs(project, "build") == 2
    assert sorted(p.name for p in (project.root / "out").iterdir()) == ["a.txt"]


def test_a_run_removes_outputs_the_task_no_longer_produces(project):
    tasks(project, PER_SOURCE)
    project.write("src/a.txt", "a\n")
    project.write("src/c.txt", "c\n")
    ok(project, "build")
    (project.root / "src" / "c.txt").unlink()
    ok(project, "build")
    assert runs(project, "build") == 2
    assert sorted(p.name for p in (project.root / "out").iterdir()) == ["a.txt"]


FAILING = """
    @task(inputs=["src/*.txt"], outputs=["out/x.txt"])
    def build():
        ran("build")
        (ROOT / "out").mkdir(exist_ok=True)
        (ROOT / "out" / "x.txt").write_text("half done")
        if (ROOT / "src" / "a.txt").read_text() == "bad\\n":
            raise TaskError("it went wrong")
"""


def test_a_failed_task_stores_nothing_and_runs_again(project):
    tasks(project, FAILING)
    project.write("src/a.txt", "bad\n")
    assert project.run("build").code == 1
    assert project.run("build").code == 1
    assert runs(project, "build") == 2


def test_a_failed_task_leaves_nothing_that_a_later_hit_could_restore(project):
    tasks(project, FAILING)
    project.write("src/a.txt", "bad\n")
    assert project.run("build").code == 1
    project.write("src/a.txt", "good\n")
    ok(project, "build")
    project.write("src/a.txt", "bad\n")
    assert project.run("build").code == 1
    assert runs(project, "build") == 3


def test_an_interrupted_task_runs_again_next_time(project, marker):
    m = marker()
    tasks(project, f"""
        @task(inputs=["src/*.txt"], outputs=["out/x.txt"])
        def slow():
            ran("slow")
            (ROOT / "out").mkdir(exist_ok=True)
            (ROOT / "out" / "x.txt").write_text("partial")
            if (ROOT / "hold").exists():
                sh("sleep {m}")
            (ROOT / "out" / "x.txt").write_text("complete")
    """)
    project.write("src/a.txt", "a\n")
    project.write("hold", "")
    proc = project.popen("slow")
    try:
        assert poll(lambda: processes_with_arg(m) or proc.poll() is not None, 30)
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)
        assert proc.returncode == 130
    finally:
        stop(proc)
    (project.root / "hold").unlink()
    ok(project, "slow")
    assert runs(project, "slow") == 2
    assert project.read("out/x.txt") == "complete"



@pytest.mark.parametrize("copy", ["cp -p src/old.txt out/copied.txt",
                                  "tar -xf old.tar -C out"])
def test_an_interrupted_task_loses_outputs_it_wrote_with_an_old_mtime(project, marker, copy):
    """cp -p and tar x (as rsync -t) give what they write the mtime of their source."""
    m = marker()
    tasks(project, f"""
        @task(inputs=["src/*.txt"], outputs=["out/*"])
        def slow():
            ran("slow")
            (ROOT / "out").mkdir(exist_ok=True)
            sh("{copy}")
            sh("sleep {m}")
    """)
    old = project.write("src/old.txt", "from long ago\n")
    os.utime(old, (946684800, 946684800))  # 2000-01-01
    subprocess.run(["tar", "-cf", "old.tar", "-C", "src", "old.txt"], cwd=project.root,
                   check=True)
    proc = project.popen("slow")
    try:
        assert poll(lambda: processes_with_arg(m) or proc.poll() is not None, 30)
        assert proc.poll() is None, proc.communicate()
        copied = [p for p in (project.root / "out").iterdir()]
        assert copied and all(p.stat().st_mtime < time.time() - 3600 for p in copied)
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)
        assert proc.returncode == 130
    finally:
        stop(proc)
    assert list((project.root / "out").iterdir()) == []


def test_an_interrupted_task_keeps_outputs_it_did_not_touch(project, marker):
    m = marker()
    tasks(project, f"""
        @task(inputs=["src/*.txt"], outputs=["out/*"], cache=False)
        def slow():
            ran("slow")
            (ROOT / "out" / "new.txt").write_text("half")
            sh("sleep {m}")
    """)
    project.write("src/a.txt", "a\n")
    project.write("out/kept.txt", "made by hand\n")
    proc = project.popen("slow")
    try:
        assert poll(lambda: processes_with_arg(m) or proc.poll() is not None, 30)
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)
        assert proc.returncode == 130
    finally:
        stop(proc)
    assert sorted(p.name for p in (project.root / "out").iterdir()) == ["kept.txt"]

WAITS_FOR_GO = """
    @task(inputs=["src/*.txt"], outputs=["out/x.txt"])
    def build():
        ran("build")
        if (ROOT / "hold").exists():
            (ROOT / "started").write_text("")
            deadline = time.monotonic() + 30
            while not (ROOT / "go").exists() and time.monotonic() < deadline:
                time.sleep(0.01)
        (ROOT / "out").mkdir(exist_ok=True)
        (ROOT / "out" / "x.txt").write_text((ROOT / "src" / "in.txt").read_text().upper())
"""


def test_an_input_edited_while_its_task_runs_makes_the_result_unstorable(project):
    tasks(project, WAITS_FOR_GO)
    project.write("src/in.txt", "alpha")
    project.write("hold", "")
    proc = project.popen("build")
    try:
        assert poll(lambda: (project.root / "started").exists() or proc.poll() is not None,
                    30)
        project.write("src/in.txt", "bravo")  # same size, while the task runs
        project.write("go", "")
        proc.communicate(timeout=30)
        assert proc.returncode == 0
    finally:
        stop(proc)
    for name in ("hold", "go", "started"):
        (project.root / name).unlink()
    assert project.read("out/x.txt") == "BRAVO"
    project.write("src/in.txt", "alpha")  # the state the run's fingerprint was taken in
    ok(project, "build")
    assert runs(project, "build") == 2
    assert project.read("out/x.txt") == "ALPHA"


def test_a_task_that_edits_its_own_input_midway_is_not_cached(project):
    tasks(project, """
        @task(inputs=["src/*.txt"], outputs=["out/x.txt"])
        def build():
            ran("build")
            src = ROOT / "src" / "in.txt"
            src.write_text(src.read_text() + "+")
            (ROOT / "out").mkdir(exist_ok=True)
            (ROOT / "out" / "x.txt").write_text(src.read_text())
    """)
    project.write("src/in.txt", "v")
    ok(project, "build")
    project.write("src/in.txt", "v")  # the state its fingerprint was taken in
    ok(project, "build")
    assert runs(project, "build") == 2


# ---------------------------------------------------------------- a damaged store

def test_a_deleted_blob_is_a_miss_and_the_task_runs_again(project):
    bin_project(project)
    ok(project, "build")
    first = out_bytes(project)
    for b in blobs(project):
        b.unlink()
    shutil.rmtree(project.root / "out")
    ok(project, "build")
    assert runs(project, "build") == 2
    assert out_bytes(project) == first
    assert leftovers(project) == []


def test_a_corrupted_blob_is_a_miss_never_a_half_restored_output(project):
    bin_project(project)
    ok(project, "build")
    first = out_bytes(project)
    found = blobs(project)
    assert len(found) == 3
    victim = found[1]
    data = victim.read_bytes()
    victim.write_bytes(bytes([data[0] ^ 0xFF]) + data[1:])  # same size, one byte off
    shutil.rmtree(project.root / "out")
    ok(project, "build")
    assert runs(project, "build") == 2
    assert out_bytes(project) == first
    assert (project.root / "out" / "tool.sh").stat().st_mode & 0o777 == 0o755
    assert leftovers(project) == []


def test_a_corrupted_blob_is_replaced_when_the_task_runs_again(project):
    bin_project(project)
    ok(project, "build")
    for b in blobs(project):
        b.write_bytes(b"garbage" + b.read_bytes()[7:])
    shutil.rmtree(project.root / "out")
    ok(project, "build")  # a miss: the task runs and stores its outputs again
    first = out_bytes(project)
    shutil.rmtree(project.root / "out")
    ok(project, "build")  # now the cache is sound: a restore
    assert runs(project, "build") == 2
    assert out_bytes(project) == first


# ---------------------------------------------------------------- -n, -v, -B, --no-cache

def dry(project, *args, env=None):
    before = runs(project)
    r = ok(project, "-n", *args, env=env)
    assert runs(project) == before, "a dry run runs nothing"
    return r


def test_dry_run_says_a_task_never_ran(project):
    build_project(project, BUILD_AND_TEST)
    r = dry(project, "test")
    assert planned(r, "build") == ("run", "never ran")


def test_dry_run_names_the_changed_input(project):
    build_project(project, BUILD_AND_TEST)
    ok(project, "test")
    project.write("src/a.py", "A = 2\n")
    assert planned(dry(project, "test"), "build") == ("run", "input src/a.py changed")


def test_dry_run_names_a_new_file(project):
    build_project(project, BUILD_AND_TEST)
    ok(project, "test")
    project.write("tests/test_x.py", "def test_x(): pass\n")
    assert planned(dry(project, "test"), "test") == ("run", "new file tests/test_x.py")


def test_dry_run_names_a_removed_input(project):
    build_project(project, BUILD_AND_TEST)
    ok(project, "test")
    (project.root / "src" / "pkg" / "b.py").unlink()
    assert planned(dry(project, "test"), "build") == ("run", "input src/pkg/b.py removed")


def test_dry_run_says_a_dependent_runs_because_its_dep_will_run(project):
    build_project(project, BUILD_AND_TEST)
    ok(project, "test")
    project.write("src/a.py", "A = 2\n")
    assert planned(dry(project, "test"), "test") == ("run", "dep build will run")


def test_dry_run_names_a_changed_argument(project):
    build_project(project, BUILD_AND_TEST)
    ok(project, "test", "--k=a")
    r = dry(project, "test", "--k=b")
    assert planned(r, "test") == ("run", "argument k changed")
    assert planned(r, "build")[0] == "skip"


def test_dry_run_names_a_changed_env_variable(project):
    build_project(project, BUILD_AND_TEST)
    ok(project, "test", env=clean_env(PYTEST_ADDOPTS="-x"))
    r = dry(project, "test", env=clean_env(PYTEST_ADDOPTS="-q"))
    assert planned(r, "test") == ("run", "env PYTEST_ADDOPTS changed")


def test_dry_run_names_a_code_change(project):
    build_project(project, BUILD_AND_TEST)
    ok(project, "test")
    edit_tasksfile(project, 'ran("test")', 'ran("test")\n    print("more")')
    action, reason = planned(dry(project, "test"), "test")
    assert action == "run"
    assert "code" in reason


def test_dry_run_says_a_missing_output_is_restorable(project):
    tasks(project, """
        @task(inputs=["src/*.py"], outputs=["dist/*.whl"])
        def build():
            ran("build")
            (ROOT / "dist").mkdir(exist_ok=True)
            (ROOT / "dist" / "x.whl").write_bytes(b"PK wheel")
    """)
    project.write("src/a.py", "A = 1\n")
    ok(project, "build")
    (project.root / "dist" / "x.whl").unlink()
    r = dry(project, "build")
    assert planned(r, "build") == ("restore", "output dist/x.whl missing (restorable)")
    assert not (project.root / "dist" / "x.whl").exists(), "a dry run restores nothing"


def test_dry_run_with_force_says_forced(project):
    build_project(project, BUILD_AND_TEST)
    ok(project, "test")
    action, reason = planned(dry(project, "-B", "test"), "build")
    assert action == "run"
    assert "forced" in reason


def test_dry_run_says_an_unchanged_task_is_up_to_date(project):
    build_project(project, BUILD_AND_TEST)
    ok(project, "test")
    r = dry(project, "test")
    assert planned(r, "build") == ("skip", "up to date")
    assert planned(r, "test") == ("skip", "up to date")


def test_verbose_run_prints_why_each_task_runs(project):
    build_project(project, BUILD_AND_TEST)
    ok(project, "test")
    project.write("src/a.py", "A = 2\n")
    r = ok(project, "-v", "test")
    assert "> build: input src/a.py changed" in r.out
    assert re.search(r"^> test: dep build (re-ran|will run|changed)", r.out, re.M), r.out


def test_verbose_run_prints_never_ran_on_a_first_run(project):
    build_project(project)
    r = ok(project, "-v", "build")
    assert "> build: never ran" in r.out


def test_force_reruns_a_cached_task(project):
    build_project(project)
    ok(project, "build")
    ok(project, "-B", "build")
    assert runs(project, "build") == 2


def test_no_cache_runs_everything_and_creates_no_state(project):
    build_project(project, BUILD_AND_TEST)
    ok(project, "--no-cache", "test")
    ok(project, "--no-cache", "test")
    assert runs(project) == 4
    assert not (project.root / ".runner").exists()


def test_no_cache_leaves_existing_state_untouched(project):
    build_project(project, BUILD_AND_TEST)
    ok(project, "test")
    before = snapshot(project.root / ".runner")
    project.write("src/a.py", "A = 3\n")
    ok(project, "--no-cache", "test")
    assert runs(project) == 4
    assert snapshot(project.root / ".runner") == before


# ---------------------------------------------------------------- read-only commands

READ_ONLY = [("-l",), ("graph",), ("-n", "test"), ("test", "--help"), ("hash", "test")]


@pytest.mark.parametrize("args", READ_ONLY, ids=" ".join)
def test_read_only_command_writes_no_state_after_a_run(project, args):
    build_project(project, BUILD_AND_TEST)
    ok(project, "test")
    os.utime(project.root / "src" / "a.py")           # stat data that moved
    project.write("tests/test_a.py", "def test_a(): assert 1\n")  # a real change
    edit_tasksfile(project, 'ran("test")', 'ran("test")\n    print("edited")')
    time.sleep(PAST_RACY_WINDOW)  # nothing is too fresh to be cached by a writer
    before = snapshot(project.root)
    ok(project, *args)
    assert snapshot(project.root) == before


@pytest.mark.parametrize("args", READ_ONLY, ids=" ".join)
def test_read_only_command_creates_no_state_in_a_fresh_project(project, args):
    build_project(project, BUILD_AND_TEST)
    time.sleep(PAST_RACY_WINDOW)  # nothing is too fresh to be cached by a writer
    before = snapshot(project.root)
    ok(project, *args)
    assert snapshot(project.root) == before


# ---------------------------------------------------------------- the run summary

def test_the_summary_counts_ran_cached_and_restored_tasks_and_the_time_saved(project):
    tasks(project, """
        @task(inputs=["src/f.txt"])
        def fresh():
            ran("fresh")

        @task(inputs=["src/s.txt"])
        def steady():
            ran("steady")
            time.sleep(0.3)

        @task(inputs=["src/m.txt"], outputs=["out/m.txt"])
        def made():
            ran("made")
            time.sleep(0.3)
            (ROOT / "out").mkdir(exist_ok=True)
            (ROOT / "out" / "m.txt").write_text("m")
    """)
    for name in "fsm":
        project.write(f"src/{name}.txt", name)
    ok(project, "fresh", "steady", "made")
    project.write("src/f.txt", "f2")
    (project.root / "out" / "m.txt").unlink()
    r = ok(project, "fresh", "steady", "made")
    assert re.search(r"^done in \S+: 1 ok, 1 cached, 1 restored, \S+ saved by the cache$",
                     r.out, re.M), r.out


# ---------------------------------------------------------------- runner hash

HEX64 = re.compile(r"^[0-9a-f]{64}\n$")


def hash_of(project, task: str, *args: str, env=None) -> str:
    r = ok(project, "hash", task, *args, env=env)
    assert HEX64.match(r.out), r.out
    return r.out.strip()


def test_hash_prints_a_64_hex_digit_fingerprint(project):
    build_project(project, BUILD_AND_TEST)
    hash_of(project, "test")


def test_hash_is_stable_when_nothing_changes(project):
    build_project(project, BUILD_AND_TEST)
    first = hash_of(project, "test")
    assert hash_of(project, "test") == first
    os.utime(project.root / "src" / "a.py")
    assert hash_of(project, "test") == first


def test_hash_does_not_depend_on_whether_the_task_ran(project):
    build_project(project, BUILD_AND_TEST)
    before = hash_of(project, "build")
    ok(project, "build")
    assert hash_of(project, "build") == before


def test_hash_changes_when_an_input_changes(project):
    build_project(project, BUILD_AND_TEST)
    first = hash_of(project, "build")
    project.write("src/a.py", "A = 5\n")
    second = hash_of(project, "build")
    assert second != first
    project.write("src/a.py", "A = 1\n")
    assert hash_of(project, "build") == first


def test_hash_of_a_dependent_changes_when_its_deps_input_changes(project):
    build_project(project, BUILD_AND_TEST)
    first = hash_of(project, "test")
    project.write("src/a.py", "A = 5\n")
    assert hash_of(project, "test") != first


def test_hash_changes_with_an_argument_and_a_declared_env_value(project):
    build_project(project, BUILD_AND_TEST)
    first = hash_of(project, "test")
    assert hash_of(project, "test", "--k=x") != first
    assert hash_of(project, "test", env=clean_env(PYTEST_ADDOPTS="-x")) != first


# ---------------------------------------------------------------- outputs that are not files
# A symbolic link among the outputs is stored and restored as a link (its target text,
# as the Remote Execution API's output_symlinks are), a declared directory the task
# left empty is restored, and neither makes the next run restore anything.

LINKS = """
    @task(inputs=["src/*.txt"], outputs=["out/*", "out/empty"])
    def build():
        ran("build")
        out = ROOT / "out"
        (out / "sub").mkdir(parents=True, exist_ok=True)
        (out / "empty").mkdir(exist_ok=True)
        (out / "data.txt").write_text((ROOT / "src" / "in.txt").read_text())
        os.symlink("data.txt", out / "latest")         # to a file
        os.symlink("sub", out / "dir-link")            # to a directory
        os.symlink("made-later.txt", out / "pending")  # to nothing (yet)
"""


def links_project(project) -> None:
    tasks(project, LINKS)
    project.write("src/in.txt", "content\n")


def out_tree(project) -> dict[str, object]:
    """Every entry under out/: a file's bytes, a link's target, or "dir"."""
    found: dict[str, object] = {}
    for dirpath, dirnames, filenames in os.walk(project.root / "out"):
        for n in dirnames + filenames:
            p = Path(dirpath) / n
            rel = p.relative_to(project.root).as_posix()
            found[rel] = (("link", os.readlink(p)) if p.is_symlink()
                          else "dir" if p.is_dir() else p.read_bytes())
    return found


LINKS_TREE = {
    "out/data.txt": b"content\n",
    "out/latest": ("link", "data.txt"),
    "out/dir-link": ("link", "sub"),
    "out/pending": ("link", "made-later.txt"),
    "out/sub": "dir",
    "out/empty": "dir",
}


def test_symlink_outputs_stay_links_and_the_next_run_is_a_hit(project):
    links_project(project)
    ok(project, "build")
    assert out_tree(project) == LINKS_TREE
    for _ in range(2):
        r = ok(project, "build")
        assert "restored" not in r.out, r
        assert runs(project, "build") == 1
        assert out_tree(project) == LINKS_TREE


def test_symlink_outputs_and_an_empty_directory_are_restored(project):
    links_project(project)
    ok(project, "build")
    shutil.rmtree(project.root / "out")
    r = ok(project, "build")
    assert "restored build" in r.out, r
    assert runs(project, "build") == 1
    assert out_tree(project) == {k: v for k, v in LINKS_TREE.items() if k != "out/sub"}
    r = ok(project, "build")  # and the restored links are a hit
    assert "restored" not in r.out, r


def test_a_symlink_output_with_a_changed_target_is_restored(project):
    links_project(project)
    ok(project, "build")
    latest = project.root / "out" / "latest"
    latest.unlink()
    latest.symlink_to("../src/in.txt")  # same content, another target
    r = ok(project, "build")
    assert "restored build" in r.out, r
    assert os.readlink(latest) == "data.txt"
    assert runs(project, "build") == 1


def test_a_symlink_output_replaced_by_a_copy_of_its_target_is_restored(project):
    links_project(project)
    ok(project, "build")
    latest = project.root / "out" / "latest"
    latest.unlink()
    latest.write_text("content\n")
    ok(project, "build")
    assert latest.is_symlink() and os.readlink(latest) == "data.txt"
    assert runs(project, "build") == 1


def test_a_symlink_output_comes_back_from_an_earlier_state(project):
    tasks(project, """
        @task(inputs=["src/*.txt"], outputs=["out/current"])
        def build():
            ran("build")
            (ROOT / "out").mkdir(exist_ok=True)
            os.symlink((ROOT / "src" / "which.txt").read_text().strip(), ROOT / "out" / "current")
    """)
    project.write("src/which.txt", "one\n")
    ok(project, "build")
    project.write("src/which.txt", "two\n")
    ok(project, "build")
    assert os.readlink(project.root / "out" / "current") == "two"
    project.write("src/which.txt", "one\n")
    ok(project, "build")
    assert os.readlink(project.root / "out" / "current") == "one"
    assert runs(project, "build") == 2


@pytest.mark.parametrize("target", ["/etc/passwd", "../../outside", "../.git/config"])
def test_a_symlink_output_that_leaves_the_project_is_not_cached(project, target):
    tasks(project, f"""
        @task(inputs=["src/*.txt"], outputs=["out/*"])
        def build():
            ran("build")
            (ROOT / "out").mkdir(exist_ok=True)
            os.symlink({target!r}, ROOT / "out" / "link")
    """)
    project.write("src/a.txt", "a\n")
    r = ok(project, "build")
    assert "out/link" in r.output and "not cached" in r.output, r
    ok(project, "build")
    assert runs(project, "build") == 2


def test_a_file_put_in_a_declared_empty_directory_is_removed_by_a_restore(project):
    links_project(project)
    ok(project, "build")
    (project.root / "out" / "data.txt").unlink()
    (project.root / "out" / "empty" / "stray.txt").write_text("not made by build\n")
    ok(project, "build")
    assert runs(project, "build") == 1
    assert out_tree(project) == LINKS_TREE


def test_outputs_reached_through_a_symlinked_directory_are_not_cached(project):
    """A restore never writes through a link: such outputs are not stored, said once."""
    tasks(project, """
        @task(inputs=["src/*.txt"], outputs=["out/*.txt"])
        def build():
            ran("build")
            (ROOT / "out" / "x.txt").write_text("x")
    """)
    project.write("src/a.txt", "a\n")
    (project.root / "elsewhere").mkdir()
    (project.root / "out").symlink_to("elsewhere")
    r = ok(project, "build")
    assert "symbolic link (out)" in r.err and "not cached" in r.err, r
    ok(project, "build")
    assert runs(project, "build") == 2


# ---------------------------------------------------- declared outputs, unmatched inputs

def test_a_task_that_does_not_make_a_declared_output_fails_saying_which(project):
    tasks(project, """
        @task(inputs=["src/*.txt"], outputs=["dist/app.whl", "dist/app.txt"])
        def never_makes():
            ran("never-makes")
            (ROOT / "dist").mkdir(exist_ok=True)
            (ROOT / "dist" / "app.txt").write_text("made")
    """)
    project.write("src/a.txt", "a\n")
    r = project.run("never-makes")
    assert r.code == 1, r
    assert "the task did not make its declared output dist/app.whl" in r.err
    assert "app.txt" not in r.err.split("declared output", 1)[1].splitlines()[0]
    assert planned(dry(project, "never-makes"), "never-makes")[0] == "run"
    assert project.run("never-makes").code == 1
    assert runs(project, "never-makes") == 2


def test_an_output_pattern_that_matches_nothing_is_a_warning(project):
    tasks(project, """
        @task(inputs=["src/*.txt"], outputs=["dist/*.whl"])
        def build():
            ran("build")
    """)
    project.write("src/a.txt", "a\n")
    r = ok(project, "build")
    assert "warning: task 'build': output pattern 'dist/*.whl' matched no file" in r.err


UNMATCHED = """
    @task(inputs=["scr/*.py", "pyproject.toml"])
    def lint():
        ran("lint")
"""


def test_an_input_pattern_that_matches_nothing_is_warned_about_on_every_run(project):
    tasks(project, UNMATCHED)
    project.write("src/a.py", "A = 1\n")
    project.write("pyproject.toml", "[project]\nname = 'x'\n")
    for _ in range(3):  # the first run, then runs that find it up to date
        r = ok(project, "lint")
        warnings = [line for line in r.err.splitlines() if "warning" in line]
        assert warnings == ["runner: warning: task 'lint': input pattern 'scr/*.py' matches no "
                            "file"], r.err
    assert runs(project, "lint") == 1


def test_task_help_shows_how_many_files_each_input_pattern_matches(project):
    tasks(project, UNMATCHED)
    project.write("pyproject.toml", "[project]\nname = 'x'\n")
    r = ok(project, "lint", "--help")
    assert "inputs: scr/*.py (no file), pyproject.toml (1 file)" in r.out


# ---------------------------------------------------------------- why, after a failure

def test_after_a_failed_run_with_no_edit_dry_run_says_the_last_run_failed(project):
    tasks(project, FAILING)
    project.write("src/a.txt", "good\n")
    ok(project, "build")
    project.write("src/a.txt", "bad\n")
    assert planned(dry(project, "build"), "build") == ("run", "input src/a.txt changed")
    assert project.run("build").code == 1
    assert planned(dry(project, "build"), "build") == ("run", "the last run failed")
    r = project.run("-v", "build")
    assert "> build: the last run failed" in r.out


def test_a_task_that_only_ever_failed_says_what_changed_since(project):
    tasks(project, FAILING)
    project.write("src/a.txt", "bad\n")
    assert project.run("build").code == 1
    assert planned(dry(project, "build"), "build") == ("run", "the last run failed")
    project.write("src/b.txt", "b\n")
    assert planned(dry(project, "build"), "build") == ("run", "new file src/b.txt")
    edit = project.read("tasksfile.py").replace('"half done"', '"half way"')
    project.write("tasksfile.py", edit)
    assert planned(dry(project, "build"), "build") == (
        "run", "the task's code or definition changed; new file src/b.txt")


# ---------------------------------------------------------------- bounded reasons

MANY_OUTPUTS = """
    @task(inputs=["src/*.txt"], outputs=["out/*.txt"])
    def many():
        ran("many")
        (ROOT / "out").mkdir(exist_ok=True)
        for i in range(59):
            (ROOT / "out" / f"f{i:02d}.txt").write_text(str(i))
"""


def test_a_reason_names_the_first_few_and_counts_the_rest(project):
    tasks(project, MANY_OUTPUTS)
    project.write("src/a.txt", "a\n")
    ok(project, "many")
    shutil.rmtree(project.root / "out")
    action, reason = planned(dry(project, "many"), "many")
    assert action == "restore"
    assert reason == ("output out/f00.txt missing (restorable); output out/f01.txt missing "
                      "(restorable); output out/f02.txt missing (restorable); and 56 more")
    listed = dry(project, "-v", "many").out
    assert all(f"output out/f{i:02d}.txt missing (restorable)" in listed for i in range(59))
    r = ok(project, "many")
    assert r.output.count("and 56 more") == 1, r.output  # said once, not in the summary too
