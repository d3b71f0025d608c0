"""A run inside GitHub Actions (GITHUB_ACTIONS=true): each task's output in its own
`::group::`, an `::error::` annotation per failure, a markdown table in the job summary."""

from __future__ import annotations

import io
import subprocess
import sys
import textwrap

from conftest import GITHUB_FILES, REPO, clean_env

from runner import events as ev
from runner.ci.report import (
    GitHubRenderer,
    escape_data,
    escape_property,
    failure_annotation,
    summary_markdown,
)
from runner.executor import Outcome

PARALLEL = """
    import time

    @task
    def slow():
        print("slow 1")
        time.sleep(0.4)
        print("slow 2")

    @task
    def fast():
        time.sleep(0.1)
        print("fast 1")
        sh("echo fast 2 >&2")

    @task(deps=[slow, fast], inputs=["tasksfile.py"])
    def both():
        print("both")
"""


def github_env(tmp_path, **extra: str) -> dict[str, str]:
    return clean_env(GITHUB_ACTIONS="true", GITHUB_STEP_SUMMARY=str(tmp_path / "summary.md"),
                     **extra)


def groups(out: str) -> dict[str, list[str]]:
    """Each group's lines by its title, checking that groups never nest or stay open."""
    found: dict[str, list[str]] = {}
    current: str | None = None
    for line in out.splitlines():
        if line.startswith("::group::"):
            assert current is None, f"group {line!r} opened inside {current!r}:\n{out}"
            current = line[len("::group::"):].removesuffix(" (continued)")
            found.setdefault(current, [])
        elif line == "::endgroup::":
            assert current is not None, out
            current = None
        elif current is not None:
            found[current].append(line)
    assert current is None, f"group {current!r} never closed:\n{out}"
    return found


def test_each_tasks_output_is_in_its_own_group(project, tmp_path):
    project.tasksfile(PARALLEL)
    result = project.run("-j", "4", "both", env=github_env(tmp_path))
    assert result.code == 0, result.output
    found = groups(result.out)
    assert found["slow"] == ["slow 1", "slow 2"]
    assert found["fast"] == ["fast 1", "$ echo fast 2 >&2", "fast 2"]
    assert found["both"] == ["both"]
    assert " | " not in result.out  # no task prefixes: a group is one task's


def test_a_run_outside_github_actions_has_no_workflow_commands(project):
    project.tasksfile(PARALLEL)
    result = project.run("both")
    assert result.code == 0
    assert "::" not in result.out + result.err


def test_a_failure_is_an_error_annotation_with_escaped_text(project, tmp_path):
    project.tasksfile("""
        @task
        def deploy():
            raise TaskError("50% done, then: boom\\nsecond line")
    """)
    result = project.run("deploy", env=github_env(tmp_path))
    assert result.code == 1
    errors = [line for line in result.out.splitlines() if line.startswith("::error")]
    # The title escapes `:` and `,`; the message only `%` and line breaks.
    assert errors == ["::error title=task deploy failed::50%25 done, then: boom%0Aexit code: 1"]
    assert "FAILED deploy" in result.err


def test_the_job_summary_is_a_table_of_tasks_status_duration_and_cache(project, tmp_path):
    project.tasksfile(PARALLEL + """
    @task
    def broken():
        raise TaskError("no | pipes * here")

    @task(deps=[both, broken])
    def all():
        pass
    """)
    env = github_env(tmp_path)
    assert project.run("both", env=env).code == 0
    summary = (tmp_path / "summary.md").read_text()
    assert summary.startswith("### runner: done in ")
    assert "| task | status | duration | cache | time saved |" in summary
    rows = {line.split(" | ")[0]: line for line in summary.splitlines() if line.startswith("| `")}
    assert set(rows) == {"| `slow`", "| `fast`", "| `both`"}
    assert "✅ ok" in rows["| `both`"] and "| ran |" in rows["| `both`"]

    (tmp_path / "summary.md").unlink()
    result = project.run("-k", "all", env=env)
    assert result.code == 1
    summary = (tmp_path / "summary.md").read_text()
    rows = {line.split(" | ")[0]: line for line in summary.splitlines() if line.startswith("| `")}
    assert "| hit |" in rows["| `both`"]  # cached: inputs unchanged
    assert "❌ FAILED" in rows["| `broken`"]
    assert "skipped" in rows["| `all`"]
    assert "- `broken`: no \\| pipes \\* here" in summary


def test_the_summary_file_is_appended_to(project, tmp_path):
    project.tasksfile(PARALLEL)
    (tmp_path / "summary.md").write_text("# earlier step\n")
    assert project.run("fast", env=github_env(tmp_path)).code == 0
    text = (tmp_path / "summary.md").read_text()
    assert text.startswith("# earlier step\n### runner: done")


