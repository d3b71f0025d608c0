"""SPEC §2, the command line: --version, --help, --list, TASK --help, the default task,
did-you-mean, -n, init, `python -m runner` = `runner`, --log-format json, and the
read-only commands leaving the project untouched."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest
from conftest import REPO, clean_env

import runner

LISTED = """
    @task
    def zeta():
        \"\"\"Last in the alphabet.

        This second paragraph is not the summary.
        \"\"\"

    @task(aliases=["b", "mk"], default=True)
    def build(n: int = 2, fast: bool = False):
        \"\"\"Build everything.\"\"\"
        print(f"build n={n} fast={fast}")

    @task(name="docs:serve")
    def docs_serve():
        \"\"\"Serve the docs.\"\"\"

    @task
    def alpha():
        pass
"""


def task_lines(out: str) -> list[str]:
    """The indented lines of `--list`: one per task."""
    return [ln.strip() for ln in out.splitlines() if ln.startswith(" ")]


def tree(root) -> list[str]:
    """Every path under root, relative, sorted: to compare before and after."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


# ---------------------------------------------------------------- --version, --help

def test_version_prints_the_package_version(project):
    r = project.run("--version")
    assert r.code == 0, r
    assert r.out.strip() == f"runner {runner.__version__}"


def test_version_works_without_a_tasksfile(project):
    r = project.run("--version")
    assert r.code == 0, r


@pytest.mark.parametrize("flag", ["-h", "--help"])
def test_help_prints_usage_and_the_global_options(project, flag):
    r = project.run(flag)
    assert r.code == 0, r
    assert r.out.startswith("usage: runner")
    for option in ("--list", "--file", "--jobs", "--dry-run", "--keep-going", "--force",
                   "--log-format", "--version"):
        assert option in r.out, option


SUBCOMMANDS = ["graph", "hash", "watch", "history", "init", "ci", "ci github", "cache",
               "cache info", "cache clean", "cache prune"]


@pytest.mark.parametrize("flag", ["--help", "-h"])
@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_every_subcommand_help_prints_its_usage_and_does_nothing_else(project, command, flag):
    project.tasksfile(READ_ONLY_TASKS)
    project.write("helpers.py", 'VALUE = "built"\n')
    project.write("src/main.py", "print('hi')\n")
    assert project.run("build").code == 0  # a cache for `cache clean` to leave alone
    before = tree(project.root)
    r = project.run(*command.split(), flag, timeout=30)
    assert r.code == 0, r
    assert r.out.startswith(f"usage: runner {command}"), r.out
    assert r.err == ""
    assert tree(project.root) == before
    assert "1 cached" in project.run("build").out  # the cache is still there


@pytest.mark.parametrize("command", ["cache clean", "init", "graph", "watch"])
def test_subcommand_help_works_without_a_tasksfile(project, command):
    r = project.run(*command.split(), "--help", timeout=30)
    assert r.code == 0, r
    assert r.out.startswith(f"usage: runner {command}")
    assert list(project.root.iterdir()) == []


def test_help_before_a_subcommand_is_its_help(project):
    project.tasksfile(READ_ONLY_TASKS)
    project.write("helpers.py", 'VALUE = "built"\n')
    assert project.run("build").code == 0
    before = tree(project.root)
    r = project.run("--help", "cache", "clean")
    assert r.code == 0 and r.out.startswith("usage: runner cache clean"), r
    assert tree(project.root) == before


# ---------------------------------------------------------------- --list

def test_list_shows_the_tasks_sorted_by_name_with_namespaces_after(project):
    project.tasksfile(LISTED)
    r = project.run("--list")
    assert r.code == 0, r
    names = [ln.split()[0] for ln in task_lines(r.out)]
    assert names == ["alpha", "build", "zeta", "docs:serve"]


def test_list_short_flag_is_the_same_as_the_long_one(project):
    project.tasksfile(LISTED)
    assert project.run("-l").out == project.run("--list").out


def test_list_summary_is_the_first_docstring_line(project):
    project.tasksfile(LISTED)
    r = project.run("--list")
    zeta = next(ln for ln in task_lines(r.out) if ln.startswith("zeta"))
    assert "Last in the alphabet." in zeta
    assert "second paragraph" not in r.out


