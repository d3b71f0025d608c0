"""How runner's no-op time grows with the size of the input tree.

For each size N (default 1,000, 10,000 and 100,000 files of 64 bytes, 100 to a
directory, under 10 tasks of `src/K/**/*.txt`), this builds once, then times the
no-op re-run (the median of several). A no-op reads no file: it stats each input and
compares with the last run, so the time per file should stay flat as N grows.

    python benchmarks/noop_scaling.py [N ...] [--runs 7] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

TASKS = 10
PER_DIR = 100

TASKSFILE = '''from runner import task, sh
{tasks}
'''
TASK = '''
@task(inputs=["src/{k}/**/*.txt"], outputs=["out/{k}.txt"])
def t{k}():
    """Count the files of part {k}."""
    sh("mkdir -p out && find src/{k} -name '*.txt' | wc -l > out/{k}.txt")
'''


def make_tree(root: str, n: int) -> None:
    per_task = n // TASKS
    for k in range(TASKS):
        for i in range(per_task):
            d = os.path.join(root, "src", str(k), str(i // PER_DIR))
            if i % PER_DIR == 0:
                os.makedirs(d, exist_ok=True)
            with open(os.path.join(d, f"{i}.txt"), "w") as f:
                f.write(f"{k} {i} " + "x" * 56 + "\n")
    with open(os.path.join(root, "tasksfile.py"), "w") as f:
        f.write(TASKSFILE.format(tasks="".join(TASK.format(k=k) for k in range(TASKS))))


def run(root: str, *args: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "runner", "-q", *args], cwd=root, check=True,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("sizes", nargs="*", type=int, default=[1_000, 10_000, 100_000])
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--keep", help="build the trees in DIR and keep them")
    a = ap.parse_args()
    names = " ".join(f"t{k}" for k in range(TASKS)).split()
    print("| input files | no-op median | per file | each added file |")
    print("|---:|---:|---:|---:|")
    last: tuple[int, float] | None = None
    for n in a.sizes:
        root = os.path.join(a.keep, f"n{n}") if a.keep else tempfile.mkdtemp(prefix="noop-")
        os.makedirs(root, exist_ok=True)
        try:
            if not os.path.exists(os.path.join(root, "tasksfile.py")):
                make_tree(root, n)
            run(root, *names)  # the full build
            time.sleep(0.2)  # past the file system's clock tick (racy rule)
            run(root, *names)  # settles the stat cache
            times = [run(root, *names) for _ in range(a.runs)]
            med = statistics.median(times)
            # What each file added since the previous size costs: flat when linear.
            step = f"{(med - last[1]) / (n - last[0]) * 1e6:.2f} µs" if last else ""
            print(f"| {n:,} | {med * 1000:.1f} ms | {med / n * 1e6:.2f} µs | {step} |",
                  flush=True)
            last = (n, med)
        finally:
            if not a.keep:
                shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
