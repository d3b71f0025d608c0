"""The state store under `.runner/`: it survives a SIGKILL at any instant, two runners
started at once, a full disk and garbage written over its files; `runner cache
info|clean|prune` inspect it and make it smaller (SPEC §2 `cache`, §4 state on disk).

Tasks append a line to `runs.log` each time they really run, so a test counts runs by
reading it; nothing here depends on how long anything takes (every wait is a poll with a
generous deadline).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import textwrap
import threading
import time
import uuid
from pathlib import Path

import blake3
import pytest
from conftest import LineReader, Project, clean_env, poll, stop

# ---------------------------------------------------------------- helpers

RUNLOG = '''
import os
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent


def log(line):
    """One line in runs.log per real run (O_APPEND: parallel lines never mix)."""
    fd = os.open(ROOT / "runs.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\\n").encode())
    finally:
        os.close(fd)


def wait_for(rel, timeout=30.0):
    """Block until the test creates file `rel` (the test decides when a task ends)."""
    end = time.monotonic() + timeout
    while not (ROOT / rel).exists() and time.monotonic() < end:
        time.sleep(0.01)
'''


def runs(project: Project) -> list[str]:
    p = project.root / "runs.log"
    return p.read_text().splitlines() if p.exists() else []


def ran(project: Project) -> list[str]:
    """The names of the tasks that really ran, in order (the first word of each line)."""
    return [line.split()[0] for line in runs(project)]


def state_db(project: Project) -> Path:
    return project.root / ".runner" / "state.db"


def integrity_check(db: Path) -> str:
    assert db.exists(), f"no {db}"
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return "; ".join(row[0] for row in conn.execute("PRAGMA integrity_check"))


def sql(db: Path, statement: str, *params: object) -> list[tuple]:
    """Run one statement on the state database, as a user with the sqlite3 shell would."""
    with contextlib.closing(sqlite3.connect(db)) as conn:
        rows = conn.execute(statement, params).fetchall()
        conn.commit()
    return rows


def blobs(cache: Path) -> list[Path]:
    cas = cache / "cas"
    return sorted(p for p in cas.rglob("*") if p.is_file()) if cas.exists() else []


def bad_blobs(cache: Path) -> list[str]:
    """Blobs whose content does not hash to their name (cas/ab/cdef... = blake3 hex)."""
    bad = []
    for p in blobs(cache):
        name = p.parent.name + p.name
        if blake3.blake3(p.read_bytes()).hexdigest() != name:
            bad.append(str(p.relative_to(cache)))
    return bad


def cache_info(project: Project) -> dict:
    r = project.run("cache", "info", "--json")
    assert r.code == 0, r
    return json.loads(r.out)


def no_traceback(r) -> bool:
    return "Traceback" not in r.output


def finish(proc: subprocess.Popen[str], timeout: float = 30) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        stop(proc)
        pytest.fail(f"runner did not exit within {timeout}s")
    return proc.returncode, out, err


def cached_tasks(project: Project, names: list[str], size: int = 16) -> None:
    """One cached task per name: input src/NAME.txt, output out/NAME.txt (its input's
    content, repeated to `size` bytes or more, then the task's name)."""
    project.write("tasklog.py", RUNLOG)
    body = ["from tasklog import ROOT, log\n"]
    for name in names:
        body.append(f'''
@task(name="{name}", inputs=["src/{name}.txt"], outputs=["out/{name}.txt"])
def task_{name}():
    log("{name}")
    text = (ROOT / "src/{name}.txt").read_text()
    (ROOT / "out").mkdir(exist_ok=True)
    (ROOT / "out/{name}.txt").write_text(text * (1 + {size} // len(text)) + "{name}")
''')
        project.write(f"src/{name}.txt", f"{name} source\n")
    project.tasksfile("".join(body))


def expected_output(project: Project, name: str, size: int = 16) -> str:
    text = project.read(f"src/{name}.txt")
    return text * (1 + size // len(text)) + name


# ---------------------------------------------------------------- SIGKILL at any instant

CHAINS, CHAIN_LENGTH = 4, 5   # 20 tasks: c0s0 -> c0s1 -> ... -> c0s4, and so on


def chain_tasks(project: Project) -> list[str]:
    """Twenty cached tasks in four chains; each output is made of its input and its dep's
    output, and is written in two halves (a kill can land between them)."""
    project.write("tasklog.py", RUNLOG)
    body = ["import time\nfrom tasklog import ROOT, log\n"]
    names = []
    for c in range(CHAINS):
        for s in range(CHAIN_LENGTH):
            name = f"c{c}s{s}"
            dep = f"c{c}s{s - 1}" if s else None
            deps = f"deps=[{dep!r}], " if dep else ""
            upstream = f'(ROOT / "out/{dep}.txt").read_text().splitlines()[0]' if dep \
                else '""'
            body.append(f'''
@task(name="{name}", {deps}inputs=["src/{name}.txt"], outputs=["out/{name}.txt"])
def task_{name}():
    log("{name}")
    text = "{name}(" + (ROOT / "src/{name}.txt").read_text() + ")" + {upstream}
    data = (text + "\\n") * 200
    (ROOT / "out").mkdir(exist_ok=True)
    with open(ROOT / "out/{name}.txt", "w") as f:
        f.write(data[:len(data) // 2])
        f.flush()
        time.sleep(0.005)
        f.write(data[len(data) // 2:])
''')
            names.append(name)
    body.append(f"\n@task(deps={names!r}, default=True)\ndef all():\n    pass\n")
    project.tasksfile("".join(body))
    return names


def chain_line(project: Project, name: str) -> str:
    c, s = int(name[1]), int(name[3])
    text = f"{name}(" + project.read(f"src/{name}.txt") + ")"
    return text + (chain_line(project, f"c{c}s{s - 1}") if s else "")


def chain_expected(project: Project, name: str) -> str:
    """Each line: the task's name and input, then its dep's line (so, the whole chain)."""
    return (chain_line(project, name) + "\n") * 200


def test_a_run_killed_at_any_instant_leaves_a_store_the_next_run_trusts(project):
    names = chain_tasks(project)
    # Kill points: right after the start, then once 1, 2, ... 19 of the 20 tasks of the
    # round have started (polled in runs.log, so no timing is assumed).
    for round_, started in enumerate(range(len(names))):
        for name in names:  # new inputs: every task must run again this round
            project.write(f"src/{name}.txt", f"round {round_} of {name}")
        before = len(runs(project))
        proc = project.popen("-j", "2")
        try:
            poll(lambda before=before, started=started, proc=proc:
                 len(runs(project)) - before >= started or proc.poll() is not None,
                 timeout=30, interval=0.001)
            time.sleep(0.002 * (round_ % 3))  # and a little later: mid-write, mid-store
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
        finally:
            stop(proc)

        again = project.run("-j", "2")
        assert again.code == 0, (round_, again)
        assert "damaged" not in again.err, (round_, again)
        for name in names:
            assert project.read(f"out/{name}.txt") == chain_expected(project, name), \
                (round_, name)
        after = runs(project)
        noop = project.run("-j", "2")
        assert noop.code == 0, (round_, noop)
        assert runs(project) == after, f"round {round_}: a no-op run ran tasks: {noop}"
        assert integrity_check(state_db(project)) == "ok"
        assert bad_blobs(project.root / ".runner") == []


# ---------------------------------------------------------------- two runners at once

def test_two_runners_started_at_once_run_each_task_once(project):
    project.write("tasklog.py", RUNLOG)
    body = ["import os, time\nfrom tasklog import ROOT, log\n"]
    for name in ("a", "b", "c", "d"):
        body.append(f'''
@task(name="{name}", inputs=["src/{name}.txt"], outputs=["out/{name}.txt"])
def task_{name}():
    log("{name} " + str(os.getpid()))
    time.sleep(0.3)
    (ROOT / "out").mkdir(exist_ok=True)
    (ROOT / "out/{name}.txt").write_text("made from " + (ROOT / "src/{name}.txt").read_text())
''')
        project.write(f"src/{name}.txt", f"{name} input")
    project.tasksfile("".join(body))

    first = project.popen("-j", "4", "a", "b", "c", "d")
    second = project.popen("-j", "4", "a", "b", "c", "d")
    try:
        code1, out1, err1 = finish(first, timeout=20)
        code2, out2, err2 = finish(second, timeout=20)
    finally:
        stop(first)
        stop(second)
    assert code1 == 0, (out1, err1)
    assert code2 == 0, (out2, err2)
    assert sorted(ran(project)) == ["a", "b", "c", "d"], runs(project)
    for name in ("a", "b", "c", "d"):
        assert project.read(f"out/{name}.txt") == f"made from {name} input"
    assert integrity_check(state_db(project)) == "ok"
    # Both runners left a valid store behind: the next run is a no-op.
    r = project.run("a", "b", "c", "d")
    assert r.code == 0, r
    assert sorted(ran(project)) == ["a", "b", "c", "d"]


BARRIER = """
import os
import time
from pathlib import Path

# Every runner waits here (while loading the tasksfile, before it opens the store)
# until both have arrived, then a little longer for the one told to (STAGGER_MS): round
# after round, one runner opens the store at each moment of the other creating it.
_arrived = Path(__file__).resolve().parent / "arrived"
_fd = os.open(_arrived, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
os.write(_fd, b"x")
os.close(_fd)
_end = time.monotonic() + 10
while _arrived.stat().st_size < 2 and time.monotonic() < _end:
    time.sleep(0.0002)
time.sleep(float(os.environ.get("STAGGER_MS", "0")) / 1000)
"""


def test_two_runners_started_at_once_on_a_project_without_state_both_succeed(project):
    cached_tasks(project, ["a"])
    project.write("tasksfile.py", project.read("tasksfile.py") + BARRIER)
    for stagger in range(0, 20):   # 0 to 9.5 ms, by half milliseconds
        for gone in (".runner", "out"):
            shutil.rmtree(project.root / gone, ignore_errors=True)
        (project.root / "arrived").unlink(missing_ok=True)
        procs = [project.popen("a"),
                 project.popen("a", env=clean_env(STAGGER_MS=str(stagger / 2)))]
        try:
            results = [finish(p, timeout=20) for p in procs]
        finally:
            for p in procs:
                stop(p)
        for code, out, err in results:
            assert code == 0, (stagger / 2, out, err)
        assert project.read("out/a.txt") == expected_output(project, "a")
        assert integrity_check(state_db(project)) == "ok"


def test_a_runner_opening_the_state_while_another_creates_it_waits_its_turn(project):
    """While a runner creates state.db (turning a new, empty file into a WAL database),
    it holds a write lock on a database still in rollback mode: here the test holds that
    lock itself, for as long as it likes, so the moment is not left to chance."""
    cached_tasks(project, ["a"])
    (project.root / ".runner").mkdir()
    creator = sqlite3.connect(state_db(project), isolation_level=None)
    proc = None
    try:
        creator.execute("BEGIN IMMEDIATE")
        proc = project.popen("a")
        # The runner prepares .runner/ right before it opens state.db: give it a moment
        # past that to fail, if it does not wait.
        poll(lambda: (project.root / ".runner/.gitignore").exists() or proc.poll() is not None,
             30)
        poll(lambda: proc.poll() is not None, 1.0)
        creator.execute("COMMIT")
        code, out, err = finish(proc, timeout=30)
    finally:
        creator.close()
        if proc is not None:
            stop(proc)
    assert code == 0, (out, err)
    assert ran(project) == ["a"]
    assert integrity_check(state_db(project)) == "ok"


def test_two_runners_taking_the_same_tasks_in_opposite_orders_both_finish(project):
    """Runner A holds x and then needs y; runner B holds y and then needs x (two
    tasksfiles of one project, whose deps order the same tasks differently)."""
    project.write("tasklog.py", RUNLOG)
    gated = '''
        import os
        from tasklog import log, wait_for

        def work(name):
            log(f"start {{name}} {{os.getpid()}}")
            wait_for("release")
            log(f"end {{name}} {{os.getpid()}}")

        @task
        def {gate}():
            wait_for("{gate}")

        @task{x_deps}
        def x():
            work("x")

        @task{y_deps}
        def y():
            work("y")
    '''
    for name, gate, x_deps, y_deps in [("a.py", "go_a", "", "(deps=[go_a])"),
                                       ("b.py", "go_b", "(deps=[go_b])", "")]:
        text = gated.format(gate=gate, x_deps=x_deps, y_deps=y_deps)
        project.write(name, "from runner import task\n" + textwrap.dedent(text))

    a = project.popen("-f", "a.py", "-j", "3", "x", "y")
    b = None
    try:
        assert poll(lambda: "x" in ran_tasks(project) or a.poll() is not None, 30)
        b = project.popen("-f", "b.py", "-j", "3", "y", "x")
        assert poll(lambda: "y" in ran_tasks(project) or b.poll() is not None, 30)
        # Now A needs y (B holds it), then B needs x (A holds it).
        (project.root / "go_a").write_text("")
        LineReader(a.stderr).wait_for(lambda line: "another runner" in line, timeout=30)
        (project.root / "go_b").write_text("")
        LineReader(b.stderr).wait_for(lambda line: "another runner" in line, timeout=30)
        (project.root / "release").write_text("")
        code_a, code_b = a.wait(timeout=15), b.wait(timeout=15)
    except subprocess.TimeoutExpired:
        pytest.fail(f"a runner never finished: the two waited for each other\n{runs(project)}")
    finally:
        stop(a)
        if b is not None:
            stop(b)
    assert (code_a, code_b) == (0, 0)
    # Never the same task in both runners at once: each start is followed by its end.
    events = [line.split() for line in runs(project)]
    for name in ("x", "y"):
        mine = [(what, pid) for what, task, pid in events if task == name]
        assert mine == [("start", mine[0][1]), ("end", mine[0][1]),
                        ("start", mine[2][1]), ("end", mine[2][1])], events


def ran_tasks(project: Project) -> list[str]:
    """Task names of `start NAME PID` lines."""
    return [line.split()[1] for line in runs(project) if line.startswith("start ")]


def held_task(project: Project) -> None:
    """Task `slow`: logs `start PID`, blocks until the test creates `release`, logs
    `end PID`, then writes its output, or fails if FAIL_SLOW is set."""
    project.write("tasklog.py", RUNLOG)
    project.write("src/slow.txt", "slow input")
    project.tasksfile("""
        import os
        from tasklog import ROOT, log, wait_for

        @task(inputs=["src/slow.txt"], outputs=["out/slow.txt"])
        def slow():
            log(f"start {os.getpid()}")
            wait_for("release")
            log(f"end {os.getpid()}")
            if os.environ.get("FAIL_SLOW"):
                raise TaskError("slow failed on purpose")
            (ROOT / "out").mkdir(exist_ok=True)
            (ROOT / "out/slow.txt").write_text("slow output")
    """)


def second_runner_waiting(project: Project, first_env: dict[str, str] | None = None):
    """Start runner `slow` twice; return both once the first runs the task and the
    second says it waits for it."""
    first = project.popen("slow", env=first_env)
    second = None
    try:
        assert poll(lambda: runs(project) or first.poll() is not None, 30), "never started"
        assert first.poll() is None, finish(first)
        second = project.popen("slow")
        waiting = LineReader(second.stderr)
        waiting.wait_for(lambda line: "another runner" in line, timeout=30)
    except BaseException:
        stop(first)
        if second is not None:
            stop(second)
        raise
    return first, second


def test_a_second_runner_waits_for_the_task_then_takes_its_result_from_the_cache(project):
    held_task(project)
    first, second = second_runner_waiting(project)
    try:
        (project.root / "release").write_text("")
        code1, out1, err1 = finish(first)
        code2 = second.wait(timeout=30)
        out2 = second.stdout.read()
    finally:
        stop(first)
        stop(second)
    assert code1 == 0, (out1, err1)
    assert code2 == 0, out2
    assert [line.split()[0] for line in runs(project)] == ["start", "end"]
    assert re.search(r"\b1 cached\b", out2), out2
    assert project.read("out/slow.txt") == "slow output"


def test_a_waiting_runner_says_once_which_task_it_waits_for(project):
    held_task(project)
    first = project.popen("slow")
    second = None
    try:
        assert poll(lambda: runs(project) or first.poll() is not None, 30), "never started"
        second = project.popen("slow")
        said: list[str] = []
        reader = threading.Thread(target=lambda: [said.append(x) for x in second.stderr])
        reader.start()
        assert poll(lambda: any("another runner" in x for x in said), 30), said
        (project.root / "release").write_text("")
        assert finish(first)[0] == 0
        assert second.wait(timeout=30) == 0
        reader.join(timeout=10)
    finally:
        stop(first)
        if second is not None:
            stop(second)
    assert [x for x in said if "another runner" in x] == [
        "slow: waiting for another runner, which is running it\n"], said


def test_when_the_task_fails_in_one_runner_the_waiting_runner_runs_it_after(project):
    held_task(project)
    first, second = second_runner_waiting(project, first_env=clean_env(FAIL_SLOW="1"))
    try:
        (project.root / "release").write_text("")
        code1, _out1, _err1 = finish(first)
        code2 = second.wait(timeout=30)
    finally:
        stop(first)
        stop(second)
    assert (code1, code2) == (1, 0)
    # A failure is not cached: the second runner ran the task too, but only after the
    # first one was done with it.
    events = [line.split() for line in runs(project)]
    assert [e[0] for e in events] == ["start", "end", "start", "end"], events
    assert events[0][1] == events[1][1] != events[2][1] == events[3][1], events
    assert project.read("out/slow.txt") == "slow output"
    assert integrity_check(state_db(project)) == "ok"
    assert project.run("slow").code == 0
    assert len(runs(project)) == 4, "the second runner's success is cached"


# ---------------------------------------------------------------- damage

def damage_warning(err: str) -> str:
    """The one line of stderr, which must say the store was damaged and moved aside."""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    line = lines[0]
    assert "damaged" in line and "state.db.damaged-1" in line, line
    return line


def many_tasks(project: Project, n: int = 80) -> list[str]:
    names = [f"t{i:02d}" for i in range(n)]
    cached_tasks(project, names)
    return names


def test_garbage_over_the_whole_state_db_is_reported_moved_aside_and_rebuilt(project):
    names = many_tasks(project, 10)
    assert project.run(*names).code == 0
    db = state_db(project)
    db.write_bytes(os.urandom(db.stat().st_size))

    r = project.run(*names)
    assert r.code == 0, r
    damage_warning(r.err)
    assert (project.root / ".runner/state.db.damaged-1").exists()
    assert sorted(ran(project)) == sorted(names + names), \
        "a damaged store must not be trusted: every task runs again"
    for name in names:
        assert project.read(f"out/{name}.txt") == expected_output(project, name)
    assert integrity_check(db) == "ok"

    again = project.run(*names)
    assert again.code == 0, again
    assert again.err == ""
    assert len(runs(project)) == 2 * len(names)


def test_garbage_over_pages_in_the_middle_of_state_db_is_detected(project):
    names = many_tasks(project)
    assert project.run(*names).code == 0
    db = state_db(project)
    assert db.stat().st_size >= 8 * 4096, "the test needs a database of many pages"
    with open(db, "r+b") as f:
        f.seek(8192)
        f.write(os.urandom(4096))

    r = project.run(*names)
    assert r.code == 0, r
    damage_warning(r.err)
    assert (project.root / ".runner/state.db.damaged-1").exists()
    assert sorted(ran(project)) == sorted(names + names)
    assert integrity_check(db) == "ok"
    again = project.run(*names)
    assert again.code == 0 and again.err == "", again
    assert len(runs(project)) == 2 * len(names)


def test_garbage_in_a_record_is_caught_by_its_checksum(project):
    names = many_tasks(project, 5)
    assert project.run(*names).code == 0
    # Valid SQLite, wrong content: only runner's own checksum can tell.
    sql(state_db(project), "UPDATE records SET data = randomblob(length(data)) "
                           "WHERE task = 't02'")
    assert integrity_check(state_db(project)) == "ok"

    r = project.run(*names)
    assert r.code == 0, r
    damage_warning(r.err)
    assert (project.root / ".runner/state.db.damaged-1").exists()
    assert sorted(ran(project)) == sorted(names + names)
    again = project.run(*names)
    assert again.code == 0 and again.err == "", again
    assert len(runs(project)) == 2 * len(names)


def test_garbage_in_a_cache_entry_is_never_restored(project):
    cached_tasks(project, ["t"])
    project.write("src/t.txt", "version one\n")
    assert project.run("t").code == 0
    project.write("src/t.txt", "version two\n")
    assert project.run("t").code == 0
    # Back to version one: its cache entry would be restored; damage it first.
    sql(state_db(project), "UPDATE entries SET manifest = randomblob(length(manifest))")
    project.write("src/t.txt", "version one\n")

    r = project.run("t")
    assert r.code == 0, r
    damage_warning(r.err)
    assert ran(project) == ["t", "t", "t"], "the task must run, not be restored"
    assert project.read("out/t.txt") == expected_output(project, "t")


def test_a_damaged_blob_is_never_restored(project):
    cached_tasks(project, ["t"], size=1000)
    assert project.run("t").code == 0
    [blob] = blobs(project.root / ".runner")
    blob.write_bytes(os.urandom(blob.stat().st_size))
    (project.root / "out/t.txt").unlink()

    r = project.run("t")
    assert r.code == 0, r
    assert ran(project) == ["t", "t"], "the task must run, not be restored from garbage"
    assert project.read("out/t.txt") == expected_output(project, "t", 1000)


def test_damage_again_is_moved_aside_under_the_next_free_name(project):
    cached_tasks(project, ["t"])
    for n in (1, 2):
        assert project.run("t").code == 0
        state_db(project).write_bytes(b"garbage" * 1000)
        r = project.run("t")
        assert r.code == 0, r
        assert f"state.db.damaged-{n}" in r.err, r
        assert (project.root / f".runner/state.db.damaged-{n}").exists()


# ---------------------------------------------------------------- full disk

@contextlib.contextmanager
def small_disk(tmp_path: Path, size: str):
    """A tmpfs of `size` mounted on a fresh directory (we need root to mount)."""
    where = tmp_path / f"disk-{uuid.uuid4().hex[:8]}"
    where.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("no mount command: cannot make a small disk to fill")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs",
                           str(where)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs to fill up (needs root or CAP_SYS_ADMIN): "
                    f"{done.stderr.strip()}")
    try:
        yield where
    finally:
        if subprocess.run(["umount", str(where)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(where)], capture_output=True)


def fill(path: Path, size: int) -> None:
    with open(path, "wb") as f:
        f.write(b"\0" * size)


def big_output_project(root: Path, size: int) -> Project:
    project = Project(root)
    project.write("tasklog.py", RUNLOG)
    project.write("src/seed.txt", "seed")
    project.tasksfile(f'''
        import random
        from tasklog import ROOT, log

        @task(inputs=["src/seed.txt"], outputs=["out/big.bin"])
        def big():
            log("big")
            data = random.Random((ROOT / "src/seed.txt").read_text()).randbytes({size})
            (ROOT / "out").mkdir(exist_ok=True)
            (ROOT / "out/big.bin").write_bytes(data)
    ''')
    return project


def big_expected(size: int) -> bytes:
    import random

    return random.Random("seed").randbytes(size)


def disk_full_lines(r) -> list[str]:
    return [line for line in r.output.splitlines()
            if re.search(r"disk is full|no space left", line, re.I)]


def test_a_full_disk_fails_the_run_clearly_and_leaves_the_store_valid(tmp_path):
    mib = 1 << 20
    with small_disk(tmp_path, "8m") as disk:
        project = big_output_project(disk / "project", 3 * mib)
        # The output fits on the disk, its copy into the cache does not.
        fill(disk / "filler", 3 * mib)
        r = project.run("big")
        assert r.code == 1, r
        assert no_traceback(r), r
        assert len(disk_full_lines(r)) == 1, r
        assert bad_blobs(project.root / ".runner") == []
        assert list((project.root / ".runner/tmp").iterdir()) == [], \
            "a half-written blob was left behind"

        (disk / "filler").unlink()
        ok = project.run("big")
        assert ok.code == 0, ok
        assert (project.root / "out/big.bin").read_bytes() == big_expected(3 * mib)
        assert integrity_check(state_db(project)) == "ok"
        assert bad_blobs(project.root / ".runner") == []
        assert len(blobs(project.root / ".runner")) == 1
        noop = project.run("big")
        assert noop.code == 0 and ran(project) == ["big", "big"], noop


def test_a_full_disk_never_makes_runner_throw_its_state_away(tmp_path):
    with small_disk(tmp_path, "4m") as disk:
        project = big_output_project(disk / "project", 1000)
        assert project.run("big").code == 0
        project.write("src/seed.txt", "changed")
        with contextlib.suppress(OSError):
            fill(disk / "filler", 8 << 20)  # as much as fits: the disk is now full
        r = project.run("big")
        assert r.code == 1, r
        assert no_traceback(r), r
        assert len(disk_full_lines(r)) == 1, r
        assert "damaged" not in r.output, "a full disk is not a damaged store"
        assert not list((project.root / ".runner").glob("state.db.damaged*"))

        (disk / "filler").unlink()
        project.write("src/seed.txt", "seed")   # back to what is cached: a hit
        hit = project.run("big")
        assert hit.code == 0, hit
        assert ran(project) == ["big"], "the cache entry made before the disk filled is kept"
        assert integrity_check(state_db(project)) == "ok"
        assert bad_blobs(project.root / ".runner") == []


def test_a_disk_full_before_the_first_run_fails_clearly_then_recovers(tmp_path):
    with small_disk(tmp_path, "4m") as disk:
        project = big_output_project(disk / "project", 1000)
        with contextlib.suppress(OSError):
            fill(disk / "filler", 8 << 20)
        r = project.run("big")
        assert r.code == 1, r
        assert no_traceback(r), r
        assert len(disk_full_lines(r)) == 1, r

        (disk / "filler").unlink()
        ok = project.run("big")
        assert ok.code == 0, ok
        assert (project.root / "out/big.bin").read_bytes() == big_expected(1000)
        assert integrity_check(state_db(project)) == "ok"
        assert bad_blobs(project.root / ".runner") == []
        noop = project.run("big")
        assert noop.code == 0, noop
        assert ran(project) == ["big"]


# ---------------------------------------------------------------- cache info

def test_cache_info_before_any_run_says_so(project):
    cached_tasks(project, ["a"])
    r = project.run("cache", "info")
    assert r.code == 0, r
    assert "no runs recorded yet" in r.out
    info = cache_info(project)
    assert info["entries"] == 0 and info["hit_rate"] is None


def test_cache_info_shows_size_entries_and_the_hit_rate_of_the_last_runs(project):
    cached_tasks(project, ["a", "b"], size=1000)
    assert project.run("a", "b").code == 0   # 2 ran
    assert project.run("a", "b").code == 0   # 2 hits
    r = project.run("cache", "info")
    assert r.code == 0, r
    assert re.search(r"^size:.*\b2 blobs", r.out, re.M), r.out
    assert re.search(r"^entries:\s+2\b", r.out, re.M), r.out
    assert re.search(r"^hit rate:\s+50% over the last 2 runs", r.out, re.M), r.out

    info = cache_info(project)
    outputs = sum((project.root / f"out/{n}.txt").stat().st_size for n in ("a", "b"))
    assert info["entries"] == 2
    assert info["blobs"] == 2
    assert info["blob_bytes"] == outputs
    assert info["hit_rate"] == pytest.approx(0.5)


def test_cache_clean_forgets_everything_and_the_next_run_runs_again(project):
    cached_tasks(project, ["a", "b"])
    assert project.run("a", "b").code == 0
    r = project.run("cache", "clean")
    assert r.code == 0, r
    info = cache_info(project)
    assert (info["entries"], info["blobs"]) == (0, 0), info
    again = project.run("a", "b")
    assert again.code == 0, again
    assert sorted(ran(project)) == ["a", "a", "b", "b"]


def test_cache_prune_max_size_0_removes_every_entry_and_blob(project):
    cached_tasks(project, ["a", "b"], size=1000)
    assert project.run("a", "b").code == 0
    r = project.run("cache", "prune", "--max-size", "0")
    assert r.code == 0, r
    assert "pruned 2 cache entries" in r.out
    info = cache_info(project)
    assert (info["entries"], info["blobs"]) == (0, 0), info
    assert blobs(project.root / ".runner") == []
    # Outputs gone from the tree and from the cache: the tasks must run again.
    shutil.rmtree(project.root / "out")
    assert project.run("a", "b").code == 0
    assert sorted(ran(project)) == ["a", "a", "b", "b"]


def test_cache_prune_older_than_keeps_fresh_entries(project):
    cached_tasks(project, ["a", "b"])
    assert project.run("a", "b").code == 0
    r = project.run("cache", "prune", "--older-than", "30d")
    assert r.code == 0, r
    assert "pruned 0 cache entries" in r.out
    info = cache_info(project)
    assert (info["entries"], info["blobs"]) == (2, 2), info


def test_cache_prune_older_than_removes_entries_unused_for_that_long(project):
    cached_tasks(project, ["a", "b"])
    assert project.run("a", "b").code == 0
    long_ago = time.time() - 40 * 86400
    sql(state_db(project), "UPDATE entries SET last_used = ? WHERE task = 'a'", long_ago)
    r = project.run("cache", "prune", "--older-than", "30d")
    assert r.code == 0, r
    assert "pruned 1 cache entry" in r.out
    assert sql(state_db(project), "SELECT task FROM entries") == [("b",)]


def test_cache_prune_removes_the_least_recently_used_entries_first(project):
    cached_tasks(project, ["older", "newer"], size=1000)
    assert project.run("older").code == 0     # created first...
    assert project.run("newer").code == 0
    now = time.time()
    # ...but used again since: `newer` is now the least recently used.
    sql(state_db(project), "UPDATE entries SET last_used = ? WHERE task = 'older'", now - 60)
    sql(state_db(project), "UPDATE entries SET last_used = ? WHERE task = 'newer'", now - 600)
    one = (project.root / "out/older.txt").stat().st_size
    r = project.run("cache", "prune", "--max-size", str(one + one // 2))
    assert r.code == 0, r
    assert "pruned 1 cache entry" in r.out
    assert sql(state_db(project), "SELECT task FROM entries") == [("older",)]
    assert len(blobs(project.root / ".runner")) == 1

    # Seen from outside: `older` comes back from the cache, `newer` must run again.
    shutil.rmtree(project.root / "out")
    r = project.run("older", "newer")
    assert r.code == 0, r
    assert ran(project) == ["older", "newer", "newer"]
    assert project.read("out/older.txt") == expected_output(project, "older", 1000)


def test_cache_prune_to_a_size_keeps_whole_entries_that_still_restore(project):
    kib = 1 << 10
    cached_tasks(project, ["a", "b", "c"], size=600 * kib)
    for name in ("a", "b", "c"):  # used in this order: `a` is the least recent
        assert project.run(name).code == 0
    r = project.run("cache", "prune", "--max-size", "1M")
    assert r.code == 0, r
    assert "pruned 2 cache entries" in r.out
    info = cache_info(project)
    assert info["entries"] == 1 and info["blobs"] == 1, info
    assert 600 * kib <= info["blob_bytes"] <= 1 << 20, info
    shutil.rmtree(project.root / "out")
    plan = project.run("-n", "a", "b", "c")
    assert "incomplete" not in plan.out, plan.out
    assert re.search(r"run +a +its cache entry was pruned", plan.out), plan.out
    assert re.search(r"run +b +its cache entry was pruned", plan.out), plan.out
    assert re.search(r"restore +c ", plan.out), plan.out
    r = project.run("a", "b", "c")
    assert r.code == 0, r
    assert ran(project)[:3] == ["a", "b", "c"] and sorted(ran(project)[3:]) == ["a", "b"]
    assert project.read("out/c.txt") == expected_output(project, "c", 600 * kib)


def test_a_task_whose_entry_was_pruned_runs_again_even_with_its_outputs_in_place(project):
    cached_tasks(project, ["a"], size=2 << 20)
    assert project.run("a").code == 0
    assert "pruned 1 cache entry" in project.run("cache", "prune", "--max-size", "1M").out
    r = project.run("-v", "a")
    assert r.code == 0, r
    assert "its cache entry was pruned" in r.out
    assert ran(project) == ["a", "a"]
    assert cache_info(project)["entries"] == 1  # stored anew
    assert "1 cached" in project.run("a").out


def test_cache_prune_drops_an_entry_whose_blob_is_gone(project):
    cached_tasks(project, ["a", "b"], size=1000)
    assert project.run("a", "b").code == 0
    [blob] = [p for p in blobs(project.root / ".runner")
              if p.read_bytes() == expected_output(project, "a", 1000).encode()]
    blob.unlink()
    r = project.run("cache", "prune", "--max-size", "1G")
    assert r.code == 0, r
    assert "pruned 1 cache entry" in r.out
    assert sql(state_db(project), "SELECT task FROM entries") == [("b",)]


def test_cache_clean_keeps_the_run_history(project):
    cached_tasks(project, ["a"])
    assert project.run("a").code == 0
    before = project.run("history").out
    r = project.run("cache", "clean")
    assert r.code == 0, r
    assert "history is kept" in r.out
    assert project.run("history").out == before
    assert "a" in before and "no runs" not in before
    assert (cache_info(project)["entries"], cache_info(project)["blobs"]) == (0, 0)
    assert project.run("a").code == 0
    assert ran(project) == ["a", "a"]


@pytest.mark.parametrize("option, value", [
    ("--max-size", "1Q"), ("--max-size", "lots"), ("--max-size", "-5M"),
    ("--older-than", "30x"), ("--older-than", "soon"), ("--older-than", "-1d"),
])
def test_cache_prune_with_a_bad_size_or_age_is_a_usage_error_naming_the_option(
        project, option, value):
    cached_tasks(project, ["a"])
    r = project.run("cache", "prune", option, value)
    assert r.code == 2, r
    assert option in r.err and value in r.err, r
    assert no_traceback(r) and len(r.err.strip().splitlines()) == 1, r


def test_cache_prune_without_a_limit_is_a_usage_error(project):
    cached_tasks(project, ["a"])
    r = project.run("cache", "prune")
    assert r.code == 2, r
    assert "--max-size" in r.err and "--older-than" in r.err, r


def test_cache_prune_accepts_human_sizes_and_ages(project):
    cached_tasks(project, ["a"])
    assert project.run("a").code == 0
    r = project.run("cache", "prune", "--max-size", "1G", "--older-than", "30d")
    assert r.code == 0, r
    assert "pruned 0 cache entries" in r.out
    assert cache_info(project)["entries"] == 1


# ---------------------------------------------------------------- hostile local entries
# SPEC §4: an entry is untrusted even when it is local: state.db can be written by
# anyone who can write the project. An entry forged with the store's own API (sealed,
# so its checksum holds) may restore only the task's declared outputs.

def task_key(project: Project, task: str) -> bytes:
    r = project.run("hash", task)
    assert r.code == 0, r
    return bytes.fromhex(r.out.strip())


def forge_local_entry(project: Project, edit, planted: bytes | None = None) -> None:
    """After a run of `t`, change its input and store, under the new fingerprint, the
    entry of the last run with each output edited: edit(row, digest, size) -> row."""
    from runner.store import Store

    old = task_key(project, "t")
    project.write("src/t.txt", "the next version\n")
    new = task_key(project, "t")
    store = Store(str(project.root / ".runner"))
    try:
        rows = store.entry(old)["outputs"]
        digest, size = rows[0][1], rows[0][3]
        if planted is not None:
            source = project.root / "planted.tmp"
            source.write_bytes(planted)
            _st, digest, _at = store.blobs.ingest(str(source))
            size = len(planted)
            source.unlink()
        store.put_entry(new, "t", [edit(row, digest, size) for row in rows], 0.5)
    finally:
        store.close()


def refused_then_ran(project: Project, path: str) -> None:
    r = project.run("t")
    assert r.code == 0, r
    lines = [line for line in r.err.splitlines() if "refused" in line]
    assert len(lines) == 1 and "t" in lines[0] and path in lines[0], r.err
    assert no_traceback(r)
    assert ran(project) == ["t", "t"], "a refused entry is a miss: the task runs"
    assert project.read("out/t.txt") == expected_output(project, "t")


@pytest.mark.parametrize("path", ["../NAME-escape.txt", "out/../../NAME-escape.txt",
                                  "ABSOLUTE"])
def test_a_local_entry_that_leaves_the_project_is_refused(project, path):
    cached_tasks(project, ["t"])
    assert project.run("t").code == 0
    name = project.root.name  # the directory beside the project is shared by tests
    path = path.replace("NAME", name)
    target = project.root.parent / f"{name}-escape.txt"
    if path == "ABSOLUTE":
        path = str(target)
    forge_local_entry(project, lambda row, d, s: (path, *row[1:]))
    refused_then_ran(project, path)
    assert not target.exists()


def test_a_local_entry_that_rewrites_the_tasksfile_is_refused(project):
    cached_tasks(project, ["t"])
    assert project.run("t").code == 0
    tasksfile = project.read("tasksfile.py")
    forge_local_entry(project, lambda row, d, s: ("tasksfile.py", d, row[2], s, *row[4:]),
                      planted=b"raise SystemExit('planted')\n")
    refused_then_ran(project, "tasksfile.py")
    assert project.read("tasksfile.py") == tasksfile


def test_a_local_entry_that_writes_into_git_is_refused(project):
    cached_tasks(project, ["t"])
    (project.root / ".git" / "hooks").mkdir(parents=True)
    assert project.run("t").code == 0
    forge_local_entry(project, lambda row, d, s: (".git/hooks/pre-commit", *row[1:]))
    refused_then_ran(project, ".git/hooks/pre-commit")
    assert list((project.root / ".git" / "hooks").iterdir()) == []


@pytest.mark.parametrize("mode", [0o104755, 0o102755, 0o101777])
def test_a_local_entry_with_more_than_permission_bits_is_refused(project, mode):
    cached_tasks(project, ["t"])
    assert project.run("t").code == 0
    forge_local_entry(project, lambda row, d, s: (row[0], row[1], mode, *row[3:]))
    refused_then_ran(project, "out/t.txt")
    assert not (project.root / "out/t.txt").stat().st_mode & 0o7000


# ---------------------------------------------------------------- killed copies
# A restore or a copy into the store that is killed midway leaves a temporary file.
# It must be where no input or output pattern can see it, and the next run clears it.

BIG_SIZE = 160 << 20  # wide enough a copy for a test polling every millisecond to catch

KILLABLE = f'''
import os
from tasklog import ROOT, log

@task(inputs=["src/seed.txt"], outputs=["out/big.bin"])
def big():
    log("big")
    seed = (ROOT / "src/seed.txt").read_bytes()
    (ROOT / "out").mkdir(exist_ok=True)
    with open(ROOT / "out/big.bin", "wb") as f:
        block = (seed * (1 + 65536 // len(seed)))[:65536]
        for _ in range({BIG_SIZE} // 65536):
            f.write(block)

@task(deps=[big], inputs=["out/*"], outputs=["seen.txt"])
def use():
    """Lists what its inputs pattern matches next to the output."""
    log("use")
    names = sorted(p.name for p in (ROOT / "out").iterdir())
    (ROOT / "seen.txt").write_text(" ".join(names))

@task
def noop():
    pass
'''


def killable_project(project: Project) -> None:
    project.write("tasklog.py", RUNLOG)
    project.write("src/seed.txt", "seed")
    project.tasksfile(KILLABLE)


def store_tmp(project: Project, cache: Path | None = None) -> list[str]:
    d = (cache or project.root / ".runner") / "tmp"
    return sorted(os.listdir(d)) if d.is_dir() else []


def beside_outputs(project: Project) -> list[str]:
    """What is in out/ besides the output (at any depth)."""
    out = project.root / "out"
    found = [p.relative_to(out).as_posix() for p in out.rglob("*")] if out.is_dir() else []
    return [p for p in found if p != "big.bin"]


def temporaries(project: Project, cache: Path | None = None) -> list[str]:
    """Temporary files of a copy under way: in the store's tmp/, or beside the outputs."""
    return store_tmp(project, cache) + beside_outputs(project)


def kill_when_copying(project: Project, *args: str, when=None) -> bool:
    """Run runner and SIGKILL it as soon as a temporary file of a copy appears (or
    `when()` is true); False if the run ended before that was seen."""
    when = when or (lambda: temporaries(project))
    proc = project.popen(*args)
    try:
        seen = poll(lambda: when() or proc.poll() is not None, timeout=60, interval=0.0005)
        if seen and proc.poll() is None and when():
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            return True
        return False
    finally:
        stop(proc)


def test_a_restore_killed_midway_leaves_no_file_an_output_or_input_pattern_sees(project):
    killable_project(project)
    assert project.run("use").code == 0
    assert project.read("seen.txt") == "big.bin"
    caught = False
    for _attempt in range(5):
        (project.root / "out" / "big.bin").unlink(missing_ok=True)
        (project.root / "seen.txt").unlink()
        if kill_when_copying(project, "use"):
            caught = True
            break
    assert caught, "the restore was never caught midway"
    out = project.root / "out"
    assert sorted(p.name for p in out.iterdir()) in ([], ["big.bin"]), list(out.iterdir())

    r = project.run("use")
    assert r.code == 0, r
    assert ran(project) == ["big", "use"], "restores, not runs"
    assert project.read("seen.txt") == "big.bin"
    assert sorted(p.name for p in out.iterdir()) == ["big.bin"]
    assert store_tmp(project) == [], "the killed run's temporary file is cleared"


def test_a_copy_into_the_store_killed_midway_is_cleared_by_the_next_run(project):
    killable_project(project)
    assert kill_when_copying(project, "big"), "the copy into the store was never caught"
    assert store_tmp(project), "the test expects a temporary file to clear"
    r = project.run("big")
    assert r.code == 0, r
    assert store_tmp(project) == []


def test_a_copy_into_the_store_killed_midway_is_cleared_by_cache_prune(project):
    killable_project(project)
    assert kill_when_copying(project, "big"), "the copy into the store was never caught"
    assert store_tmp(project)
    r = project.run("cache", "prune", "--max-size", "10G")
    assert r.code == 0, r
    assert store_tmp(project) == []


def test_the_temporary_files_of_a_live_runner_are_left_alone(project):
    killable_project(project)
    # A runner stopped (SIGSTOP) while it copies an output into the store is alive: a
    # second runner starting meanwhile must not take its temporary file away.
    proc = project.popen("big")
    try:
        assert poll(lambda: store_tmp(project) or proc.poll() is not None,
                    timeout=60, interval=0.0005)
        proc.send_signal(signal.SIGSTOP)
        held = store_tmp(project)
        assert held, "the copy ended before it was caught"
        other = project.run("noop")
        assert other.code == 0, other
        assert set(held) <= set(store_tmp(project))
        proc.send_signal(signal.SIGCONT)
        code, _out, err = finish(proc, 60)
        assert code == 0, err
    finally:
        stop(proc)
    assert store_tmp(project) == []
    assert (project.root / "out" / "big.bin").stat().st_size == BIG_SIZE
    r = project.run("big")
    assert r.code == 0 and ran(project) == ["big"], "the first run's result was stored"


# ---------------------------------------------------------------- a damaged layout
# Something other than runner replaced a part of the cache directory (a file where a
# directory belongs, or the reverse). The next run says so in one line, repairs it,
# and never deletes or loses an output for it; the runs after it are normal.

def fan_out_of(project: Project, name: str) -> str:
    """The cas/ab directory the next output of task `name` will be stored under."""
    project.write(f"src/{name}.txt", "after the damage\n")
    return "cas/" + blake3.blake3(expected_output(project, name).encode()).hexdigest()[:2]


def replace_with_file(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"not a directory\n")


def replace_with_directory(path: Path) -> None:
    path.unlink()
    (path / "inside").mkdir(parents=True)


@pytest.mark.parametrize("damage", ["cas", "tmp", "cas/ab", "locks"])
def test_a_damaged_cache_layout_is_reported_once_repaired_and_costs_no_output(
        project, damage):
    names = ["t", "u"]
    cached_tasks(project, names)
    assert project.run(*names).code == 0
    cache = project.root / ".runner"
    if damage == "cas/ab":
        damage = fan_out_of(project, "t")
    elif damage != "locks":
        project.write("src/t.txt", "after the damage\n")
    if damage == "locks":
        project.write("src/t.txt", "after the damage\n")
        replace_with_directory(cache / "locks")
    else:
        replace_with_file(cache / damage)

    r = project.run(*names)
    assert r.code == 0, r
    lines = r.err.strip().splitlines()
    assert len(lines) == 1 and damage in lines[0], r.err
    assert no_traceback(r)
    for name in names:
        assert project.read(f"out/{name}.txt") == expected_output(project, name)
    assert sorted(ran(project)) == ["t", "t", "u"]

    for _ in range(2):  # the runs after it are normal: no message, nothing runs or is lost
        again = project.run(*names)
        assert again.code == 0 and again.err == "", again
        assert sorted(ran(project)) == ["t", "t", "u"]
        for name in names:
            assert project.read(f"out/{name}.txt") == expected_output(project, name)
    (project.root / "out" / "t.txt").unlink()  # and what was stored after it restores
    assert project.run(*names).code == 0
    assert sorted(ran(project)) == ["t", "t", "u"]
    assert project.read("out/t.txt") == expected_output(project, "t")


# The cache directory on another file system than the outputs: a restore cannot rename
# across, and stages the copy in out/.runner-tmp/ (a directory no pattern matches).

@pytest.fixture
def cache_elsewhere(tmp_path: Path):
    with small_disk(tmp_path, "512m") as disk:
        yield disk / "cache"


def killable_project_with_cache(project: Project, cache: Path) -> None:
    killable_project(project)
    project.write("pyproject.toml", f'[tool.runner]\ncache_dir = "{cache}"\n')


def test_a_restore_across_file_systems_leaves_nothing_beside_the_outputs(project,
                                                                         cache_elsewhere):
    cache = cache_elsewhere
    killable_project_with_cache(project, cache)
    assert project.run("use").code == 0
    assert (project.root / "out").stat().st_dev != cache.stat().st_dev
    (project.root / "out" / "big.bin").unlink()
    (project.root / "seen.txt").unlink()
    r = project.run("use")
    assert r.code == 0, r
    assert ran(project) == ["big", "use"]
    assert (project.root / "out" / "big.bin").stat().st_size == BIG_SIZE
    assert beside_outputs(project) == [] and store_tmp(project, cache) == []
    assert project.read("seen.txt") == "big.bin"


def test_a_restore_across_file_systems_killed_midway_is_cleared(project, cache_elsewhere):
    cache = cache_elsewhere
    killable_project_with_cache(project, cache)
    assert project.run("use").code == 0
    staging = project.root / "out" / ".runner-tmp"

    def staging_a_copy() -> bool:
        return staging.is_dir() and any(staging.iterdir())

    caught = False
    for _attempt in range(5):
        (project.root / "out" / "big.bin").unlink(missing_ok=True)
        (project.root / "seen.txt").unlink(missing_ok=True)
        if kill_when_copying(project, "use", when=staging_a_copy):
            caught = True
            break
    assert caught, "the copy across file systems was never caught midway"

    r = project.run("use")
    assert r.code == 0, r
    assert ran(project) == ["big", "use"], "restores, not runs"
    assert project.read("seen.txt") == "big.bin", "the use task saw only the output"
    assert beside_outputs(project) == [], "the staging directory is cleared"
    assert store_tmp(project, cache) == []
