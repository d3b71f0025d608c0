"""`runner ci github`: the task graph as a GitHub Actions workflow.

    graph ──plan_jobs──▶ [Job] ──workflow_document──▶ dicts and lists ──to_yaml──▶ text

Each CI task becomes a job that checks out the code, sets up Python, runs the install
command, restores runner's cache under a key made of the task's fingerprint, and then runs
`runner TASK`: the command a developer types. Its deps that are not jobs of their own run
inside it. The text depends on nothing but the graph, the tasks' `ci=` settings and
`[tool.runner.github]`, so the same graph always gives the same bytes and `--check` can
compare them. Those settings are read and checked in `settings`; `yaml` writes the text.
"""

from __future__ import annotations

import difflib
import math
import os
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import EXIT_OK, EXIT_TASK_FAILED, UserError
from .settings import (
    PERMISSION_LEVELS,
    Settings,
    TaskCi,
    copy_plain,
    matrix_keys,
    matrix_variable,
    param_of,
    read_settings,
    read_task_ci,
    runner_matrix_key,
)
from .yaml import Commented, to_yaml

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from typing import TextIO

    from ..graph import Graph
    from ..loader import Project
    from ..tasks import Param, Task


@dataclass(frozen=True)
class Pin:
    """An action at a full commit SHA: a tag can be moved to other code, a commit cannot."""

    action: str
    sha: str
    version: str

    @property
    def uses(self) -> Commented:
        return Commented(f"{self.action}@{self.sha}", self.version)


# Every action the generated workflows use, each a release that runs on Node 24 (GitHub
# retires Node 20). Bump a SHA and its version together (the version is only the comment
# a reader and dependabot see; the SHA is what runs).
PINS = {
    "checkout": Pin("actions/checkout", "d23441a48e516b6c34aea4fa41551a30e30af803", "v6.1.0"),
    "setup-python": Pin(
        "actions/setup-python", "ece7cb06caefa5fff74198d8649806c4678c61a1", "v6.3.0"
    ),
    "cache-restore": Pin(
        "actions/cache/restore", "27d5ce7f107fe9357f9df03efb73ab90386fccae", "v5.0.5"
    ),
    "cache-save": Pin("actions/cache/save", "27d5ce7f107fe9357f9df03efb73ab90386fccae", "v5.0.5"),
}

GATE_ID = "all-green"
GATE_MINUTES = 5
SETUP_MINUTES = 10  # checkout, Python, install and the cache, on top of the tasks' timeouts
DEFAULT_JOB_MINUTES = 30  # for a job none of whose tasks declares a timeout
# Pull requests share a group per PR, so a new push cancels the run it supersedes; every
# other run gets a group of its own, so nothing on the default branch is ever cancelled
# (nor left pending behind another run, which GitHub would also cancel).
CONCURRENCY = {
    "group": "${{ github.workflow }}-"
    "${{ github.event_name == 'pull_request' && github.ref || github.run_id }}",
    "cancel-in-progress": "${{ github.event_name == 'pull_request' }}",
}
# A cache written by a pull request could be restored by the default branch's runs
# (cache poisoning); one written by the default branch is what every branch starts from.
ON_DEFAULT_BRANCH = (
    "github.event_name == 'schedule' || "
    "github.ref == format('refs/heads/{0}', github.event.repository.default_branch)"
)


# ---------------------------------------------------------------- jobs


@dataclass(frozen=True)
class Job:
    """One task as a GitHub Actions job."""

    id: str
    task: Task
    ci: TaskCi
    needs: tuple[str, ...]  # job ids: the nearest jobs among its deps, transitively reduced
    inside: tuple[Task, ...]  # the task and its deps that are not jobs: they run here only
    inside_ci: tuple[TaskCi, ...]  # their ci= settings (their secrets and env come along)
    timeout_minutes: int
    crons: frozenset[str]  # the task schedules this job runs on (its own and its dependents')
    on_every_event: bool  # False: it runs only on its schedules (and when dispatched)


def choose_job_tasks(graph: Graph, targets: list[str]) -> list[str]:
    """The tasks named on the command line; else those marked with `ci=` or `schedule=`;
    else the default task."""
    if targets:
        return list(dict.fromkeys(graph.resolve(t).name for t in targets))
    marked = [n for n, t in graph.tasks.items() if t.ci or t.schedule]
    if marked:
        return marked
    if graph.default is not None:
        return [graph.default]
    raise UserError(
        "no task to run in CI: name tasks (`runner ci github TASK...`), mark them with "
        "@task(ci=...), or make one the default"
    )


