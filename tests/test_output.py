"""What a run prints: task output (prefixed `NAME | ` only when tasks can overlap), the
summary, failures last, `-q`, `--log-format json`, and the live view that only a
terminal gets (SPEC §1 `sh`, §2 global options).
"""

from __future__ import annotations

import json
import os
import re
import select
import subprocess
import time

import pytest
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


# ---------------------------------------------------------------- the summary on a terminal

SEVERAL = """
    import time

    for i in range(5):
        def work():
            time.sleep(0.02)
        task(name=f"c{i}", inputs=["in.txt"])(work)

    @task(deps=[f"c{i}" for i in range(5)])
    def always():
        pass
"""


def summary_lines(text: str) -> list[str]:
    return [line for line in ANSI.sub("", text).replace("\r", "").splitlines()
            if re.match(r"\s*(done|failed|interrupted) in ", line)]


def test_the_summary_line_on_a_terminal_is_one_line(project):
    project.tasksfile(SEVERAL)
    project.write("in.txt", "x")
    assert project.run("always").code == 0
    code, text = run_in_pty(project, "always")
    assert code == 0, text
    [line] = summary_lines(text)
    assert re.fullmatch(r"done in \S+: 1 ok, 5 cached, \S+ saved by the cache\s*", line), text


def test_the_summary_line_after_ctrl_c_on_a_terminal_is_one_line(project):
    project.tasksfile(SEVERAL + """
    @task(deps=[always])
    def stopped():
        import os, signal
        os.kill(os.getpid(), signal.SIGINT)  # a Ctrl-C while it runs
        time.sleep(30)
    """)
    project.write("in.txt", "x")
    assert project.run("always").code == 0
    code, text = run_in_pty(project, "stopped")
    assert code == 130, text
    [line] = summary_lines(text)
    assert re.fullmatch(r"interrupted in \S+: 1 ok, 5 cached, 1 cancelled"
                        r"(, \S+ saved by the cache)?\s*", line), text


# ---------------------------------------------------------------- stdout and stderr

STREAMS = """
    @task
    def both():
        sh("sh talk.sh")  # the command line names neither line
"""


def streams_project(project) -> None:
    project.tasksfile(STREAMS)
    project.write("talk.sh", "echo to-stdout; echo to-stderr >&2\n")


def test_a_commands_stderr_goes_to_runners_stderr_and_its_stdout_to_stdout(project):
    streams_project(project)
    r = project.run("both")
    assert r.code == 0, r
    assert "to-stdout" in r.out.splitlines() and "to-stderr" not in r.out
    assert "to-stderr" in r.err.splitlines() and "to-stdout" not in r.err


def test_json_log_labels_each_line_with_the_stream_it_came_from(project):
    streams_project(project)
    r = project.run("--log-format", "json", "both")
    assert r.code == 0, r
    lines = {(rec["line"], rec["stream"]) for rec in map(json.loads, r.out.splitlines())
             if rec["event"] == "task_output"}
    assert lines == {("to-stdout", "stdout"), ("to-stderr", "stderr")}


def test_lines_of_the_two_streams_keep_their_order(project):
    # Each line is written once runner has written the one before: the order is
    # the commands', whatever the scheduling.
    project.tasksfile("""
        @task
        def talk():
            sh("echo one; until grep -q one log.txt; do sleep 0.01; done; "
               "echo two >&2; until grep -q two log.txt; do sleep 0.01; done; "
               "echo three; until grep -q three log.txt; do sleep 0.01; done; echo four >&2")
    """)
    with open(project.root / "log.txt", "w") as log:
        proc = subprocess.run(project.command("talk"), cwd=project.root, env=clean_env(),
                              stdout=log, stderr=log, timeout=60)
    assert proc.returncode == 0
    said = [line for line in project.read("log.txt").splitlines()
            if line in ("one", "two", "three", "four")]
    assert said == ["one", "two", "three", "four"]


def test_on_a_terminal_with_stderr_elsewhere_a_commands_stderr_goes_there(project):
    streams_project(project)
    master, slave = os.openpty()
    err = project.root / "err.txt"
    with open(err, "w") as err_file:
        proc = subprocess.Popen(project.command("both"), cwd=project.root,
                                env=clean_env(TERM="xterm-256color"),
                                stdin=slave, stdout=slave, stderr=err_file)
    os.close(slave)
    text = read_terminal(master, proc)
    assert proc.wait(timeout=30) == 0
    assert ANSI.search(text), "the live view"
    assert "to-stdout" in text and "to-stderr" not in text
    assert "to-stderr" in err.read_text().splitlines()


def read_terminal(master: int, proc: subprocess.Popen[bytes],
                  until: bytes | None = None, timeout: float = 30) -> str:
    """What the process wrote to the terminal: until it exits, or until `until` shows."""
    chunks: list[bytes] = []
    end = time.monotonic() + timeout
    try:
        while time.monotonic() < end:
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:
                    break
                if not data:
                    break
                chunks.append(data)
                if until is not None and until in b"".join(chunks):
                    break
            elif proc.poll() is not None:
                break
    finally:
        if until is None:
            os.close(master)
    return b"".join(chunks).decode("utf-8", errors="replace")


