"""Plugins (runner/hooks.py): how runner finds them (a path to a .py file or a package,
a module name, an installed package's entry point), what their hooks receive, and what a
broken plugin does to a run. Every plugin here is a real module, loaded by a real
`python -m runner`."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import clean_env

SPY = '''\
"""Writes each hook call, with its arguments, to hooks.jsonl beside itself."""
import json
import os

LOG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "hooks.jsonl")


def _log(hook, **args):
    with open(LOG, "a") as f:
        f.write(json.dumps({"hook": hook, **args}) + "\\n")


def runner_run_started(run_id, tasks, jobs):
    _log("run_started", run_id=run_id, tasks=tasks, jobs=jobs)


def runner_task_started(run_id, task, reason, attempt):
    _log("task_started", task=task, reason=reason, attempt=attempt)


def runner_command_started(task, cmd):  # any subset of the arguments
    _log("command_started", task=task, cmd=cmd)


def runner_command_finished(run_id, task, cmd, exit_code, duration):
    _log("command_finished", task=task, cmd=cmd, exit_code=exit_code)


def runner_task_finished(run_id, task, status, duration, exit_code, cache, fingerprint, error):
    _log("task_finished", task=task, status=status, exit_code=exit_code, cache=cache,
         fingerprint=fingerprint, error=error)


def runner_run_finished(run_id, status, duration, exit_code, counts, critical_path, saved):
    _log("run_finished", run_id=run_id, status=status, exit_code=exit_code, counts=counts,
         critical_path=critical_path)
'''

TASKS = """
    @task(inputs=["a.txt"], outputs=["out.txt"])
    def build():
        sh("cp a.txt out.txt")
        sh(["echo", "copied"])

    @task(deps=[build])
    def test():
        sh("exit 3")
