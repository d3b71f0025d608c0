"""Finding and importing the tasksfile (SPEC §2 `-f`, `-C`, §3 `tasksfile`), and turning
its mistakes into one clear message (exit 2, file:line, no traceback)."""

from __future__ import annotations

import os
import textwrap

from conftest import clean_env


def line_of(path, text: str) -> int:
    """The number of the first line of `path` that contains `text`."""
    for no, line in enumerate(path.read_text().splitlines(), 1):
        if text in line:
            return no
    raise AssertionError(f"{text!r} not in {path}")


WHERE = """
    import os

    @task
    def where():
        sh("pwd > sh_cwd.txt")
        print("ran from", {label!r})
"""


def tasks_source(label: str) -> str:
    """A complete tasksfile whose `where` task says which file it came from."""
    return "from runner import task, sh\n" + textwrap.dedent(WHERE).format(label=label)


# ---------------------------------------------------------------- finding the tasksfile

def test_tasksfile_in_the_current_directory_is_found(project):
    project.tasksfile(WHERE.format(label="root"))
    r = project.run("where")
    assert r.code == 0, r
    assert "ran from root" in r.out


def test_tasksfile_in_a_parent_directory_is_found_from_a_subdirectory(project):
    project.tasksfile(WHERE.format(label="root"))
    sub = project.root / "src" / "pkg"
    sub.mkdir(parents=True)
    r = project.run("where", cwd=sub)
    assert r.code == 0, r
    assert "ran from root" in r.out


def test_sh_runs_in_the_project_root_when_started_from_a_subdirectory(project):
    project.tasksfile(WHERE.format(label="root"))
    sub = project.root / "src" / "pkg"
    sub.mkdir(parents=True)
    r = project.run("where", cwd=sub)
    assert r.code == 0, r
    assert (project.root / "sh_cwd.txt").read_text().strip() == str(project.root.resolve())
    assert not (sub / "sh_cwd.txt").exists()


def test_nearest_tasksfile_wins_over_one_further_up(project):
    project.tasksfile(WHERE.format(label="outer"))
    project.write("inner/tasksfile.py", tasks_source("inner"))
    r = project.run("where", cwd=project.root / "inner")
    assert r.code == 0, r
    assert "ran from inner" in r.out


def test_file_option_names_the_tasksfile_to_use(project):
    project.tasksfile(WHERE.format(label="default"))
    project.write("ci/tasks.py", tasks_source("ci"))
    r = project.run("-f", "ci/tasks.py", "where")
    assert r.code == 0, r
    assert "ran from ci" in r.out


def test_long_file_option_with_equals_names_the_tasksfile(project):
    project.write("ci/tasks.py", tasks_source("ci"))
    r = project.run("--file=ci/tasks.py", "where")
    assert r.code == 0, r
    assert "ran from ci" in r.out


def test_file_option_naming_a_missing_file_is_exit_2(project):
    project.tasksfile(WHERE.format(label="default"))
    r = project.run("-f", "nope.py", "where")
    assert r.code == 2, r
    assert "nope.py" in r.err
    assert "Traceback" not in r.err


def test_directory_option_runs_as_if_started_there(project):
    project.write("app/tasksfile.py", tasks_source("app"))
    outside = project.root / "elsewhere"
    outside.mkdir()
    r = project.run("-C", str(project.root / "app"), "where", cwd=outside)
    assert r.code == 0, r
    assert "ran from app" in r.out
    assert (project.root / "app" / "sh_cwd.txt").read_text().strip() == \
        str((project.root / "app").resolve())


def test_file_option_is_relative_to_the_directory_option(project):
    # as in `make -C DIR -f FILE`: runner runs "as if started in DIR"
    project.write("app/ci.py", tasks_source("app/ci.py"))
    r = project.run("-C", "app", "-f", "ci.py", "where")
    assert r.code == 0, r
    assert "ran from app/ci.py" in r.out


def test_directory_option_naming_a_missing_directory_is_exit_2(project):
    project.tasksfile(WHERE.format(label="root"))
    r = project.run("-C", "no/such/dir", "where")
    assert r.code == 2, r
    assert "no/such/dir" in r.err
    assert "Traceback" not in r.err


def test_pyproject_tasksfile_setting_names_the_tasksfile(project):
    project.write("pyproject.toml", """\
        [project]
        name = "demo"

        [tool.runner]
        tasksfile = "tasks/main.py"
    """)
    project.write("tasks/main.py", tasks_source("tasks/main.py"))
    r = project.run("where")
    assert r.code == 0, r
    assert "ran from tasks/main.py" in r.out


def test_pyproject_tasksfile_setting_is_found_from_a_subdirectory(project):
    project.write("pyproject.toml", '[tool.runner]\ntasksfile = "tasks/main.py"\n')
    project.write("tasks/main.py", tasks_source("tasks/main.py"))
    sub = project.root / "src"
    sub.mkdir()
    r = project.run("where", cwd=sub)
    assert r.code == 0, r
    assert "ran from tasks/main.py" in r.out


def test_pyproject_tasksfile_setting_naming_a_missing_file_is_exit_2(project):
    project.write("pyproject.toml", '[tool.runner]\ntasksfile = "tasks/missing.py"\n')
    r = project.run("--list")
    assert r.code == 2, r
    assert "tasks/missing.py" in r.err
    assert "Traceback" not in r.err


