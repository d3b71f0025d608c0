"""A workflow's settings, read and checked: each task's `ci=` mapping (`TaskCi`) and the
project's `[tool.runner.github]` table (`Settings`). A mistake in either is a user error
that names the task or the config key, raised before any YAML is written."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..config import locate
from ..errors import ConfigError, TaskDefinitionError, UserError
from .installs import default_install, read_text, runner_install
from .pyversions import RUNNER_REQUIRES_PYTHON, newest_python, runner_supports

if TYPE_CHECKING:
    from ..loader import Project
    from ..tasks import Param, Task

PERMISSION_LEVELS = ("none", "read", "write")
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
MATRIX_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*\Z")


# ---------------------------------------------------------------- the tasks' ci= settings


@dataclass(frozen=True)
class TaskCi:
    """A task's `ci=` settings, checked: what its job looks like on GitHub Actions."""

    runs_on: str | tuple[str, ...] | None = None
    matrix: dict[str, Any] | None = None
    secrets: tuple[str, ...] = ()
    env: dict[str, Any] = field(default_factory=dict)
    timeout_minutes: int | None = None
    setup: tuple[str, ...] = ()  # `needs_setup`: commands to run before the task
    permissions: dict[str, str] = field(default_factory=dict)
    dispatch: tuple[str, ...] = ()  # parameters offered as workflow_dispatch inputs
    condition: str | None = None
    services: dict[str, Any] | None = None
    environment: str | dict[str, Any] | None = None


def read_task_ci(task: Task) -> TaskCi:
    """Check a task's `ci=` mapping (its keys were checked by `@task`)."""
    ci = task.ci

    def fail(key: str, problem: str) -> UserError:
        return TaskDefinitionError(task.name, "ci", f"{key}: {problem}").located(
            task.file, task.line
        )

    matrix = _matrix(ci.get("matrix"), fail)
    params = {p.name: p for p in task.params}
    from_matrix = {param_of(key, params) for key in matrix_keys(matrix)} - {None}
    for p in task.params:
        if p.required and p.name not in from_matrix:
            raise fail("matrix", f"option {p.option} is required: give it values in the matrix")
    runs_on = _runs_on(ci.get("runs-on"), fail)
    for version in _matrix_pythons(matrix):
        if runner_supports(version) is False:
            raise fail(
                "matrix",
                f"python-version {version!r}: runner needs Python {RUNNER_REQUIRES_PYTHON}",
            )
    for key in matrix_keys(matrix):
        variable = matrix_variable(key)
        # The legs of a matrix share their cache: a value that reaches the task through
        # a variable must be part of its fingerprint, or one leg's result would pass
        # for another's (a false cache hit).
        used = key in ("python-version", runner_matrix_key(runs_on, matrix))
        if not used and param_of(key, params) is None and variable not in task.env:
            raise fail(
                "matrix",
                f"{key!r} reaches the task as ${variable}: declare it with "
                f"@task(env=[{variable!r}]) so that each value has its own cache entry",
            )
    return TaskCi(
        runs_on=runs_on,
        matrix=matrix,
        secrets=_names("secrets", ci.get("secrets", ()), fail),
        env=_env(ci.get("env", {}), fail),
        timeout_minutes=_minutes(ci.get("timeout-minutes"), fail),
        setup=_commands(ci.get("needs_setup", ()), fail),
        permissions=_permissions(ci.get("permissions", {}), fail),
        dispatch=_dispatch(ci.get("dispatch", False), params, from_matrix, fail),
        condition=_expression(_text("if", ci.get("if"), fail)),
        services=_mapping("services", ci.get("services"), fail),
        environment=_environment(ci.get("environment"), fail),
    )


def _runs_on(value: Any, fail: Any) -> str | tuple[str, ...] | None:
    if value is None or isinstance(value, str) and value:
        return value
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise fail("runs-on", f"expected a runner label or a list of labels, got {value!r}")


