"""SPEC §4: "The commands of a runner killed with SIGKILL do not outlive it." Commands
run in sessions of their own, out of reach of what the kernel does when runner dies; a
guardian process stops them (their groups, sessions and descendants, and whatever
carries runner's mark in its environment), and if the guardian died too, the next run
in the project stops them from the record runner left, before it runs or restores any
task. A pid that has since been given to another process is never taken for one that
was recorded (README, "State on disk").

Every process a test starts carries a unique marker (a sleep duration such as
`sleep 287.403911`, or `$0` of a shell loop) so the test can find it in /proc.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest
from conftest import (
    clean_env,
    descendants,
    no_process_left,
    pid_alive,
    poll,
    processes_with_arg,
    stop,
    use_tasklib,
)


def start_and_wait(project, *args, markers, ready=None):
    """Start runner; return once every marked process runs (and `ready()` holds)."""
    proc = project.popen(*args)
    ok = poll(lambda: (all(processes_with_arg(m) for m in markers)
                       and (ready is None or ready())) or proc.poll() is not None, 30)
    if not ok or proc.poll() is not None:
        out, err = proc.communicate(timeout=10) if proc.poll() is not None else ("", "")
        stop(proc)
        pytest.fail(f"the tasks' processes never all started: {out!r} {err!r}")
    return proc


def sigkill(proc: subprocess.Popen[str]) -> None:
    proc.kill()
    proc.communicate(timeout=30)


def guardians_of(pid: int) -> list[int]:
    """runner's guardian: its child that waits on the pipe (argv[1] 'runner-guardian'
    in /proc is `sh -c SCRIPT runner-guardian ...`)."""
    found = []
    for child in descendants(pid):
        try:
            with open(f"/proc/{child}/cmdline", "rb") as f:
                words = f.read().split(b"\0")
        except OSError:
            continue
        if b"runner-guardian" in words:
            found.append(child)
    return found


TREES = """
    @task
    def servers():
        sh("sleep {m0} & sleep {m1}")

    @task
    def daemons():
        # A grandchild that moved itself into a session of its own.
        sh("sh -c 'setsid sleep {m2} & sleep {m3}'")

    @task(deps=[servers, daemons])
    def all():
        pass
"""


@pytest.mark.parametrize("cache", [True, False], ids=["cache", "no-cache"])
def test_sigkill_of_runner_stops_its_commands_and_their_setsid_grandchildren(
        project, marker, cache):
    m = [marker() for _ in range(4)]
    project.tasksfile(TREES.format(m0=m[0], m1=m[1], m2=m[2], m3=m[3]))
    args = ["-j", "2", "all"] if cache else ["--no-cache", "-j", "2", "all"]
    proc = start_and_wait(project, *args, markers=m)
    try:
        sigkill(proc)
        assert no_process_left(*m, timeout=10), {x: processes_with_arg(x) for x in m}
    finally:
        stop(proc)
    if not cache:
        assert not (project.root / ".runner").exists()  # --no-cache writes no state


# A daemon that double-forks into a session of its own and ignores SIGTERM; its
# parent shell leaves at once, so it is nobody's descendant. The command that started
# it then waits. In the second run (no `hold` file) the task notes whether the daemon
# was still there when it started.
ESCAPES = """
    import os
    from pathlib import Path

    def running(word):
        for pid in os.listdir("/proc"):
            try:
                with open(f"/proc/{{pid}}/cmdline", "rb") as f:
                    if word.encode() in f.read().split(b"\\0"):
                        return True
            except OSError:
                pass
        return False

    @task(inputs=["src/*.txt"], outputs=["out.txt"])
    def build():
        if Path("hold").exists():
            sh("(setsid sh -c 'trap \\"\\" TERM; exec sleep {daemon}' &); sleep {waits}")
        Path("daemon-at-start.txt").write_text(str(running("{daemon}")))
        Path("out.txt").write_text("built")
"""


def test_the_next_run_stops_what_a_killed_runner_and_its_guardian_left(project, marker):
    daemon, waits = marker(), marker()
    project.tasksfile(ESCAPES.format(daemon=daemon, waits=waits))
    project.write("pyproject.toml", "[tool.runner]\nkill_timeout = 1\n")
    project.write("src/a.txt", "a")
    project.write("hold", "")
    proc = start_and_wait(project, "build", markers=[daemon, waits])
    try:
        for g in guardians_of(proc.pid):  # killed with it: what a kill -9 of both does
            os.kill(g, signal.SIGKILL)
        sigkill(proc)
        time.sleep(0.5)
        assert processes_with_arg(daemon), "the daemon should have outlived both"
        (project.root / "hold").unlink()
        r = project.run("build")
        assert r.code == 0, r
        assert project.read("daemon-at-start.txt") == "False", r
        assert no_process_left(daemon, waits), "the next run left them running"
        assert "left running by a runner that was killed" in r.err, r.err
        assert not list((project.root / ".runner" / "procs").iterdir())
    finally:
        stop(proc)


# The first run's command leaves a writer appending "old" to the output while the
# task goes on; the second run's command writes "new" lines for a while.
WRITER = """
    from pathlib import Path

    @task(inputs=["src/*.txt"], outputs=["out/log.txt"])
    def build():
        Path("out").mkdir(exist_ok=True)
        if Path("first").exists():
            sh("sh -c 'while :; do echo old >> out/log.txt; sleep 0.02; done' writer-{m} &"
               " sleep {m}")
        else:
            sh("for i in $(seq 30); do echo new >> out/log.txt; sleep 0.02; done")