"""


def spied(project, plugin: str = "spy.py"):
    """A project whose tasksfile has build and test, with the spy plugin enabled."""
    project.tasksfile(TASKS)
    project.write("a.txt", "a\n")
    project.write(plugin if plugin.endswith(".py") else f"{plugin}/__init__.py", SPY)
    project.write("pyproject.toml", f'[tool.runner]\nplugins = ["{plugin}"]\n')
    return project


def calls(project, where: str = "") -> list[dict]:
    path = project.root / where / "hooks.jsonl"
    if not path.exists():
        return []
    lines = path.read_text().splitlines()
    path.unlink()
    return [json.loads(line) for line in lines]


def hooks(project, where: str = "") -> list[str]:
    return [c["hook"] for c in calls(project, where)]


def finished(log: list[dict], task: str) -> dict:
    [call] = [c for c in log if c["hook"] == "task_finished" and c["task"] == task]
    return call


# ---------------------------------------------------------------- finding plugins


def test_a_plugin_named_by_the_path_of_a_py_file_is_loaded(project):
    spied(project, "spy.py")
    assert project.run("build").code == 0
    assert hooks(project)[0] == "run_started"


def test_a_plugin_named_by_the_path_of_a_package_directory_is_loaded(project):
    spied(project, "tools/spypkg")
    assert project.run("build").code == 0
    assert hooks(project, "tools/spypkg")[0] == "run_started"


def test_a_plugin_named_as_a_module_is_imported(project):
    spied(project)
    project.write("pyproject.toml", '[tool.runner]\nplugins = ["spy"]\n')
    assert project.run("build").code == 0
    assert "run_started" in hooks(project)


def test_an_installed_package_is_found_through_its_entry_point(project, tmp_path):
    project.tasksfile(TASKS)
    project.write("a.txt", "a\n")
    site = tmp_path / "site"
    (site / "spy_plugin").mkdir(parents=True)
    (site / "spy_plugin" / "__init__.py").write_text(SPY)
    info = site / "spy_plugin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: spy-plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[console_scripts]\nspy = spy_plugin:main\n\n[runner.plugins]\nspy = spy_plugin\n"
    )
    r = project.run("build", env=clean_env(PYTHONPATH=str(site)))
    assert r.code == 0, r.output
    assert "run_started" in hooks(project, str(site / "spy_plugin"))


def test_an_entry_point_may_name_an_object_in_a_module(project, tmp_path):
    project.tasksfile(TASKS)
    project.write("a.txt", "a\n")
    site = tmp_path / "site"
    site.mkdir()
    (site / "objplugin.py").write_text(
        "class Hooks:\n"
        "    def runner_run_finished(self, status):\n"
        "        print('run finished:', status)\n\n"
        "hooks = Hooks()\n"
    )
    info = site / "objplugin-1.0.dist-info"
    info.mkdir()
    (info / "entry_points.txt").write_text("[runner.plugins]\nobj = objplugin:hooks\n")
    r = project.run("build", env=clean_env(PYTHONPATH=str(site)))
    assert r.code == 0, r.output
    assert "run finished: ok" in r.out


# ---------------------------------------------------------------- what the hooks receive


def test_hooks_receive_a_run_its_tasks_and_their_commands(project):
    spied(project)
    r = project.run("-j", "1", "test")
    assert r.code == 1
    log = calls(project)
    assert [c["hook"] for c in log] == [
        "run_started",
        "task_started", "command_started", "command_finished",
        "command_started", "command_finished", "task_finished",
        "task_started", "command_started", "command_finished", "task_finished",
        "run_finished",
    ]  # fmt: skip
    assert log[0]["tasks"] == ["build", "test"] and log[0]["jobs"] == 1
    assert log[1] == {"hook": "task_started", "task": "build", "reason": "never ran", "attempt": 1}
    assert log[2] == {"hook": "command_started", "task": "build", "cmd": "cp a.txt out.txt"}
    assert log[3]["exit_code"] == 0
    build = finished(log, "build")
    assert (build["status"], build["cache"], build["exit_code"]) == ("ok", "ran", 0)
    assert len(build["fingerprint"]) == 64
    test = finished(log, "test")
    assert (test["status"], test["cache"], test["exit_code"]) == ("failed", "none", 3)
    assert test["fingerprint"] is None and "exit code 3" in test["error"]
    end = log[-1]
    assert (end["status"], end["exit_code"]) == ("failed", 1)
    assert end["counts"] == {"ok": 1, "failed": 1}
    assert end["critical_path"] == ["build", "test"]
    assert end["run_id"] == log[0]["run_id"]


def test_an_up_to_date_task_finishes_as_a_hit_and_a_restored_one_as_restored(project):
    spied(project)
    assert project.run("build").code == 0
    calls(project)
    assert project.run("build").code == 0
    log = calls(project)
    assert "task_started" not in [c["hook"] for c in log]  # nothing ran
    assert (finished(log, "build")["status"], finished(log, "build")["cache"]) == ("cached", "hit")
    (project.root / "out.txt").unlink()
    assert project.run("build").code == 0
    build = finished(calls(project), "build")
    assert (build["status"], build["cache"]) == ("restored", "restored")


def test_a_retried_task_starts_again_with_the_next_attempt(project):
    spied(project)
    project.tasksfile("""
        import os

        @task(retries=1)
        def flaky():
            first = not os.path.exists("tried")
            open("tried", "w").close()
            sh("exit 1" if first else "true")
    """)
    assert project.run("flaky").code == 0
    started = [c for c in calls(project) if c["hook"] == "task_started"]
    assert [c["attempt"] for c in started] == [1, 2]


def test_log_fields_of_plugins_are_in_every_json_line(project):
    project.tasksfile(TASKS)
    project.write("a.txt", "a\n")
    fields = "def runner_log_fields(run_id):\n    return {'build_host': 'ci-7'}\n"
    project.write("fields.py", fields)
    project.write("pyproject.toml", '[tool.runner]\nplugins = ["fields.py"]\n')
    r = project.run("--log-format", "json", "build")
    assert r.code == 0, r.output
    lines = [json.loads(line) for line in r.out.splitlines()]
    assert lines and all(line["build_host"] == "ci-7" for line in lines)


def test_a_ci_job_hook_adjusts_the_generated_workflow(project):
    project.tasksfile("""
        @task(ci=True)
        def lint():
            sh("true")
    """)
    project.write(
        "ci_plugin.py",
        "def runner_ci_job(task, job):\n    job['timeout-minutes'] = 7\n",
    )
    project.write("pyproject.toml", '[tool.runner]\nplugins = ["ci_plugin.py"]\n')
    r = project.run("ci", "github", "--output", "workflow.yml")
    assert r.code == 0, r.output
    assert "timeout-minutes: 7" in project.read("workflow.yml")


# ---------------------------------------------------------------- tasks from plugins


FACTORY = '''\
from runner import task, sh


def runner_add_tasks(project):
    def docs():
        """Generate the docs."""
        sh("cp src.txt docs.txt")

    return [task(name="gen:docs", inputs=["src.txt"], outputs=["docs.txt"])(docs)]
'''


def test_list_shows_the_tasks_a_plugin_adds(project):
    project.tasksfile("""
        @task
        def hello():
            \"\"\"Say hello.\"\"\"
    """)
    project.write("factory.py", FACTORY)
    project.write("pyproject.toml", '[tool.runner]\nplugins = ["factory.py"]\n')
    r = project.run("--list")
    assert r.code == 0, r.output
    assert "gen:docs" in r.out and "Generate the docs." in r.out and "hello" in r.out


def test_a_plugin_task_runs_is_cached_and_can_be_a_dep_of_the_tasksfile(project):
    project.tasksfile("""
        @task(deps=["gen:docs"])
        def publish():
            print(open("docs.txt").read().strip())
    """)
    project.write("src.txt", "the docs\n")
    project.write("factory.py", FACTORY)
    project.write("pyproject.toml", '[tool.runner]\nplugins = ["factory.py"]\n')
    first = project.run("publish")
    assert first.code == 0, first.output
    assert "ok gen:docs" in first.out and "the docs" in first.out
    second = project.run("publish")
    assert second.code == 0 and "ok gen:docs" not in second.out


# ---------------------------------------------------------------- broken plugins


def test_a_hook_that_raises_is_reported_by_name_and_the_run_succeeds(project):
    spied(project)
    project.write(
        "broken.py",
        "def runner_task_finished(task):\n    raise RuntimeError(f'cannot cope with {task}')\n",
    )
    project.write("pyproject.toml", '[tool.runner]\nplugins = ["broken.py", "spy.py"]\n')
    r = project.run("build")
    assert r.code == 0, r.output
    assert (
        "runner: warning: plugin broken.py failed in runner_task_finished: "
        "RuntimeError: cannot cope with build" in r.err
    )
    assert "Traceback" not in r.err
    assert "task_finished" in hooks(project)  # the other plugin still heard of it


def test_a_task_factory_that_raises_is_exit_2_naming_the_plugin(project):
    project.tasksfile(TASKS)
    project.write("factory.py", "def runner_add_tasks(project):\n    raise KeyError('docs')\n")
    project.write("pyproject.toml", '[tool.runner]\nplugins = ["factory.py"]\n')
    r = project.run("build")
    assert r.code == 2
    assert "plugin factory.py: its task factory failed: KeyError: 'docs'" in r.err
    assert "Traceback" not in r.err


def test_a_task_factory_that_returns_something_else_than_tasks_is_exit_2(project):
    project.tasksfile(TASKS)
    project.write("factory.py", "def runner_add_tasks(project):\n    return ['docs']\n")
    project.write("pyproject.toml", '[tool.runner]\nplugins = ["factory.py"]\n')
    r = project.run("--list")
    assert r.code == 2
    assert "plugin factory.py: runner_add_tasks returned 'docs', not a task" in r.err


def test_a_plugin_file_that_does_not_exist_is_exit_2_naming_it(project):
    project.tasksfile(TASKS)
    project.write("pyproject.toml", '[tool.runner]\nplugins = ["plugins/nope.py"]\n')
    r = project.run("build")
    assert r.code == 2
    assert "plugin 'plugins/nope.py'" in r.err and "cannot be loaded" in r.err


def test_a_plugin_module_that_cannot_be_found_is_exit_2_naming_it(project):
    project.tasksfile(TASKS)
    project.write("pyproject.toml", '[tool.runner]\nplugins = ["no_such_plugin_module"]\n')
    r = project.run("--list")
    assert r.code == 2
    assert "plugin 'no_such_plugin_module'" in r.err and "ModuleNotFoundError" in r.err


def test_a_plugin_that_raises_on_import_is_exit_2_naming_it(project):
    project.tasksfile(TASKS)
    project.write("bad_import.py", "import json\nraise ValueError('half written')\n")
    project.write("pyproject.toml", '[tool.runner]\nplugins = ["bad_import.py"]\n')
    r = project.run("build")
    assert r.code == 2
    assert "plugin 'bad_import.py'" in r.err and "ValueError: half written" in r.err
    assert "Traceback" not in r.err


def test_a_hook_with_an_argument_runner_does_not_pass_is_exit_2(project):
    project.tasksfile(TASKS)
    project.write("typo.py", "def runner_task_finished(task, statuss):\n    pass\n")
    project.write("pyproject.toml", '[tool.runner]\nplugins = ["typo.py"]\n')
    r = project.run("build")
    assert r.code == 2
    assert "plugin 'typo.py'" in r.err and "statuss" in r.err


# ---------------------------------------------------------------- cost


RUN_AND_REPORT = """
import io, sys
import runner.cli

