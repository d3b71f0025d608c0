"""`runner watch`, measured: restart latency, a restart soak, and idle CPU.

    python benchmarks/watch_bench.py latency [--changes 50]
    python benchmarks/watch_bench.py soak [--cycles 500]
    python benchmarks/watch_bench.py idle [--files 50000] [--seconds 10]

latency  From the write of an input to the new server process running, over N changes
         (median and p90), and the same minus the build task's own run time.
soak     N change → rebuild → restart cycles of a server that starts a child of its
         own; then compares the watch process with itself after the first cycle: open
         file descriptors, threads, RSS, server trees alive, zombies.
idle     CPU used by `runner watch` over a tree of many input files while nothing
         changes.
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

TASKSFILE = '''from runner import task, sh

@task(inputs=["src/**/*.txt"], outputs=["build/out.txt"])
def build():
    """Concatenate the sources; note when the work itself starts and ends."""
    sh("date +%s%N >> build-start.log && mkdir -p build && cat src/*.txt > build/out.txt"
       " && date +%s%N >> build-end.log")
'''


def lines(path: str) -> list[str]:
    try:
        with open(path) as f:
            return f.read().split()
    except FileNotFoundError:
        return []


def wait_for(pred, timeout: float = 30.0, step: float = 0.002):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = pred()
        if value:
            return value
        time.sleep(step)
    raise TimeoutError("gave up waiting")


def start_watch(root: str, server: str) -> subprocess.Popen[bytes]:
    env = dict(os.environ, NO_COLOR="1")
    env.pop("CI", None)
    return subprocess.Popen([sys.executable, "-m", "runner", "watch", "build", "--run", server],
                            cwd=root, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)


def stop_watch(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(2)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def project(files: int = 3) -> str:
    root = tempfile.mkdtemp(prefix="watch-bench-")
    os.makedirs(os.path.join(root, "src"))
    for i in range(files):
        with open(os.path.join(root, "src", f"{i}.txt"), "w") as f:
            f.write(f"file {i}\n")
    with open(os.path.join(root, "tasksfile.py"), "w") as f:
        f.write(TASKSFILE)
    return root


def latency(changes: int) -> None:
    root = project()
    started = os.path.join(root, "started.log")
    proc = start_watch(root, f"date +%s%N >> {started}; exec sleep 1000")
    try:
        wait_for(lambda: len(lines(started)) >= 1)
        total, net = [], []
        for i in range(changes):
            before = len(lines(started))
            b_start, b_end = (len(lines(os.path.join(root, n)))
                              for n in ("build-start.log", "build-end.log"))
            time.sleep(0.15)  # let the previous restart settle
            t0 = time.time_ns()
            with open(os.path.join(root, "src", "0.txt"), "w") as f:
                f.write(f"change {i} {t0}\n")
            t1 = int(wait_for(lambda n=before: lines(started)[n:] or None)[0])
            bs = int(lines(os.path.join(root, "build-start.log"))[b_start])
            be = int(lines(os.path.join(root, "build-end.log"))[b_end])
            total.append((t1 - t0) / 1e6)
            net.append((t1 - t0 - (be - bs)) / 1e6)
        q = statistics.quantiles(total, n=10)
        print(f"latency over {changes} changes, write -> new server running:")
        print(f"  median {statistics.median(total):.1f} ms, p90 {q[-1]:.1f} ms")
        print(f"  excluding the build task's own run: median {statistics.median(net):.1f} ms,"
              f" p90 {statistics.quantiles(net, n=10)[-1]:.1f} ms")
    finally:
        stop_watch(proc)
        shutil.rmtree(root, ignore_errors=True)


def proc_info(pid: int) -> dict[str, int]:
    with open(f"/proc/{pid}/status") as f:
        status = dict(line.split(":", 1) for line in f if ":" in line)
    return {"fds": len(os.listdir(f"/proc/{pid}/fd")),
            "threads": int(status["Threads"]),
            "rss_kb": int(status["VmRSS"].split()[0])}


def processes() -> list[tuple[int, int, str, str]]:
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                raw = f.read()
            with open(f"/proc/{name}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        rest = raw[raw.rfind(b")") + 2:].split()
        out.append((int(name), int(rest[1]), rest[0].decode(), cmd))
    return out


def soak(cycles: int) -> None:
    root = project()
    started = os.path.join(root, "started.log")
    marker = f"{os.getpid()}.5"
    server = f"sleep 1{marker} & date +%s%N >> {started}; exec sleep 2{marker}"
    proc = start_watch(root, server)
    try:
        wait_for(lambda: len(lines(started)) >= 1)
        first = None
        for i in range(cycles):
            before = len(lines(started))
            with open(os.path.join(root, "src", "0.txt"), "w") as f:
                f.write(f"cycle {i}\n")
            wait_for(lambda n=before: len(lines(started)) > n)
            time.sleep(0.05)
            if i == 0:
                first = proc_info(proc.pid)
        time.sleep(0.5)
        last = proc_info(proc.pid)
        table = processes()
        trees = sum(1 for _p, _pp, _s, cmd in table if cmd.startswith(f"sleep 2{marker}"))
        children = sum(1 for _p, _pp, _s, cmd in table if cmd.startswith(f"sleep 1{marker}"))
        ours = {proc.pid} | {p for p, pp, _s, _c in table if pp == proc.pid}
        zombies = [p for p, pp, state, _c in table if state == "Z" and pp in ours]
        print(f"soak: {cycles} change -> rebuild -> restart cycles")
        print(f"  after the first cycle: {first}")
        print(f"  after the last cycle:  {last}")
        assert first is not None
        print(f"  fds {last['fds'] - first['fds']:+d}, threads "
              f"{last['threads'] - first['threads']:+d}, RSS "
              f"{(last['rss_kb'] - first['rss_kb']) / 1024:+.1f} MiB")
        print(f"  server trees alive: {trees} (its child: {children}); zombies: {len(zombies)}")
    finally:
        stop_watch(proc)
        shutil.rmtree(root, ignore_errors=True)


def idle(files: int, seconds: float) -> None:
    root = project(0)
    for i in range(files):
        d = os.path.join(root, "src", f"d{i // 100}")
        if i % 100 == 0:
            os.makedirs(d)
        with open(os.path.join(d, f"{i}.txt"), "w") as f:
            f.write(f"{i}\n")
    with open(os.path.join(root, "tasksfile.py"), "w") as f:
        f.write(TASKSFILE.replace("cat src/*.txt", "find src -name '*.txt' | wc -l"))
    started = os.path.join(root, "started.log")
    proc = start_watch(root, f"date +%s%N >> {started}; exec sleep 1000")
    try:
        wait_for(lambda: len(lines(started)) >= 1, timeout=300)
        time.sleep(2)
        tick = os.sysconf("SC_CLK_TCK")

        def cpu() -> float:
            with open(f"/proc/{proc.pid}/stat") as f:
                rest = f.read().rsplit(")", 1)[1].split()
            return (int(rest[11]) + int(rest[12])) / tick

        c0, t0 = cpu(), time.monotonic()
        time.sleep(seconds)
        c1, t1 = cpu(), time.monotonic()
        print(f"idle: {files:,} input files, {seconds:g} s without changes: "
              f"{(c1 - c0) / (t1 - t0) * 100:.2f} % of a core")
    finally:
        stop_watch(proc)
        shutil.rmtree(root, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("what", choices=["latency", "soak", "idle", "all"])
    ap.add_argument("--changes", type=int, default=50)
    ap.add_argument("--cycles", type=int, default=500)
    ap.add_argument("--files", type=int, default=50_000)
    ap.add_argument("--seconds", type=float, default=10.0)
    a = ap.parse_args()
    if a.what in ("latency", "all"):
        latency(a.changes)
    if a.what in ("soak", "all"):
        soak(a.cycles)
    if a.what in ("idle", "all"):
        idle(a.files, a.seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