def plan_jobs(graph: Graph, names: list[str]) -> list[Job]:
    """Jobs for these tasks, deps first."""
    order = [n for n in graph.select(sorted(names)) if n in names]
    ids = job_ids(order)
    cis = {n: read_task_ci(graph.tasks[n]) for n in order}
    needs = reduce_needs({n: nearest_jobs(graph, n, set(order)) for n in order}, order)
    crons, every = _schedules(graph, order, needs)
    jobs = []
    for name in order:
        closure = graph.select([name])
        inside = tuple(graph.tasks[t] for t in closure if t == name or t not in ids)
        for t in inside[:-1]:
            if any(p.required for p in t.params):
                raise UserError(f"task '{t.name}' needs an option, so job '{name}' cannot run it")
        jobs.append(
            Job(
                id=ids[name],
                task=graph.tasks[name],
                ci=cis[name],
                needs=tuple(ids[d] for d in needs[name]),
                inside=inside,
                inside_ci=tuple(cis.get(t.name) or read_task_ci(t) for t in inside),
                timeout_minutes=cis[name].timeout_minutes or _minutes_for(graph, closure),
                crons=frozenset(crons[name]),
                on_every_event=every[name],
            )
        )
    return jobs


def job_ids(names: Iterable[str]) -> dict[str, str]:
    """A valid, unique job id for each task name (`docs:build` -> `docs_build`); the
    task name stays the job's `name:`."""
    taken = {GATE_ID}
    ids = {}
    for name in sorted(names):
        base = re.sub(r"[^A-Za-z0-9_-]", "_", name)
        base = base if re.match(r"[A-Za-z_]", base) else "_" + base
        candidate, n = base, 1
        while candidate.lower() in taken:  # GitHub compares job ids without case
            n += 1
            candidate = f"{base}-{n}"
        taken.add(candidate.lower())
        ids[name] = candidate
    return ids


def nearest_jobs(graph: Graph, name: str, jobs: set[str]) -> set[str]:
    """The jobs among a task's deps, looking through deps that are not jobs."""
    found: set[str] = set()
    seen: set[str] = set()
    stack = list(graph.deps(name))
    while stack:
        dep = stack.pop()
        if dep in seen:
            continue
        seen.add(dep)
        if dep in jobs:
            found.add(dep)
        else:
            stack.extend(graph.deps(dep))
    return found


def reduce_needs(direct: dict[str, set[str]], order: list[str]) -> dict[str, list[str]]:
    """Drop each need that another need already implies (a transitive reduction), and
    keep the rest in run order."""
    reach: dict[str, set[str]] = {}
    for name in order:  # deps first, so each need's reach is known
        reach[name] = set(direct[name]).union(*(reach[d] for d in direct[name]))
    return {
        name: [
            d
            for d in order
            if d in direct[name]
            and not any(d in reach[other] for other in direct[name] if other != d)
        ]
        for name in order
    }


def _schedules(
    graph: Graph, order: list[str], needs: dict[str, list[str]]
) -> tuple[dict[str, set[str]], dict[str, bool]]:
    """When each job runs: a scheduled task's job on its cron, any other on every event;
    and a job runs whenever a job that needs it does."""
    crons = {n: {graph.tasks[n].schedule} if graph.tasks[n].schedule else set() for n in order}
    every = {n: not graph.tasks[n].schedule for n in order}
    for name in reversed(order):  # dependents first
        for dep in needs[name]:
            crons[dep] |= crons[name]
            every[dep] = every[dep] or every[name]
    return {n: {c for c in crons[n] if c} for n in order}, every


def _minutes_for(graph: Graph, closure: list[str]) -> int:
    seconds = sum(graph.tasks[n].timeout or 0 for n in closure)
    return math.ceil(seconds / 60) + SETUP_MINUTES if seconds else DEFAULT_JOB_MINUTES


# ---------------------------------------------------------------- the workflow document


def workflow_document(
    jobs: list[Job], settings: Settings, adjust: Callable[[str, dict[str, Any]], Any] | None = None
) -> dict[str, Any]:
    """The workflow as plain data, keys in the order a reader expects them. `adjust`
    (task name, job document) may change each task's job in place (plugins'
    `runner_ci_job`)."""
    all_crons = sorted({c for job in jobs for c in job.crons})
    defaults: dict[str, Any] = {"shell": "bash"}  # the same scripts on every runner OS
    if settings.working_directory:
        defaults["working-directory"] = settings.working_directory
    documents = {job.id: job_document(job, settings, all_crons) for job in jobs}
    if adjust is not None:
        for job in jobs:
            adjust(job.task.name, documents[job.id])
    documents[GATE_ID] = gate_document(jobs, settings)
    return {
        "name": settings.name,
        "on": triggers(jobs, settings, all_crons),
        "permissions": {},  # each job asks for what it needs
        "concurrency": CONCURRENCY,
        "defaults": {"run": defaults},
        "jobs": documents,
    }


