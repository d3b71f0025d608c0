"""runner: a task runner and build tool for Python projects.

from runner import task, sh

@task(inputs=["src/**/*.py"], outputs=["dist/*.whl"])
def build():
    \"\"\"Build the wheel.\"\"\"
    sh("python -m pip wheel --no-deps -w dist .")
"""

from __future__ import annotations

from .errors import TaskError
from .tasks import Task, task

__version__ = "0.1.0"
__all__ = ["Task", "TaskError", "__version__", "cwd", "environ", "sh", "task"]


def sh(cmd, *, cwd=None, env=None, check=True, capture=False, timeout=None):
    """Run a command: a string through the shell, a list without one.

    Output is streamed line by line (prefixed with the task's name when tasks run in
    parallel); `capture=True` returns standard output instead. A non-zero exit raises
    `TaskError` with the exit code unless `check=False`. The command runs in its own
    process group and is killed, with all its descendants, when the task is cancelled
    or `timeout` seconds pass. Returns the output (a str, empty unless captured) with
    `.exit_code`.
    """
    # runner.proc is imported on first use: `runner --list` must not pay for subprocess.
    from .proc import sh as run

    return run(cmd, cwd=cwd, env=env, check=check, capture=capture, timeout=timeout)


def cwd() -> str:
    """The working directory of the task that calls it (`@task(cwd=...)`, else the
    project root), as an absolute path. Tasks run as threads of one process, which
    never changes directory for a task: open files with `os.path.join(cwd(), name)`."""
    from .proc import task_cwd

    return task_cwd()


def environ() -> dict[str, str]:
    """The environment of the task that calls it: `os.environ` with the variables of
    its .env files under it (the process environment wins), as its `sh` commands get
    it."""
    from .proc import task_environ

    return task_environ()
