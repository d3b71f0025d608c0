"""`@task(tools=[...])` (SPEC §3): the executables and Python distributions a task
names join its fingerprint, so that an upgrade runs it again. Real tool scripts on a
real PATH, replaced as an upgrade replaces them; distributions as installed on disk
(a `.dist-info` directory on sys.path)."""

from __future__ import annotations

import os
import shutil

from conftest import clean_env

TOOLS = """
    @task(inputs=["src.txt"], tools=["mytool"])
    def check():
        sh("mytool >> ran.log")
"""


def install_tool(directory, version: str, name: str = "mytool"):
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    tmp = directory / f".{name}.tmp"
    tmp.write_text(f"#!/bin/sh\necho {version}\n")
    tmp.chmod(0o755)
    os.replace(tmp, path)  # as a package manager replaces an executable
    return path


def env_with_path(*dirs) -> dict[str, str]:
    env = clean_env()
    env["PATH"] = os.pathsep.join([*map(str, dirs), env["PATH"]])
    return env


def ran(project) -> list[str]:
    p = project.root / "ran.log"
    return p.read_text().split() if p.exists() else []


def test_a_replaced_tool_runs_the_task_again_and_an_unchanged_one_is_a_hit(project, tmp_path):
    project.tasksfile(TOOLS)
    project.write("src.txt", "x")
    bin_dir = tmp_path / "bin"
    install_tool(bin_dir, "v1")
    env = env_with_path(bin_dir)
    for _ in range(3):  # the later ones are no-op runs (with a snapshot of the run)
        assert project.run("check", env=env).code == 0
    assert ran(project) == ["v1"]
    install_tool(bin_dir, "v2")
    r = project.run("-n", "check", env=env)
    assert "tool mytool changed" in r.out, r
    assert project.run("check", env=env).code == 0
    assert project.run("check", env=env).code == 0
    assert ran(project) == ["v1", "v2"]


def test_a_touched_tool_with_the_same_content_is_a_hit(project, tmp_path):
    project.tasksfile(TOOLS)
    project.write("src.txt", "x")
    tool = install_tool(tmp_path / "bin", "v1")
    env = env_with_path(tmp_path / "bin")
    assert project.run("check", env=env).code == 0
    os.utime(tool, (1_000_000_000, 1_000_000_000))
    assert project.run("check", env=env).code == 0
    assert ran(project) == ["v1"]


def test_a_path_that_finds_another_copy_of_the_tool_runs_again(project, tmp_path):
    project.tasksfile(TOOLS)
    project.write("src.txt", "x")
    install_tool(tmp_path / "old", "v1")
    install_tool(tmp_path / "new", "v2")
    assert project.run("check", env=env_with_path(tmp_path / "old")).code == 0
    assert project.run("check", env=env_with_path(tmp_path / "new", tmp_path / "old")).code == 0
    assert ran(project) == ["v1", "v2"]


def test_the_key_does_not_depend_on_where_the_tool_is_installed(project, tmp_path):
    project.tasksfile(TOOLS)
    project.write("src.txt", "x")
    install_tool(tmp_path / "here", "v1")
    install_tool(tmp_path / "there", "v1")
    a = project.run("hash", "check", env=env_with_path(tmp_path / "here"))
    b = project.run("hash", "check", env=env_with_path(tmp_path / "there"))
    install_tool(tmp_path / "there", "v2")
    c = project.run("hash", "check", env=env_with_path(tmp_path / "there"))
    assert a.code == b.code == c.code == 0, (a, b, c)
    assert a.out == b.out != c.out


def test_installing_a_tool_that_was_absent_runs_the_task_again(project, tmp_path):
    project.tasksfile("""
        @task(inputs=["src.txt"], tools=["mytool"])
        def check():
            sh("echo ran >> ran.log")
    """)
    project.write("src.txt", "x")
    env = env_with_path(tmp_path / "bin")
    assert project.run("check", env=env).code == 0
    assert project.run("check", env=env).code == 0
    install_tool(tmp_path / "bin", "v1")
    assert project.run("check", env=env).code == 0
    assert ran(project) == ["ran", "ran"]


def test_a_tool_named_by_a_path_is_relative_to_the_project_root(project):
    project.tasksfile("""
        @task(inputs=["src.txt"], tools=["scripts/gen"], cwd="sub")
        def gen():
            sh("../scripts/gen >> ../ran.log")
    """)
    project.write("src.txt", "x")
    (project.root / "sub").mkdir()
    install_tool(project.root / "scripts", "v1", name="gen")
    assert project.run("gen").code == 0
    assert project.run("gen").code == 0
    install_tool(project.root / "scripts", "v2", name="gen")
    assert project.run("gen").code == 0
    assert ran(project) == ["v1", "v2"]


def test_a_python_distribution_upgrade_runs_the_task_again(project, tmp_path):
    project.tasksfile("""
        @task(inputs=["src.txt"], tools=["fake-linter"])
        def lint():
            sh("echo ran >> ran.log")
    """)
    project.write("src.txt", "x")
    site = tmp_path / "site"

    def install(version: str) -> None:
        for old in site.glob("fake_linter-*.dist-info"):
            shutil.rmtree(old)
        info = site / f"fake_linter-{version}.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: fake-linter\n"
                                       f"Version: {version}\n")

    install("1.0")
    env = clean_env(PYTHONPATH=str(site))
    for _ in range(3):
        assert project.run("lint", env=env).code == 0
    assert ran(project) == ["ran"]
    install("1.1")
    r = project.run("-n", "lint", env=env)
    assert "tool fake-linter changed" in r.out, r
    assert project.run("lint", env=env).code == 0
    assert project.run("lint", env=env).code == 0
    assert ran(project) == ["ran", "ran"]


def test_tools_show_in_task_help_and_the_json_list(project):
    project.tasksfile("""
        @task(tools=["ruff", "pytest"])
        def lint():
            \"\"\"Lint.\"\"\"
    """)
    r = project.run("lint", "--help")
    assert "tools: ruff, pytest" in r.out, r
    r = project.run("--list", "--json")
    assert '"tools": [\n        "ruff",\n        "pytest"\n      ]' in r.out, r


def test_a_bad_tools_value_is_a_definition_error(project):
    project.tasksfile("""
        @task(tools=[3])
        def lint():
            pass
    """)
    r = project.run("--list")
    assert r.code == 2, r
    assert "task 'lint', parameter 'tools'" in r.err