code = runner.cli.main(["build"], io.StringIO(), io.StringIO())
print(code, "pluggy" in sys.modules)
"""


def test_a_run_without_plugins_does_not_import_pluggy(project):
    project.tasksfile(TASKS)
    project.write("a.txt", "a\n")
    project.write("pyproject.toml", "[tool.runner]\njobs = 2\n")
    proc = subprocess.run([sys.executable, "-c", RUN_AND_REPORT], cwd=project.root,
                          env=clean_env(), capture_output=True, text=True, timeout=60)
    assert proc.stdout.split() == ["0", "False"], proc.stderr


def test_a_run_with_a_plugin_does_import_pluggy(project):
    spied(project)
    proc = subprocess.run([sys.executable, "-c", RUN_AND_REPORT], cwd=project.root,
                          env=clean_env(), capture_output=True, text=True, timeout=60)
    assert proc.stdout.split() == ["0", "True"], proc.stderr


# ---------------------------------------------------------------- the README's example


def readme_block(starting: str) -> str:
    """The fenced code block of README.md whose first line is `starting`."""
    from conftest import REPO

    text = (REPO / "README.md").read_text()
    start = text.index(f"```python\n{starting}\n") + len("```python\n")
    return text[start : text.index("```", start)]


def test_the_readme_plugin_example_works_as_documented(project):
    project.tasksfile("""
        import time

        @task
        def build():
            time.sleep(0.1)
    """)
    project.write("tools/slowest.py", readme_block("# tools/slowest.py"))
    project.write("pkg/__pycache__/x.pyc", "")
    project.write("pyproject.toml", '[tool.runner]\nplugins = ["tools/slowest.py"]\n')
    listing = project.run("--list")
    assert listing.code == 0, listing.output
    assert "clean:pycache  Delete the __pycache__ directories." in listing.out
    r = project.run("--log-format", "json", "build", "clean:pycache")
    assert r.code == 0, r.output
    assert "slowest: build (" in r.err
    assert all(json.loads(line)["host"] == "laptop-3" for line in r.out.splitlines())
    assert not (project.root / "pkg" / "__pycache__").exists()
