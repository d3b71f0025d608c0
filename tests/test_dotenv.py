""".env files (SPEC §3 `dotenv`): `[tool.runner] dotenv = [...]` for every task,
`@task(dotenv=...)` for one; the values reach the task's commands and, through
`runner.environ()`, its Python code; the files are inputs of the tasks that load them;
the process environment wins; a broken file is one message naming file and line."""

from __future__ import annotations

import json

import pytest
from conftest import clean_env

from runner.dotenv import DotenvError, parse

SHOW = """
    import json
    from runner import environ

    @task(env=["GREETING"], inputs=["src.txt"])
    def show():
        \"\"\"Print what the task sees.\"\"\"
        with open("seen.log", "a") as f:
            f.write(json.dumps({"py": environ().get("GREETING"),
                                "sh": sh("printf %s \\"$GREETING\\"", capture=True)}) + "\\n")
"""


def seen(project) -> list[dict]:
    p = project.root / "seen.log"
    return [json.loads(ln) for ln in p.read_text().splitlines()] if p.exists() else []


def with_project_dotenv(project, files: str = '[".env"]') -> None:
    project.write("pyproject.toml", f"[tool.runner]\ndotenv = {files}\n")
    project.write("src.txt", "x")


# ---------------------------------------------------------------- values reach tasks

def test_project_dotenv_values_reach_commands_and_python_code(project):
    project.tasksfile(SHOW)
    with_project_dotenv(project)
    project.write(".env", "GREETING=hello there\n")
    r = project.run("show")
    assert r.code == 0, r
    assert seen(project) == [{"py": "hello there", "sh": "hello there"}]


def test_task_dotenv_reaches_that_task_only(project):
    project.tasksfile("""
        from runner import environ

        @task(dotenv=[".env.a"])
        def a():
            print("a sees", environ().get("WHO"), sh("printf %s \\"$WHO\\"", capture=True))

        @task(deps=[a])
        def b():
            got = sh("printf %s \\"${WHO:-nothing}\\"", capture=True)
            print("b sees", environ().get("WHO"), got)
    """)
    project.write(".env.a", "WHO=alice\n")
    r = project.run("-j1", "b")
    assert r.code == 0, r
    assert "a sees alice alice" in r.out
    assert "b sees None nothing" in r.out


def test_the_process_environment_wins_over_dotenv(project):
    project.tasksfile(SHOW)
    with_project_dotenv(project)
    project.write(".env", "GREETING=from file\n")
    r = project.run("show", env=clean_env(GREETING="from shell"))
    assert r.code == 0, r
    assert seen(project) == [{"py": "from shell", "sh": "from shell"}]


def test_later_files_override_earlier_ones_and_task_files_the_projects(project):
    project.tasksfile("""
        from runner import environ

        @task(dotenv=[".env.task"])
        def show():
            e = environ()
            print("A=" + e["A"], "B=" + e["B"], "C=" + e["C"])
    """)
    with_project_dotenv(project, '[".env", ".env.local"]')
    project.write(".env", "A=env\nB=env\nC=env\n")
    project.write(".env.local", "B=local\nC=local\n")
    project.write(".env.task", "C=task\n")
    r = project.run("show")
    assert r.code == 0, r
    assert "A=env B=local C=task" in r.out


def test_dotenv_does_not_change_the_runner_process_environment(project):
    project.tasksfile("""
        import os

        @task(dotenv=[".env"])
        def show():
            print("os.environ:", os.environ.get("SECRET_X"))
    """)
    project.write(".env", "SECRET_X=1\n")
    r = project.run("show")
    assert r.code == 0, r
    assert "os.environ: None" in r.out


def test_a_missing_dotenv_file_sets_nothing(project):
    project.tasksfile(SHOW)
    with_project_dotenv(project)
    r = project.run("show")
    assert r.code == 0, r
    assert seen(project) == [{"py": None, "sh": ""}]


def test_runner_dotenv_variable_overrides_the_config(project):
    project.tasksfile(SHOW)
    with_project_dotenv(project)
    project.write(".env", "GREETING=default file\n")
    project.write(".env.ci", "GREETING=ci file\n")
    r = project.run("show", env=clean_env(RUNNER_DOTENV=".env.ci"))
    assert r.code == 0, r
    assert seen(project) == [{"py": "ci file", "sh": "ci file"}]


# ---------------------------------------------------------------- the cache key

def test_a_changed_value_in_dotenv_runs_the_task_again_and_the_same_is_a_hit(project):
    project.tasksfile(SHOW)
    with_project_dotenv(project)
    project.write(".env", "GREETING=one\n")
    assert project.run("show").code == 0
    assert project.run("show").code == 0
    assert len(seen(project)) == 1  # unchanged: a hit
    project.write(".env", "GREETING=two\n")
    r = project.run("-n", "show")
    assert "env GREETING changed" in r.out, r
    assert project.run("show").code == 0
    assert [s["py"] for s in seen(project)] == ["one", "two"]


def test_a_change_to_any_line_of_a_tasks_dotenv_runs_it_again(project):
    # Its commands see every variable of the file, declared in env= or not.
    project.tasksfile("""
        @task(inputs=["src.txt"], dotenv=[".env"])
        def build():
            sh("printf %s \\"$CFLAGS\\" >> built.log")
    """)
    project.write("src.txt", "x")
    project.write(".env", "CFLAGS=-O1\n")
    assert project.run("build").code == 0
    assert project.run("build").code == 0
    project.write(".env", "CFLAGS=-O2\n")
    assert project.run("build").code == 0
    assert project.read("built.log") == "-O1-O2"


