"""runner.snapshot: after a run that found every cached task up to date as its record
says, the next run of the same tasks checks one snapshot of everything those checks
looked at. Every test here first makes sure that a snapshot was kept (so the change it
makes meets a snapshot, not the task-by-task path), then changes one thing and expects
exactly what a run without snapshots does: never a false hit, never a needless run."""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import clean_env
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, rule
from test_cache import PAST_RACY_WINDOW, RAN, ok, runs

PROJECT = """
    import helpers


    class Style:
        SEP = ":"


    @task(inputs=["src/**/*.py"], outputs=["dist/x.txt"])
    def build():
        import wording
        ran("build")
        (ROOT / "dist").mkdir(exist_ok=True)
        text = "".join(p.relative_to(ROOT).as_posix() + Style.SEP + p.read_text()
                       for p in sorted((ROOT / "src").rglob("*.py")))
        (ROOT / "dist" / "x.txt").write_text(helpers.PREFIX + text + wording.END)


    @task(deps=[build], inputs=["dist/x.txt", "tests/*.py"], outputs=["dist/report.txt"],
          env=["MODE"])
    def test(k: str = ""):
        ran("test")
        text = (ROOT / "dist" / "x.txt").read_text()
        mode = os.environ.get("MODE", "-")
        (ROOT / "dist" / "report.txt").write_text(f"{len(text)} k={k} mode={mode}\\n")
"""


def make(project, body: str = PROJECT) -> None:
    project.tasksfile(RAN + textwrap.dedent(body))
    project.write("helpers.py", "PREFIX = '>'\n")
    project.write("wording.py", "END = ''\n")
    project.write("src/a.py", "A = 1\n")
    project.write("src/pkg/b.py", "B = 2\n")
    project.write("tests/test_a.py", "def test_a(): pass\n")


def snapshots(project) -> int:
    db = project.root / ".runner" / "state.db"
    with sqlite3.connect(db) as conn:
        try:
            return conn.execute("SELECT count(*) FROM snapshots").fetchone()[0]
        except sqlite3.OperationalError:
            return 0


def settle(project, *args: str, env: dict[str, str] | None = None) -> int:
    """Build, then run until a snapshot is kept (files past the racy window, so that
    their stat data is trusted); the number of task runs so far."""
    time.sleep(PAST_RACY_WINDOW)
    ok(project, *args, env=env)
    time.sleep(PAST_RACY_WINDOW)
    for _ in range(3):
        ok(project, *args, env=env)
        if snapshots(project):
            break
    assert snapshots(project) >= 1, "no snapshot was kept"
    n = runs(project)
    ok(project, *args, env=env)  # a run that uses it: nothing runs
    assert runs(project) == n
    return n


def test_a_no_op_run_keeps_a_snapshot_and_runs_nothing(project):
    make(project)
    n = settle(project, "test")
    assert n == 2
    r = ok(project, "test")
    assert runs(project) == 2
    assert "2 cached" in r.output


def _same_size_same_mtime(project) -> None:
    p = project.root / "src" / "a.py"
    st = p.stat()
    p.write_text("A = 7\n")
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))


def _class_attribute(project) -> None:
    project.tasksfile(RAN + textwrap.dedent(PROJECT.replace('SEP = ":"', 'SEP = "="')))


def _body(project) -> None:
    project.tasksfile(RAN + textwrap.dedent(PROJECT.replace("{len(text)} k=", "{len(text)} K=")))


# (change, the command line after it, the tasks it must run, what must then be true of
# the project and of the run's output)
CHANGES = {
    "an edit that keeps size and mtime": (
        _same_size_same_mtime, [], 2, lambda p, out: "A = 7" in p.read("dist/x.txt")),
    "a new input file": (
        lambda p: p.write("src/pkg/deep/c.py", "C = 3\n"), [], 2,
        lambda p, out: "src/pkg/deep/c.py" in p.read("dist/x.txt")),
    "a deleted input file": (
        lambda p: (p.root / "src" / "pkg" / "b.py").unlink(), [], 2,
        lambda p, out: "b.py" not in p.read("dist/x.txt")),
    "a deleted output": (
        lambda p: (p.root / "dist" / "report.txt").unlink(), [], 0,
        lambda p, out: "restored" in out
        and re.fullmatch(r"\d+ k= mode=-\n", p.read("dist/report.txt")) is not None),
    "an altered output": (
        lambda p: p.write("dist/x.txt", "garbage"), [], 0,
        lambda p, out: p.read("dist/x.txt").startswith(">src/a.py")),
    "a changed argument": (
        lambda p: None, ["--k=slow"], 1, lambda p, out: "k=slow" in p.read("dist/report.txt")),
    "a changed task body": (_body, [], 1, lambda p, out: "K=" in p.read("dist/report.txt")),
    "a changed local module": (
        lambda p: p.write("helpers.py", "PREFIX = '#'\n"), [], 2,
        lambda p, out: p.read("dist/x.txt").startswith("#")),
    "a changed module the task imports in its body": (
        lambda p: p.write("wording.py", "END = '.'\n"), [], 2,
        lambda p, out: p.read("dist/x.txt").endswith(".")),
    "a changed class attribute": (
        _class_attribute, [], 2,
        lambda p, out: "src/a.py=" in p.read("dist/x.txt")),
    "a new gitignore that ignores an input": (
        lambda p: p.write("src/.gitignore", "pkg/\n"), ["-v"], 2,
        lambda p, out: "input src/pkg/b.py removed" in out),
}


