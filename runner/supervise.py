"""The owner of a long-running process (`runner watch`'s dev server).

    python runner/supervise.py --grace 5 --signal SIGTERM -- sh -c 'CMD'
    python runner/supervise.py --grace 5 --signal SIGTERM --task NAME --tasksfile PATH
           --args '{"port": 8000}' [--source -]

(`--source -`: the tasksfile's text comes on standard input, as runner watch loaded
it: a tasksfile broken on disk since then does not stop the server from starting.)

It makes itself a child subreaper (Linux), starts the process in a session of its own,
and waits. Every process of the tree that loses its parent is re-parented to it rather
than to init — a grandchild that called setsid and double-forked included — so it can
always find and stop the whole tree. It runs no other code, so it may reap every child
it has (an owner that runs user code cannot: it would steal their exit statuses).

SIGTERM (from runner watch) stops the tree: the configured signal to the process's group
and to every descendant, `--grace` seconds, then SIGKILL. When the process exits by
itself, what it left behind is stopped the same way. Either way this exits with the
process's exit code once nothing of the tree is left. If runner watch dies, the kernel
sends this SIGTERM (PR_SET_PDEATHSIG), so no server outlives its watcher.
"""

from __future__ import annotations

import os
import signal
import sys
import time

try:
    from . import ptree
except ImportError:  # run as a script (what runner watch does): no package import
    import ptree  # type: ignore[no-redef]

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from runner.tasks import Task

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36


class _Stop(Exception):
    pass


def _prctl(option: int, value: int) -> None:
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0)
    except (OSError, AttributeError):
        pass  # not Linux: orphans go to init, and the group signal is what is left


def _descendants() -> set[int]:
    return ptree.tree_of([os.getpid()])


def _reap() -> dict[int, int]:
    """Collect every child that has exited; {pid: exit code}."""
    done: dict[int, int] = {}
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return done
        if pid == 0:
            return done
        done[pid] = os.waitstatus_to_exitcode(status)


def stop_tree(main: int, sig: int, grace: float) -> dict[int, int]:
    """Stop every descendant: `sig` to the main process's group and to each of them,
    up to `grace` seconds, then SIGKILL. Returns the exit codes reaped meanwhile."""
    codes: dict[int, int] = {}
    try:
        os.killpg(main, sig)
    except (ProcessLookupError, PermissionError):
        pass
    for pid in _descendants():  # those that left its group (setsid) too
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass
    end = time.monotonic() + grace
    while time.monotonic() < end:
        codes.update(_reap())
        if not _descendants():
            return codes
        time.sleep(0.01)
    while True:
        codes.update(_reap())
        live = _descendants()
        if not live:
            return codes
        for pid in live:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        time.sleep(0.005)


def _start(argv: list[str], task: dict[str, Any] | None) -> int:
    """Fork the process to own: a command, or a task of the tasksfile run in-process."""
    pid = os.fork()
    if pid:
        return pid
    try:
        os.setsid()  # its own session and group: the signal reaches all of it
        for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(s, signal.SIG_DFL)
        if task is None:
            os.execvp(argv[0], argv)
        os._exit(_run_task(task))
    except BaseException as e:  # never return into the supervisor's code
        print(f"runner: cannot start {argv or task}: {e}", file=sys.stderr, flush=True)
        os._exit(127)


def _run_task(task: dict[str, Any]) -> int:
    import json

    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from runner.errors import TaskError, UserError
    from runner.loader import load_tasks

    os.chdir(task["root"])
    try:
        found = load_tasks(task["tasksfile"], task["root"], source=task.get("source"))
        service = {t.name: t for t in found}[task["name"]]
        _give_context(service, task["root"])
        service.call(json.loads(task["args"]))
    except TaskError as e:
        print(f"runner: {task['name']}: {e}", file=sys.stderr, flush=True)
        return e.exit_code or 1
    except UserError as e:
        print(e.show(), file=sys.stderr, flush=True)
        return 2
    return 0


def _give_context(service: Task, root: str) -> None:
    """A service task's commands run in its `cwd=` with its .env variables, as under
    `runner TASK` (its Python code keeps the project root as its directory)."""
    from runner import config
    from runner.proc import Scope, TaskContext, _write_through, set_context

    dotenv = config.load(root).dotenv
    if service.cwd is None and not service.dotenv and not dotenv:
        return
    from runner.dotenv import Dotenv

    set_context(
        TaskContext(
            service.name,
            Scope(service.name),
            root,
            output=_write_through,
            command=lambda cmd: None,
            interactive=True,
            cwd=os.path.join(root, service.cwd) if service.cwd else None,
            env=Dotenv(root, dotenv, os.environ).overlay(service),
        )
    )


def _read_stdin() -> bytes:
    """All of standard input; then /dev/null takes its place (the process started
    next must not read what was meant for this one)."""
    data = sys.stdin.buffer.read()
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    return data


def main(argv: list[str]) -> int:
    grace, sig = 5.0, signal.SIGTERM
    task: dict[str, Any] | None = None
    i = 0
    while i < len(argv) and argv[i] != "--":
        key, value = argv[i], argv[i + 1] if i + 1 < len(argv) else ""
        if key == "--grace":
            grace = float(value)
        elif key == "--signal":
            sig = signal.Signals[value if value.startswith("SIG") else "SIG" + value]
        elif key in ("--task", "--tasksfile", "--root", "--args"):
            task = task or {"args": "{}"}
            task[key[2:] if key != "--task" else "name"] = value
        elif key == "--source" and value == "-":
            task = task or {"args": "{}"}
            task["source"] = _read_stdin()
        i += 2
    command = argv[i + 1 :]
    _prctl(PR_SET_CHILD_SUBREAPER, 1)
    _prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() == 1:  # the watcher died before the line above took effect
        return 1

    def stop(signum: int, frame: object) -> None:
        raise _Stop

    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, stop)
    main_pid = _start(command, task)
    code = 0
    try:
        while True:
            pid, status = os.waitpid(-1, 0)
            if pid == main_pid:
                code = os.waitstatus_to_exitcode(status)
                break
    except _Stop:
        for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(s, signal.SIG_IGN)
        codes = stop_tree(main_pid, sig, grace)
        code = codes.get(main_pid, 0)
        return 128 - code if code < 0 else code
    except ChildProcessError:
        return 1
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, signal.SIG_IGN)
    stop_tree(main_pid, sig, grace)  # what the process left running
    return 128 - code if code < 0 else code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
