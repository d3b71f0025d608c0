"""SPEC §1 and §4, the cache as a whole: whatever happens to the sources between runs
(edits, reverts to earlier contents, deletes, re-creations, renames, touches), to the
outputs (deleted, altered, joined by stray files, a link retargeted) and to a run (a
SIGKILL at any instant), a cached run leaves exactly the outputs a from-scratch build
of the same sources makes — byte for byte, links as links, no file more, no temporary
file left — and it runs a task exactly when its sources are in a state no earlier run
built (never a false hit, never a needless re-run; after a killed run, never a run for
a state that was built before).

The project: four source files (two of them nested, for `**`) and a chain of two tasks.
`concat` writes out/a.txt from the sources; `derive` writes out/b.txt from out/a.txt,
one out/parts/*.part file per source (so that removing a source must remove its part),
a symlink out/latest to the last part (or to b.txt), and an empty directory out/empty.
The expected outputs come from the same rendering functions, run in this process on the
sources the model says exist; at the end of each example a `runner --no-cache` build in
a fresh directory confirms that they are what the tasks really make.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from conftest import clean_env
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, rule

RENDER = '''\
def render_a(sources):
    """{path: bytes} -> out/a.txt: each source, length-prefixed, in path order."""
    out = bytearray()
    for path in sorted(sources):
        data = sources[path]
        out += ("== %s %d\\n" % (path, len(data))).encode() + data + b"\\n"
    return bytes(out)


def parse_a(blob):
    found = {}
    i = 0
    while i < len(blob):
        nl = blob.index(b"\\n", i)
        _, path, size = blob[i:nl].decode().split(" ")
        found[path] = blob[nl + 1:nl + 1 + int(size)]
        i = nl + 1 + int(size) + 1
    return found


def render_b(a):
    """out/a.txt -> out/b.txt."""
    return a[::-1] + ("\\n%d\\n" % len(a)).encode()


def render_parts(a):
    """out/a.txt -> {out/parts/NAME.part: bytes}, one per source."""
    return {"out/parts/" + path[len("src/"):].replace("/", "__") + ".part": data.upper()
            for path, data in parse_a(a).items()}


def render_latest(a):
    """out/a.txt -> the target of the symlink out/latest: the last part, or b.txt."""
    parts = sorted(render_parts(a))
    return parts[-1][len("out/"):] if parts else "b.txt"
'''

TASKSFILE = "from runner import task\nfrom pathlib import Path\n\n" + RENDER + '''

ROOT = Path(__file__).resolve().parent


def ran(name):
    with open(ROOT / "runs.log", "a") as f:
        f.write(name + "\\n")


@task(inputs=["src/**/*.txt"], outputs=["out/a.txt"])
def concat():
    ran("concat")
    sources = {p.relative_to(ROOT).as_posix(): p.read_bytes()
               for p in (ROOT / "src").rglob("*.txt")}
    (ROOT / "out").mkdir(exist_ok=True)
    (ROOT / "out" / "a.txt").write_bytes(render_a(sources))


@task(deps=[concat], inputs=["out/a.txt"],
      outputs=["out/b.txt", "out/parts/*.part", "out/latest", "out/empty"])
def derive():
    ran("derive")
    a = (ROOT / "out" / "a.txt").read_bytes()
    (ROOT / "out" / "b.txt").write_bytes(render_b(a))
    (ROOT / "out" / "parts").mkdir(exist_ok=True)
    for rel, data in render_parts(a).items():
        (ROOT / rel).write_bytes(data)
    (ROOT / "out" / "latest").symlink_to(render_latest(a))  # fails if a stale one is left
    (ROOT / "out" / "empty").mkdir()
'''

_render: dict = {}
exec(compile(RENDER, "<render>", "exec"), _render)  # the oracle: the tasks' own functions

SOURCES = ["src/a.txt", "src/b.txt", "src/sub/c.txt", "src/sub/deep/d.txt"]
TASKS = {"concat", "derive"}
# Big sources make copies (into the store, restores) last long enough for a killed run
# to stop in one.
BIG = b"0123456789abcdef" * (1 << 16)  # 1 MiB

# Same-size values make edits that change neither the size nor (within one clock
# tick) the mtime; the binary ones vary the size.
CONTENTS = st.sampled_from([b"alpha", b"bravo", b"gamma", b"delta", b"", b"alpha\n"]) \
    | st.binary(max_size=24)


def expected_outputs(sources: dict[str, bytes]) -> dict[str, object]:
    a = _render["render_a"](sources)
    return {"out/a.txt": a, "out/b.txt": _render["render_b"](a), **_render["render_parts"](a),
            "out/latest": ("link", _render["render_latest"](a)), "out/empty": "dir"}


def out_tree(root: Path) -> dict[str, object]:
    """What is under out/: a file's bytes, a link's target; of directories, the declared
    empty one and any temporary one (out/parts exists or not, as the task needs it)."""
    found: dict[str, object] = {}
    for dirpath, dirnames, filenames in os.walk(root / "out"):
        for n in dirnames + filenames:
            p = Path(dirpath) / n
            rel = p.relative_to(root).as_posix()
            if p.is_symlink():
                found[rel] = ("link", os.readlink(p))
            elif p.is_dir():
                if rel == "out/empty" or "runner-tmp" in n:
                    found[rel] = "dir"
            else:
                found[rel] = p.read_bytes()
    return found


def temporaries(root: Path) -> list[str]:
    """Temporary files left anywhere: in the store's tmp/ or in the project."""
    tmp = root / ".runner" / "tmp"
    left = [f"tmp/{n}" for n in os.listdir(tmp)] if tmp.is_dir() else []
    return left + [str(p) for p in root.rglob("*runner-tmp*")]


