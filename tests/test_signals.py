"""Stopping a run: Ctrl-C and SIGTERM reach runner, which stops every process its tasks
started and exits 130; a command that ignores SIGTERM is SIGKILLed after the grace
period (`kill_timeout`); a second Ctrl-C kills at once; as a container's PID 1, runner
reaps orphans (SPEC §1 `sh`, §2 exit codes, §3 config).

Every process a test starts carries a unique marker (a sleep duration such as
`sleep 287.403911`, or `$0` of a shell loop) so the test can find it in /proc.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess

import pytest
from conftest import LineReader, clean_env, no_process_left, poll, processes_with_arg, stop


def start_and_wait(project, *args, markers, env=None):
    """Start runner and return once every marked process is running."""
    proc = project.popen(*args, env=env)
    try:
        ok = poll(lambda: all(processes_with_arg(m) for m in markers) or
                  proc.poll() is not None, 30)
    except BaseException:
        stop(proc)
        raise
    if not ok or proc.poll() is not None:
        out, err = proc.communicate(timeout=10) if proc.poll() is not None else ("", "")
        stop(proc)
        pytest.fail(f"the tasks' processes never all started: {out!r} {err!r}")
    return proc


def finish(proc, timeout=30):
    """Wait for runner to exit (it must, within a generous deadline); (code, out, err)."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        stop(proc)
        pytest.fail(f"runner did not exit within {timeout}s")
    return proc.returncode, out, err


def two_tasks_with_process_trees(project, marker):
    """Two parallel tasks: one with a background and a foreground sleep, one whose
    grandchild moved itself into a new session with setsid."""
    m = [marker() for _ in range(4)]
    project.tasksfile(f"""
        @task
        def servers():
            sh("sleep {m[0]} & sleep {m[1]}")

        @task
        def daemons():
            sh("sh -c 'setsid sleep {m[2]} & sleep {m[3]}'")

        @task(deps=[servers, daemons])
        def all():
            pass
    """)
    return m


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_to_runner_makes_it_exit_130(project, marker, sig):
    markers = two_tasks_with_process_trees(project, marker)
    proc = start_and_wait(project, "-j", "2", "all", markers=markers)
    try:
        proc.send_signal(sig)
        code, out, err = finish(proc)
        assert code == 130, (out, err)
    finally:
        stop(proc)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_to_runner_kills_every_process_its_tasks_started(project, marker, sig):
    markers = two_tasks_with_process_trees(project, marker)
    proc = start_and_wait(project, "-j", "2", "all", markers=markers)
    try:
        proc.send_signal(sig)
        finish(proc)
        assert no_process_left(*markers), {m: processes_with_arg(m) for m in markers}
    finally:
        stop(proc)


def test_an_interrupted_run_says_so_and_skips_what_did_not_start(project, marker):
    m = marker()
    project.tasksfile(f"""
        @task
        def first():
            sh("sleep {m}")

        @task(deps=[first])
        def second():
            sh("echo second-ran")
    """)
    proc = start_and_wait(project, "second", markers=[m])
    try:
        proc.send_signal(signal.SIGINT)
        code, out, err = finish(proc)
        assert code == 130, (out, err)
        assert "second-ran" not in out
        assert "interrupted" in out + err
    finally:
        stop(proc)


STUBBORN = """
    @task
    def stubborn():
        sh(["sh", "-c", "{script}", "stubborn-{m}"])
"""
IGNORES_TERM = "trap '' TERM; touch ready; while :; do sleep 0.1; done"
LOGS_TERM = "trap 'echo TERM >> got-term' TERM; touch ready; while :; do sleep 0.1; done"


def stubborn_project(project, marker, script):
    m = marker()
    project.tasksfile(STUBBORN.replace("{script}", script).replace("{m}", m))
    return f"stubborn-{m}"


def start_stubborn(project, name, env=None):
    proc = start_and_wait(project, "stubborn", markers=[name], env=env)
    if not poll(lambda: (project.root / "ready").exists(), 20):
        stop(proc)
        pytest.fail("the stubborn command never set its trap")
    return proc


def test_a_command_ignoring_sigterm_is_killed_after_the_grace_period(project, marker):
    project.write("pyproject.toml", """
        [tool.runner]
        kill_timeout = 1
    """)
    name = stubborn_project(project, marker, IGNORES_TERM)
    proc = start_stubborn(project, name)
    try:
        proc.send_signal(signal.SIGINT)
        code, out, err = finish(proc)
        assert code == 130, (out, err)
        assert no_process_left(name)
    finally:
        stop(proc)


def test_runner_kill_timeout_in_the_environment_overrides_the_config(project, marker):
    # With the config's 600 s grace the run could not end within the deadline.
    project.write("pyproject.toml", """
        [tool.runner]
        kill_timeout = 600
    """)
    name = stubborn_project(project, marker, IGNORES_TERM)
    proc = start_stubborn(project, name, env=clean_env(RUNNER_KILL_TIMEOUT="1"))
    try:
        proc.send_signal(signal.SIGTERM)
        code, out, err = finish(proc, timeout=30)
        assert code == 130, (out, err)
        assert no_process_left(name)
    finally:
        stop(proc)


