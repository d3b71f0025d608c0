"""`@task(cwd=...)` (SPEC §3): the task's working directory, relative to the project
root. Its `sh` commands run there (`sh(cwd=...)` is relative to it); its Python code
gets it from `runner.cwd()`; the process never changes directory for a task."""

from __future__ import annotations

import os

import pytest


def test_sh_runs_in_the_tasks_directory(project):
    project.tasksfile("""
        @task(cwd="web")
        def where():
            sh("pwd > here.txt")
    """)
    (project.root / "web").mkdir()
    r = project.run("where")
    assert r.code == 0, r
    assert project.read("web/here.txt").strip() == os.path.realpath(project.root / "web")


def test_runner_cwd_gives_python_code_the_directory_and_the_process_stays_at_the_root(project):
    project.tasksfile("""
        import os
        from runner import cwd

        @task(cwd="web/app")
        def where():
            print("cwd()", cwd())
            print("getcwd", os.getcwd())
            with open(os.path.join(cwd(), "made.txt"), "w") as f:
                f.write("x")
    """)
    (project.root / "web" / "app").mkdir(parents=True)
    r = project.run("where", cwd=project.root / "web")  # started in a subdirectory
    assert r.code == 0, r
    assert f"cwd() {project.root / 'web' / 'app'}" in r.out
    assert f"getcwd {project.root}" in r.out
    assert (project.root / "web" / "app" / "made.txt").exists()


def test_sh_cwd_inside_a_task_is_relative_to_the_tasks_directory(project):
    project.tasksfile("""
        @task(cwd="web")
        def where():
            sh("pwd > ../out.txt", cwd="static")
    """)
    (project.root / "web" / "static").mkdir(parents=True)
    r = project.run("where")
    assert r.code == 0, r
    assert project.read("web/out.txt").strip() == os.path.realpath(
        project.root / "web" / "static")


def test_parallel_tasks_each_run_in_their_own_directory(project):
    project.tasksfile("""
        @task(cwd="a")
        def a():
            sh("sleep 0.2; pwd > where.txt")

        @task(cwd="b")
        def b():
            sh("sleep 0.2; pwd > where.txt")

        @task(deps=[a, b])
        def both():
            sh("pwd > where.txt")
    """)
    for d in ("a", "b"):
        (project.root / d).mkdir()
    r = project.run("-j2", "both")
    assert r.code == 0, r
    for d in ("a", "b"):
        assert project.read(f"{d}/where.txt").strip() == os.path.realpath(project.root / d)
    assert project.read("where.txt").strip() == os.path.realpath(project.root)


def test_inputs_stay_relative_to_the_project_root(project):
    project.tasksfile("""
        @task(cwd="web", inputs=["web/src.txt"], outputs=["web/out.txt"])
        def build():
            sh("cp src.txt out.txt")
    """)
    project.write("web/src.txt", "one")
    assert project.run("build").code == 0
    assert project.read("web/out.txt") == "one"
    r = project.run("-v", "build")
    assert "cached" in r.out, r
    project.write("web/src.txt", "two")
    assert project.run("build").code == 0
    assert project.read("web/out.txt") == "two"


def test_a_directory_made_by_a_dep_can_be_the_working_directory(project):
    project.tasksfile("""
        import os

        @task
        def mkdir():
            os.makedirs("build", exist_ok=True)

        @task(deps=[mkdir], cwd="build")
        def inside():
            sh("pwd > where.txt")
    """)
    r = project.run("inside")
    assert r.code == 0, r
    assert (project.root / "build" / "where.txt").exists()


def test_a_missing_working_directory_fails_the_task_naming_it(project):
    project.tasksfile("""
        @task(cwd="nowhere")
        def lost():
            sh("touch ran.txt")
    """)
    r = project.run("lost")
    assert r.code == 1, r
    assert "lost: its working directory nowhere/ does not exist" in r.output
    assert not (project.root / "ran.txt").exists()


def test_a_working_directory_that_leads_outside_the_project_fails(project, tmp_path_factory):
    outside = tmp_path_factory.mktemp("outside")
    project.tasksfile("""
        @task(cwd="link")
        def escape():
            sh("touch ran.txt")
    """)
    (project.root / "link").symlink_to(outside)
    r = project.run("escape")
    assert r.code == 1, r
    assert "leads outside the project" in r.output
    assert not (outside / "ran.txt").exists()


@pytest.mark.parametrize("value, problem", [
    ('"/tmp"', "is absolute"),
    ('"../x"', "leaves the project root"),
    ('""', "expected a directory relative to the project root"),
    ("3", "expected a directory relative to the project root"),
])
def test_a_bad_cwd_is_a_definition_error_naming_the_task(project, value, problem):
    project.tasksfile(f"""
        @task(cwd={value})
        def t():
            pass
    """)
    r = project.run("--list")
    assert r.code == 2, r
    assert "task 't', parameter 'cwd'" in r.err and problem in r.err
    assert "tasksfile.py:" in r.err


def test_changing_the_cwd_runs_a_cached_task_again(project):
    project.tasksfile("""
        @task(cwd="a", inputs=["src.txt"])
        def build():
            sh("echo ran >> ../ran.log")
    """)
    for d in ("a", "b"):
        (project.root / d).mkdir()
    project.write("src.txt", "x")
    assert project.run("build").code == 0
    assert project.run("build").code == 0
    project.write("tasksfile.py", project.read("tasksfile.py").replace('cwd="a"', 'cwd="b"'))
    assert project.run("build").code == 0
    assert project.read("ran.log") == "ran\nran\n"


def test_task_help_shows_the_working_directory(project):
    project.tasksfile("""
        @task(cwd="web")
        def serve():
            \"\"\"Serve.\"\"\"
    """)
    r = project.run("serve", "--help")
    assert r.code == 0, r
    assert "working directory: web" in r.out


def test_a_service_task_under_watch_runs_its_commands_in_its_directory_with_its_dotenv(
        project, marker):
    from conftest import Watching, poll

    m = marker()
    project.tasksfile(f"""
        @task(inputs=["src/*.py"], cache=False)
        def build():
            pass

        @task(deps=[build], service=True, cwd="web", dotenv=[".env.web"])
        def serve():
            \"\"\"The dev server.\"\"\"
            sh("pwd > where.txt; echo \\"$PORT\\" >> where.txt; exec sleep {m}")
    """)
    project.write("src/app.py", "v0\n")
    project.write(".env.web", "PORT=8123\n")
    (project.root / "web").mkdir()
    with Watching(project, "serve") as w:
        w.ready("", "src")
        where = project.root / "web" / "where.txt"
        assert poll(lambda: where.exists() and len(where.read_text().split()) == 2), w.output
        assert where.read_text().split() == [os.path.realpath(project.root / "web"), "8123"]
        assert w.interrupt() == 130