def _matrix(value: Any, fail: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not value:
        raise fail("matrix", f"expected a mapping of names to lists of values, got {value!r}")
    for key, values in value.items():
        if not isinstance(key, str) or not MATRIX_KEY.match(key):
            raise fail("matrix", f"{key!r} is not a valid matrix name")
        if not isinstance(values, list) or not values:
            raise fail("matrix", f"{key}: expected a non-empty list, got {values!r}")
        rows = values if key in ("include", "exclude") else [{key: v} for v in values]
        for row in rows:
            if not isinstance(row, dict) or not all(_is_scalar(v) for v in row.values()):
                raise fail("matrix", f"{key}: expected plain values, got {row!r}")
    return dict(value)


def _matrix_pythons(matrix: dict[str, Any] | None) -> list[str]:
    """The Python versions a matrix names, its `include` rows' among them."""
    if not matrix:
        return []
    rows = [{"python-version": v} for v in matrix.get("python-version", ())]
    rows += [row for row in matrix.get("include", ()) if "python-version" in row]
    return [str(row["python-version"]) for row in rows]


def matrix_keys(matrix: dict[str, Any] | None) -> list[str]:
    """The names a matrix defines, including those only `include` adds."""
    if not matrix:
        return []
    keys = [k for k in matrix if k not in ("include", "exclude")]
    for row in matrix.get("include", ()):
        keys += [k for k in row if k not in keys]
    return keys


def runner_matrix_key(runs_on: object, matrix: dict[str, Any] | None) -> str | None:
    """The matrix name that chooses the runner (`runs-on`, else `os`), unless `runs-on`
    is set: then `os` is a value like any other. (The cache key holds the runner's OS.)"""
    keys = matrix_keys(matrix)
    if runs_on:
        return None
    return next((k for k in ("runs-on", "os") if k in keys), None)


def matrix_variable(key: str) -> str:
    """The environment variable a matrix value that is not an option reaches the task by."""
    return key.upper().replace("-", "_")


def param_of(key: str, params: dict[str, Param]) -> str | None:
    """The task parameter a matrix name sets (`dry-run` and `dry_run` both name dry_run)."""
    name = key.replace("-", "_")
    return name if name in params else None


def _names(key: str, value: Any, fail: Any) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)):
        raise fail(key, f"expected a list of names, got {value!r}")
    for name in items:
        if not isinstance(name, str) or not NAME.match(name) or name.upper().startswith("GITHUB_"):
            raise fail(key, f"{name!r} is not a valid secret name")
    return tuple(dict.fromkeys(items))


