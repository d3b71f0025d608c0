"""A file system whose timestamps have whole seconds (ext4 with 128-byte inodes, as
old images and some embedded systems have): stat data cannot show a same-size edit
made within the second of the last one. runner compares content where the clock's
granularity leaves stat data unable to tell (the "racy git" rule), before a run and
after a task ran, so that a result is never stored for an input state it did not see.

The project runs on a real such file system: an ext4 image made with
`mkfs.ext4 -I 128`, loop-mounted in a private mount namespace (`unshare -m`, as root).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import clean_env

IN_NAMESPACE = r"""
set -e
img=$1 mnt=$2 src=$3 after=$4 py=$5
mount -o loop "$img" "$mnt"
trap 'cd /; umount "$mnt"' EXIT
cp -a "$src" "$mnt/proj"
cd "$mnt/proj"
"$py" -m runner build > run1.txt 2>&1 || true
"$py" -m runner build > run2.txt 2>&1 || true
cp -a . "$after"
"""


def _why_no_coarse_mount(tmp: Path) -> str | None:
    """Why a whole-second file system cannot be mounted here (None: it can)."""
    if os.geteuid() != 0:
        return "loop-mounting an ext4 image needs root"
    for tool in ("mkfs.ext4", "unshare", "mount"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    img, mnt = tmp / "probe.img", tmp / "probe"
    mnt.mkdir()
    with open(img, "wb") as f:
        f.truncate(8 << 20)
    made = subprocess.run(["mkfs.ext4", "-q", "-F", "-I", "128", str(img)],
                          capture_output=True, text=True, timeout=60)
    if made.returncode != 0:
        return f"mkfs.ext4 -I 128 failed: {made.stderr.strip()}"
    probe = subprocess.run(
        ["unshare", "-m", "sh", "-c",
         'mount -o loop "$1" "$2" && touch "$2/x" && stat -c %y "$2/x"; r=$?; '
         'umount "$2" 2>/dev/null; exit $r', "probe", str(img), str(mnt)],
        capture_output=True, text=True, timeout=60)
    img.unlink()
    if probe.returncode != 0:
        return f"cannot loop-mount in a private mount namespace: {probe.stderr.strip()}"
    if ".000000000" not in probe.stdout:
        return f"the image keeps sub-second timestamps ({probe.stdout.strip()})"
    return None


@pytest.fixture
def coarse_fs(tmp_path_factory: pytest.TempPathFactory):
    """A function that runs `runner build` twice on a copy of a project directory,
    inside a whole-second ext4 mount; it returns the directory as the runs left it."""
    tmp_path = tmp_path_factory.mktemp("coarse")  # beside the project, not in it
    why = _why_no_coarse_mount(tmp_path)
    if why:
        pytest.skip(why)
    img = tmp_path / "coarse.img"
    with open(img, "wb") as f:
        f.truncate(32 << 20)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-I", "128", str(img)], check=True,
                   capture_output=True, timeout=60)

    def run_twice(src: Path, attempt: int) -> Path:
        mnt = tmp_path / f"mnt{attempt}"
        after = tmp_path / f"after{attempt}"
        mnt.mkdir()
        r = subprocess.run(
            ["unshare", "-m", "sh", "-c", IN_NAMESPACE, "runs", str(img), str(mnt),
             str(src), str(after), sys.executable],
            env=clean_env(), capture_output=True, text=True, timeout=180)
        assert r.returncode == 0, (r.stdout, r.stderr)
        return after

    return run_twice


TASKS = '''
import time
from pathlib import Path


def ran(name):
    with open("runs.log", "a") as f:
        f.write(name + "\\n")


@task
def prep():
    """Write the input just after a second begins: the edit below lands in that same
    second, so the file's mtime, ctime and size stay as they were."""
    ran("prep")
    time.sleep(1.05 - time.time() % 1)
    Path("src/in.txt").write_text("aaaa")


@task(deps=[prep], inputs=["src/*.txt"], outputs=["out.txt"])
def build():
    ran("build")
    # The same size, in place (the same inode); the file's seconds before and after
    # tell the test whether the edit stayed within the second.
    sh("stat -c %Y src/in.txt > before.txt; printf bbbb > src/in.txt; "
       "cat src/in.txt > out.txt; stat -c %Y src/in.txt > after.txt")
'''


def test_an_input_edited_during_its_task_within_the_same_second_is_not_stored(
        project, coarse_fs):
    project.tasksfile(textwrap.dedent(TASKS))
    project.write("src/in.txt", "aaaa")
    for attempt in range(3):
        after = coarse_fs(project.root, attempt)
        if (after / "before.txt").read_text() == (after / "after.txt").read_text():
            break  # the edit kept the stat data: the case under test
    else:
        pytest.fail("the edit never stayed within one second (a very loaded machine?)")
    run1, run2 = (after / "run1.txt").read_text(), (after / "run2.txt").read_text()
    # The second run's prep wrote "aaaa" again: the state the first run's fingerprint
    # was taken in. Nothing was stored for it, so build runs again.
    assert (after / "runs.log").read_text().split().count("build") == 2, (run1, run2)
