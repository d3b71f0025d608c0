"""runner-python: the py:* tasks, run by a real runner on a real project with the real
tools (pytest, ruff, mypy, build)."""

from __future__ import annotations

import json
import os

import pytest
from conftest import clean_env
from plugin_testing import declared_entry_points, enable, install_dist_info, plugin_dir

# A build backend inside the project (PEP 517 `backend-path`): py:build needs nothing
# installed but `build`, and no network.
BACKEND = """\
import io
import os
import tarfile
import zipfile

NAME, VERSION = "demo", "0.1.0"
META = f"Metadata-Version: 2.1\\nName: {NAME}\\nVersion: {VERSION}\\n"


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    name = f"{NAME}-{VERSION}-py3-none-any.whl"
    info = f"{NAME}-{VERSION}.dist-info"
    with zipfile.ZipFile(os.path.join(wheel_directory, name), "w") as z:
        for d, _, files in os.walk("src"):
            for f in sorted(files):
                if f.endswith(".py"):
                    z.write(os.path.join(d, f), os.path.relpath(os.path.join(d, f), "src"))
        z.writestr(f"{info}/METADATA", META)
        wheel = "Wheel-Version: 1.0\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n"
        z.writestr(f"{info}/WHEEL", wheel)
        z.writestr(f"{info}/RECORD", "")
    return name


def build_sdist(sdist_directory, config_settings=None):
    name = f"{NAME}-{VERSION}"
    with tarfile.open(os.path.join(sdist_directory, name + ".tar.gz"), "w:gz") as t:
        for path in ("pyproject.toml", "src", "_backend"):
            t.add(path, f"{name}/{path}")
        info = tarfile.TarInfo(f"{name}/PKG-INFO")
        info.size = len(META)
        t.addfile(info, io.BytesIO(META.encode()))
    return name + ".tar.gz"
"""

PYPROJECT = """\
[build-system]
requires = []
build-backend = "backend"
backend-path = ["_backend"]

[project]
name = "demo"
version = "0.1.0"

[tool.runner-python]
args = {build = ["--no-isolation"]}

[tool.ruff]
line-length = 100

[tool.mypy]
strict = true

[tool.pytest.ini_options]
pythonpath = ["src"]
"""

ALL = ["py:build", "py:format", "py:lint", "py:test", "py:typecheck"]


def python_project(project, toml: str = PYPROJECT):
    """A src-layout package with tests, set up for pytest, ruff, mypy and build."""
    project.write("tasksfile.py", "")
    project.write("src/demo/__init__.py", "def add(a: int, b: int) -> int:\n    return a + b\n")
    project.write(
        "tests/test_demo.py",
        "from demo import add\n\n\ndef test_add() -> None:\n    assert add(1, 2) == 3\n\n\n"
        "def test_add_zero() -> None:\n    assert add(0, 0) == 0\n",
    )
    project.write("_backend/backend.py", BACKEND)
    enable(project, "python", toml=toml)
    return project


def listed(project) -> dict[str, dict]:
    r = project.run("--list", "--json")
    assert r.code == 0, r.output
    return {t["name"]: t for t in json.loads(r.out)["tasks"]}


def ran(result, name: str) -> bool:
    return f"ok {name} (" in result.out


# ---------------------------------------------------------------- which tasks


def test_list_shows_a_task_for_each_tool_the_project_is_set_up_for(project):
    python_project(project)
    assert sorted(listed(project)) == ALL


def test_a_project_with_only_tests_gets_only_py_test(project):
    project.tasksfile("")
    project.write("tests/test_x.py", "def test_x():\n    pass\n")
    enable(project, "python", toml='[project]\nname = "x"\n')
    assert sorted(listed(project)) == ["py:test"]


def test_the_tasks_setting_names_the_tasks_instead(project):
    python_project(
        project,
        PYPROJECT.replace("[tool.runner-python]", '[tool.runner-python]\ntasks = ["lint", "test"]'),
    )
    assert sorted(listed(project)) == ["py:lint", "py:test"]


def test_src_layout_inputs_are_the_package_the_tests_and_the_config(project):
    python_project(project)
    tasks = listed(project)
    assert tasks["py:test"]["inputs"][:2] == ["src/**", "tests/**"]
    assert "pyproject.toml" in tasks["py:lint"]["inputs"]
    assert (
        "src/**/*.py" in tasks["py:lint"]["inputs"]
        and "tests/**/*.py" in tasks["py:lint"]["inputs"]
    )
    assert tasks["py:build"]["outputs"] == ["dist/*.whl", "dist/*.tar.gz"]
    assert "SOURCE_DATE_EPOCH" in tasks["py:build"]["env"]
    assert "PYTEST_ADDOPTS" in tasks["py:test"]["env"]
    assert tasks["py:format"]["cache"] is False


