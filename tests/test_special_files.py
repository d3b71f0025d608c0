"""FIFOs, sockets and devices among the files a pattern matches: never opened (a FIFO's
reader waits for a writer that never comes, a device may never end), reported once by
path with the task that matched them, and left out — of the fingerprint for inputs and
global_inputs, of the cache entry for outputs. The build goes on (README, "Special
files")."""

from __future__ import annotations

import os
import socket
import textwrap
import threading
from pathlib import Path

import pytest

RAN = '''\
from pathlib import Path

ROOT = Path(__file__).resolve().parent


def ran(name):
    with open(ROOT / "runs.log", "a") as f:
        f.write(name + "\\n")
'''

# Every run has a deadline: before the fix a FIFO hung runner for good.
DEADLINE = 30


def make_special(path: Path, kind: str) -> None:
    """A FIFO, or a bound unix socket (bound by its relative name: the full path of a
    pytest temporary directory may pass the 108-byte limit of a socket address)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "fifo":
        os.mkfifo(path)
        return
    here = os.getcwd()
    os.chdir(path.parent)
    try:
        s = socket.socket(socket.AF_UNIX)
        s.bind(path.name)
        s.close()  # the socket file stays
    finally:
        os.chdir(here)


KINDS = {"fifo": "a FIFO", "socket": "a socket"}


def run(project, *args):
    r = project.run(*args, timeout=DEADLINE)
    assert r.code == 0, r
    return r


def runs(project) -> int:
    p = project.root / "runs.log"
    return len(p.read_text().splitlines()) if p.exists() else 0


def warnings_about(result, path: str) -> list[str]:
    return [line for line in result.err.splitlines() if "warning" in line and path in line]


INPUTS = """
    @task(inputs=["src/*"], outputs=["out.txt"])
    def build():
        ran("build")
        Path("out.txt").write_text(Path("src/a.txt").read_text().upper())
"""


@pytest.mark.parametrize("kind", KINDS)
def test_a_special_file_among_the_inputs_is_reported_and_left_out(project, kind):
    project.tasksfile(RAN + textwrap.dedent(INPUTS))
    project.write("src/a.txt", "a\n")
    make_special(project.root / "src" / "special", kind)
    r = run(project, "build")
    said = warnings_about(r, "src/special")
    assert len(said) == 1, r
    assert "build" in said[0] and KINDS[kind] in said[0], said
    assert project.read("out.txt") == "A\n"
    run(project, "build")
    assert runs(project) == 1  # cached: the special file is not part of the fingerprint
    project.write("src/a.txt", "b\n")
    run(project, "build")
    assert runs(project) == 2  # and the regular inputs still are


@pytest.mark.parametrize("kind", KINDS)
def test_a_special_file_named_exactly_as_an_input_is_reported_and_left_out(project, kind):
    project.tasksfile(RAN + textwrap.dedent(INPUTS.replace('"src/*"', '"src/a.txt", "sock"')))
    project.write("src/a.txt", "a\n")
    make_special(project.root / "sock", kind)
    r = run(project, "build")
    assert len(warnings_about(r, "sock")) == 1, r
    run(project, "build")
    assert runs(project) == 1


@pytest.mark.parametrize("kind", KINDS)
def test_a_special_file_among_the_global_inputs_is_reported_and_left_out(project, kind):
    project.tasksfile(RAN + textwrap.dedent(INPUTS))
    project.write("pyproject.toml", '[tool.runner]\nglobal_inputs = ["config/*"]\n')
    project.write("config/base.cfg", "level = 1\n")
    make_special(project.root / "config" / "special", kind)
    project.write("src/a.txt", "a\n")
    r = run(project, "build")
    said = warnings_about(r, "config/special")
    assert len(said) == 1 and "global_inputs" in said[0], r
    run(project, "build")
    assert runs(project) == 1
    project.write("config/base.cfg", "level = 2\n")
    run(project, "build")
    assert runs(project) == 2


MAKES_SPECIAL = """
    import os, socket

    @task(inputs=["src/*.txt"], outputs=["out/*"])
    def build():
        ran("build")
        Path("out").mkdir(exist_ok=True)
        Path("out/a.txt").write_text(Path("src/a.txt").read_text().upper())
        if KIND == "fifo":
            os.mkfifo("out/special")
        else:
            os.chdir("out")
            try:
                socket.socket(socket.AF_UNIX).bind("special")
            finally:
                os.chdir("..")
"""


@pytest.mark.parametrize("kind", KINDS)
def test_a_special_file_among_the_outputs_is_reported_and_not_stored(project, kind):
    project.tasksfile(RAN + f"KIND = {kind!r}\n" + textwrap.dedent(MAKES_SPECIAL))
    project.write("src/a.txt", "a\n")
    r = run(project, "build")
    said = warnings_about(r, "out/special")
    assert len(said) == 1 and "build" in said[0] and KINDS[kind] in said[0], r
    # The regular output was stored: deleted, it comes back from the cache.
    (project.root / "out" / "a.txt").unlink()
    run(project, "build")
    assert runs(project) == 1
    assert project.read("out/a.txt") == "A\n"
    # A run that makes it again first removes the one the last run made (unlinked,
    # never opened), so that mkfifo and bind find the name free.
    project.write("src/a.txt", "b\n")
    run(project, "build")
    assert runs(project) == 2


# ---------------------------------------------------------------- hashing itself

def no_longer_than(seconds: float, fn, *args):
    """fn(*args) in a thread; its result or exception, or a failure if it blocks."""
    got: dict[str, object] = {}

    def call() -> None:
        try:
            got["value"] = fn(*args)
        except BaseException as e:
            got["error"] = e

    t = threading.Thread(target=call, daemon=True)
    t.start()
    t.join(seconds)
    if t.is_alive():
        pytest.fail(f"{fn.__name__} blocked on a FIFO for {seconds}s")
    return got


def test_hashing_a_file_that_became_a_fifo_raises_instead_of_blocking(tmp_path):
    """A file swapped for a FIFO between the walk (or a stat) and the read: the open
    returns at once and the check after it refuses the FIFO; scan() leaves it out as a
    file that vanished."""
    from runner import fingerprint

    fifo = tmp_path / "swapped"
    os.mkfifo(fifo)
    got = no_longer_than(5, fingerprint.hash_file, str(fifo))
    assert isinstance(got.get("error"), fingerprint.SpecialFile), got
    got = no_longer_than(5, fingerprint._hash_one, (0, str(fifo)))
    assert got.get("value") == (0, None), got


def test_storing_an_output_that_became_a_fifo_stores_nothing(tmp_path):
    from runner.cas import Blobs

    fifo = tmp_path / "out"
    os.mkfifo(fifo)
    got = no_longer_than(5, Blobs(str(tmp_path / "cache")).ingest, str(fifo))
    assert got.get("value", "error") is None, got