def test_list_marks_the_default_task(project):
    project.tasksfile(LISTED)
    lines = task_lines(project.run("--list").out)
    build = next(ln for ln in lines if ln.startswith("build"))
    assert "default" in build
    assert all("default" not in ln for ln in lines if not ln.startswith("build"))


def test_list_shows_aliases(project):
    project.tasksfile(LISTED)
    build = next(ln for ln in task_lines(project.run("--list").out) if ln.startswith("build"))
    after_summary = build.split("Build everything.", 1)[1]
    assert re.search(r"\bb\b", after_summary), build
    assert re.search(r"\bmk\b", after_summary), build


def test_list_json_describes_every_task(project):
    project.tasksfile(LISTED)
    r = project.run("--list", "--json")
    assert r.code == 0, r
    data = json.loads(r.out)
    tasks = {t["name"]: t for t in data["tasks"]}
    assert [t["name"] for t in data["tasks"]] == ["alpha", "build", "docs:serve", "zeta"]
    assert data["default"] == "build"
    assert tasks["build"]["summary"] == "Build everything."
    assert tasks["build"]["aliases"] == ["b", "mk"]
    assert tasks["build"]["default"] is True
    assert tasks["zeta"]["summary"] == "Last in the alphabet."
    params = {p["name"]: p for p in tasks["build"]["params"]}
    assert params["n"]["type"] == "int" and params["n"]["default"] == 2
    assert params["fast"]["type"] == "bool"


def test_list_runs_nothing(project):
    project.tasksfile("""
        @task(default=True)
        def build():
            open("ran.txt", "w").write("x")
    """)
    r = project.run("--list")
    assert r.code == 0, r
    assert not (project.root / "ran.txt").exists()


# ---------------------------------------------------------------- TASK --help

def test_task_help_shows_the_whole_docstring_and_the_options_with_defaults(project):
    project.tasksfile(LISTED)
    r = project.run("zeta", "--help")
    assert r.code == 0, r
    assert "Last in the alphabet." in r.out
    assert "This second paragraph is not the summary." in r.out
    r = project.run("build", "--help")
    assert r.code == 0, r
    assert "usage: runner build" in r.out
    assert "Build everything." in r.out
    n_line = next(ln for ln in r.out.splitlines() if ln.strip().startswith("--n"))
    assert "2" in n_line
    assert any(ln.strip().startswith("--fast") for ln in r.out.splitlines())
    assert "build n=" not in r.out  # nothing ran


def test_task_help_shows_the_docstring_without_its_source_indentation(project):
    project.tasksfile(LISTED)
    r = project.run("zeta", "--help")
    assert r.code == 0, r
    assert "\nThis second paragraph is not the summary.\n" in r.out, r.out


def test_task_help_by_alias_shows_the_task(project):
    project.tasksfile(LISTED)
    r = project.run("mk", "-h")
    assert r.code == 0, r
    assert "usage: runner build" in r.out


# ---------------------------------------------------------------- no arguments

def test_no_arguments_runs_the_default_task(project):
    project.tasksfile(LISTED)
    r = project.run()
    assert r.code == 0, r
    assert "build n=2 fast=False" in r.out


def test_no_arguments_without_a_default_task_lists_the_tasks(project):
    project.tasksfile("""
        @task
        def lint():
            \"\"\"Check the style.\"\"\"
            open("ran.txt", "w").write("x")
    """)
    r = project.run()
    assert r.code == 0, r
    assert "lint" in r.out and "Check the style." in r.out
    assert not (project.root / "ran.txt").exists()


# ---------------------------------------------------------------- mistakes

def test_unknown_task_is_exit_2_with_did_you_mean(project):
    project.tasksfile(LISTED)
    r = project.run("biuld")
    assert r.code == 2, r
    assert "'biuld'" in r.err
    assert "did you mean 'build'" in r.err
    assert "Traceback" not in r.err


def test_unknown_task_far_from_every_name_is_exit_2(project):
    project.tasksfile(LISTED)
    r = project.run("qqqqqqqq")
    assert r.code == 2, r
    assert "qqqqqqqq" in r.err


def test_unknown_global_option_is_exit_2_with_did_you_mean(project):
    project.tasksfile(LISTED)
    r = project.run("--lsit")
    assert r.code == 2, r
    assert "--lsit" in r.err
    assert "did you mean '--list'" in r.err
    assert "Traceback" not in r.err