# ---------------------------------------------------------------- lines not ended yet

DOTS = """
    @task
    def dots():
        sh("sh dots.sh")
"""


def dots_project(project) -> None:
    """A command that writes the start of a line, then waits for `release` to end it
    (the command line itself does not show the text)."""
    project.tasksfile(DOTS)
    project.write("dots.sh", "printf 'test%s' 'ing..'; until [ -e release ]; do sleep 0.01; "
                  "done; echo ' passed'\n")


def read_until(fd: int, want: bytes, timeout: float = 20) -> bytes:
    """Read a pipe until `want` shows (or the deadline passes)."""
    got = b""
    end = time.monotonic() + timeout
    while want not in got and time.monotonic() < end:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            data = os.read(fd, 65536)
            if not data:
                break
            got += data
    return got


def test_a_line_not_ended_yet_is_shown_after_a_moment(project):
    dots_project(project)
    proc = project.popen("dots")
    try:
        seen = read_until(proc.stdout.fileno(), b"testing..")
        assert b"testing.." in seen, seen
        (project.root / "release").write_text("")
        rest = proc.stdout.read()
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    assert "testing.. passed" in (seen.decode() + rest).splitlines()


def test_the_live_view_shows_a_line_not_ended_yet(project):
    dots_project(project)
    master, slave = os.openpty()
    proc = subprocess.Popen(project.command("dots"), cwd=project.root,
                            env=clean_env(TERM="xterm-256color"),
                            stdin=slave, stdout=slave, stderr=slave)
    os.close(slave)
    try:
        shown = read_terminal(master, proc, until=b"testing..")
        assert "testing.." in shown, shown
        (project.root / "release").write_text("")
        rest = read_terminal(master, proc)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "testing.. passed" in ANSI.sub("", rest), rest


def test_json_log_keeps_output_lines_whole(project):
    project.tasksfile("""
        @task
        def slow_line():
            sh("printf 'half'; sleep 0.5; echo ' and the rest'")
    """)
    r = project.run("--log-format", "json", "slow-line")
    assert r.code == 0, r
    outputs = [rec for rec in map(json.loads, r.out.splitlines())
               if rec["event"] == "task_output"]
    assert [rec["line"] for rec in outputs] == ["half and the rest"]
    assert not any("partial" in rec for rec in outputs)


def test_print_with_flush_shows_a_line_not_ended_yet(project):
    project.tasksfile("""
        import os, time

        @task
        def progress():
            print("working", end="", flush=True)
            while not os.path.exists("release"):
                time.sleep(0.01)
            print(" done")
    """)
    proc = project.popen("progress")
    try:
        seen = read_until(proc.stdout.fileno(), b"working")
        assert b"working" in seen, seen
        (project.root / "release").write_text("")
        rest = proc.stdout.read()
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    assert "working done" in (seen.decode() + rest).splitlines()


# ---------------------------------------------------------------- failures

def test_a_python_exception_is_reported_without_an_exit_code(project):
    project.tasksfile("""
        @task
        def boom():
            raise ValueError("bad value")
    """)
    r = project.run("boom")
    assert r.code == 1, r
    assert "ValueError: bad value" in r.err
    assert "exit code" not in r.err and "exit 1" not in r.err, r.err


def test_a_commands_exit_code_is_said_once(project):
    project.tasksfile("""
        @task
        def broken():
            sh("exit 3")
    """)
    r = project.run("broken")
    assert r.code == 1, r
    assert "command failed with exit code 3: exit 3" in r.err
    assert "exit code: 3" not in r.err
    assert "FAILED broken (exit 3, " in r.err


AFTER_A_FAILURE = """
    @task
    def lint():
        raise TaskError("lint found problems")

    @task(inputs=["docs.txt"])
    def docs():
        pass

    @task(deps=[lint, docs])
    def check():
        pass
"""


@pytest.mark.parametrize("keep_going", [[], ["-k"]], ids=["stop", "keep-going"])
def test_after_a_failure_an_up_to_date_task_is_cached_and_the_rest_say_why(
        project, keep_going):
    project.tasksfile(AFTER_A_FAILURE)
    project.write("docs.txt", "x")
    assert project.run("docs").code == 0
    r = project.run("--log-format", "json", "-j", "1", *keep_going, "check")
    assert r.code == 1, r
    finished = {rec["task"]: rec for rec in map(json.loads, r.out.splitlines())
                if rec["event"] == "task_finished"}
    assert finished["lint"]["status"] == "failed"
    assert finished["docs"]["status"] == "cached"
    assert (finished["check"]["status"], finished["check"]["reason"]) == (
        "skipped", "not run: lint failed")
