"""SPEC §3: `[tool.runner]` in pyproject.toml, RUNNER_* variables over it, flags over
both. A bad value is exit 2 naming the key (and the pyproject line)."""

from __future__ import annotations

import json

import pytest
from conftest import clean_env


def line_of(path, text: str) -> int:
    """The number of the first line of `path` that contains `text`."""
    for no, line in enumerate(path.read_text().splitlines(), 1):
        if text in line:
            return no
    raise AssertionError(f"{text!r} not in {path}")


@pytest.fixture
def simple(project):
    """A project with one task, `noop`."""
    project.tasksfile("""
        @task
        def noop():
            pass
    """)
    return project


def jobs_of_run(project, *args: str, env: dict[str, str] | None = None) -> int:
    """The `jobs` the run_started event of `runner --log-format json ARGS` reports."""
    r = project.run("--log-format", "json", *args, env=env)
    assert r.code == 0, r
    started = [json.loads(line) for line in r.out.splitlines()
               if '"run_started"' in line]
    assert len(started) == 1, r.out
    return started[0]["jobs"]


# ---------------------------------------------------------------- wrong types

WRONG_TYPES = [
    # (table, key, a TOML value of the wrong type)
    ("tool.runner", "tasksfile", "1"),
    ("tool.runner", "jobs", '"4"'),
    ("tool.runner", "jobs", "-1"),
    ("tool.runner", "jobs", "true"),
    ("tool.runner", "cache_dir", "3"),
    ("tool.runner", "remote_cache", "false"),
    ("tool.runner", "global_inputs", '"uv.lock"'),
    ("tool.runner", "global_inputs", "[1, 2]"),
    ("tool.runner", "plugins", '"runner_docker"'),
    ("tool.runner.watch", "debounce_ms", '"50ms"'),
    ("tool.runner.watch", "kill_timeout", '"5s"'),
    ("tool.runner.watch", "ignore", '"*.log"'),
    ("tool.runner.watch", "clear", '"yes"'),
    ("tool.runner.github", "python-version", "3.12"),
    ("tool.runner.github", "install", "1"),
    ("tool.runner.github", "runs-on", "1"),
]


@pytest.mark.parametrize("table, key, value", WRONG_TYPES,
                         ids=[f"{t[len('tool.runner.'):] + '.' if t != 'tool.runner' else ''}"
                              f"{k}={v}" for t, k, v in WRONG_TYPES])
def test_wrong_type_is_exit_2_naming_the_key_and_the_pyproject_line(simple, table, key, value):
    py = simple.write("pyproject.toml", f"""\
        [project]
        name = "demo"

        [{table}]
        {key} = {value}
    """)
    r = simple.run("--list")
    assert r.code == 2, r
    assert f"{table}.{key}" in r.err
    assert f"pyproject.toml:{line_of(py, f'{key} = ')}" in r.err
    assert "Traceback" not in r.err


def test_wrong_type_under_a_dotted_key_names_the_full_key(simple):
    simple.write("pyproject.toml", """\
        [tool.runner]
        watch.debounce_ms = "slow"
    """)
    r = simple.run("--list")
    assert r.code == 2, r
    assert "tool.runner.watch.debounce_ms" in r.err


def test_table_given_as_a_value_is_exit_2_naming_it(simple):
    simple.write("pyproject.toml", "[tool.runner]\nwatch = 1\n")
    r = simple.run("--list")
    assert r.code == 2, r
    assert "tool.runner.watch" in r.err


def test_valid_settings_are_accepted(simple):
    simple.write("pyproject.toml", """\
        [project]
        name = "demo"

        [tool.runner]
        jobs = 2
        cache_dir = ".cache/runner"
        remote_cache = ""
        global_inputs = ["uv.lock"]
        plugins = []

        [tool.runner.watch]
        debounce_ms = 100
        kill_timeout = 2.5
        ignore = ["*.log"]
        clear = true

        [tool.runner.github]
        python-version = "3.12"
        install = "pip install -e ."
        runs-on = ["ubuntu-latest", "macos-latest"]
        on = { push = { branches = ["main"] } }
    """)
    r = simple.run("--list")
    assert r.code == 0, r
    assert "noop" in r.out


# ---------------------------------------------------------------- unknown keys

def test_unknown_key_is_exit_2_with_did_you_mean(simple):
    py = simple.write("pyproject.toml", "[tool.runner]\ncache_dri = \".runner\"\n")
    r = simple.run("--list")
    assert r.code == 2, r
    assert "tool.runner.cache_dri" in r.err
    assert "did you mean 'cache_dir'" in r.err
    assert f"pyproject.toml:{line_of(py, 'cache_dri')}" in r.err
    assert "Traceback" not in r.err