SCOPES = """
    @task
    def test(k: str = "", verbose: bool = False):
        print(f"test k={k}")

    @task(deps=[test])
    def check():
        pass
"""


def test_a_typo_after_a_task_is_matched_against_that_tasks_options_first(project):
    project.tasksfile(SCOPES)
    r = project.run("test", "--verbos")
    assert r.code == 2, r
    assert "did you mean '--verbose', an option of task 'test'?" in r.err


def test_a_long_option_after_a_task_is_not_matched_to_a_short_global_one(project):
    project.tasksfile(SCOPES)
    r = project.run("check", "--k=x")
    assert r.code == 2, r
    assert "-k" not in r.err.replace("--k", "")  # not keep-going
    assert "--k is an option of task 'test'" in r.err


def test_a_word_far_from_the_tasks_options_suggests_no_global_option(project):
    project.tasksfile(SCOPES)
    r = project.run("test", "--nope")
    assert r.code == 2, r
    assert "unknown option --nope for task 'test'" in r.err
    assert "--no-cache" not in r.err


def test_a_global_option_suggested_after_a_task_says_it_is_runners(project):
    project.tasksfile(SCOPES)
    r = project.run("test", "--keep-goign")
    assert r.code == 2, r
    assert "did you mean '--keep-going', an option of runner itself?" in r.err


def test_a_task_name_spelled_with_underscores_runs_the_task(project):
    project.tasksfile("""
        @task
        def never_makes():
            print("made nothing")
    """)
    r = project.run("never_makes")
    assert r.code == 0, r
    assert "made nothing" in r.out
    assert "made nothing" in project.run("never-makes").out


@pytest.mark.parametrize("how", ["-j", "RUNNER_JOBS"])
@pytest.mark.parametrize("value", ["0", "-1", "x"])
def test_jobs_below_one_is_refused_the_same_way_by_flag_and_environment(project, how, value):
    project.tasksfile(SCOPES)
    if how == "-j":
        r = project.run("-j", value, "test")
    else:
        r = project.run("test", env=clean_env(RUNNER_JOBS=value))
    assert r.code == 2, r
    assert "whole number >= 1" in r.err
    assert "test k=" not in r.out


def test_bad_log_format_is_exit_2(project):
    project.tasksfile(LISTED)
    r = project.run("--log-format", "xml", "build")
    assert r.code == 2, r
    assert "xml" in r.err
    assert "build n=" not in r.out


def test_failing_task_is_exit_1_naming_the_task(project):
    project.tasksfile("""
        @task
        def broken():
            sh("exit 3")
    """)
    r = project.run("broken")
    assert r.code == 1, r
    assert "broken" in r.err


# ---------------------------------------------------------------- -n / --dry-run

DRY = """
    def touch(name):
        open(name + ".ran", "w").write("x")

    @task
    def fetch():
        touch("fetch")

    @task(deps=[fetch])
    def compile_():
        touch("compile")

    @task(name="package", deps=[compile_])
    def package():
        touch("package")
"""


@pytest.mark.parametrize("flag", ["-n", "--dry-run"])
def test_dry_run_prints_the_plan_in_order_and_runs_nothing(project, flag):
    project.tasksfile(DRY)
    r = project.run(flag, "package")
    assert r.code == 0, r
    names = {"fetch", "compile", "package"}
    planned = []
    for ln in r.out.splitlines():
        words = [w for w in ln.split() if w in names]
        if words and ln.startswith(" "):
            planned.append(words[0])
    assert planned == ["fetch", "compile", "package"], r.out
    assert not list(project.root.glob("*.ran"))


def test_dry_run_says_why_each_task_would_run(project):
    project.tasksfile(DRY)
    r = project.run("-n", "package")
    plan = [ln for ln in r.out.splitlines() if ln.startswith(" ")]
    assert len(plan) == 3
    for ln in plan:
        name = next(w for w in ln.split() if w in ("fetch", "compile", "package"))
        assert ln.split(name, 1)[1].strip(), f"no reason given: {ln!r}"


# ---------------------------------------------------------------- runner init