def test_runner_tasksfile_variable_names_the_tasksfile(project):
    project.tasksfile(WHERE.format(label="default"))
    project.write("ci/tasks.py", tasks_source("ci"))
    r = project.run("where", env=clean_env(RUNNER_TASKSFILE="ci/tasks.py"))
    assert r.code == 0, r
    assert "ran from ci" in r.out


def test_file_option_overrides_runner_tasksfile_variable(project):
    project.write("a/tasks.py", tasks_source("a"))
    project.write("b/tasks.py", tasks_source("b"))
    r = project.run("-f", "b/tasks.py", "where", env=clean_env(RUNNER_TASKSFILE="a/tasks.py"))
    assert r.code == 0, r
    assert "ran from b" in r.out


def test_no_tasksfile_anywhere_is_exit_2_mentioning_runner_init(project):
    r = project.run("--list")
    assert r.code == 2, r
    assert "tasksfile.py" in r.err
    assert "runner init" in r.err
    assert "Traceback" not in r.err


# ---------------------------------------------------------------- importing it

def test_tasksfile_can_import_a_helper_module_from_the_project_root(project):
    project.write("helpers.py", 'GREETING = "hello from helpers"\n')
    project.write("tasksfile.py", """\
        from runner import task
        import helpers

        @task
        def greet():
            print(helpers.GREETING)
    """)
    sub = project.root / "docs"
    sub.mkdir()
    r = project.run("greet", cwd=sub)
    assert r.code == 0, r
    assert "hello from helpers" in r.out


def test_syntax_error_is_exit_2_with_file_line_and_message(project):
    source = "from runner import task\n\n@task\ndef build():\n    x = (1,\n    print(x\n"
    project.write("tasksfile.py", source)
    try:
        compile(source, "tasksfile.py", "exec")
    except SyntaxError as e:
        expected = e
    else:
        raise AssertionError("the source should not compile")
    r = project.run("--list")
    assert r.code == 2, r
    assert f"tasksfile.py:{expected.lineno}" in r.err
    assert expected.msg in r.err
    assert "Traceback" not in r.err


def test_name_error_at_import_is_exit_2_with_file_and_line(project):
    tf = project.tasksfile("""
        @task
        def build():
            pass

        VERSION = undefined_name + 1
    """)
    r = project.run("--list")
    assert r.code == 2, r
    assert f"tasksfile.py:{line_of(tf, 'undefined_name')}" in r.err
    assert "NameError" in r.err and "undefined_name" in r.err
    assert "Traceback" not in r.err


def test_import_of_a_missing_module_is_exit_2_with_file_and_line(project):
    tf = project.tasksfile("""
        import no_such_module_for_runner_tests

        @task
        def build():
            pass
    """)
    r = project.run("--list")
    assert r.code == 2, r
    assert f"tasksfile.py:{line_of(tf, 'import no_such_module')}" in r.err
    assert "no_such_module_for_runner_tests" in r.err
    assert "Traceback" not in r.err


def test_exception_in_an_imported_helper_names_the_helper_file_and_line(project):
    project.write("helpers.py", 'X = 1\nraise RuntimeError("helper is broken")\n')
    project.tasksfile("""
        import helpers

        @task
        def build():
            pass
    """)
    r = project.run("--list")
    assert r.code == 2, r
    assert "helpers.py:2" in r.err
    assert "helper is broken" in r.err
    assert "Traceback" not in r.err


def test_import_error_shows_a_traceback_with_verbose(project):
    project.tasksfile("""
        import no_such_module_for_runner_tests
    """)
    r = project.run("-v", "--list")
    assert r.code == 2, r
    assert "Traceback" in r.err
    assert "no_such_module_for_runner_tests" in r.err


def test_error_raised_at_import_stops_before_any_task_runs(project):
    project.tasksfile("""
        @task
        def build():
            open("ran.txt", "w").write("x")

        raise ValueError("bad settings")
    """)
    r = project.run("build")
    assert r.code == 2, r
    assert "bad settings" in r.err
    assert not (project.root / "ran.txt").exists()


def test_duplicate_task_names_are_exit_2_naming_both_lines(project):
    tf = project.tasksfile("""
        @task
        def build():
            pass

        @task(name="build")
        def build_again():
            pass
    """)
    r = project.run("--list")
    assert r.code == 2, r
    first = line_of(tf, "def build():")
    second = line_of(tf, "def build_again")
    assert "'build'" in r.err
    assert any(f"tasksfile.py:{n}" in r.err for n in (first - 1, first)), r.err
    assert any(f"tasksfile.py:{n}" in r.err for n in (second - 1, second)), r.err
    assert "Traceback" not in r.err


def test_alias_equal_to_another_task_name_is_exit_2(project):
    project.tasksfile("""
        @task
        def test():
            pass

        @task(aliases=["test"])
        def check():
            pass
    """)
    r = project.run("--list")
    assert r.code == 2, r
    assert "'test'" in r.err and "'check'" in r.err
    assert "Traceback" not in r.err


def test_error_location_is_relative_to_where_runner_was_started(project):
    project.tasksfile("""
        raise ValueError("bad settings")
    """)
    sub = project.root / "sub"
    sub.mkdir()
    r = project.run("--list", cwd=sub)
    assert r.code == 2, r
    assert os.path.join("..", "tasksfile.py") in r.err or str(project.root) in r.err