def test_flat_layout_sources_are_the_package_directories(project):
    project.tasksfile("")
    project.write("pkg/__init__.py", "")
    project.write("notes/readme.txt", "not a package")
    project.write("tests/test_x.py", "def test_x():\n    pass\n")
    enable(project, "python", toml="[tool.ruff]\n")
    lint = listed(project)["py:lint"]["inputs"]
    assert "pkg/**/*.py" in lint and "tests/**/*.py" in lint
    assert not any(p.startswith("notes/") for p in lint)


def test_virtual_environments_and_tool_output_are_not_build_inputs(project):
    python_project(project)
    project.write(".venv/pyvenv.cfg", "home = /usr/bin\n")
    project.write("venv/pyvenv.cfg", "home = /usr/bin\n")
    project.write("build/lib/demo/__init__.py", "")
    project.write("docs/index.md", "# demo\n")
    inputs = listed(project)["py:build"]["inputs"]
    assert "docs/**" in inputs and "src/**" in inputs and "*" in inputs
    assert not any(p.startswith(("venv", ".venv", "build/", "dist/")) for p in inputs)


def test_sources_tests_and_inputs_settings_override_what_is_found(project):
    settings = 'sources = ["lib"]\ntests = ["checks"]\ninputs = {test = ["data/**"]}\nargs = {build'
    python_project(project, PYPROJECT.replace("args = {build", settings))
    inputs = listed(project)["py:test"]["inputs"]
    assert inputs[:2] == ["lib/**", "checks/**"] and inputs[-1] == "data/**"


# ---------------------------------------------------------------- the tools, for real


def test_py_test_runs_pytest_then_is_cached(project):
    python_project(project)
    first = project.run("py:test")
    assert first.code == 0, first.output
    assert "2 passed" in first.out
    second = project.run("py:test")
    assert second.code == 0 and not ran(second, "py:test") and "1 cached" in second.out


@pytest.mark.parametrize(
    "path, text",
    [
        ("src/demo/__init__.py", "def add(a: int, b: int) -> int:\n    return b + a\n"),
        ("tests/test_demo.py", "def test_other() -> None:\n    pass\n"),
        ("src/demo/data.json", "{}"),
        ("conftest.py", ""),
        ("pyproject.toml", None),
    ],
)
def test_py_test_runs_again_when_a_file_it_depends_on_changes(project, path, text):
    python_project(project)
    assert project.run("py:test").code == 0
    project.write(path, text if text is not None else project.read(path) + "\n[tool.x]\n")
    again = project.run("py:test")
    assert again.code == 0 and ran(again, "py:test"), again.output


def test_editing_the_tasksfile_does_not_run_py_test_again(project):
    python_project(project)
    assert project.run("py:test").code == 0
    project.write("tasksfile.py", "from runner import task\n\n\n@task\ndef hello():\n    pass\n")
    again = project.run("py:test")
    assert again.code == 0 and not ran(again, "py:test")


def test_py_test_k_option_selects_tests_as_pytest_k_does(project):
    python_project(project)
    r = project.run("py:test", "--k", "zero")
    assert r.code == 0, r.output
    assert "1 passed, 1 deselected" in r.out


def test_a_failing_test_fails_py_test_with_exit_1(project):
    python_project(project)
    project.write("tests/test_bad.py", "def test_bad():\n    assert 1 == 2\n")
    r = project.run("py:test")
    assert r.code == 1
    assert "FAILED py:test" in r.output and "1 failed" in r.out


def test_py_lint_fails_on_a_lint_error_and_is_cached_once_clean(project):
    python_project(project)
    project.write("src/demo/extra.py", "import os\n")
    bad = project.run("py:lint")
    assert bad.code == 1 and "F401" in bad.out, bad.output
    project.write("src/demo/extra.py", "")
    assert project.run("py:lint").code == 0
    again = project.run("py:lint")
    assert again.code == 0 and not ran(again, "py:lint")


def test_py_lint_runs_again_when_the_ruff_config_changes(project):
    python_project(project)
    assert project.run("py:lint").code == 0
    project.write("ruff.toml", "line-length = 88\n")
    again = project.run("py:lint")
    assert again.code == 0 and ran(again, "py:lint")


def test_py_typecheck_fails_on_a_type_error(project):
    python_project(project)
    assert project.run("py:typecheck").code == 0
    project.write("src/demo/bad.py", "x: int = 'text'\n")
    r = project.run("py:typecheck")
    assert r.code == 1 and "Incompatible types in assignment" in r.out, r.output