def test_init_writes_a_tasksfile_that_lists_and_runs(project):
    r = project.run("init")
    assert r.code == 0, r
    assert (project.root / "tasksfile.py").is_file()
    listed = project.run("--list")
    assert listed.code == 0, listed
    assert task_lines(listed.out)
    ran = project.run()
    assert ran.code == 0, ran


def test_init_in_an_empty_directory_writes_tasks_that_pass_there(project):
    assert project.run("init").code == 0
    for args in ([], ["check"], ["hello"]):
        r = project.run(*args)
        assert r.code == 0, (args, r)
    assert "hello, world" in project.run("hello").out


def test_init_in_a_project_uses_its_sources_tests_and_tools(project):
    project.write("pyproject.toml", """
        [project]
        name = "pkg"
        version = "0"

        [tool.ruff]
        line-length = 100

        [tool.mypy]
        strict = true

        [tool.pytest.ini_options]
        pythonpath = ["src"]
    """)
    project.write("src/pkg/__init__.py", "def add(a: int, b: int) -> int:\n    return a + b\n")
    project.write("tests/test_add.py",
                  "from pkg import add\n\n\ndef test_add() -> None:\n    assert add(1, 2) == 3\n")
    r = project.run("init")
    assert r.code == 0, r
    listed = project.run("--list", "--json")
    tasks = {t["name"]: t for t in json.loads(listed.out)["tasks"]}
    assert set(tasks) == {"test", "lint", "typecheck", "check"}
    assert json.loads(listed.out)["default"] == "check"
    assert set(tasks["check"]["deps"]) == {"test", "lint", "typecheck"}
    assert "src/**/*.py" in tasks["test"]["inputs"] and "tests/**/*.py" in tasks["test"]["inputs"]
    run = project.run("check", timeout=180)
    assert run.code == 0, run
    assert "1 passed" in run.out
    assert "3 cached" in project.run("check", timeout=60).out


def test_init_creates_a_gitignore_with_the_state_dir(project):
    r = project.run("init")
    assert r.code == 0, r
    lines = project.read(".gitignore").splitlines()
    assert ".runner/" in lines


def test_init_adds_the_state_dir_to_an_existing_gitignore_keeping_its_entries(project):
    project.write(".gitignore", "node_modules/\n*.pyc")  # no final newline
    r = project.run("init")
    assert r.code == 0, r
    lines = project.read(".gitignore").splitlines()
    assert lines == ["node_modules/", "*.pyc", ".runner/"]


def test_init_does_not_repeat_a_state_dir_entry_already_in_gitignore(project):
    project.write(".gitignore", "dist/\n.runner/\n")
    r = project.run("init")
    assert r.code == 0, r
    assert project.read(".gitignore") == "dist/\n.runner/\n"


def test_init_twice_keeps_a_single_gitignore_entry(project):
    project.run("init")
    project.run("init")
    lines = project.read(".gitignore").splitlines()
    assert lines.count(".runner/") == 1


def test_init_refuses_to_overwrite_an_existing_tasksfile(project):
    original = project.tasksfile(LISTED).read_text()
    r = project.run("init")
    assert r.code == 2, r
    assert "tasksfile.py" in r.err
    assert "Traceback" not in r.err
    assert project.read("tasksfile.py") == original


def test_init_with_an_argument_is_exit_2(project):
    r = project.run("init", "extra")
    assert r.code == 2, r
    assert not (project.root / "tasksfile.py").exists()


# ---------------------------------------------------------------- python -m runner = runner

SCRIPT = REPO / ".venv" / "bin" / "runner"


@pytest.mark.parametrize("args", [
    ["--version"], ["-h"], ["--list"], ["--list", "--json"], ["build", "--help"],
    ["-n", "build"], ["graph", "--format", "dot"], ["biuld"], ["--lsit"],
], ids=lambda a: " ".join(a))
def test_console_script_behaves_like_python_m_runner(project, args):
    script = SCRIPT if SCRIPT.exists() else shutil.which("runner")
    assert script, "the runner console script is not installed"
    project.tasksfile(LISTED)
    module = project.run(*args)
    proc = subprocess.run([str(script), *args], cwd=project.root, env=clean_env(),
                          capture_output=True, text=True, timeout=60)
    assert (proc.returncode, proc.stdout, proc.stderr) == (module.code, module.out, module.err)


# ---------------------------------------------------------------- --log-format json

