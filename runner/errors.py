"""The errors runner reports to its users.

`UserError` and its subclasses are mistakes a user can make (a bad option, an unknown
task, a syntax error in the tasksfile, a bad config value). The CLI catches exactly this
family, prints one line and exits 2; anything else is a bug in runner and keeps its
traceback. `TaskError` is public: it is how a task (or `sh`) says it failed (exit 1).
"""

from __future__ import annotations

import os

EXIT_OK = 0
EXIT_TASK_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def did_you_mean(word: str, candidates) -> str:
    """' (did you mean 'x'?)' for the closest candidate, or ''."""
    import difflib

    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    if not close:
        return ""
    return " (did you mean " + " or ".join(f"'{c}'" for c in close) + "?)"


class UserError(Exception):
    """A mistake in the user's input: one clear line, exit code 2."""

    exit_code = EXIT_USAGE

    def __init__(self, message: str, *, details: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.details = details  # extra lines shown after the message (usage, a diff)

    def show(self) -> str:
        text = f"runner: error: {self.message}"
        return f"{text}\n{self.details.rstrip()}" if self.details else text


class UsageError(UserError):
    """A bad command line: unknown option, bad option value, missing argument."""


class TasksfileError(UserError):
    """The tasksfile cannot be loaded: it names the file and the line."""

    def __init__(self, message: str, *, file: str, line: int | None = None) -> None:
        self.file = file
        self.line = line
        where = _short(file) + (f":{line}" if line else "")
        super().__init__(f"{where}: {message}")


class TaskDefinitionError(UserError):
    """A `@task` declaration is invalid: it names the task and the parameter."""

    def __init__(self, task: str, param: str | None, problem: str) -> None:
        self.task = task
        self.param = param
        self.problem = problem
        what = f"task '{task}'" + (f", parameter '{param}'" if param else "")
        super().__init__(f"{what}: {problem}")

    def located(self, file: str, line: int) -> TasksfileError:
        """The same error, with the place in the tasksfile where the task is defined."""
        return TasksfileError(str(self.message), file=file, line=line)


class UnknownTaskError(UserError):
    """A task name that does not exist, with the closest names."""

    def __init__(self, name: str, known, *, needed_by: str | None = None) -> None:
        self.name = name
        self.needed_by = needed_by
        hint = did_you_mean(name, known)
        if needed_by:
            msg = f"task '{needed_by}' depends on unknown task '{name}'{hint}"
        else:
            msg = f"unknown task '{name}'{hint}"
        super().__init__(msg)


class CycleError(UserError):
    """The dependencies form a cycle; printed as the cycle."""

    def __init__(self, cycle: list[str]) -> None:
        self.cycle = cycle
        super().__init__("dependency cycle: " + " -> ".join(cycle))


class ConfigError(UserError):
    """A bad value or an unknown key in `[tool.runner]` or a RUNNER_* variable."""

    def __init__(
        self, key: str, problem: str, *, file: str | None = None, line: int | None = None
    ) -> None:
        self.key = key
        where = ""
        if file:
            where = _short(file) + (f":{line}" if line else "") + ": "
        super().__init__(f"{where}{key}: {problem}")


class StoreError(Exception):
    """The cache state cannot be written (a full disk, no permission): the run fails
    with this message (exit 1)."""


class TaskError(Exception):
    """A task failed. Raise it from a task to fail it with a message; `sh` raises it
    when a command exits non-zero, with `exit_code` and `cmd` set."""

    def __init__(
        self, message: str, *, exit_code: int = 1, cmd: str | None = None, output: str | None = None
    ) -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.cmd = cmd
        self.output = output


class Cancelled(BaseException):
    """Raised inside a task whose run was cancelled (interrupt, timeout, a failed
    sibling). A BaseException so that a task's `except Exception` does not swallow it."""


def _short(path: str) -> str:
    """A path as the user thinks of it: relative to the current directory when inside it."""
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return path
    return path if rel.startswith("..") else rel
