"""`runner --list` must not pay for heavy imports (STYLE habit 4; click's
tests/test_imports.py is the model): in a fresh interpreter, import runner.cli, load and
list a small tasksfile, and look at what ended up in sys.modules."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import clean_env

LIST_AND_REPORT = """
import io, json, sys
import runner.cli

out, err = io.StringIO(), io.StringIO()
code = runner.cli.main(["--list"], out, err)
json.dump({"code": code, "out": out.getvalue(), "err": err.getvalue(),
           "modules": sorted(sys.modules)}, sys.stdout)
"""

HEAVY = ("rich", "watchfiles", "git", "pluggy", "asyncio", "importlib.metadata",
         "subprocess", "dataclasses", "inspect")

TASKS = """
    @task
    def lint():
        \"\"\"Check the style.\"\"\"
        sh("ruff check .")

    @task(deps=[lint], inputs=["src/**/*.py"], outputs=["dist/*.whl"], env=["CC"],
          aliases=["b"], default=True)
    def build(n: int = 1, fast: bool = False):
        \"\"\"Build the wheel.\"\"\"
        sh("python -m build")

    @task(name="docs:serve", service=True)
    def docs_serve():
        \"\"\"Serve the docs.\"\"\"
"""


def list_in_fresh_interpreter(project) -> dict:
    proc = subprocess.run([sys.executable, "-c", LIST_AND_REPORT], cwd=project.root,
                          env=clean_env(), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["code"] == 0, report["err"]
    assert "build" in report["out"] and "docs:serve" in report["out"]
    return report


def loaded(modules: list[str], names: tuple[str, ...]) -> list[str]:
    """The modules of `modules` that are one of `names` or inside one of them."""
    return [m for m in modules if any(m == n or m.startswith(n + ".") for n in names)]


def test_list_imports_no_heavy_module_without_tool_runner_config(project):
    project.tasksfile(TASKS)
    project.write("pyproject.toml", '[project]\nname = "demo"\n\n[tool.ruff]\nline-length = 100\n')
    report = list_in_fresh_interpreter(project)
    assert loaded(report["modules"], HEAVY + ("tomllib", "tomli")) == []


def test_list_imports_no_heavy_module_without_a_pyproject(project):
    project.tasksfile(TASKS)
    report = list_in_fresh_interpreter(project)
    assert loaded(report["modules"], HEAVY + ("tomllib", "tomli")) == []


def test_list_imports_no_heavy_module_with_tool_runner_config(project):
    project.tasksfile(TASKS)
    project.write("pyproject.toml", "[tool.runner]\njobs = 2\n")
    report = list_in_fresh_interpreter(project)
    assert loaded(report["modules"], HEAVY) == []


def test_importing_the_cli_alone_loads_no_heavy_module(project):
    proc = subprocess.run(
        [sys.executable, "-c", "import json, sys, runner.cli; json.dump(sorted(sys.modules), "
                               "sys.stdout)"],
        cwd=project.root, env=clean_env(), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    modules = json.loads(proc.stdout)
    assert loaded(modules, HEAVY + ("tomllib", "tomli")) == []