def test_the_environment_overriding_a_declared_dotenv_key_runs_again(project):
    project.tasksfile(SHOW)
    with_project_dotenv(project)
    project.write(".env", "GREETING=file\n")
    assert project.run("show").code == 0
    assert project.run("show", env=clean_env(GREETING="shell")).code == 0
    assert [s["py"] for s in seen(project)] == ["file", "shell"]


def test_dotenv_values_are_never_stored_in_clear(project):
    project.tasksfile(SHOW)
    with_project_dotenv(project)
    project.write(".env", "GREETING=s3cr3t-value-42\n")
    assert project.run("show").code == 0
    for f in (project.root / ".runner").rglob("*"):
        if f.is_file():
            assert b"s3cr3t-value-42" not in f.read_bytes(), f


def test_dotenv_files_show_as_inputs_of_the_task_that_loads_them(project):
    project.tasksfile("""
        @task(inputs=["src/*.py"], dotenv=[".env"])
        def build():
            pass
    """)
    r = project.run("--list", "--json")
    assert r.code == 0, r
    info = json.loads(r.out)["tasks"][0]
    assert info["dotenv"] == [".env"]
    assert info["inputs"] == ["src/*.py", ".env"]


def test_dotenv_alone_does_not_make_a_task_cached(project):
    project.tasksfile("""
        @task(dotenv=[".env"])
        def hello():
            sh("echo ran >> ran.log")
    """)
    project.write(".env", "A=1\n")
    assert project.run("hello").code == 0
    assert project.run("hello").code == 0
    assert project.read("ran.log") == "ran\nran\n"


# ---------------------------------------------------------------- errors

def test_a_syntax_error_in_dotenv_names_file_and_line_and_runs_nothing(project):
    project.tasksfile(SHOW)
    with_project_dotenv(project)
    project.write(".env", "# settings\nGREETING=hi\nnot a variable line\n")
    r = project.run("show")
    assert r.code == 2, r
    assert r.err.strip() == "runner: error: .env:3: expected KEY=VALUE, got 'not a variable line'"
    assert seen(project) == []


def test_an_unclosed_quote_names_the_line_where_it_opens(project):
    project.tasksfile("""
        @task(dotenv=["conf/.env"])
        def hello():
            pass
    """)
    project.write("conf/.env", 'A=1\nB="never closed\nC=3\n')
    r = project.run("hello")
    assert r.code == 2, r
    assert "conf/.env:2: B: the \" quote is never closed" in r.err
    assert "Traceback" not in r.err


@pytest.mark.parametrize("value, problem", [
    ('"/abs/.env"', "is absolute"),
    ('["../.env"]', "leaves the project root"),
    ('[".env*"]', "is a pattern"),
    ("3", "expected a string or a list of strings"),
])
def test_a_bad_dotenv_config_value_is_exit_2_naming_the_key_and_line(project, value, problem):
    project.tasksfile(SHOW)
    project.write("pyproject.toml", f"[tool.runner]\njobs = 1\ndotenv = {value}\n")
    r = project.run("show")
    assert r.code == 2, r
    assert "pyproject.toml:3: tool.runner.dotenv:" in r.err and problem in r.err


def test_a_dotenv_pattern_on_a_task_is_a_definition_error(project):
    project.tasksfile("""
        @task(dotenv=["*.env"])
        def hello():
            pass
    """)
    r = project.run("--list")
    assert r.code == 2, r
    assert "task 'hello', parameter 'dotenv'" in r.err and "is a pattern" in r.err


# ---------------------------------------------------------------- the syntax

def test_parse_the_common_syntax():
    text = "\n".join([
        "# a comment",
        "",
        "PLAIN=value",
        "SPACED =  padded value   ",
        "export EXPORTED=yes",
        "COMMENTED=value # a comment",
        "HASH=a#b",
        "EMPTY=",
        "SINGLE='literal $PLAIN # not a comment'",
        'DOUBLE="line\\nbreak \\"quoted\\" ${PLAIN} \\$PLAIN"',
        'DEFAULTED="${UNSET_X:-fallback}"',
        "UNQUOTED_REF=${PLAIN}-x",
        'MULTI="first',
        'second"',
        "AFTER=1",
    ])
    assert parse(text, ".env") == {
        "PLAIN": "value",
        "SPACED": "padded value",
        "EXPORTED": "yes",
        "COMMENTED": "value",
        "HASH": "a#b",
        "EMPTY": "",
        "SINGLE": "literal $PLAIN # not a comment",
        "DOUBLE": 'line\nbreak "quoted" value $PLAIN',
        "DEFAULTED": "fallback",
        "UNQUOTED_REF": "value-x",
        "MULTI": "first\nsecond",
        "AFTER": "1",
    }


def test_parse_takes_references_from_the_environment_first():
    assert parse("A=${HOME_X}/bin", ".env", {"HOME_X": "/home/u"}) == {"A": "/home/u/bin"}


@pytest.mark.parametrize("text, line, message", [
    ("A=1\n2B=x\n", 2, "'2B' is not a variable name"),
    ("A=1\nB='x' y\n", 2, "unexpected 'y' after the closing quote"),
    ("A=${B\n", 1, "without a closing }"),
    ("=x\n", 1, "'' is not a variable name"),
])
def test_parse_errors_name_the_line(text, line, message):
    with pytest.raises(DotenvError) as e:
        parse(text, "/p/.env")
    assert e.value.line == line
    assert message in e.value.message