@pytest.mark.parametrize("what", list(CHANGES))
def test_a_change_after_a_snapshot_is_seen(project, what):
    change, args, reruns, holds = CHANGES[what]
    make(project)
    n = settle(project, "test")
    change(project)
    r = ok(project, "test", *args)
    assert runs(project) == n + reruns, r
    assert holds(project, r.output), r


def test_a_changed_env_value_is_seen(project):
    make(project)
    n = settle(project, "test")
    ok(project, "test", env={**os.environ, "MODE": "fast"})
    assert runs(project, "test") == 2 and runs(project) == n + 1
    assert "mode=fast" in project.read("dist/report.txt")


def test_a_touched_input_is_still_a_hit(project):
    make(project)
    n = settle(project, "test")
    p = project.root / "src" / "a.py"
    os.utime(p, ns=(p.stat().st_atime_ns, p.stat().st_mtime_ns + 5_000_000_000))
    ok(project, "test")
    assert runs(project) == n


def test_a_snapshot_is_per_target(project):
    make(project)
    settle(project, "build")
    n = settle(project, "test")
    assert snapshots(project) == 2
    project.write("src/a.py", "A = 9\n")
    ok(project, "build")
    assert runs(project) == n + 1
    ok(project, "test")
    assert runs(project) == n + 2


GEN_PACK = """
    @task
    def gen():
        if os.environ.get("GEN"):
            (ROOT / "src" / "gen.py").write_text(os.environ["GEN"])


    @task({deps}inputs=["src/**/*.py"], outputs=["dist/g.txt"])
    def pack():
        ran("pack")
        (ROOT / "dist").mkdir(exist_ok=True)
        (ROOT / "dist" / "g.txt").write_text((ROOT / "src" / "gen.py").read_text())
"""


@pytest.mark.parametrize(
    "deps, command",
    [("deps=[gen], ", ["pack"]), ("", ["-j", "1", "gen", "pack"])],
    ids=["gen is a dep of pack", "gen runs first (runner gen pack)"],
)
def test_an_input_an_uncached_task_rewrites_first_is_seen(project, deps, command):
    """`gen` has no inputs, so it runs every time, before `pack`; now and then it
    rewrites an input of `pack`. A check made before `gen` ran (a snapshot's) would
    miss that: no snapshot may cover `pack`."""
    make(project, PROJECT + GEN_PACK.replace("{deps}", deps))
    project.write("src/gen.py", "first")
    time.sleep(PAST_RACY_WINDOW)
    for _ in range(4):
        ok(project, *command)
        time.sleep(PAST_RACY_WINDOW)
    assert runs(project, "pack") == 1
    ok(project, *command, env={**os.environ, "GEN": "second"})
    assert runs(project, "pack") == 2
    assert project.read("dist/g.txt") == "second"


def test_an_uncached_task_after_the_cached_ones_still_runs(project):
    make(project, PROJECT + """
    @task(deps=[test])
    def ship():
        ran("ship")
    """)
    time.sleep(PAST_RACY_WINDOW)
    ok(project, "ship")
    time.sleep(PAST_RACY_WINDOW)
    for _ in range(3):
        ok(project, "ship")
    assert snapshots(project) == 1
    assert runs(project, "ship") == 4
    assert runs(project, "build") == 1


def test_a_damaged_snapshot_is_reported_and_the_run_goes_on(project):
    make(project)
    n = settle(project, "test")
    db = project.root / ".runner" / "state.db"
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE snapshots SET data = ?", (b"\x00" * 64,))
    r = ok(project, "test")
    assert "damaged" in r.err
    assert runs(project) == n + 2  # a new store: everything runs once more
    assert "A = 1" in project.read("dist/x.txt")


# ---------------------------------------------------------------- any sequence of changes

PROP_TASKSFILE = '''\
from pathlib import Path
from runner import task

ROOT = Path(__file__).resolve().parent


def ran(name):
    with open(ROOT / "runs.log", "a") as f:
        f.write(name + "\\n")


@task(inputs=["src/**/*.txt"], outputs=["out/a.txt"])
def concat():
    ran("concat")
    (ROOT / "out").mkdir(exist_ok=True)
    parts = [p.relative_to(ROOT).as_posix().encode() + b"=" + p.read_bytes() + b"\\n"
             for p in sorted((ROOT / "src").rglob("*.txt"))]
    (ROOT / "out" / "a.txt").write_bytes(b"".join(parts))


@task(deps=[concat], inputs=["out/a.txt"], outputs=["out/b.txt"])
def derive():
    ran("derive")
    (ROOT / "out" / "b.txt").write_bytes((ROOT / "out" / "a.txt").read_bytes()[::-1])
'''
PROP_SOURCES = ["src/a.txt", "src/b.txt", "src/sub/c.txt"]


