"""`sh()`: how a task runs a command (SPEC §1, the `sh(...)` paragraph).

Each test runs runner as a user would, on a tasksfile whose task calls `sh` and records
what it observed in files the test then reads.
"""

from __future__ import annotations

import re

from conftest import LineReader, no_process_left, poll, processes_with_arg, stop


def test_a_string_command_goes_through_the_shell(project):
    project.tasksfile("""
        @task
        def t():
            sh("echo one && echo two | tr a-z A-Z")
    """)
    r = project.run("t")
    assert r.code == 0, r
    assert "one" in r.out.splitlines()
    assert "TWO" in r.out.splitlines()


def test_a_list_command_does_not_go_through_the_shell(project):
    project.tasksfile("""
        @task
        def t():
            sh(["echo", "$HOME", "a && b", "*"])
    """)
    r = project.run("t")
    assert r.code == 0, r
    assert "$HOME a && b *" in r.out.splitlines()


def test_each_command_runs_in_a_process_group_and_session_of_its_own(project):
    project.tasksfile("""
        import os
        from pathlib import Path

        @task
        def t():
            me = f"{os.getpgid(0)} {os.getsid(0)}"
            Path("runner.txt").write_text(me)
            for name in ("first.txt", "second.txt"):
                sh(f"echo $$ $(ps -o pgid= -p $$) $(ps -o sid= -p $$) > {name}")
    """)
    r = project.run("t")
    assert r.code == 0, r
    runner_pgid, runner_sid = project.read("runner.txt").split()
    groups = []
    for name in ("first.txt", "second.txt"):
        pid, pgid, sid = project.read(name).split()
        assert pgid == pid, "the command leads its own process group"
        assert sid == pid, "the command leads its own session"
        assert pgid != runner_pgid
        assert sid != runner_sid
        groups.append(pgid)
    assert groups[0] != groups[1], "every command gets a group of its own"


def test_output_is_streamed_line_by_line_while_the_command_runs(project):
    # The command cannot finish before the test creates `go`, and the test creates it
    # only after it has read the first line from runner's stdout.
    project.tasksfile("""
        @task
        def t():
            sh("echo first-line; while [ ! -e go ]; do sleep 0.05; done; echo second-line")
    """)
    proc = project.popen("t")
    try:
        reader = LineReader(proc.stdout)
        reader.wait_for(lambda line: line == "first-line\n")
        assert proc.poll() is None
        assert "second-line\n" not in reader.lines
        project.write("go")
        reader.wait_for(lambda line: line == "second-line\n")
        assert proc.wait(timeout=30) == 0
    finally:
        stop(proc)


def test_capture_returns_stdout_exactly_with_the_exit_code(project):
    project.tasksfile("""
        from pathlib import Path

        @task
        def t():
            out = sh("printf 'alpha\\\\n  beta  \\\\n'", capture=True)
            Path("captured.txt").write_text(repr(str(out)) + " " + str(out.exit_code))
    """)
    r = project.run("t")
    assert r.code == 0, r
    assert project.read("captured.txt") == "'alpha\\n  beta  \\n' 0"


def test_captured_output_is_returned_instead_of_printed(project):
    project.tasksfile("""
        @task
        def t():
            sh("echo captured-text; echo streamed-error >&2", capture=True)
    """)
    r = project.run("t")
    assert r.code == 0, r
    shown = r.output.splitlines()
    assert "captured-text" not in shown
    assert "streamed-error" in shown, "standard error is still shown"


def test_check_false_returns_the_exit_code_without_raising(project):
    project.tasksfile("""
        from pathlib import Path

        @task
        def t():
            result = sh("exit 3", check=False)
            Path("code.txt").write_text(str(result.exit_code))
    """)
    r = project.run("t")
    assert r.code == 0, r
    assert project.read("code.txt") == "3"


def test_a_failing_command_raises_task_error_with_its_exit_code(project):
    project.tasksfile("""
        from pathlib import Path

        @task
        def t():
            try:
                sh("exit 7")
            except TaskError as e:
                Path("code.txt").write_text(str(e.exit_code))
    """)
    r = project.run("t")
    assert r.code == 0, r
    assert project.read("code.txt") == "7"


def test_a_failing_command_fails_the_task(project):
    project.tasksfile("""
        @task
        def t():
            sh("exit 7")
    """)
    r = project.run("t")
    assert r.code == 1, r
    assert "FAILED t" in r.output


