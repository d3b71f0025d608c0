"""A workflow's settings, read and checked: each task's `ci=` mapping (`TaskCi`) and the
project's `[tool.runner.github]` table (`Settings`). A mistake in either is a user error
that names the task or the config key, raised before any YAML is written."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, TaskDefinitionError, UserError

if TYPE_CHECKING:
    from ..loader import Project
    from ..tasks import Param, Task

DEFAULT_ON: dict[str, Any] = {
    "push": {"branches": ["main"]},
    "pull_request": None,
    "workflow_dispatch": None,
}
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
    install: str
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
    return Settings(
        name=os.path.splitext(os.path.basename(path))[0],
        on=_read_on(table["on"], project),
        python_version=table["python-version"] or _python_from_requires(project.root),
        install=table["install"] or _default_install(project.root),
        runs_on=runs_on if isinstance(runs_on, str) else tuple(runs_on),
        output=path,
        tasksfile=os.path.relpath(project.tasksfile, project.root).replace(os.sep, "/"),
        working_directory=workdir,
        cache_path=f"{workdir}/{cache}" if workdir else cache,
        regenerate=command,
    )


def _repository_root(workflow: str, project_root: str) -> str:
    """The directory whose `.github/workflows/` holds the workflow file; the project
    root when the file lives elsewhere."""
    workflows = os.path.dirname(workflow)
    dot_github = os.path.dirname(workflows)
    if os.path.basename(workflows) == "workflows" and os.path.basename(dot_github) == ".github":
        return os.path.dirname(dot_github)
    return project_root


def _read_on(value: Any, project: Project) -> dict[str, Any]:
    if value is None:
        return copy_plain(DEFAULT_ON)
    if isinstance(value, str):
        return {value: None}
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return dict.fromkeys(value)
    if isinstance(value, dict):
        return copy_plain(value)
    raise ConfigError(
        "github.on",
        f"expected an event, a list of events or a table, got {value!r}",
        file=project.config.file,
    )


def copy_plain(value: Any) -> Any:
    """A copy of plain data (dicts, lists, scalars) that shares no dict or list with it."""
    if isinstance(value, dict):
        return {k: copy_plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [copy_plain(v) for v in value]
    return value


def _pyproject(root: str) -> dict[str, Any]:
    path = os.path.join(root, "pyproject.toml")
    if not os.path.isfile(path):
        return {}
    try:
        import tomllib
    except ImportError:  # Python < 3.11
        import tomli as tomllib  # type: ignore[no-redef]
    with open(path, "rb") as f:
        try:
            return tomllib.load(f)
        except tomllib.TOMLDecodeError:
            return {}  # the config loader has already reported what matters in it


def _python_from_requires(root: str) -> str:
    """The oldest Python that `requires-python` allows (`>=3.10` -> 3.10), else 3.x."""
    spec = _pyproject(root).get("project", {}).get("requires-python", "")
    found = re.search(r"(?:>=|~=|==)\s*(\d+\.\d+)", str(spec))
    return found.group(1) if found else "3.x"


def _default_install(root: str) -> str:
    """The project's own install command: with its `dev` extra when it has one."""
    project = _pyproject(root).get("project", {})
    if "dev" in project.get("optional-dependencies", {}):
        return "python -m pip install -e '.[dev]'"
    has_setup = any(os.path.isfile(os.path.join(root, f)) for f in ("setup.py", "setup.cfg"))
    if not project and not has_setup and os.path.isfile(os.path.join(root, "requirements.txt")):
        return "python -m pip install -r requirements.txt"
    return "python -m pip install -e ."