def _expected(sources: dict[str, bytes]) -> dict[str, bytes]:
    a = b"".join(p.encode() + b"=" + sources[p] + b"\n" for p in sorted(sources))
    return {"out/a.txt": a, "out/b.txt": a[::-1]}


class SnapshotBuild(RuleBasedStateMachine):
    """Edits, reverts, deletes, touches and damaged outputs, with `settle` steps that
    let a snapshot be kept (files older than the racy window, two quiet runs): after
    every step the outputs are those of a fresh build, and a task runs exactly when its
    sources are in a state no run built."""

    def __init__(self) -> None:
        super().__init__()
        self.tmp = tempfile.mkdtemp(prefix="runner-snapshot-prop-")
        self.root = Path(self.tmp)
        self.sources: dict[str, bytes] = {}
        self.history: dict[str, list[bytes]] = {p: [] for p in PROP_SOURCES}
        self.built: set[frozenset[tuple[str, bytes]]] = set()
        self.logged = 0

    @initialize(first=st.lists(st.binary(max_size=8), min_size=3, max_size=3))
    def start(self, first: list[bytes]) -> None:
        (self.root / "tasksfile.py").write_text(PROP_TASKSFILE)
        for path, data in zip(PROP_SOURCES, first, strict=True):
            self._write(path, data)
        self.run_and_check()
        self.settle()  # every example meets a snapshot at its first change

    @rule(i=st.integers(0, 2), data=st.binary(max_size=8))
    def edit(self, i: int, data: bytes) -> None:
        self._write(PROP_SOURCES[i], data)
        self.run_and_check()

    @rule(i=st.integers(0, 2), pick=st.integers(0, 100))
    def revert(self, i: int, pick: int) -> None:
        past = self.history[PROP_SOURCES[i]]
        if past:
            self._write(PROP_SOURCES[i], past[pick % len(past)])
        self.run_and_check()

    @rule(pick=st.integers(0, 100))
    def delete(self, pick: int) -> None:
        if self.sources:
            path = sorted(self.sources)[pick % len(self.sources)]
            (self.root / path).unlink()
            del self.sources[path]
        self.run_and_check()

    @rule(pick=st.integers(0, 100))
    def touch(self, pick: int) -> None:
        if self.sources:
            os.utime(self.root / sorted(self.sources)[pick % len(self.sources)])
        self.run_and_check()

    @rule(kind=st.sampled_from(["delete a", "alter b"]))
    def tamper(self, kind: str) -> None:
        if kind == "delete a":
            (self.root / "out" / "a.txt").unlink()
        else:
            (self.root / "out" / "b.txt").write_bytes(b"tampered")
        self.run_and_check()

    @rule()
    def quiet(self) -> None:
        self.settle()

    def settle(self) -> None:
        time.sleep(PAST_RACY_WINDOW)
        self.run_and_check()
        time.sleep(PAST_RACY_WINDOW)
        self.run_and_check()
        self.run_and_check()
        assert snapshots(self.root_project()) == 1, "quiet runs kept no snapshot"

    def root_project(self) -> Any:
        class _P:
            root = self.root

        return _P

    def _write(self, path: str, data: bytes) -> None:
        full = self.root / path
        full.parent.mkdir(parents=True, exist_ok=True)
        full.write_bytes(data)
        self.sources[path] = data
        self.history[path].append(data)

    def run_and_check(self) -> None:
        r = subprocess.run([sys.executable, "-m", "runner", "derive"], cwd=self.root,
                           env=clean_env(), capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r
        log_file = self.root / "runs.log"
        log = log_file.read_text().splitlines() if log_file.exists() else []
        ran = set(log[self.logged:])
        self.logged = len(log)
        got = {p: (self.root / p).read_bytes() for p in ("out/a.txt", "out/b.txt")}
        assert got == _expected(self.sources), r.stdout
        state = frozenset(self.sources.items())
        if state in self.built:
            assert ran == set(), f"a needless re-run of {sorted(ran)}\n{r.stdout}"
        else:
            assert ran == {"concat", "derive"}, f"a new state, yet ran {sorted(ran)}"
        self.built.add(state)

    def teardown(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


SnapshotBuild.TestCase.settings = settings(
    max_examples=8, stateful_step_count=6, deadline=None, database=None,
    suppress_health_check=[HealthCheck.too_slow])
test_outputs_equal_a_fresh_build_with_snapshots_between_changes = SnapshotBuild.TestCase


def test_a_change_late_in_the_order_leaves_the_tasks_before_it_covered(project):
    make(project)
    n = settle(project, "test")
    project.write("tests/test_b.py", "def test_b(): pass\n")
    r = ok(project, "test", "-v")
    assert runs(project, "build") == 1 and runs(project) == n + 1
    assert "new file tests/test_b.py" in r.output
    # Once that settles, the snapshot holds both tasks again.
    time.sleep(PAST_RACY_WINDOW)
    for _ in range(3):
        ok(project, "test")
    assert runs(project) == n + 1
    project.write("src/a.py", "A = 5\n")
    ok(project, "test")
    assert runs(project) == n + 3
    assert "A = 5" in project.read("dist/x.txt")
