"""What a run prints: task output (prefixed `NAME | ` only when tasks can overlap), the
summary, failures last, `-q`, `--log-format json`, and the live view that only a
terminal gets (SPEC §1 `sh`, §2 global options).
"""

from __future__ import annotations

import json
import re

from conftest import clean_env, run_in_pty, run_merged

ANSI = re.compile(r"\x1b[\[\]()#;?]*[0-9;?]*[A-Za-z]")

TWO_INDEPENDENT = """
    @task
    def aa():
        sh("echo hello-from-aa")

    @task
    def bb():
        sh("echo hello-from-bb")

    @task(deps=[aa, bb])
    def both():
        pass
"""


def test_output_of_tasks_running_in_parallel_is_prefixed_with_the_task_name(project):
    project.tasksfile(TWO_INDEPENDENT)
    r = project.run("-j", "2", "both")
    assert r.code == 0, r
    lines = r.out.splitlines()
    for name in ("aa", "bb"):
        assert any(re.fullmatch(rf"{name}\s* \| hello-from-{name}", line) for line in lines), \
            lines
        assert f"hello-from-{name}" not in lines, "unprefixed output"


def test_output_is_not_prefixed_with_one_job(project):
    project.tasksfile(TWO_INDEPENDENT)
    r = project.run("-j", "1", "both")
    assert r.code == 0, r
    lines = r.out.splitlines()
    assert "hello-from-aa" in lines
    assert "hello-from-bb" in lines
    assert not any(" | " in line for line in lines), lines


def test_output_is_not_prefixed_when_the_tasks_form_a_chain(project):
    project.tasksfile("""
        @task
        def first():
            sh("echo hello-from-first")

        @task(deps=[first])
        def second():
            sh("echo hello-from-second")
    """)
    r = project.run("-j", "4", "second")
    assert r.code == 0, r
    lines = r.out.splitlines()
    assert "hello-from-first" in lines
    assert "hello-from-second" in lines
    assert not any(" | " in line for line in lines), lines


def test_quiet_shows_only_the_tasks_output(project):
    project.tasksfile(TWO_INDEPENDENT)
    r = project.run("-q", "-j", "1", "both")
    assert r.code == 0, r
    assert r.out.splitlines() == ["hello-from-aa", "hello-from-bb"]
    assert r.err == ""


def test_quiet_still_shows_failures(project):
    project.tasksfile("""
        @task
        def broken():
            sh("echo before-failing; exit 9")
    """)
    r = project.run("-q", "broken")
    assert r.code == 1, r
    assert "before-failing" in r.out.splitlines()
    assert "broken" in r.err
    assert "exit 9" in r.err


def test_the_summary_lists_each_tasks_status_and_duration(project):
    project.tasksfile("""
        @task
        def good():
            pass

        @task
        def bad():
            raise TaskError("nope")

        @task(deps=[bad])
        def blocked():
            pass

        @task(deps=[good, blocked])
        def all():
            pass
    """)
    r = project.run("-k", "-j", "1", "all")
    assert r.code == 1, r
    lines = r.out.splitlines()
    duration = r"\d+(\.\d+)?m?s|\d+m\d+(\.\d+)?s"
    for status, name in [("ok", "good"), ("FAILED", "bad")]:
        assert any(re.fullmatch(rf"\s*{status}\s+{name}\s+({duration})", line)
                   for line in lines), (status, name, lines)
    for name in ("blocked", "all"):
        assert any(re.match(rf"\s*skipped\s+{name}\b", line) for line in lines), lines


def test_failures_are_shown_last_with_the_command_and_its_exit_code(project):
    project.tasksfile("""
        @task
        def first():
            sh("echo about-to-fail; exit 7")

        @task
        def second():
            pass

        @task(deps=[first, second])
        def all():
            pass
    """)
    r = run_merged(project, "-k", "-j", "1", "all")
    assert r.code == 1, r
    lines = [line for line in r.out.splitlines() if line.strip()]
    summary_end = max(i for i, line in enumerate(lines) if re.match(r"\s*ok\s+second", line))
    tail = "\n".join(lines[summary_end + 1:])
    assert "first" in tail, r.out
    assert "echo about-to-fail; exit 7" in tail, r.out
    assert re.search(r"\b7\b", tail.replace("echo about-to-fail; exit 7", "")), \
        "the exit code, apart from the command's text"


def test_json_log_lines_carry_the_run_id_the_event_and_the_task(project):
    project.tasksfile(TWO_INDEPENDENT)
    r = project.run("--log-format", "json", "-j", "2", "both")
    assert r.code == 0, r
    records = [json.loads(line) for line in r.out.splitlines()]
    assert records
    assert len({rec["run_id"] for rec in records}) == 1
    assert all(rec["run_id"] and rec["event"] for rec in records)
    finished = {rec["task"]: rec for rec in records if rec["event"] == "task_finished"}
    assert set(finished) == {"aa", "bb", "both"}
    for rec in finished.values():
        assert isinstance(rec["duration"], (int, float))
        assert rec["exit_code"] == 0


def test_json_log_reports_a_failed_tasks_exit_code(project):
    project.tasksfile("""
        @task
        def broken():
            sh("exit 5")
    """)
    r = project.run("--log-format", "json", "broken")
    assert r.code == 1, r
    records = [json.loads(line) for line in r.out.splitlines()]
    finished = [rec for rec in records if rec["event"] == "task_finished"]
    assert len(finished) == 1
    assert finished[0]["task"] == "broken"
    assert finished[0]["exit_code"] == 5
    assert finished[0]["status"] == "failed"


def test_json_log_output_is_only_json(project):
    project.tasksfile(TWO_INDEPENDENT)
    r = project.run("--log-format", "json", "-j", "2", "both")
    assert r.code == 0, r
    for line in r.out.splitlines():
        json.loads(line)
    outputs = {rec["line"] for rec in map(json.loads, r.out.splitlines())
               if rec["event"] == "task_output"}
    assert outputs == {"hello-from-aa", "hello-from-bb"}


LIVE = """
    @task
    def compile_all():
        sh("echo compiled-it")
"""


def test_a_terminal_gets_the_live_view(project):
    project.tasksfile(LIVE)
    code, text = run_in_pty(project, "compile-all")
    assert code == 0, text
    assert ANSI.search(text), text
    assert "compile-all" in text
    assert "compiled-it" in text


def test_a_pipe_gets_plain_output_without_escape_sequences(project):
    project.tasksfile(LIVE)
    r = project.run("compile-all", env=clean_env(TERM="xterm-256color"))
    assert r.code == 0, r
    assert "\x1b" not in r.output
    assert "compiled-it" in r.out.splitlines()


def test_ci_gets_plain_output_even_on_a_terminal(project):
    project.tasksfile(LIVE)
    code, text = run_in_pty(project, "compile-all",
                            env=clean_env(TERM="xterm-256color", CI="1"))
    assert code == 0, text
    assert "\x1b" not in text
    lines = text.splitlines()
    assert "> compile-all" in lines, lines
    assert "compiled-it" in lines, lines
