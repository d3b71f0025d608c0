"""Plugins: the hooks runner calls, and finding and loading the plugins that answer.

A plugin is a module (or any object) with functions named after the hooks below,
decorated with `runner.hooks.hookimpl` or simply named `runner_...` (as pytest plugins
may be). It is found through the `runner.plugins` entry-point group of an installed
package, or named in `[tool.runner] plugins = [...]` (a module, or a path relative to
the project root to a .py file or a package directory).

    # my_plugin.py
    def runner_task_finished(run_id, task, status, duration, exit_code, cache, fingerprint):
        print(f"{task}: {status} in {duration:.2f}s")

A plugin that raises is reported by name and the run goes on, except a task factory
(`runner_add_tasks`) at load time: a broken task list is a definition error (exit 2).

pluggy (the library pytest uses) calls the hooks. This module is imported only when
`runner.loader.plugin_targets` finds a plugin: without one, nothing imports pluggy.
"""

from __future__ import annotations

import os
import sys

import pluggy

from .errors import UserError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TextIO

    from .events import Event
    from .loader import Project
    from .tasks import Task

hookspec = pluggy.HookspecMarker("runner")
hookimpl = pluggy.HookimplMarker("runner")


class HookSpecs:
    """The hooks, with the arguments runner passes (a hook takes any subset of them)."""

    @hookspec
    def runner_add_tasks(self, project: Project) -> list[Task]:  # type: ignore[empty-body]
        """Task factories: return tasks to add to the graph (made with `runner.task`,
        e.g. `task(name="py:test", inputs=[...])(fn)`). Called once, after the
        tasksfile is loaded; an error here stops the run (exit 2)."""

    @hookspec
    def runner_configure(self, project: Project) -> None:
        """Once, when the plugins are loaded: read the project's settings."""

    @hookspec
    def runner_run_started(self, run_id: str, tasks: list[str], jobs: int) -> None:
        """A run starts: its id, the tasks it may run (deps first), the parallelism."""

    @hookspec
    def runner_task_started(self, run_id: str, task: str, reason: str | None, attempt: int) -> None:
        """A task starts running (again, for a retry: attempt > 1), and why."""

    @hookspec
    def runner_command_started(self, run_id: str, task: str, cmd: str) -> None:
        """A task's `sh` starts a command."""

    @hookspec
    def runner_command_finished(
        self, run_id: str, task: str, cmd: str, exit_code: int, duration: float
    ) -> None:
        """A task's command ended."""

    @hookspec
    def runner_task_finished(
        self,
        run_id: str,
        task: str,
        status: str,
        duration: float,
        exit_code: int | None,
        cache: str,
        fingerprint: str | None,
        error: str | None,
    ) -> None:
        """A task is done. `status`: ok, failed, cancelled, cached, restored, skipped.
        `cache`: "ran", "hit" (up to date), "restored" (outputs from the cache) or
        "none" (not cached)."""

    @hookspec
    def runner_run_finished(
        self,
        run_id: str,
        status: str,
        duration: float,
        exit_code: int,
        counts: dict[str, int],
        critical_path: list[str],
        saved: float,
    ) -> None:
        """The run is over: ok, failed or interrupted; the chain of tasks that decided
        its wall time; the time cache hits saved."""

    @hookspec
    def runner_log_fields(self, run_id: str, event: dict[str, Any]) -> dict[str, Any]:  # type: ignore[empty-body]
        """Extra fields for a line of `--log-format json` (e.g. a trace id, the span of
        the task the line is about); `event` is the line as it stands."""

    @hookspec
    def runner_cache_backends(self, project: Project) -> list[Any]:  # type: ignore[empty-body]
        """Remote caches to share outputs through: key-value stores of bytes, objects
        with `get(name: str) -> bytes | None` (None: not there) and
        `put(name: str, data: bytes) -> None` (see runner.remote). What they hold is
        untrusted: every entry read from one is checked against runner.entries' rule
        before anything of it is fetched or restored."""

    @hookspec
    def runner_ci_job(self, task: str, job: dict[str, Any]) -> None:
        """Adjust the GitHub Actions job generated for a task, in place."""