def test_env_adds_variables_to_the_inherited_environment(project):
    project.tasksfile("""
        from pathlib import Path

        @task
        def t():
            Path("env.txt").write_text(sh('echo "$ADDED/$INHERITED"', capture=True,
                                          env={"ADDED": "new-value"}))
    """)
    from conftest import clean_env

    r = project.run("t", env=clean_env(INHERITED="kept-value"))
    assert r.code == 0, r
    assert project.read("env.txt") == "new-value/kept-value\n"


def test_cwd_runs_the_command_in_that_directory(project):
    project.write("sub/marker-file")
    project.tasksfile("""
        from pathlib import Path

        @task
        def t():
            Path("cwd.txt").write_text(sh("pwd -P; ls", capture=True, cwd="sub"))
    """)
    r = project.run("t")
    assert r.code == 0, r
    lines = project.read("cwd.txt").splitlines()
    assert lines[0] == str((project.root / "sub").resolve())
    assert "marker-file" in lines


def test_commands_run_in_the_project_root_when_runner_starts_in_a_subdirectory(project):
    project.write("deep/er/.keep")
    project.tasksfile("""
        from pathlib import Path
        HERE = Path(__file__).resolve().parent

        @task
        def t():
            (HERE / "cwd.txt").write_text(sh("pwd -P", capture=True))
    """)
    r = project.run("t", cwd=project.root / "deep" / "er")
    assert r.code == 0, r
    assert project.read("cwd.txt").strip() == str(project.root.resolve())


def test_relative_cwd_is_relative_to_the_project_root_from_a_subdirectory(project):
    project.write("sub/.keep")
    project.write("elsewhere/.keep")
    project.tasksfile("""
        from pathlib import Path
        HERE = Path(__file__).resolve().parent

        @task
        def t():
            (HERE / "cwd.txt").write_text(sh("pwd -P", capture=True, cwd="sub"))
    """)
    r = project.run("t", cwd=project.root / "elsewhere")
    assert r.code == 0, r
    assert project.read("cwd.txt").strip() == str((project.root / "sub").resolve())


def test_sh_timeout_kills_the_command_and_fails_the_task(project, marker):
    m = marker()
    project.tasksfile(f"""
        @task
        def t():
            sh("sleep {m}", timeout=1)
    """)
    r = project.run("t")
    assert r.code == 1, r
    assert "timed out" in r.output
    assert no_process_left(m)


def test_sh_timeout_raises_task_error_the_task_can_catch(project, marker):
    m = marker()
    project.tasksfile(f"""
        from pathlib import Path

        @task
        def t():
            try:
                sh(["sleep", "{m}"], timeout=1)
            except TaskError as e:
                Path("caught.txt").write_text(str(e))
    """)
    r = project.run("t")
    assert r.code == 0, r
    assert "timed out" in project.read("caught.txt")
    assert no_process_left(m)


def test_sh_does_not_wait_for_a_background_process_holding_its_output(project, marker):
    m = marker()
    project.tasksfile(f"""
        from pathlib import Path

        @task
        def t():
            sh("sleep {m} & echo started-in-background")
            Path("returned.txt").write_text("yes")
    """)
    r = project.run("t", timeout=30)  # the background sleep lasts minutes
    assert r.code == 0, r
    assert project.read("returned.txt") == "yes"
    assert "started-in-background" in r.out


def test_a_missing_program_fails_the_task_with_a_clear_message(project):
    project.tasksfile("""
        @task
        def t():
            sh(["no-such-prog-4711", "--flag"])
    """)
    r = project.run("t")
    assert r.code == 1, r
    assert "no-such-prog-4711" in r.err
    assert re.search(r"not found|no such file", r.err, re.IGNORECASE), r.err
    assert "Traceback" not in r.output


def test_a_missing_cwd_is_reported_as_the_missing_directory(project):
    project.tasksfile("""
        @task
        def t():
            sh("pwd", cwd="no-such-dir-4713")
    """)
    r = project.run("t")
    assert r.code == 1, r
    assert "no-such-dir-4713" in r.err
    assert "Traceback" not in r.output


def test_a_missing_program_through_the_shell_fails_the_task(project):
    project.tasksfile("""
        @task
        def t():
            sh("no-such-prog-4712 --flag")
    """)
    r = project.run("t")
    assert r.code == 1, r
    assert "no-such-prog-4712" in r.output
    assert "127" in r.err


def test_the_process_probe_finds_a_live_sleep_by_its_marker(marker):
    # The tests above prove a process is gone with this probe: it must see one that is not.
    import subprocess

    m = marker()
    p = subprocess.Popen(["sleep", m])
    try:
        assert poll(lambda: p.pid in processes_with_arg(m), 5)
    finally:
        p.kill()
        p.wait()
    assert no_process_left(m)