JSON_TASKS = """
    @task
    def first():
        sh("echo hello from first")

    @task(deps=[first])
    def second():
        sh("echo hello from second")

    @task
    def broken():
        sh("echo about to fail; exit 3")
"""


def json_lines(out: str) -> list[dict]:
    events = []
    for line in out.splitlines():
        obj = json.loads(line)  # every stdout line is JSON
        assert isinstance(obj, dict), line
        events.append(obj)
    return events


def test_json_log_every_stdout_line_is_an_event_of_one_run(project):
    project.tasksfile(JSON_TASKS)
    r = project.run("--log-format", "json", "second")
    assert r.code == 0, r
    events = json_lines(r.out)
    assert events
    assert len({e["run_id"] for e in events}) == 1
    assert all(e["run_id"] for e in events)
    kinds = [e["event"] for e in events]
    assert kinds[0] == "run_started" and kinds[-1] == "run_finished"
    assert "task_started" in kinds


def test_json_log_task_finished_carries_task_status_duration_and_exit_code(project):
    project.tasksfile(JSON_TASKS)
    r = project.run("--log-format", "json", "second")
    finished = [e for e in json_lines(r.out) if e["event"] == "task_finished"]
    assert [e["task"] for e in finished] == ["first", "second"]
    for e in finished:
        assert e["status"] == "ok"
        assert isinstance(e["duration"], (int, float)) and e["duration"] >= 0
        assert e["exit_code"] == 0


def test_json_log_reports_a_failed_task_with_its_exit_code(project):
    project.tasksfile(JSON_TASKS)
    r = project.run("--log-format", "json", "broken")
    assert r.code == 1, r
    events = json_lines(r.out)
    finished = [e for e in events if e["event"] == "task_finished"]
    assert len(finished) == 1
    assert finished[0]["task"] == "broken"
    assert finished[0]["status"] == "failed"
    assert finished[0]["exit_code"] == 3
    assert events[-1]["event"] == "run_finished"


def test_json_log_carries_command_output_as_events(project):
    project.tasksfile(JSON_TASKS)
    r = project.run("--log-format", "json", "first")
    events = json_lines(r.out)
    assert any("hello from first" in json.dumps(e) for e in events
               if e["event"] not in ("run_started", "run_finished"))


def test_json_log_stays_json_when_a_task_prints(project):
    project.tasksfile("""
        @task
        def chatty():
            print("plain print from python")
    """)
    r = project.run("--log-format", "json", "chatty")
    assert r.code == 0, r
    events = json_lines(r.out)
    assert any("plain print from python" in json.dumps(e) for e in events)


def test_two_runs_have_different_run_ids(project):
    project.tasksfile(JSON_TASKS)
    one = json_lines(project.run("--log-format", "json", "first").out)[0]["run_id"]
    two = json_lines(project.run("--log-format", "json", "first").out)[0]["run_id"]
    assert one != two


# ---------------------------------------------------------------- read-only commands

READ_ONLY_TASKS = """
    import helpers

    @task(inputs=["src/*.py"], outputs=["dist/out.txt"])
    def build():
        \"\"\"Build it.\"\"\"
        import os
        os.makedirs("dist", exist_ok=True)
        open("dist/out.txt", "w").write(helpers.VALUE)

    @task(deps=[build], default=True)
    def ship():
        open("shipped.txt", "w").write("x")
"""


@pytest.mark.parametrize("args", [
    ["-l"], ["--list", "--json"], ["graph"], ["graph", "--format", "json"],
    ["graph", "ship", "--format", "mermaid"], ["-n"], ["-n", "ship"], ["--dry-run", "build"],
    ["--help"], ["ship", "--help"], ["--version"],
], ids=lambda a: " ".join(a))
def test_read_only_command_creates_nothing_in_the_project(project, args):
    project.tasksfile(READ_ONLY_TASKS)
    project.write("helpers.py", 'VALUE = "built"\n')
    project.write("src/main.py", "print('hi')\n")
    project.write("pyproject.toml", '[project]\nname = "demo"\n\n[tool.runner]\njobs = 2\n')
    before = tree(project.root)
    r = project.run(*args)
    assert r.code == 0, r
    assert tree(project.root) == before
    assert not (project.root / ".runner").exists()