"""


@pytest.mark.parametrize("guardian", [True, False], ids=["guardian", "no-guardian"])
def test_a_killed_runners_writer_cannot_corrupt_what_the_next_run_stores(
        project, marker, guardian):
    m = marker()
    project.tasksfile(WRITER.format(m=m))
    project.write("src/a.txt", "a")
    project.write("first", "")
    out = project.root / "out" / "log.txt"
    proc = start_and_wait(project, "build", markers=[m, f"writer-{m}"],
                          ready=lambda: out.exists() and "old" in out.read_text())
    try:
        if not guardian:
            for g in guardians_of(proc.pid):
                os.kill(g, signal.SIGKILL)
        sigkill(proc)
        (project.root / "first").unlink()
        r = project.run("build")  # at once: no time for anything to settle
        assert r.code == 0, r
        assert out.read_text() == "new\n" * 30, out.read_text()
        time.sleep(0.3)
        assert out.read_text() == "new\n" * 30, "something still writes to the output"
        out.unlink()
        r = project.run("build")  # restored from the cache: what was stored
        assert r.code == 0, r
        assert "restored" in r.out, r
        assert out.read_text() == "new\n" * 30
        assert no_process_left(m, f"writer-{m}")
    finally:
        stop(proc)


def test_a_recorded_pid_now_held_by_another_process_is_never_killed(project, marker):
    """A record names each command by pid and start time: a pid with another start
    time is another process (the system reuses pids), which is left alone."""
    use_tasklib(project)
    project.tasksfile("""
        @task(inputs=["src/*.txt"])
        def build():
            sh("true")
    """)
    project.write("src/a.txt", "a")
    bystander_word, recorded_word = marker(), marker()
    bystander = subprocess.Popen(["sleep", bystander_word], start_new_session=True)
    recorded = subprocess.Popen(["sleep", recorded_word], start_new_session=True)
    try:
        def start_of(pid: int) -> int:
            with open(f"/proc/{pid}/stat", "rb") as f:
                raw = f.read()
            return int(raw[raw.rfind(b")") + 2:].split()[19])

        procs = project.root / ".runner" / "procs"
        procs.mkdir(parents=True)
        # A runner that is gone (no process started at tick 1 is still this pid's).
        (procs / f"{os.getpid()}-1").write_text(
            "mark 0-1\n"
            f"{bystander.pid} {start_of(bystander.pid) + 1}\n"  # its pid, not its start
            f"{recorded.pid} {start_of(recorded.pid)}\n")       # the very process
        r = project.run("build")
        assert r.code == 0, r
        assert poll(lambda: not pid_alive(recorded.pid) or recorded.poll() is not None, 10)
        assert bystander.poll() is None and pid_alive(bystander.pid)
        assert not list(procs.iterdir())
    finally:
        for p in (bystander, recorded):
            if p.poll() is None:
                p.kill()
            p.wait()


def test_a_run_that_ends_normally_leaves_its_background_processes_alone(project, marker):
    """What a command leaves running on purpose (a daemon it starts) outlives a run
    that ends normally, as it always has: only a runner's death stops it."""
    m = marker()
    project.tasksfile(f"""
        @task
        def start():
            sh("setsid sleep {m} > /dev/null 2>&1 &")
    """)
    r = project.run("start")
    assert r.code == 0, r
    try:
        assert poll(lambda: processes_with_arg(m), 10)
        time.sleep(0.5)
        assert processes_with_arg(m), "the guardian stopped it though runner exited normally"
        procs = project.root / ".runner" / "procs"
        assert not procs.exists() or not list(procs.iterdir())  # the record went with it
    finally:
        for pid in processes_with_arg(m):
            os.kill(pid, signal.SIGKILL)


def test_a_run_of_python_only_tasks_starts_no_guardian(project):
    project.tasksfile("""
        import time

        @task
        def think():
            time.sleep(1)
    """)
    proc = project.popen("think", env=clean_env())
    try:
        assert poll(lambda: (project.root / ".runner").exists(), 20)
        time.sleep(0.3)
        assert not guardians_of(proc.pid)
        assert proc.wait(timeout=30) == 0
    finally:
        stop(proc)
    assert not (project.root / ".runner" / "procs").exists()
