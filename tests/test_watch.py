"""`runner watch TASK [--run CMD]`: re-run a task when its inputs change, and restart the
long-running process it feeds, air-style (SPEC §2; `[tool.runner.watch]`, §3).

Everything is real: a `runner watch` process, files written the way editors and git
write them, servers that are shell commands or small Python scripts, and signals. Each
server carries a unique marker (a sleep duration such as `sleep 287.403911`) so the test
can find it in /proc; each start appends its pid to server.log and each build appends a
line to builds.log. A test waits for watch's own lines (`[watch] watching ...` ends each
build) or polls files with generous deadlines; it never asserts on a duration.

To show that a change triggers nothing, a test makes it, then makes one change that does
trigger (a sentinel): exactly one build must follow, listing only the sentinel.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest
from conftest import (
    Project,
    Watching,
    clean_env,
    no_process_left,
    pid_alive,
    poll,
    processes_mentioning,
    processes_with_arg,
    watched_dirs,
    zombies_below,
)

PY = sys.executable

BUILD = '''
import os
import time


def log(line):
    with open("builds.log", "a") as f:
        f.write(line + "\\n")


@task(inputs=["src/**/*.py"], cache=False)
def build():
    """Build the app: log what src/app.py holds; a FAIL in it fails the build."""
    text = open("src/app.py").read().strip()
    log(text)
    if "FAIL" in text:
        raise TaskError("src/app.py: FAIL")
'''

# A build that logs its start and its end; a "slow" version waits for the file
# `release` (the marker lets the test find the waiting shell).
SLOW_BUILD = '''
def log(line):
    with open("builds.log", "a") as f:
        f.write(line + "\\n")


@task(inputs=["src/**/*.py"], cache=False)
def build():
    """Build the app; a slow version waits for `release`."""
    text = open("src/app.py").read().strip()
    log("start " + text)
    if "slow" in text:
        sh("while [ ! -e release ]; do sleep 0.02; done  # MARKER")
    log("done " + text)
'''

# A dev server stand-in: logs "PID ROLE started" and each signal it gets to server.log;
# on a signal it takes a moment to shut down, as a real server does.
SERVER_PY = '''
import os, signal, socket, subprocess, sys, time

marker, args = sys.argv[1], sys.argv[2:]
role = "worker" if "--worker" in args else "server"


def log(text):
    fd = os.open("server.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.write(fd, f"{os.getpid()} {role} {text}\\n".encode())
    os.close(fd)


def on_signal(signum, frame):
    log("got " + signal.Signals(signum).name)
    time.sleep(0.3)
    os._exit(0)


for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
    signal.signal(s, on_signal)
if "--port" in args:
    sock = socket.socket()
    try:
        sock.bind(("127.0.0.1", int(args[args.index("--port") + 1])))
    except OSError as e:
        log("cannot bind: " + str(e))
        sys.exit(1)
    sock.listen()
if "--with-worker" in args:
    subprocess.Popen([sys.executable, __file__, marker, "--worker"])
log("started")
time.sleep(float(marker))
'''


def app(project: Project, tasks: str = BUILD, marker: str = "") -> Project:
    """A project whose `build` task has inputs src/**/*.py; src/app.py holds v0."""
    project.tasksfile(tasks.replace("MARKER", marker))
    project.write("src/app.py", "v0\n")
    return project


def server(marker: str, before: str = "") -> str:
    """A --run command: `before`, then log its pid and become `sleep MARKER`."""
    return f"{before}echo $$ >> server.log; exec sleep {marker}"


def lines(project: Project, rel: str) -> list[str]:
    try:
        return project.read(rel).splitlines()
    except FileNotFoundError:
        return []


def builds(project: Project) -> list[str]:
    return lines(project, "builds.log")


def starts(project: Project) -> list[int]:
    """The pid of each server start, in order (server.log as a --run command writes it)."""
    return [int(x) for x in lines(project, "server.log")]


def server_logged(project: Project, text: str, n: int = 1) -> bool:
    """Do at least `n` lines of server.log (as server.py writes it) contain `text`?"""
    return sum(text in line for line in lines(project, "server.log")) >= n


def wait_for_starts(project: Project, n: int) -> list[int]:
    assert poll(lambda: len(starts(project)) >= n), f"server.log: {starts(project)}"
    return starts(project)


def daemon(marker: str) -> str:
    """A shell fragment starting a daemon: a grandchild of the server that leaves its
    session (setsid) and double-forks, then sleeps MARKER."""
    return (f'{PY} -c "import os, sys, time; os.setsid(); os.fork() and os._exit(0); '
            f'time.sleep(float(sys.argv[1]))" {marker} & ')


def daemons(marker: str, server_pid: int) -> list[int]:
    """The daemons of `daemon(marker)` that have left the server's session (which the
    server leads) and forked (so they lead no session either)."""
    found = []
    for pid in processes_with_arg(marker):
        try:
            sid = os.getsid(pid)
        except ProcessLookupError:
            continue
        if sid not in (pid, server_pid):
            found.append(pid)
    return found


def changed_lines(w: Watching) -> list[str]:
    return [line.split("[watch] changed: ", 1)[1] for line in w.lines_with("[watch] changed: ")]


def assert_only_the_sentinel_triggers(w: Watching, project: Project) -> None:
    """Change src/app.py (the sentinel): one build follows, the only re-run, listing only
    the sentinel."""
    project.write("src/app.py", "sentinel\n")
    w.wait_for("[watch] changed:")
    w.settle("builds.log")
    assert builds(project) == ["v0", "sentinel"]
    assert changed_lines(w) == ["src/app.py"], w.output


# ---------------------------------------------------------------- restarting the server


def test_a_change_restarts_the_server_with_a_new_pid(project, marker):
    m = marker()
    app(project)
    with Watching(project, "build", "--run", server(m)) as w:
        w.ready("", "src")
        [first] = wait_for_starts(project, 1)
        project.write("src/app.py", "v1\n")
        w.wait_for("[watch] watching", count=2)
        first_, second = wait_for_starts(project, 2)
        assert second != first
        assert poll(lambda: not pid_alive(first))
        assert processes_with_arg(m) == [second]
        assert builds(project) == ["v0", "v1"]
        assert poll(lambda: not zombies_below(w.pid)), zombies_below(w.pid)
        assert w.interrupt() == 130
    assert no_process_left(m)


def test_a_failed_build_keeps_the_old_server_until_the_next_good_build(project, marker):
    m = marker()
    app(project)
    with Watching(project, "build", "--run", server(m)) as w:
        w.ready("", "src")
        [first] = wait_for_starts(project, 1)
        project.write("src/app.py", "FAIL\n")
        w.wait_for("[watch] watching", count=2)
        w.wait_for("src/app.py: FAIL")  # the failure is printed (on stderr)
        assert starts(project) == [first]
        assert processes_with_arg(m) == [first]
        project.write("src/app.py", "v2\n")
        w.wait_for("[watch] watching", count=3)
        _, second = wait_for_starts(project, 2)
        assert poll(lambda: not pid_alive(first))
        assert processes_with_arg(m) == [second]
        assert w.interrupt() == 130
    assert no_process_left(m)


def test_a_service_task_is_restarted_after_each_good_build(project, marker):
    m = marker()
    app(project, BUILD + f'''

@task(deps=[build], service=True)
def serve():
    """The dev server."""
    sh("echo $$ >> server.log; exec sleep {m}")
''')
    with Watching(project, "serve") as w:
        w.ready("", "src")
        [first] = wait_for_starts(project, 1)
        project.write("src/app.py", "v1\n")
        _, second = wait_for_starts(project, 2)
        assert builds(project) == ["v0", "v1"]
        assert poll(lambda: not pid_alive(first))
        assert poll(lambda: processes_with_arg(m) == [second])
        assert w.interrupt() == 130
    assert no_process_left(m)


def test_twenty_rapid_changes_leave_one_server(project, marker):
    m = marker()
    app(project)
    with Watching(project, "build", "--run", server(m)) as w:
        w.ready("", "src")
        wait_for_starts(project, 1)
        for i in range(1, 21):  # builds and restarts overlap the next changes
            project.write("src/app.py", f"v{i}\n")
            time.sleep(0.03)
        # the last build saw the last change
        assert poll(lambda: builds(project)[-1:] == ["v20"], 30), (builds(project), w.output)
        w.settle("builds.log", "server.log")
        pids = starts(project)
        assert processes_with_arg(m) == [pids[-1]]
        assert not [p for p in pids[:-1] if pid_alive(p)]
        assert poll(lambda: not zombies_below(w.pid)), zombies_below(w.pid)
        assert w.interrupt() == 130
    assert no_process_left(m)


def test_a_grandchild_that_called_setsid_is_killed_on_restart(project, marker):
    m, g = marker(), marker()
    # The grandchild leaves the server's session and group and double-forks (a daemon).
    app(project)
    with Watching(project, "build", "--run", server(m, before=daemon(g))) as w:
        w.ready("", "src")
        [first] = wait_for_starts(project, 1)
        assert poll(lambda: len(daemons(g, first)) == 1)
        [old_daemon] = daemons(g, first)
        project.write("src/app.py", "v1\n")
        _, second = wait_for_starts(project, 2)
        assert poll(lambda: not pid_alive(old_daemon))
        assert poll(lambda: len(daemons(g, second)) == 1)  # the new server's own
        assert processes_with_arg(g) == daemons(g, second)
        assert w.interrupt() == 130
    assert not processes_mentioning(g) and not processes_mentioning(m)


def test_a_server_ignoring_sigterm_is_killed_after_kill_timeout_before_the_next_starts(
    project, marker
):
    m = marker()
    app(project)
    project.write("pyproject.toml", "[tool.runner.watch]\nkill_timeout = 1\n")
    # Each start records any earlier server still alive: there must be none.
    overlap = ("for p in $(cat server.log 2>/dev/null); do "
               "kill -0 $p 2>/dev/null && echo $p >> overlap.log; done; "
               'trap "" TERM; ')
    with Watching(project, "build", "--run", server(m, before=overlap)) as w:
        w.ready("", "src")
        [first] = wait_for_starts(project, 1)
        project.write("src/app.py", "v1\n")
        _, second = wait_for_starts(project, 2)
        assert not pid_alive(first)
        assert not (project.root / "overlap.log").exists()
        assert processes_with_arg(m) == [second]
        assert w.interrupt() == 130
    assert no_process_left(m)


@pytest.mark.parametrize("setting, expected", [("", "SIGTERM"), ('signal = "SIGINT"\n', "SIGINT")])
def test_a_restart_sends_the_configured_signal_to_the_servers_whole_group(
    project, marker, setting, expected
):
    m = marker()
    app(project)
    project.write("server.py", SERVER_PY)
    project.write("pyproject.toml", "[tool.runner.watch]\n" + setting)
    with Watching(project, "build", "--run", f"exec {PY} server.py {m} --with-worker") as w:
        w.ready("", "src")
        assert poll(lambda: server_logged(project, "started", 2))  # the server and its worker
        old = {x.split()[0] for x in lines(project, "server.log")}
        project.write("src/app.py", "v1\n")
        assert poll(lambda: server_logged(project, "started", 4))
        got = {x.split()[0] for x in lines(project, "server.log") if x.endswith(expected)}
        assert got >= old, lines(project, "server.log")  # the server and its worker
        assert w.interrupt() == 130
    assert no_process_left(m)


def test_a_restarted_server_finds_its_port_free(project, marker):
    m = marker()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app(project)
    project.write("server.py", SERVER_PY)  # it takes a moment to shut down
    with Watching(project, "build", "--run", f"exec {PY} server.py {m} --port {port}") as w:
        w.ready("", "src")
        assert poll(lambda: server_logged(project, "started"))
        for i in (1, 2):
            project.write("src/app.py", f"v{i}\n")
            assert poll(lambda n=i + 1: server_logged(project, "started", n)
                        or server_logged(project, "cannot bind"))
        assert not server_logged(project, "cannot bind"), project.read("server.log")
        assert len(processes_with_arg(m)) == 1
        assert w.interrupt() == 130
    assert no_process_left(m)


def test_a_server_that_exits_is_reported_with_its_code_and_waits_for_a_change(
    project, marker
):
    m = marker()
    app(project)
    once = "if [ -e once ]; then exec sleep " + m + "; fi; touch once; exit 3"
    with Watching(project, "build", "--run", "echo $$ >> server.log; " + once) as w:
        w.ready("", "src")
        [line] = w.wait_for("exited")
        assert "code 3" in line
        w.settle("server.log", quiet=0.5)
        assert len(starts(project)) == 1  # not restarted by itself
        assert poll(lambda: not zombies_below(w.pid)), zombies_below(w.pid)
        project.write("src/app.py", "v1\n")
        _, second = wait_for_starts(project, 2)
        assert poll(lambda: processes_with_arg(m) == [second])
        assert w.interrupt() == 130
    assert no_process_left(m)


def test_restart_on_exit_restarts_a_server_that_exits(project, marker):
    m = marker()
    app(project)
    once = "if [ -e once ]; then exec sleep " + m + "; fi; touch once; exit 3"
    with Watching(project, "build", "--run", "echo $$ >> server.log; " + once,
                  "--restart-on-exit") as w:
        w.ready("", "src")
        _, second = wait_for_starts(project, 2)
        assert poll(lambda: processes_with_arg(m) == [second])
        assert "code 3" in w.wait_for("exited")[0]
        assert builds(project) == ["v0"]  # no change, no build: only the process restarted
        assert w.interrupt() == 130
    assert no_process_left(m)


# ---------------------------------------------------------------- when to build


def test_a_burst_of_saves_is_one_rerun(project):
    app(project)
    for i in range(500):
        project.write(f"src/pkg{i // 50}/m{i}.py", "x = 0\n")
    # A long debounce, so that the pauses inside the burst stay well within it.
    project.write("pyproject.toml", "[tool.runner.watch]\ndebounce_ms = 1000\n")
    with Watching(project, "build") as w:
        w.ready("", "src", "src/pkg9")
        for i in range(500):  # a `git checkout` rewriting 500 files, pausing now and then
            (project.root / f"src/pkg{i // 50}/m{i}.py").write_text("x = 1\n")
            if i % 100 == 99:
                time.sleep(0.1)
        project.write("src/app.py", "v1\n")
        w.wait_for("[watch] changed:")
        w.settle("builds.log")
        assert builds(project) == ["v0", "v1"]
        assert len(changed_lines(w)) == 1
        assert w.interrupt() == 130


def test_changes_during_a_build_are_not_lost_one_more_run_follows(project, marker):
    app(project, SLOW_BUILD, marker())
    with Watching(project, "build") as w:
        w.ready("", "src")
        project.write("src/app.py", "slow v1\n")
        assert poll(lambda: "start slow v1" in builds(project))
        for text in ("v2\n", "v3\n"):  # two separate saves while the build runs
            project.write("src/app.py", text)
            time.sleep(0.4)
        project.write("release")
        w.settle("builds.log")
        assert builds(project) == [
            "start v0", "done v0", "start slow v1", "done slow v1", "start v3", "done v3"]
        assert w.interrupt() == 130


def test_the_run_after_a_busy_build_lists_what_changed_during_it(project, marker):
    app(project, SLOW_BUILD, marker())
    project.write("src/util.py", "u0\n")
    with Watching(project, "build") as w:
        w.ready("", "src")
        project.write("src/app.py", "slow v1\n")
        assert poll(lambda: "start slow v1" in builds(project))
        project.write("src/util.py", "u1\n")
        time.sleep(0.4)  # seen while the build runs
        project.write("release")
        w.settle("builds.log")
        assert changed_lines(w) == ["src/app.py", "src/util.py"]
        assert w.interrupt() == 130


def test_restart_build_cancels_the_running_build_and_runs_again(project, marker):
    m = marker()
    app(project, SLOW_BUILD, m)
    with Watching(project, "build", "--restart-build") as w:
        w.ready("", "src")
        project.write("src/app.py", "slow v1\n")
        assert poll(lambda: "start slow v1" in builds(project) and processes_mentioning(m))
        project.write("src/app.py", "v2\n")
        assert poll(lambda: "done v2" in builds(project))
        w.settle("builds.log")
        assert builds(project) == ["start v0", "done v0", "start slow v1", "start v2", "done v2"]
        assert not processes_mentioning(m)  # the cancelled build's command is gone
        assert w.interrupt() == 130


def test_a_save_that_changes_no_content_triggers_nothing(project):
    app(project)
    project.write("src/util.py", "u0\n")
    util = project.root / "src/util.py"
    with Watching(project, "build") as w:
        w.ready("", "src")
        os.utime(util)  # touch
        util.write_text("u0\n")  # an editor re-saving
        tmp = util.with_name("util.py.tmp")  # a checkout rewriting an identical file
        tmp.write_text("u0\n")
        os.replace(tmp, util)
        w.settle("builds.log", quiet=0.5)
        assert_only_the_sentinel_triggers(w, project)
        assert w.interrupt() == 130


def test_saves_by_rename_are_picked_up_each_once(project):
    app(project)
    path = project.root / "src/app.py"
    with Watching(project, "build") as w:
        w.ready("", "src")
        tmp = path.with_name("app.py.tmp")  # JetBrains, atomic writers: a new inode
        tmp.write_text("v1\n")
        os.replace(tmp, path)
        assert poll(lambda: builds(project)[-1:] == ["v1"])
        backup = path.with_name("app.py~")  # vim: move the old file aside, write, delete
        os.rename(path, backup)
        path.write_text("v2\n")
        backup.unlink()
        assert poll(lambda: builds(project)[-1:] == ["v2"])
        path.write_text("v3\n")  # and the new file is watched like the old one
        assert poll(lambda: builds(project)[-1:] == ["v3"])
        w.settle("builds.log")
        assert builds(project) == ["v0", "v1", "v2", "v3"]
        assert changed_lines(w) == ["src/app.py"] * 3
        assert w.interrupt() == 130


def test_a_new_directory_under_a_watched_root_is_watched(project):
    app(project)
    with Watching(project, "build") as w:
        w.ready("", "src")
        (project.root / "src/new").mkdir()
        assert poll(lambda: "src/new" in watched_dirs(w.pid, project.root))
        project.write("src/new/x.py", "x = 1\n")
        w.wait_for("[watch] watching", count=2)  # that re-run is over
        project.write("src/new/x.py", "x = 2\n")
        w.wait_for("[watch] changed:", count=2)
        assert changed_lines(w) == ["src/new/x.py"] * 2
        assert w.interrupt() == 130


def test_a_file_written_at_once_into_a_new_directory_triggers_a_build(project):
    app(project)
    with Watching(project, "build") as w:
        w.ready("", "src")
        project.write("src/new/deeper/x.py", "x = 1\n")  # mkdir -p, then write at once
        w.wait_for("[watch] watching", count=2)
        assert changed_lines(w) == ["src/new/deeper/x.py"]
        assert w.interrupt() == 130


def test_a_directory_that_arrives_with_files_in_it_triggers_a_build(project):
    app(project)
    project.write("incoming/deeper/x.py", "x = 1\n")  # not an input where it is
    with Watching(project, "build") as w:
        w.ready("", "src")
        os.rename(project.root / "incoming", project.root / "src/new")  # `mv`, a checkout
        w.wait_for("[watch] watching", count=2, timeout=10)
        assert changed_lines(w) == ["src/new/deeper/x.py"]
        project.write("src/new/deeper/x.py", "x = 2\n")  # and it is watched from now on
        w.wait_for("[watch] changed:", count=2)
        assert w.interrupt() == 130


def test_a_directory_of_inputs_removed_whole_triggers_a_build(project):
    app(project)
    project.write("src/sub/m.py", "x = 0\n")
    with Watching(project, "build") as w:
        w.ready("", "src", "src/sub")
        os.rename(project.root / "src/sub", project.root / "trash")  # moved out whole
        w.wait_for("[watch] watching", count=2)
        assert changed_lines(w) == ["src/sub/m.py"]
        assert w.interrupt() == 130


def test_a_directory_the_inputs_point_into_is_picked_up_when_it_is_created(project):
    project.tasksfile('''
        @task(inputs=["gen/**/*.py"], cache=False)
        def build():
            """Build from generated code."""
            with open("builds.log", "a") as f:
                f.write("build\\n")
    ''')
    with Watching(project, "build") as w:
        w.ready("")
        project.write("gen/api/client.py", "x = 1\n")  # gen/ did not exist
        w.wait_for("[watch] watching", count=2, timeout=10)
        assert changed_lines(w) == ["gen/api/client.py"]
        project.write("gen/api/client.py", "x = 2\n")
        w.wait_for("[watch] changed:", count=2, timeout=10)
        assert w.interrupt() == 130


# ---------------------------------------------------------------- what is watched


def test_only_the_directories_the_inputs_can_match_are_watched(project):
    app(project)
    for rel in (".venv/lib/python3/site-packages/pkg/m.py", "node_modules/a/b/index.js",
                "src_other/y.py", "docs/guide/index.md", "src/sub/m.py"):
        project.write(rel, "x = 0\n")
    with Watching(project, "build") as w:
        w.ready("", "src", "src/sub")
        # the root alone (for tasksfile.py and pyproject.toml), src/ and what is below it
        assert watched_dirs(w.pid, project.root) == {"", "src", "src/sub"}
        assert w.interrupt() == 130


def test_files_outside_the_inputs_trigger_nothing(project):
    app(project)
    with Watching(project, "build") as w:
        w.ready("", "src")
        project.write(".venv/lib/python3/site-packages/x.py", "x = 1\n")
        project.write("node_modules/a/index.js", "x\n")
        project.write("src_other/y.py", "x = 1\n")
        project.write("src/notes.txt", "not a .py file\n")
        project.write("README.md", "hello\n")
        w.settle("builds.log", quiet=0.5)
        assert_only_the_sentinel_triggers(w, project)
        assert w.interrupt() == 130


def test_ignored_paths_never_trigger(project):
    app(project, BUILD.replace('"src/**/*.py"', '"**/*.py"'))
    project.write("pyproject.toml", '[tool.runner]\ncache_dir = "state"\n')
    project.write(".gitignore", "ignored/\n*_gen.py\n")
    with Watching(project, "build") as w:
        w.ready("", "src")
        project.write(".git/hooks/hook.py", "x = 1\n")
        project.write("src/__pycache__/app.py", "x = 1\n")
        project.write("state/extra.py", "x = 1\n")  # the cache directory
        project.write("ignored/x.py", "x = 1\n")  # .gitignored directory
        project.write("src/api_gen.py", "x = 1\n")  # .gitignored file
        w.settle("builds.log", quiet=0.5)
        assert_only_the_sentinel_triggers(w, project)
        assert w.interrupt() == 130


def test_watch_ignore_keeps_matching_files_from_triggering(project):
    app(project)
    project.write("pyproject.toml", '[tool.runner.watch]\nignore = ["src/scratch/**"]\n')
    with Watching(project, "build") as w:
        w.ready("", "src")
        project.write("src/scratch/try.py", "x = 1\n")
        w.settle("builds.log", quiet=0.5)
        assert_only_the_sentinel_triggers(w, project)
        assert w.interrupt() == 130


OUTPUT_BUILD = '''
import os
import time


@task(inputs=["src/**/*.py"], outputs=["src/generated/*.py"], cache=False)
def build():
    """Generate src/generated/stamp.py, with new content every time."""
    with open("builds.log", "a") as f:
        f.write(open("src/app.py").read().strip() + "\\n")
    os.makedirs("src/generated", exist_ok=True)
    with open("src/generated/stamp.py", "w") as f:
        f.write(f"STAMP = {time.time_ns()}\\n")
'''


def test_a_task_that_writes_its_outputs_does_not_trigger_itself(project):
    app(project, OUTPUT_BUILD)
    with Watching(project, "build") as w:
        w.ready("", "src")
        assert poll(lambda: "src/generated" in watched_dirs(w.pid, project.root))
        w.settle("builds.log")
        assert builds(project) == ["v0"]
        project.write("src/app.py", "v1\n")
        w.wait_for("[watch] changed:")
        w.settle("builds.log")
        assert builds(project) == ["v0", "v1"]
        assert changed_lines(w) == ["src/app.py"]
        assert w.interrupt() == 130


# ---------------------------------------------------------------- the tasksfile


TASKS_V1 = '''
@task(inputs=["src/**/*.py"], cache=False)
def build():
    """Build."""
    with open("builds.log", "a") as f:
        f.write("code 1\\n")
'''


def test_a_tasksfile_change_reloads_the_task_graph(project):
    project.tasksfile(TASKS_V1)
    project.write("src/app.py", "v0\n")
    project.write("lib/x.py", "x = 0\n")
    with Watching(project, "build") as w:
        w.ready("", "src")
        project.tasksfile(TASKS_V1.replace("code 1", "code 2").replace("src/", "lib/"))
        assert poll(lambda: builds(project)[-1:] == ["code 2"]), w.output
        assert poll(lambda: "lib" in watched_dirs(w.pid, project.root))
        project.write("lib/x.py", "x = 1\n")  # the new inputs are watched
        assert poll(lambda: builds(project) == ["code 1", "code 2", "code 2"]), w.output
        assert w.interrupt() == 130


def test_a_broken_tasksfile_is_reported_and_watch_keeps_the_old_graph(project):
    project.tasksfile(TASKS_V1)
    project.write("src/app.py", "v0\n")
    with Watching(project, "build") as w:
        w.ready("", "src")
        project.tasksfile(TASKS_V1 + "\ndef broken(:\n")
        [report] = w.wait_for("tasksfile.py")
        assert report.startswith("[watch] ")
        assert w.proc.poll() is None
        project.write("src/app.py", "v1\n")
        assert poll(lambda: builds(project) == ["code 1", "code 1"]), w.output
        assert w.interrupt() == 130


# ---------------------------------------------------------------- stopping watch


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_stopping_watch_stops_the_server_tree_and_exits_130(project, marker, sig):
    m, g = marker(), marker()
    project.write("pyproject.toml", "[tool.runner.watch]\nkill_timeout = 1\n")
    stubborn = 'trap "" TERM; '
    app(project)
    # Ctrl-C in a terminal reaches watch's whole process group: start it in its own.
    with Watching(project, "build", "--run", server(m, before=stubborn + daemon(g)),
                  new_session=sig == signal.SIGINT) as w:
        w.ready("", "src")
        [pid] = wait_for_starts(project, 1)
        assert poll(lambda: len(daemons(g, pid)) == 1)
        assert w.interrupt(sig) == 130
    # Nothing is left: not the server, its daemon, nor the supervisor (whose command
    # line holds both markers).
    assert not processes_mentioning(m) and not processes_mentioning(g)


def test_stopping_watch_during_a_build_stops_the_build(project, marker):
    m = marker()
    app(project, SLOW_BUILD, m)
    with Watching(project, "build") as w:
        w.ready("", "src")
        project.write("src/app.py", "slow v1\n")
        assert poll(lambda: processes_mentioning(m))
        assert w.interrupt() == 130
    assert not processes_mentioning(m)


# ---------------------------------------------------------------- what watch says


def test_each_rerun_lists_the_changed_paths_and_a_status_line(project, marker):
    m = marker()
    app(project)
    project.write("src/util.py", "u0\n")
    with Watching(project, "build", "--run", server(m)) as w:
        w.ready("", "src")
        project.write("src/app.py", "v1\n")
        project.write("src/util.py", "u1\n")
        w.wait_for("[watch] watching", count=2)
        assert changed_lines(w) == ["src/app.py, src/util.py"]
        _, pid = wait_for_starts(project, 2)
        status = w.lines_with("[watch] watching")[-1]
        assert status.startswith("[watch] watching 2 files · last build ")
        assert status.endswith(f" s · server pid {pid}")
        assert w.interrupt() == 130


class Terminal:
    """`runner watch` with a pseudo-terminal as stdout and stderr; what it wrote."""

    def __init__(self, project: Project, *args: str) -> None:
        master, slave = os.openpty()
        self.proc = subprocess.Popen(
            project.command("watch", *args), cwd=project.root,
            env=clean_env(TERM="xterm-256color"), stdin=slave, stdout=slave, stderr=slave)
        os.close(slave)
        self.master = master
        self.chunks: list[bytes] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self.master, 65536)
            except OSError:  # EIO: every writer closed the terminal
                return
            if not data:
                return
            self.chunks.append(data)

    @property
    def text(self) -> str:
        return b"".join(self.chunks).decode("utf-8", errors="replace")

    def close(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(timeout=30)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self.reader.join(timeout=5)
            os.close(self.master)


@pytest.mark.parametrize("how", ["--clear", "clear = true"])
def test_clear_wipes_the_screen_before_each_run(project, how):
    app(project)
    args = ["build"]
    if how == "--clear":
        args.append("--clear")
    else:
        project.write("pyproject.toml", f"[tool.runner.watch]\n{how}\n")
    term = Terminal(project, *args)
    try:
        assert poll(lambda: "[watch] watching" in term.text), term.text
        assert poll(lambda: {"", "src"} <= watched_dirs(term.proc.pid, project.root))
        project.write("src/app.py", "v1\n")
        assert poll(lambda: term.text.count("[watch] watching") == 2), term.text
        rerun = term.text.split("[watch] watching", 1)[1]
        assert "\x1b[2J" in rerun.split("[watch] changed:", 1)[0]
    finally:
        assert term.close() == 130


def test_without_clear_the_screen_is_not_wiped(project):
    app(project)
    term = Terminal(project, "build")
    try:
        assert poll(lambda: "[watch] watching" in term.text), term.text
        assert poll(lambda: {"", "src"} <= watched_dirs(term.proc.pid, project.root))
        project.write("src/app.py", "v1\n")
        assert poll(lambda: term.text.count("[watch] watching") == 2), term.text
        assert "\x1b[2J" not in term.text
    finally:
        assert term.close() == 130


# ---------------------------------------------------------------- services and reloads


def serve_tasks(m: str, signature: str = "", command: str = "") -> str:
    """BUILD, and a service task `serve` that depends on it."""
    command = command or f"echo $$ >> server.log; exec sleep {m}"
    return BUILD + f'''

@task(deps=[build], service=True)
def serve({signature}):
    """The dev server."""
    sh(f"{command}")
'''


def test_a_service_restarts_from_the_tasks_watch_uses_while_the_tasksfile_is_broken(
    project, marker
):
    m = marker()
    tasks = serve_tasks(m)
    app(project, tasks)
    with Watching(project, "serve") as w:
        w.ready("", "src")
        wait_for_starts(project, 1)
        project.tasksfile(tasks + "\ndef broken(:\n")
        w.wait_for("still watching with the tasks as they were")
        project.write("src/app.py", "v1\n")
        _, second = wait_for_starts(project, 2)
        assert poll(lambda: processes_with_arg(m) == [second]), w.output
        assert not w.lines_with("exited with code"), w.output
        assert builds(project) == ["v0", "v1"]
        assert w.interrupt() == 130
    assert no_process_left(m)


@pytest.mark.parametrize("given", [[], ["--port=7000"]], ids=["default", "given"])
def test_a_reloaded_tasksfile_gives_a_service_its_new_option_defaults(project, marker, given):
    m = marker()
    tasks = serve_tasks(m, "port: int = 5055", f"echo {{port}} >> ports.log; exec sleep {m}")
    app(project, tasks)
    first = given[0].split("=")[1] if given else "5055"
    with Watching(project, "serve", *given) as w:
        w.ready("", "src")
        assert poll(lambda: lines(project, "ports.log") == [first]), w.output
        project.tasksfile(tasks.replace("5055", "5056"))
        second = given[0].split("=")[1] if given else "5056"
        assert poll(lambda: lines(project, "ports.log") == [first, second]), w.output
        assert poll(lambda: len(processes_with_arg(m)) == 1)
        assert w.interrupt() == 130
    assert no_process_left(m)


# ---------------------------------------------------------------- the status line


def last_status(w: Watching) -> str:
    return w.lines_with("[watch] watching")[-1]


def test_the_status_counts_the_files_watched_now_in_words_that_agree(project):
    app(project)
    project.write("src/a.py", "a\n")
    project.write("src/b.py", "b\n")
    with Watching(project, "build") as w:
        w.ready("", "src")
        assert last_status(w).startswith("[watch] watching 3 files · "), w.output
        (project.root / "src/a.py").unlink()
        w.wait_for("[watch] watching", count=2)
        assert last_status(w).startswith("[watch] watching 2 files · "), w.output
        (project.root / "src/b.py").unlink()
        w.wait_for("[watch] watching", count=3)
        assert last_status(w).startswith("[watch] watching 1 file · "), w.output
        assert w.interrupt() == 130


def test_watching_a_task_without_inputs_says_why_no_file_is_watched(project):
    project.tasksfile("""
        @task
        def hello():
            print("hi")
    """)
    with Watching(project, "hello") as w:
        w.wait_for("[watch] watching")
        assert last_status(w).startswith(
            "[watch] watching 0 files (no input declared: give 'hello' inputs=[...]"), w.output
        assert w.interrupt() == 130


def test_watching_inputs_that_match_nothing_says_so(project):
    project.tasksfile("""
        @task(inputs=["scr/*.py"])
        def build():
            pass
    """)
    with Watching(project, "build") as w:
        w.wait_for("[watch] watching")
        assert "watching 0 files (the inputs match no file yet: scr/*.py)" in last_status(w)
        assert w.interrupt() == 130


def test_ctrl_c_says_what_watch_waits_for_and_a_second_one_kills_at_once(project, marker):
    m = marker()
    project.write("pyproject.toml", "[tool.runner.watch]\nkill_timeout = 60\n")
    app(project)
    with Watching(project, "build", "--run", server(m, before='trap "" TERM; ')) as w:
        w.ready("", "src")
        wait_for_starts(project, 1)
        w.proc.send_signal(signal.SIGINT)
        w.wait_for("[watch] stopping: waiting up to 60s for 1 process (Ctrl-C again to kill now)")
        assert w.proc.poll() is None and processes_with_arg(m)  # it waits, as it said
        w.proc.send_signal(signal.SIGINT)
        assert w.proc.wait(timeout=20) == 130
    assert no_process_left(m)