def test_a_second_interrupt_kills_at_once(project, marker):
    # The grace period is 600 s: only the second Ctrl-C can end this run in time.
    project.write("pyproject.toml", """
        [tool.runner]
        kill_timeout = 600
    """)
    name = stubborn_project(project, marker, LOGS_TERM)
    proc = start_stubborn(project, name)
    try:
        proc.send_signal(signal.SIGINT)
        assert poll(lambda: (project.root / "got-term").exists(), 20), \
            "the first Ctrl-C did not send SIGTERM to the command"
        assert proc.poll() is None, "the command handles SIGTERM: runner must still wait"
        proc.send_signal(signal.SIGINT)
        code, out, err = finish(proc, timeout=30)
        assert code == 130, (out, err)
        assert no_process_left(name)
    finally:
        stop(proc)


def test_the_first_interrupt_says_what_runner_waits_for_and_how_not_to(project, marker):
    project.write("pyproject.toml", """
        [tool.runner]
        kill_timeout = 600
    """)
    name = stubborn_project(project, marker, IGNORES_TERM)
    proc = start_stubborn(project, name)
    try:
        proc.send_signal(signal.SIGINT)
        reader = LineReader(proc.stderr)
        line = reader.wait_for(lambda text: text.startswith("stopping:"), timeout=20)
        assert re.fullmatch(r"stopping: waiting up to 600s for \d+ process(es)? "
                            r"\(Ctrl-C again to kill now\)\n", line), line
        assert proc.poll() is None
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 130
        assert no_process_left(name)
    finally:
        stop(proc)


# ---------------------------------------------------------------- PID 1

def _unshare_works() -> bool:
    if shutil.which("unshare") is None:
        return False
    try:
        r = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", "true"],
                           capture_output=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return r.returncode == 0


needs_pid_namespace = pytest.mark.skipif(
    not _unshare_works(),
    reason="`unshare --pid --fork --mount-proc` is not permitted here (needs root or "
           "user namespaces), so runner cannot be started as PID 1")


def in_new_pid_namespace(project, *args):
    return ["unshare", "--pid", "--fork", "--mount-proc", *project.command(*args)]


ORPHANS = """
    import os
    from pathlib import Path
    from tasklib import wait_until

    def zombies():
        count = 0
        for pid in os.listdir("/proc"):
            try:
                stat = Path(f"/proc/{pid}/stat").read_bytes()
            except OSError:
                continue
            if pid.isdigit() and stat[stat.rfind(b")") + 2:].startswith(b"Z"):
                count += 1
        return count

    @task
    def orphans():
        Path("as-pid-1.txt").write_text(str(1 in (os.getpid(), os.getppid())))
        # The subshell exits at once: its child is orphaned, re-parented to PID 1, and
        # becomes a zombie when it ends unless PID 1 reaps it.
        sh("(sh -c 'sleep 0.2; touch orphan-done' &); true")
        wait_until(lambda: Path("orphan-done").exists())
        wait_until(lambda: zombies() == 0, timeout=5)
        Path("zombies.txt").write_text(str(zombies()))
"""


@needs_pid_namespace
def test_as_pid_1_runner_succeeds(project):
    from conftest import use_tasklib

    use_tasklib(project)
    project.tasksfile(ORPHANS)
    r = subprocess.run(in_new_pid_namespace(project, "orphans"), cwd=project.root,
                       env=clean_env(), capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, (r.stdout, r.stderr)


@needs_pid_namespace
def test_as_pid_1_runner_reaps_orphaned_processes(project):
    from conftest import use_tasklib

    use_tasklib(project)
    project.tasksfile(ORPHANS)
    r = subprocess.run(in_new_pid_namespace(project, "orphans"), cwd=project.root,
                       env=clean_env(), capture_output=True, text=True, timeout=60)
    assert project.read("as-pid-1.txt") == "True", "runner did not run as PID 1"
    assert project.read("zombies.txt") == "0", (r.stdout, r.stderr)


@needs_pid_namespace
def test_as_pid_1_runner_passes_sigterm_on_and_exits_130(project, marker):
    m = marker()
    project.tasksfile(f"""
        @task
        def serve():
            sh("sleep {m}")
    """)
    unshare = subprocess.Popen(in_new_pid_namespace(project, "serve"), cwd=project.root,
                               env=clean_env(), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        assert poll(lambda: processes_with_arg(m), 30), "the task never started"
        # The process that is PID 1 inside the namespace: unshare's child.
        children = f"/proc/{unshare.pid}/task/{unshare.pid}/children"
        with open(children) as f:
            init = int(f.read().split()[0])
        os.kill(init, signal.SIGTERM)
        out, err = unshare.communicate(timeout=30)
        assert unshare.returncode == 130, (out, err)
        assert no_process_left(m)
    finally:
        stop(unshare)