def files_under(root: Path, sub: str) -> dict[str, bytes]:
    base = root / sub
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(base.rglob("*")) if p.is_file()} if base.exists() else {}


def runner(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "runner", *args], cwd=root,
                          env=clean_env(), capture_output=True, text=True, timeout=60)


class CachedBuild(RuleBasedStateMachine):
    """The model: which sources exist with what content, every content each path ever
    had (for reverts), and every source state a run has built (a cache hit is due
    exactly for those)."""

    def __init__(self) -> None:
        super().__init__()
        self.tmp = tempfile.mkdtemp(prefix="runner-cache-prop-")
        self.root = Path(self.tmp)
        self.sources: dict[str, bytes] = {}
        self.history: dict[str, list[bytes]] = {p: [] for p in SOURCES}
        self.built: set[frozenset[tuple[str, bytes]]] = set()
        self.logged = 0
        self.tampered = False
        self.killed = False  # the last run was killed: what it did is not known

    # ------------------------------------------------------------ steps
    @initialize(first=st.lists(CONTENTS, min_size=len(SOURCES), max_size=len(SOURCES)))
    def start(self, first: list[bytes]) -> None:
        (self.root / "tasksfile.py").write_text(TASKSFILE)
        for path, data in zip(SOURCES, first, strict=True):
            self._write(path, data)
        self.run_and_check()

    @rule(i=st.integers(0, len(SOURCES) - 1), data=CONTENTS)
    def edit(self, i: int, data: bytes) -> None:
        self._write(SOURCES[i], data)
        self.run_and_check()

    @rule(i=st.integers(0, len(SOURCES) - 1), pick=st.integers(0, 1000))
    def revert(self, i: int, pick: int) -> None:
        past = self.history[SOURCES[i]]
        if past:
            self._write(SOURCES[i], past[pick % len(past)])
        self.run_and_check()

    # A step that does not apply (nothing to delete, nowhere to rename to) changes
    # nothing, and the run after it must then be a hit.
    @rule(pick=st.integers(0, 1000))
    def delete(self, pick: int) -> None:
        if self.sources:
            path = sorted(self.sources)[pick % len(self.sources)]
            (self.root / path).unlink()
            del self.sources[path]
        self.run_and_check()

    @rule(pick=st.integers(0, 1000))
    def touch(self, pick: int) -> None:
        if self.sources:
            os.utime(self.root / sorted(self.sources)[pick % len(self.sources)])
        self.run_and_check()

    @rule(pick=st.integers(0, 1000), to=st.integers(0, 1000))
    def rename(self, pick: int, to: int) -> None:
        free = [p for p in SOURCES if p not in self.sources]
        if self.sources and free:
            path = sorted(self.sources)[pick % len(self.sources)]
            dest = free[to % len(free)]
            (self.root / dest).parent.mkdir(parents=True, exist_ok=True)
            os.replace(self.root / path, self.root / dest)
            self.sources[dest] = self.sources.pop(path)
            self.history[dest].append(self.sources[dest])
        self.run_and_check()

    @rule(change=st.sampled_from(["nothing", "edit", "edit big", "delete outputs"]),
          i=st.integers(0, len(SOURCES) - 1), data=CONTENTS,
          moment=st.sampled_from(["after the start", "once a task ran", "during a copy"]),
          delay=st.integers(0, 30))
    def killed_run(self, change: str, i: int, data: bytes, moment: str, delay: int) -> None:
        """SIGKILL a run at some instant: `delay` tens of milliseconds after it started
        (loading, deciding, running), `delay` milliseconds after a task's code ran, or
        `delay` tenths of a millisecond after a temporary file of a copy appeared (into
        the store, or a restore). The next run must still build exactly the sources'
        outputs."""
        if change == "edit":
            self._write(SOURCES[i], data)
        elif change == "edit big":  # long copies: a kill may well stop one midway
            self._write(SOURCES[i], BIG + data)
        elif change == "delete outputs":
            shutil.rmtree(self.root / "out", ignore_errors=True)
        logged = len(self._log())
        proc = subprocess.Popen([sys.executable, "-m", "runner", "derive"], cwd=self.root,
                                env=clean_env(), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        if moment == "after the start":
            time.sleep(delay / 100)
        else:
            seen = (lambda: len(self._log()) > logged) if moment == "once a task ran" \
                else (lambda: temporaries(self.root) != [])
            deadline = time.monotonic() + 30
            while not seen() and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.0002)
            time.sleep(delay / (1000 if moment == "once a task ran" else 10000))
        proc.kill()
        proc.wait(30)
        self.logged = len(self._log())  # whatever the killed run ran is not counted
        self.killed = True
        self.run_and_check()

    @rule(kind=st.sampled_from(["delete a.txt", "alter b.txt", "stray part",
                                "delete a part", "chmod b.txt", "retarget latest"]))
    def tamper_with_outputs(self, kind: str) -> None:
        out = self.root / "out"
        if kind == "delete a.txt":
            (out / "a.txt").unlink()
        elif kind == "alter b.txt":
            data = (out / "b.txt").read_bytes()
            (out / "b.txt").write_bytes(bytes([data[0] ^ 1]) + data[1:])
        elif kind == "stray part":
            (out / "parts").mkdir(exist_ok=True)
            (out / "parts" / "stray.part").write_bytes(b"not made by derive")
        elif kind == "delete a part":
            parts = sorted((out / "parts").glob("*.part")) if (out / "parts").exists() else []
            if parts:
                parts[0].unlink()
        elif kind == "retarget latest":
            (out / "latest").unlink()
            (out / "latest").symlink_to("a.txt")
        else:
            (out / "b.txt").chmod(0o755)
        self.tampered = True
        self.run_and_check()

    def _write(self, path: str, data: bytes) -> None:
        full = self.root / path
        full.parent.mkdir(parents=True, exist_ok=True)
        full.write_bytes(data)
        self.sources[path] = data
        self.history[path].append(data)

    # ------------------------------------------------------------ the check
    def _log(self) -> list[str]:
        log = self.root / "runs.log"
        return log.read_text().splitlines() if log.exists() else []

    def run_and_check(self) -> None:
        r = runner(self.root, "derive")
        assert r.returncode == 0, r
        log = self._log()
        ran = set(log[self.logged:])
        self.logged = len(log)
        killed, self.killed = self.killed, False

        assert files_under(self.root, "src") == self.sources
        got = out_tree(self.root)
        want = expected_outputs(self.sources)
        assert sorted(got) == sorted(want), f"extra or missing outputs\n{r.stdout}"
        for path in want:
            assert got[path] == want[path], f"{path} differs from a fresh build\n{r.stdout}"
        assert not (self.root / "out" / "b.txt").stat().st_mode & 0o111
        strays = sorted(p.name for p in self.root.iterdir())
        assert set(strays) <= {".runner", "out", "runs.log", "src", "tasksfile.py"}, strays
        assert temporaries(self.root) == [], "a temporary file survived a run"

        state = frozenset(self.sources.items())
        if state in self.built:
            assert ran == set(), f"a needless re-run of {sorted(ran)}\n{r.stdout}"
        elif killed:  # the killed run may have built some of it
            assert ran <= TASKS, ran
        else:
            assert ran == TASKS, f"a new source state, yet ran only {sorted(ran)}\n{r.stdout}"
        self.built.add(state)

    def teardown(self) -> None:
        try:
            if (self.root / "tasksfile.py").exists():
                self._check_against_a_fresh_build()
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def _check_against_a_fresh_build(self) -> None:
        """The oracle is what the tasks really make: a --no-cache build elsewhere."""
        fresh = Path(self.tmp + "-fresh")
        try:
            fresh.mkdir()
            shutil.copy(self.root / "tasksfile.py", fresh / "tasksfile.py")
            shutil.copytree(self.root / "src", fresh / "src")
            r = runner(fresh, "--no-cache", "derive")
            assert r.returncode == 0, r
            assert out_tree(fresh) == out_tree(self.root)
        finally:
            shutil.rmtree(fresh, ignore_errors=True)


CachedBuild.TestCase.settings = settings(
    max_examples=12, stateful_step_count=8, deadline=None, database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
test_cached_outputs_equal_a_fresh_build_after_any_sequence_of_changes = CachedBuild.TestCase


def test_the_oracle_renders_what_the_tasks_write(tmp_path):
    """The expected outputs used above are those of a real build."""
    (tmp_path / "tasksfile.py").write_text(TASKSFILE)
    sources = {"src/a.txt": b"one", "src/sub/deep/d.txt": b"\x00two\n"}
    for path, data in sources.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_bytes(data)
    r = runner(tmp_path, "--no-cache", "derive")
    assert r.returncode == 0, r
    assert out_tree(tmp_path) == expected_outputs(sources)