class Plugins:
    """The loaded plugins, and hook calls that survive a plugin's failure."""

    def __init__(self, pm: pluggy.PluginManager, warn: Callable[[str], None]) -> None:
        self.pm = pm
        self.warn = warn
        self.origins: dict[str, str] = {}  # task name -> the plugin that added it

    @property
    def names(self) -> list[str]:
        return [name for name, _p in self.pm.list_name_plugin()]

    def call(self, hook: str, **kwargs: Any) -> list[Any]:
        """Call every plugin's `hook`; one that raises is reported and skipped."""
        caller = getattr(self.pm.hook, hook)
        results = []
        for impl in caller.get_hookimpls():
            args = {k: kwargs[k] for k in impl.argnames if k in kwargs}
            try:
                value = impl.function(**args)
            except Exception as e:  # a plugin's bug must not take the run down
                self.warn(f"plugin {impl.plugin_name} failed in {hook}: {type(e).__name__}: {e}")
                continue
            if value is not None:
                results.append(value)
        return results

    def add_tasks(self, project: Project) -> list[Task]:
        """What the task factories make; a failure is a definition error naming it."""
        from .tasks import Task

        tasks: list[Task] = []
        self.origins = {}
        for impl in self.pm.hook.runner_add_tasks.get_hookimpls():
            made: Any
            try:
                made = impl.function(**({"project": project} if impl.argnames else {}))
            except UserError:
                raise
            except Exception as e:
                raise UserError(
                    f"plugin {impl.plugin_name}: its task factory failed: {type(e).__name__}: {e}"
                ) from e
            for t in made or ():
                if not isinstance(t, Task):
                    raise UserError(
                        f"plugin {impl.plugin_name}: runner_add_tasks returned {t!r}, not a task"
                    )
                tasks.append(t)
                self.origins[t.name] = impl.plugin_name
        from .tasks import collect

        collect()  # `task(...)(fn)` in a factory also noted them for the next tasksfile load
        return tasks

    def bridge(self, run_id: str) -> Callable[[Event], None]:
        """A bus subscriber that turns a run's events into hook calls."""
        from . import events as ev

        def deliver(e: Event) -> None:
            if isinstance(e, ev.RunStarted):
                self.call("runner_run_started", run_id=run_id, tasks=e.tasks, jobs=e.jobs)
            elif isinstance(e, ev.TaskStarted):
                self.call(
                    "runner_task_started",
                    run_id=run_id,
                    task=e.task,
                    reason=e.reason,
                    attempt=e.attempt,
                )
            elif isinstance(e, ev.TaskCommand):
                self.call("runner_command_started", run_id=run_id, task=e.task, cmd=e.cmd)
            elif isinstance(e, ev.CommandFinished):
                self.call(
                    "runner_command_finished",
                    run_id=run_id,
                    task=e.task,
                    cmd=e.cmd,
                    exit_code=e.exit_code,
                    duration=e.duration,
                )
            elif isinstance(e, ev.TaskFinished):
                cache = {
                    ev.OK: "ran",
                    ev.FAILED: "ran",
                    ev.CANCELLED: "ran",
                    ev.CACHED: "hit",
                    ev.RESTORED: "restored",
                }.get(e.status, "none")
                if e.fingerprint is None and cache == "ran":
                    cache = "none"
                self.call(
                    "runner_task_finished",
                    run_id=run_id,
                    task=e.task,
                    status=e.status,
                    duration=e.duration,
                    exit_code=e.exit_code,
                    cache=cache,
                    fingerprint=e.fingerprint,
                    error=e.error,
                )
            elif isinstance(e, ev.RunFinished):
                self.call(
                    "runner_run_finished",
                    run_id=run_id,
                    status=e.status,
                    duration=e.duration,
                    exit_code=e.exit_code,
                    counts=e.counts,
                    critical_path=e.critical_path,
                    saved=e.saved,
                )

        return deliver

    def log_fields(self, run_id: str, event: dict[str, Any]) -> dict[str, Any]:
        fields: dict[str, Any] = {}
        for extra in self.call("runner_log_fields", run_id=run_id, event=event):
            if isinstance(extra, dict):
                fields.update(extra)
        return fields


class _Manager(pluggy.PluginManager):
    """Takes `runner_*` functions as hooks without the marker, as pytest does."""

    def parse_hookimpl_opts(self, plugin: Any, name: str) -> Any:
        opts = super().parse_hookimpl_opts(plugin, name)
        if opts is None and name.startswith("runner_") and callable(getattr(plugin, name, None)):
            return {}
        return opts


def load(project: Project, found: list[tuple[str, str]], err: TextIO) -> Plugins:
    """Import and register the plugins; one that cannot be imported is a definition
    error naming it (exit 2)."""
    import importlib

    def warn(message: str) -> None:
        err.write(f"runner: warning: {message}\n")

    pm = _Manager("runner")
    pm.add_hookspecs(HookSpecs)
    for name, target in found:
        module_name, _, attr = target.partition(":")
        try:
            path = os.path.join(project.root, module_name)
            if module_name.endswith(".py") or os.path.isdir(path):
                obj = _import_path(path)
            else:
                obj = importlib.import_module(module_name)
            if attr:
                for part in attr.split("."):
                    obj = getattr(obj, part)
        except Exception as e:
            raise UserError(
                f"plugin {name!r} ({target}) cannot be loaded: {type(e).__name__}: {e}"
            ) from e
        if pm.is_registered(obj):
            continue
        try:
            pm.register(obj, name=name)
        except Exception as e:  # pluggy's validation: a hook with unknown arguments
            raise UserError(f"plugin {name!r}: {e}") from e
    plugins = Plugins(pm, warn)
    plugins.call("runner_configure", project=project)
    return plugins


def _import_path(path: str) -> Any:
    """A plugin given as a path: a .py file, or a package directory."""
    import importlib

    path = os.path.abspath(path)
    if path.endswith(".py"):
        directory, module = os.path.dirname(path), os.path.basename(path)[:-3]
    else:
        directory, module = os.path.dirname(path), os.path.basename(path)
    if not os.path.exists(path):
        raise FileNotFoundError(path)
    if directory not in sys.path:
        sys.path.insert(0, directory)
    return importlib.import_module(module)