def test_unknown_key_in_the_watch_table_is_exit_2_with_did_you_mean(simple):
    simple.write("pyproject.toml", "[tool.runner.watch]\ndebounce = 100\n")
    r = simple.run("--list")
    assert r.code == 2, r
    assert "tool.runner.watch.debounce" in r.err
    assert "did you mean 'debounce_ms'" in r.err


def test_unknown_key_in_the_github_table_is_exit_2(simple):
    simple.write("pyproject.toml", "[tool.runner.github]\npython_version = \"3.12\"\n")
    r = simple.run("--list")
    assert r.code == 2, r
    assert "tool.runner.github.python_version" in r.err
    assert "did you mean 'python-version'" in r.err


def test_other_tools_tables_are_left_alone(simple):
    simple.write("pyproject.toml", """\
        [tool.ruff]
        line-length = 100

        [tool.runnerx]
        anything = 1
    """)
    r = simple.run("--list")
    assert r.code == 0, r


def test_invalid_toml_is_exit_2_naming_pyproject_toml(simple):
    simple.write("pyproject.toml", "[project]\nname = \"demo\"\n\n[tool.runner\njobs = 2\n")
    r = simple.run("--list")
    assert r.code == 2, r
    assert "pyproject.toml:4" in r.err
    assert "Traceback" not in r.err


# ---------------------------------------------------------------- RUNNER_* variables

def test_non_numeric_runner_jobs_is_exit_2_naming_the_variable(simple):
    r = simple.run("--list", env=clean_env(RUNNER_JOBS="abc"))
    assert r.code == 2, r
    assert "RUNNER_JOBS" in r.err
    assert "abc" in r.err
    assert "Traceback" not in r.err


def test_bad_watch_variable_is_exit_2_naming_the_variable(simple):
    r = simple.run("--list", env=clean_env(RUNNER_WATCH_DEBOUNCE_MS="soon"))
    assert r.code == 2, r
    assert "RUNNER_WATCH_DEBOUNCE_MS" in r.err


def test_github_actions_runner_variables_are_ignored(simple):
    env = clean_env(RUNNER_OS="Linux", RUNNER_TEMP="/home/runner/work/_temp",
                    RUNNER_ARCH="X64", RUNNER_NAME="GitHub Actions 2",
                    RUNNER_TOOL_CACHE="/opt/hostedtoolcache", RUNNER_ENVIRONMENT="github-hosted",
                    RUNNER_WORKSPACE="/home/runner/work/demo", RUNNER_DEBUG="1")
    r = simple.run("noop", env=env)
    assert r.code == 0, r
    assert "error" not in r.err


def test_jobs_setting_in_pyproject_is_used(simple):
    simple.write("pyproject.toml", "[tool.runner]\njobs = 5\n")
    assert jobs_of_run(simple, "noop") == 5


def test_runner_jobs_variable_overrides_the_pyproject_setting(simple):
    simple.write("pyproject.toml", "[tool.runner]\njobs = 5\n")
    assert jobs_of_run(simple, "noop", env=clean_env(RUNNER_JOBS="3")) == 3


def test_jobs_flag_overrides_the_runner_jobs_variable(simple):
    simple.write("pyproject.toml", "[tool.runner]\njobs = 5\n")
    assert jobs_of_run(simple, "-j", "2", "noop", env=clean_env(RUNNER_JOBS="3")) == 2


def test_jobs_flag_after_the_task_overrides_the_variable_too(simple):
    assert jobs_of_run(simple, "noop", "--jobs=7", env=clean_env(RUNNER_JOBS="3")) == 7


@pytest.mark.parametrize("value", ["0", "x", "-2"])
def test_bad_jobs_flag_is_exit_2(simple, value):
    r = simple.run("-j", value, "noop")
    assert r.code == 2, r
    assert "-j" in r.err
    assert "Traceback" not in r.err


def test_one_job_runs_independent_tasks_one_after_another(project):
    project.tasksfile("""
        import time

        def log(line):
            with open("log.txt", "a") as f:
                f.write(line + "\\n")

        @task
        def a():
            log("start a"); time.sleep(0.3); log("end a")

        @task
        def b():
            log("start b"); time.sleep(0.3); log("end b")

        @task(deps=[a, b])
        def both():
            pass
    """)
    r = project.run("both", env=clean_env(RUNNER_JOBS="1"))
    assert r.code == 0, r
    lines = (project.root / "log.txt").read_text().splitlines()
    # each task ends before the other starts: never interleaved
    assert lines in (["start a", "end a", "start b", "end b"],
                     ["start b", "end b", "start a", "end a"]), lines