def triggers(jobs: list[Job], settings: Settings, crons: list[str]) -> dict[str, Any]:
    """`on:` from the settings, plus the tasks' schedules and dispatch inputs."""
    on = copy_plain(settings.on)
    if crons:
        schedule = on.get("schedule") or []
        on["schedule"] = schedule + [{"cron": c} for c in crons if {"cron": c} not in schedule]
    inputs = {name: spec for job in jobs for name, spec in dispatch_inputs(job).items()}
    if inputs:
        dispatch = on.get("workflow_dispatch") or {}
        on["workflow_dispatch"] = {**dispatch, "inputs": {**dispatch.get("inputs", {}), **inputs}}
    return on


def dispatch_inputs(job: Job) -> dict[str, Any]:
    """A workflow_dispatch input for each option the task offers (`ci={"dispatch": ...}`)."""
    inputs = {}
    for param in _params(job.task, job.ci.dispatch):
        # A number goes in as a string (runner checks it): "number" inputs are newer
        # than the linters in use, and GitHub takes any text for them anyway.
        boolean = param.type is bool
        spec: dict[str, Any] = {
            "description": f"runner {job.task.name} {param.option}",
            "type": "boolean" if boolean else "string",
        }
        if param.default is not None:
            spec["default"] = param.default if boolean else str(param.default)
        inputs[_input_id(job, param)] = spec
    return inputs


def _params(task: Task, names: Iterable[str]) -> list[Param]:
    chosen = set(names)
    return [p for p in task.params if p.name in chosen]


def _input_id(job: Job, param: Param) -> str:
    return f"{job.id}-{param.option[2:]}"


def _option_variable(param: Param) -> str:
    return "TASK_OPTION_" + param.name.upper()


def job_document(job: Job, settings: Settings, all_crons: list[str]) -> dict[str, Any]:
    ci = job.ci
    doc: dict[str, Any] = {"name": job.task.name}
    if job.needs:
        doc["needs"] = list(job.needs)
    condition = _condition(job, all_crons)
    if condition:
        doc["if"] = condition
    doc["runs-on"] = _job_runs_on(job, settings)
    doc["timeout-minutes"] = job.timeout_minutes
    doc["permissions"] = _job_permissions(job)
    if ci.environment:
        doc["environment"] = ci.environment
    if ci.matrix:
        doc["strategy"] = {"matrix": ci.matrix}
    if ci.services:
        doc["services"] = ci.services
    env = _job_env(job)
    if env:
        doc["env"] = env
    doc["steps"] = job_steps(job, settings)
    return doc


def _condition(job: Job, all_crons: list[str]) -> str | None:
    """Which events run the job, when some tasks have schedules: a scheduled run runs
    only the jobs of its schedule (and what they need)."""
    parts = []
    if all_crons and job.on_every_event:
        parts += [f"github.event.schedule != {_quoted(c)}" for c in all_crons if c not in job.crons]
    elif all_crons:
        crons = " || ".join(f"github.event.schedule == {_quoted(c)}" for c in sorted(job.crons))
        parts.append(f"github.event_name == 'workflow_dispatch' || {crons}")
    if job.ci.condition:
        parts.append(job.ci.condition)
    if len(parts) > 1:
        return " && ".join(f"({p})" if "||" in p else p for p in parts)
    return parts[0] if parts else None


def _quoted(text: str) -> str:
    """A string literal of GitHub's expression language."""
    return "'" + text.replace("'", "''") + "'"


def _job_runs_on(job: Job, settings: Settings) -> str | list[str]:
    key = runner_matrix_key(job.ci.runs_on, job.ci.matrix)
    runs_on = job.ci.runs_on or (f"${{{{ matrix.{key} }}}}" if key else settings.runs_on)
    return runs_on if isinstance(runs_on, str) else list(runs_on)