def test_without_a_summary_file_the_run_goes_on(project, tmp_path):
    project.tasksfile(PARALLEL)
    env = clean_env(GITHUB_ACTIONS="true")
    result = project.run("fast", env=env)
    assert result.code == 0
    assert "::group::fast" in result.out


def test_escaping_follows_githubs_rules():
    assert escape_data("100%\r\nnext: a,b") == "100%25%0D%0Anext: a,b"
    assert escape_property("a: b, c%\n") == "a%3A b%2C c%25%0A"


def test_renderer_holds_a_tasks_lines_while_another_owns_the_group():
    out, err = io.StringIO(), io.StringIO()
    r = GitHubRenderer(out, err, prefix=True, width=4)
    r(ev.TaskStarted("a"))
    r(ev.TaskStarted("b"))
    r(ev.TaskOutput("a", "a1"))
    r(ev.TaskOutput("b", "b1"))
    r(ev.TaskOutput("a", "a2"))
    r(ev.TaskFinished("b", ev.OK, 0.5))
    r(ev.TaskOutput("a", "a3"))
    r(ev.TaskFinished("a", ev.FAILED, 1.0, exit_code=2, error="bad, very: bad", cmd="make"))
    assert out.getvalue().splitlines() == [
        "::group::a", "a1", "a2", "::endgroup::",
        "::group::b", "b1", "::endgroup::", "ok b (0.50s)",
        "::group::a (continued)", "a3", "::endgroup::",
        "::error title=task a failed::bad, very: bad%0Acommand: make%0Aexit code: 2",
    ]
    assert err.getvalue() == "FAILED a (exit 2, 1.00s)\n"


def test_failure_annotation_and_summary_markdown_directly():
    failed = ev.TaskFinished("t:x", ev.FAILED, 2.0, exit_code=1, error="it broke\ntrace")
    assert failure_annotation(failed) == (
        "::error title=task t%3Ax failed::it broke%0Aexit code: 1")
    restored = ev.TaskFinished("r", ev.RESTORED, saved=3.5)
    outcome = Outcome({"r": restored, "t:x": failed}, ["r", "t:x"], 2.5, interrupted=False)
    text = summary_markdown(outcome)
    assert "| `r` | ✅ restored |  | restored | 3.50s |" in text
    assert "| `t:x` | ❌ FAILED | 2.00s | ran |  |" in text


def test_a_held_task_takes_the_group_over_when_the_open_one_finishes():
    out, err = io.StringIO(), io.StringIO()
    r = GitHubRenderer(out, err, prefix=True, width=4)
    r(ev.TaskStarted("a"))
    r(ev.TaskStarted("b"))
    r(ev.TaskOutput("a", "a1"))
    r(ev.TaskOutput("b", "b1"))
    r(ev.TaskFinished("a", ev.OK, 0.25))
    r(ev.TaskOutput("b", "b2"))
    r(ev.TaskFinished("b", ev.OK, 0.5))
    assert out.getvalue().splitlines() == [
        "::group::a", "a1", "::endgroup::", "ok a (0.25s)",
        "::group::b", "b1", "b2", "::endgroup::", "ok b (0.50s)",
    ]


# A test of the suite that hands its own environment on to runner, as a test does when
# it adds a variable to os.environ's: inside a GitHub job that environment names the
# job's files.
PROBE = """
import os
import subprocess


def test_probe(project):
    project.tasksfile(\"\"\"
        @task
        def step():
            sh('echo "out=1" >> "$GITHUB_OUTPUT"; echo "X=1" >> "$GITHUB_ENV"')
    \"\"\")
    done = subprocess.run(project.command("step"), cwd=project.root, env=dict(os.environ),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "::group::step" in done.stdout  # it ran as a step of a GitHub job does
"""


def test_the_suite_run_inside_a_github_job_writes_nothing_into_that_job(tmp_path):
    job = {name: tmp_path / "job" / name.lower() for name in GITHUB_FILES}
    for path in job.values():
        path.parent.mkdir(exist_ok=True)
        path.write_text("")
    probe = tmp_path / "suite" / "test_probe.py"
    probe.parent.mkdir()
    probe.write_text(textwrap.dedent(PROBE))
    env = clean_env(GITHUB_ACTIONS="true", PYTHONPATH=str(REPO / "tests"),
                    **{name: str(path) for name, path in job.items()})
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "conftest",
         str(probe)], cwd=probe.parent, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout
    assert {name: path.read_text() for name, path in job.items()} == dict.fromkeys(job, "")