def test_py_typecheck_checks_the_sources_unless_mypy_config_names_files(project):
    python_project(project)
    r = project.run("py:typecheck")
    assert r.code == 0 and "-m mypy src\n" in r.out, r.output
    project.write(
        "pyproject.toml",
        project.read("pyproject.toml").replace(
            "strict = true", 'strict = true\nfiles = ["src", "tests"]'
        ),
    )
    r = project.run("py:typecheck")
    assert r.code == 0 and "-m mypy\n" in r.out, r.output


def test_py_build_makes_a_wheel_and_an_sdist_and_restores_them_from_the_cache(project):
    python_project(project)
    r = project.run("py:build")
    assert r.code == 0, r.output
    wheel = project.root / "dist" / "demo-0.1.0-py3-none-any.whl"
    sdist = project.root / "dist" / "demo-0.1.0.tar.gz"
    made = wheel.read_bytes(), sdist.read_bytes()
    wheel.unlink()
    sdist.unlink()
    again = project.run("py:build")
    assert again.code == 0 and "restored" in again.out and not ran(again, "py:build")
    assert (wheel.read_bytes(), sdist.read_bytes()) == made


def test_py_build_runs_again_when_a_file_at_the_root_changes(project):
    python_project(project)
    assert project.run("py:build").code == 0
    project.write("README.md", "# demo\n")
    again = project.run("py:build")
    assert again.code == 0 and ran(again, "py:build"), again.output


def test_py_format_rewrites_the_code_and_always_runs(project):
    python_project(project)
    project.write("src/demo/ugly.py", "x  =  [1,2]\n")
    assert project.run("py:format").code == 0
    assert project.read("src/demo/ugly.py") == "x = [1, 2]\n"
    assert ran(project.run("py:format"), "py:format")


def test_plugin_tasks_are_deps_of_tasksfile_tasks_by_name(project):
    python_project(project)
    project.write(
        "tasksfile.py",
        'from runner import task\n\n\n@task(deps=["py:lint", "py:test"])\n'
        'def check():\n    print("all good")\n',
    )
    r = project.run("check")
    assert r.code == 0, r.output
    assert ran(r, "py:lint") and ran(r, "py:test") and "all good" in r.out


def test_the_tools_installed_version_is_part_of_the_fingerprint(project, tmp_path_factory):
    python_project(project)
    before = project.run("hash", "py:test")
    assert before.code == 0, before.output
    site = tmp_path_factory.mktemp("site")
    (site / "pytest-99.0.dist-info").mkdir()  # found before the real one on sys.path
    after = project.run("hash", "py:test", env=clean_env(PYTHONPATH=str(site)))
    assert after.code == 0, after.output
    assert after.out != before.out


# ---------------------------------------------------------------- settings and loading


def test_an_unknown_setting_is_exit_2_naming_the_key_and_its_line(project):
    python_project(project, PYPROJECT.replace("args = {build", 'tsks = ["lint"]\nargs = {build'))
    r = project.run("--list")
    assert r.code == 2
    line = project.read("pyproject.toml").splitlines().index('tsks = ["lint"]') + 1
    assert (
        f"pyproject.toml:{line}: tool.runner-python.tsks: unknown key (did you mean 'tasks'?)"
        in r.err
    )


def test_an_unknown_task_kind_is_exit_2_listing_the_kinds(project):
    python_project(project, PYPROJECT.replace("args = {build", 'tasks = ["tests"]\nargs = {build'))
    r = project.run("--list")
    assert r.code == 2
    assert "tool.runner-python.tasks: unknown task kind 'tests' (did you mean 'test'?)" in r.err


def test_an_absolute_source_path_is_exit_2(project):
    python_project(project, PYPROJECT.replace("args = {build", 'sources = ["/etc"]\nargs = {build'))
    r = project.run("--list")
    assert r.code == 2 and "tool.runner-python.sources" in r.err and "relative" in r.err


def test_found_through_its_entry_point_when_installed(project, tmp_path_factory):
    python_project(project)
    project.write("pyproject.toml", PYPROJECT)  # no [tool.runner] plugins
    site = tmp_path_factory.mktemp("site")
    install_dist_info(site, "runner-python", declared_entry_points("python"))
    path = os.pathsep.join([str(site), str(plugin_dir("python").parent)])
    r = project.run("--list", env=clean_env(PYTHONPATH=path))
    assert r.code == 0, r.output
    assert "py:test" in r.out and "py:build" in r.out


def test_a_tool_that_is_not_installed_fails_its_task_with_the_pip_command(monkeypatch):
    monkeypatch.syspath_prepend(str(plugin_dir("python").parent))
    import runner_python

    from runner import TaskError

    version = runner_python.installed_version("no-such-tool")
    assert version == ""
    with pytest.raises(
        TaskError, match=r"no-such-tool is not installed .*pip install no-such-tool"
    ):
        runner_python.require("no-such-tool", version)