def _job_permissions(job: Job) -> dict[str, Any]:
    """Read access to the code, and what the tasks that run here ask for, each with a
    comment naming the task that asked (a reviewer's first question)."""
    levels = {"contents": "read"}
    askers: dict[str, list[str]] = {}
    for task, task_ci in zip(job.inside, job.inside_ci, strict=True):
        for scope, level in task_ci.permissions.items():
            current = levels.get(scope, "none")
            if PERMISSION_LEVELS.index(level) > PERMISSION_LEVELS.index(current):
                levels[scope], askers[scope] = level, []
            if level == levels[scope]:
                askers.setdefault(scope, []).append(task.name)
    return {
        scope: Commented(level, "for " + ", ".join(askers[scope])) if scope in askers else level
        for scope, level in levels.items()
    }


def _job_env(job: Job) -> dict[str, Any]:
    """Static env, matrix values and task options, all through variables: a value never
    becomes part of a script's text, so no value can inject code into it."""
    env: dict[str, Any] = {}
    for task_ci in job.inside_ci:
        env.update(task_ci.env)
    env.update(job.ci.env)
    params = {p.name: p for p in job.task.params}
    for key in matrix_keys(job.ci.matrix):
        name = param_of(key, params)
        if name is not None:
            env[_option_variable(params[name])] = f"${{{{ matrix.{key} }}}}"
        elif key not in ("python-version", runner_matrix_key(job.ci.runs_on, job.ci.matrix)):
            env[matrix_variable(key)] = f"${{{{ matrix.{key} }}}}"
    for param in _params(job.task, job.ci.dispatch):
        env[_option_variable(param)] = f"${{{{ inputs.{_input_id(job, param)} }}}}"
    return env


def _options(job: Job) -> str:
    """The command line's options: each one given only when its variable is not empty
    (a push has no dispatch inputs; the option keeps its default)."""
    params = {p.name: p for p in job.task.params}
    chosen = [params[p] for k in matrix_keys(job.ci.matrix) if (p := param_of(k, params))]
    chosen += _params(job.task, job.ci.dispatch)
    return "".join(
        f' ${{{_option_variable(p)}:+"{p.option}=${_option_variable(p)}"}}' for p in chosen
    )


def _secrets_env(names: Iterable[str]) -> dict[str, str]:
    return {name: f"${{{{ secrets.{name} }}}}" for name in names}


def job_steps(job: Job, settings: Settings) -> list[dict[str, Any]]:
    task = job.task.name
    options = _options(job)
    secrets = [s for ci in job.inside_ci for s in ci.secrets]
    secrets = list(dict.fromkeys(secrets))
    # The fingerprint covers the values of a task's declared env, so the hash must see
    # the secrets a task declares there; no other secret goes near it.
    hashed = {name for t in job.inside for name in t.env}
    python = (
        "${{ matrix.python-version }}"
        if "python-version" in matrix_keys(job.ci.matrix)
        else settings.python_version
    )
    key_prefix = "runner-${{ runner.os }}-${{ runner.arch }}-"
    steps: list[dict[str, Any]] = [
        {
            "name": "Check out the repository",
            "uses": PINS["checkout"].uses,
            "with": {"persist-credentials": False},
        },
        {
            "name": "Set up Python",
            "uses": PINS["setup-python"].uses,
            "with": {"python-version": python},
        },
    ]
    if settings.install:
        steps.append({"name": "Install", "run": settings.install})
    if settings.runner_install:
        steps.append({"name": "Install runner", "run": settings.runner_install})
    setup = [c for ci in job.inside_ci for c in ci.setup]
    for command in dict.fromkeys(setup):
        steps.append({"name": "Set up: " + command.splitlines()[0][:60], "run": command})
    fingerprint: dict[str, Any] = {"name": f"Fingerprint {task}", "id": "fingerprint"}
    if hashed & set(secrets):
        fingerprint["env"] = _secrets_env(s for s in secrets if s in hashed)
    fingerprint["run"] = (
        f'key=$(runner hash {task}{options})\necho "key=$key" >> "$GITHUB_OUTPUT"\n'
    )
    steps += [
        fingerprint,
        {
            "name": "Restore runner's cache",
            "id": "restore",
            "uses": PINS["cache-restore"].uses,
            "with": {
                "path": settings.cache_path,
                "key": f"{key_prefix}{job.id}-${{{{ steps.fingerprint.outputs.key }}}}",
                # Another run's state is safe to start from: runner trusts an entry only
                # when the fingerprint matches, and OS and architecture never mix.
                "restore-keys": f"{key_prefix}{job.id}-\n{key_prefix}\n",
            },
        },
        {
            "name": f"runner {task}",
            **({"env": _secrets_env(secrets)} if secrets else {}),
            "run": f"runner {task}{options}",
        },
        {
            "name": "Save runner's cache",
            "if": f"steps.restore.outputs.cache-hit != 'true' && ({ON_DEFAULT_BRANCH})",
            "uses": PINS["cache-save"].uses,
            "with": {
                "path": settings.cache_path,
                "key": "${{ steps.restore.outputs.cache-primary-key }}",
            },
        },
    ]
    return steps