def _env(value: Any, fail: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise fail("env", f"expected a mapping of variable names to values, got {value!r}")
    for name, v in value.items():
        if not isinstance(name, str) or not NAME.match(name):
            raise fail("env", f"{name!r} is not a valid variable name")
        if not _is_scalar(v) or v is None:
            raise fail("env", f"{name}: expected a string or a number, got {v!r}")
    return dict(value)


def _minutes(value: Any, fail: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise fail("timeout-minutes", f"expected a whole number of minutes, got {value!r}")
    return value


def _commands(value: Any, fail: Any) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not all(isinstance(c, str) and c for c in items):
        raise fail("needs_setup", f"expected a shell command or a list of them, got {value!r}")
    return tuple(items)


def _permissions(value: Any, fail: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise fail("permissions", f"expected a mapping of scopes to levels, got {value!r}")
    for scope, level in value.items():
        if level not in PERMISSION_LEVELS:
            raise fail("permissions", f"{scope}: expected read, write or none, got {level!r}")
    return dict(value)


def _dispatch(
    value: Any, params: dict[str, Param], from_matrix: set[str | None], fail: Any
) -> tuple[str, ...]:
    if value is False:
        return ()
    if value is True:
        return tuple(n for n in params if n not in from_matrix)
    names = _names("dispatch", value, fail) if isinstance(value, (list, tuple, str)) else None
    if names is None:
        raise fail("dispatch", f"expected True or a list of option names, got {value!r}")
    chosen = [n.replace("-", "_") for n in names]
    for name in chosen:
        if name not in params:
            raise fail("dispatch", f"the task has no option {name!r}")
        if name in from_matrix:
            raise fail("dispatch", f"option {name!r} is already set by the matrix")
    return tuple(chosen)


def _text(key: str, value: Any, fail: Any) -> str | None:
    if value is None or isinstance(value, str) and value.strip():
        return value
    raise fail(key, f"expected an expression, got {value!r}")


def _expression(text: str | None) -> str | None:
    """An `if:` without its `${{ }}`, so that it can be combined with other conditions."""
    if text is not None and text.startswith("${{") and text.endswith("}}"):
        return text[3:-2].strip()
    return text


def _mapping(key: str, value: Any, fail: Any) -> dict[str, Any] | None:
    if value is None or isinstance(value, dict):
        return value
    raise fail(key, f"expected a mapping, got {value!r}")


def _environment(value: Any, fail: Any) -> str | dict[str, Any] | None:
    if value is None or isinstance(value, (str, dict)) and value:
        return value
    raise fail("environment", f"expected an environment name or mapping, got {value!r}")


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))


# ---------------------------------------------------------------- settings


@dataclass(frozen=True)
class Settings:
    """Where the workflow goes and what every job shares, from `[tool.runner.github]`."""

    name: str
    on: dict[str, Any]
    python_version: str
    install: str  # the project's install command ('' = nothing of its own to install)
    runner_install: str  # the command that installs runner ('' = `install` already does)
    runs_on: str | tuple[str, ...]
    output: str  # the workflow file, relative to the project root
    tasksfile: str  # relative to the project root
    working_directory: str  # the project root, relative to the repository root ('' = it)
    cache_path: str  # runner's cache directory, relative to the repository root
    regenerate: str  # the command that writes this file


def read_settings(project: Project, output: str | None, targets: list[str]) -> Settings:
    table = project.config.table("github")
    path = (output or table["output"]).replace(os.sep, "/")
    absolute = os.path.normpath(os.path.join(project.root, path))
    repository = _repository_root(absolute, project.root)
    workdir = os.path.relpath(project.root, repository).replace(os.sep, "/")
    workdir = "" if workdir == "." else workdir
    cache = project.config.cache_dir.replace(os.sep, "/")
    command = " ".join(["runner ci github", *targets])
    if output and output != table["output"]:
        command += f" --output {output}"
    runs_on = table["runs-on"]
    pyproject = Pyproject.read(project.root)
    install = table["install"] or default_install(project.root, pyproject.doc)
    return Settings(
        name=os.path.splitext(os.path.basename(path))[0],
        on=_read_on(table["on"], table["branches"], project),
        python_version=_python_version(table["python-version"], pyproject, project),
        install=install,
        runner_install=_runner_install(table["runner"], install, pyproject, project),
        runs_on=runs_on if isinstance(runs_on, str) else tuple(runs_on),
        output=path,
        tasksfile=os.path.relpath(project.tasksfile, project.root).replace(os.sep, "/"),
        working_directory=workdir,
        cache_path=f"{workdir}/{cache}" if workdir else cache,
        regenerate=command,
    )


def _config_error(project: Project, key: str, problem: str) -> ConfigError:
    """A mistake in `[tool.runner.github]`, naming the key and its line."""
    text = project.config.file and read_text(project.config.file)
    line = locate(text, "tool.runner.github", key) if text else None
    return ConfigError(f"tool.runner.github.{key}", problem, file=project.config.file, line=line)


def _repository_root(workflow: str, project_root: str) -> str:
    """The directory whose `.github/workflows/` holds the workflow file; the project
    root when the file lives elsewhere."""
    workflows = os.path.dirname(workflow)
    dot_github = os.path.dirname(workflows)
    if os.path.basename(workflows) == "workflows" and os.path.basename(dot_github) == ".github":
        return os.path.dirname(dot_github)
    return project_root


# ---------------------------------------------------------------- on: and its branches


def _read_on(value: Any, branches: str | list[str], project: Project) -> dict[str, Any]:
    """`on:` as configured; else pushes to the default branch (or `branches`), pull
    requests and manual runs."""
    if value is None:
        chosen = [branches] if isinstance(branches, str) else list(branches)
        return {
            "push": {"branches": chosen or [default_branch(project.root)]},
            "pull_request": None,
            "workflow_dispatch": None,
        }
    if branches:
        raise _config_error(
            project, "branches", "has no effect when `on` is set: give them in on.push.branches"
        )
    if isinstance(value, str):
        return {value: None}
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return dict.fromkeys(value)
    if isinstance(value, dict):
        return copy_plain(value)
    raise _config_error(
        project, "on", f"expected an event, a list of events or a table, got {value!r}"
    )


def default_branch(root: str) -> str:
    """The repository's default branch as git knows it: the remote's (`origin/HEAD`), else
    the branch checked out, else `init.defaultBranch`; else 'main', GitHub's default."""
    remote = _git(root, "symbolic-ref", "--quiet", "--short", "refs/remotes/origin/HEAD")
    if remote and remote.startswith("origin/"):
        return remote[len("origin/") :]
    return (
        _git(root, "symbolic-ref", "--quiet", "--short", "HEAD")
        or _git(root, "config", "--get", "init.defaultBranch")
        or "main"
    )


def _git(root: str, *args: str) -> str | None:
    """A git command's one line of output, or None when it fails or git is missing."""
    import subprocess

    try:
        done = subprocess.run(
            ["git", "-C", root, *args], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    out = done.stdout.strip()
    return out if done.returncode == 0 and out and "\n" not in out else None


def copy_plain(value: Any) -> Any:
    """A copy of plain data (dicts, lists, scalars) that shares no dict or list with it."""
    if isinstance(value, dict):
        return {k: copy_plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [copy_plain(v) for v in value]
    return value


# ---------------------------------------------------------------- pyproject.toml and Python


@dataclass(frozen=True)
class Pyproject:
    """The project's pyproject.toml: its document ({} when there is none) and its text."""

    doc: dict[str, Any]
    text: str
    path: str

    @classmethod
    def read(cls, root: str) -> Pyproject:
        path = os.path.join(root, "pyproject.toml")
        text = read_text(path)
        if not text:
            return cls({}, "", path)
        try:
            import tomllib
        except ImportError:  # Python < 3.11
            import tomli as tomllib  # type: ignore[no-redef]
        try:
            return cls(tomllib.loads(text), text, path)
        except tomllib.TOMLDecodeError:
            return cls({}, text, path)  # the config loader has already reported what matters

    def error(self, table: str, key: str, problem: str) -> ConfigError:
        return ConfigError(
            f"{table}.{key}", problem, file=self.path, line=locate(self.text, table, key)
        )


def _python_version(chosen: str, pyproject: Pyproject, project: Project) -> str:
    """`python-version` when it is set (and not older than runner runs on); else the
    newest Python that the project's `requires-python` and runner both allow."""
    if chosen:
        if runner_supports(chosen) is False:
            raise _config_error(
                project,
                "python-version",
                f"runner needs Python {RUNNER_REQUIRES_PYTHON}, so its jobs cannot use {chosen!r}",
            )
        return chosen
    spec = pyproject.doc.get("project", {}).get("requires-python", "")
    if not isinstance(spec, str):
        raise pyproject.error("project", "requires-python", f"expected a string, got {spec!r}")
    try:
        newest = newest_python(spec)
    except ValueError as e:
        raise pyproject.error("project", "requires-python", str(e)) from None
    if newest is None:
        raise pyproject.error(
            "project",
            "requires-python",
            f"the project allows Python {spec!r} and runner needs {RUNNER_REQUIRES_PYTHON!r}: "
            "no version is in both, so no job could run runner; widen requires-python",
        )
    return newest


def _runner_install(requirement: str, install: str, pyproject: Pyproject, project: Project) -> str:
    try:
        return runner_install(requirement, install, project.root, pyproject.doc)
    except ValueError as e:
        raise _config_error(project, "runner", str(e)) from None