GATE_SCRIPT = """\
echo "results: $RESULTS"
for result in $RESULTS; do
  if [ "$result" = failure ] || [ "$result" = cancelled ]; then
    echo "::error title=all-green::a job ended with: $result"
    exit 1
  fi
done
"""


def gate_document(jobs: list[Job], settings: Settings) -> dict[str, Any]:
    """One check to require in branch protection. It always runs: a skipped required
    check counts as passed, so it must fail, not skip, when a job failed or was
    cancelled. (A job skipped by its own `if:` or schedule is fine.)"""
    runs_on = settings.runs_on
    return {
        "name": GATE_ID,
        "needs": [job.id for job in jobs],
        "if": "always()",
        "runs-on": runs_on if isinstance(runs_on, str) else list(runs_on),
        "timeout-minutes": GATE_MINUTES,
        "permissions": {},
        "steps": [
            {
                "name": "Fail unless every job succeeded or was skipped",
                "env": {"RESULTS": "${{ join(needs.*.result, ' ') }}"},
                "run": GATE_SCRIPT,
            }
        ],
    }


# ---------------------------------------------------------------- the file and the command


def render(
    settings: Settings, jobs: list[Job], adjust: Callable[[str, dict[str, Any]], Any] | None = None
) -> str:
    """The workflow file's text: a header, then the document, a blank line between
    top-level keys and between jobs."""
    doc = workflow_document(jobs, settings, adjust)
    header = (
        f"# Generated by runner from {settings.tasksfile}: do not edit by hand.\n"
        f"# Regenerate it with `{settings.regenerate}`; "
        f"`{settings.regenerate} --check` fails when it is stale.\n"
    )
    parts = [header]
    for key, value in doc.items():
        if key == "jobs":
            jobs_text = (to_yaml({k: v}, indent=2) for k, v in value.items())
            parts.append("jobs:\n" + "\n".join(jobs_text))
        else:
            parts.append(to_yaml({key: value}))
    return "\n".join(parts)


@dataclass(frozen=True)
class Workflow:
    """A generated workflow: its text, and what went into it."""

    text: str
    jobs: list[Job]
    settings: Settings


def generate(project: Project, graph: Graph, targets: list[str], output: str | None) -> Workflow:
    """The workflow for these targets (or the CI tasks) of the project."""
    jobs = plan_jobs(graph, choose_job_tasks(graph, targets))
    canonical = [graph.resolve(t).name for t in targets]
    settings = read_settings(project, output, canonical)
    plugins = project.plugins
    adjust = None
    if plugins is not None:

        def adjust(task: str, job: dict[str, Any]) -> None:
            plugins.call("runner_ci_job", task=task, job=job)

    return Workflow(render(settings, jobs, adjust), jobs, settings)


def ci_command(
    project: Project,
    graph: Graph,
    targets: list[str],
    *,
    output: str | None,
    check: bool,
    out: TextIO,
    err: TextIO,
) -> int:
    """`runner ci github [TASK...] [--output PATH] [--check]`: write the workflow, or
    with --check, exit 1 with a diff when the file on disk is not what it would be."""
    workflow = generate(project, graph, targets, output)
    text, rel = workflow.text, workflow.settings.output
    path = os.path.join(project.root, rel)
    current = _read(path)
    if check:
        if current == text:
            out.write(f"{rel} is up to date\n")
            return EXIT_OK
        out.writelines(
            difflib.unified_diff(
                (current or "").splitlines(True),
                text.splitlines(True),
                fromfile=f"{rel} (on disk)",
                tofile=f"{rel} (generated)",
            )
        )
        what = "does not exist" if current is None else "is stale"
        err.write(f"runner: {rel} {what}: run `{workflow.settings.regenerate}` and commit it\n")
        return EXIT_TASK_FAILED
    if current != text:
        _write(path, text)
    names = ", ".join(job.task.name for job in workflow.jobs)
    out.write(
        f"{'wrote' if current != text else 'up to date:'} {rel}: jobs {names} "
        f"and the {GATE_ID} gate\n"
    )
    return EXIT_OK


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", newline="") as f:
            return f.read()
    except FileNotFoundError:
        return None


def _write(path: str, text: str) -> None:
    """Write through a temporary file and a rename: never a half-written workflow."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)
    os.replace(tmp, path)
