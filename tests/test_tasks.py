"""SPEC §1: declaring tasks with `@task`, and §2: task options taken from the function's
signature. Every test writes a real tasksfile and runs `python -m runner` on it."""

from __future__ import annotations

import json
import re

import pytest


def line_of(path, text: str) -> int:
    """The number of the first line of `path` that contains `text`."""
    for no, line in enumerate(path.read_text().splitlines(), 1):
        if text in line:
            return no
    raise AssertionError(f"{text!r} not in {path}")


def listed(project) -> dict[str, dict]:
    """The tasks as `runner --list --json` shows them, by name."""
    r = project.run("--list", "--json")
    assert r.code == 0, r
    return {t["name"]: t for t in json.loads(r.out)["tasks"]}


def assert_definition_error(r, tasksfile, *, task: str, param: str, line_text: str) -> None:
    """Exit 2, one message naming the task, the parameter and tasksfile.py:LINE (the line
    of the decorator or of the `def`), and no traceback."""
    assert r.code == 2, r
    assert "Traceback" not in r.err, r.err
    assert f"'{task}'" in r.err, r.err
    assert param in r.err, r.err
    where = re.search(r"tasksfile\.py:(\d+)", r.err)
    assert where, r.err
    deco = line_of(tasksfile, line_text)
    assert int(where.group(1)) in (deco, deco + 1), r.err


# ---------------------------------------------------------------- declaring tasks

def test_bare_task_decorator_defines_a_task_named_after_the_function(project):
    project.tasksfile("""
        @task
        def build():
            print("building")
    """)
    r = project.run("build")
    assert r.code == 0, r
    assert "building" in r.out


def test_task_decorator_with_empty_parentheses_defines_a_task(project):
    project.tasksfile("""
        @task()
        def build():
            print("building")
    """)
    r = project.run("build")
    assert r.code == 0, r
    assert "building" in r.out


def test_underscores_in_the_function_name_become_dashes_in_the_task_name(project):
    project.tasksfile("""
        @task
        def check_types():
            print("checked")
    """)
    assert list(listed(project)) == ["check-types"]
    r = project.run("check-types")
    assert r.code == 0, r
    assert "checked" in r.out


def test_name_parameter_overrides_the_function_name(project):
    project.tasksfile("""
        @task(name="compile")
        def build():
            print("compiled")
    """)
    assert list(listed(project)) == ["compile"]
    r = project.run("compile")
    assert r.code == 0, r
    assert "compiled" in r.out


def test_namespaced_task_is_listed_and_runs_by_its_full_name(project):
    project.tasksfile("""
        @task(name="docs:build")
        def docs_build():
            print("docs built")
    """)
    assert "docs:build" in listed(project)
    r = project.run("docs:build")
    assert r.code == 0, r
    assert "docs built" in r.out


def test_dep_given_as_a_task_object_runs_first(project):
    project.tasksfile("""
        @task
        def lint():
            print("LINT")

        @task(deps=[lint])
        def test():
            print("TEST")
    """)
    r = project.run("test")
    assert r.code == 0, r
    assert r.out.index("LINT") < r.out.index("TEST")


def test_dep_given_by_name_runs_first(project):
    project.tasksfile("""
        @task(deps=["lint"])
        def test():
            print("TEST")

        @task
        def lint():
            print("LINT")
    """)
    r = project.run("test")
    assert r.code == 0, r
    assert r.out.index("LINT") < r.out.index("TEST")


def test_dep_on_a_namespaced_task_by_name_runs_first(project):
    project.tasksfile("""
        @task(name="docs:build")
        def docs_build():
            print("DOCS")

        @task(deps=["docs:build"])
        def publish():
            print("PUBLISH")
    """)
    r = project.run("publish")
    assert r.code == 0, r
    assert r.out.index("DOCS") < r.out.index("PUBLISH")


def test_dep_by_an_alias_resolves_to_the_task(project):
    project.tasksfile("""
        @task(aliases=["fmt"])
        def format_code():
            print("FORMAT")

        @task(deps=["fmt"])
        def check():
            print("CHECK")
    """)
    r = project.run("check")
    assert r.code == 0, r
    assert r.out.index("FORMAT") < r.out.index("CHECK")


def test_task_runs_by_its_alias(project):
    project.tasksfile("""
        @task(aliases=["b", "mk"])
        def build():
            print("building")
    """)
    for alias in ("b", "mk"):
        r = project.run(alias)
        assert r.code == 0, r
        assert "building" in r.out


def test_decorated_task_is_still_callable_from_another_task(project):
    project.tasksfile("""
        @task
        def greet(name: str = "x"):
            print("hello " + name)

        @task
        def both():
            greet("one")
            greet(name="two")
    """)
    r = project.run("both")
    assert r.code == 0, r
    assert "hello one" in r.out and "hello two" in r.out


def test_every_task_parameter_of_the_spec_is_accepted(project):
    project.tasksfile("""
        @task
        def lint():
            pass

        @task(name="fmt")
        def fmt_code():
            pass

        @task(name="build-it", deps=[lint, "fmt"], inputs=["src/**/*.py", "pyproject.toml"],
              outputs=["dist/*.whl"], env=["CC", "CFLAGS"], cache=True, default=True,
              aliases=["b"], timeout=30, retries=2,
              ci={"runs-on": "ubuntu-latest", "matrix": {"python": ["3.11", "3.12"]},
                  "secrets": ["TOKEN"], "needs_setup": True},
              schedule="0 3 * * 1")
        def build():
            \"\"\"Build the wheel.\"\"\"
            print("built")

        @task(service=True)
        def serve():
            pass

        @task(inputs=["src/**"], cache=False)
        def always():
            pass
    """)
    tasks = listed(project)
    b = tasks["build-it"]
    assert b["deps"] == ["lint", "fmt"]
    assert b["inputs"] == ["src/**/*.py", "pyproject.toml"]
    assert b["outputs"] == ["dist/*.whl"]
    assert sorted(b["env"]) == ["CC", "CFLAGS"]
    assert b["cache"] is True
    assert b["default"] is True
    assert b["aliases"] == ["b"]
    assert b["timeout"] == 30
    assert b["retries"] == 2
    assert b["schedule"] == "0 3 * * 1"
    assert b["summary"] == "Build the wheel."
    assert tasks["serve"]["service"] is True
    assert tasks["serve"]["cache"] is False
    assert tasks["always"]["cache"] is False
    r = project.run("b")
    assert r.code == 0, r
    assert "built" in r.out


def test_cache_defaults_to_on_when_inputs_are_declared(project):
    project.tasksfile("""
        @task(inputs=["src/*.py"])
        def with_inputs():
            pass

        @task
        def without_inputs():
            pass
    """)
    tasks = listed(project)
    assert tasks["with-inputs"]["cache"] is True
    assert tasks["without-inputs"]["cache"] is False


def test_one_default_task_is_accepted(project):
    project.tasksfile("""
        @task(default=True)
        def build():
            print("default ran")
    """)
    r = project.run()
    assert r.code == 0, r
    assert "default ran" in r.out


def test_two_default_tasks_are_an_error_naming_both(project):
    tf = project.tasksfile("""
        @task(default=True)
        def first():
            pass

        @task(default=True)
        def second():
            pass
    """)
    r = project.run("--list")
    assert r.code == 2, r
    assert "'first'" in r.err and "'second'" in r.err
    assert f"tasksfile.py:{line_of(tf, 'def first')}" in r.err \
        or f"tasksfile.py:{line_of(tf, 'def first') - 1}" in r.err
    assert "Traceback" not in r.err


# ---------------------------------------------------------------- invalid declarations

INVALID = [
    # (id, decorator, parameter the message must name)
    ("bad-name-space", '@task(name="bad name")', "name"),
    ("bad-name-leading-dash", '@task(name="-x")', "name"),
    ("bad-name-empty-namespace", '@task(name="docs:")', "name"),
    ("deps-not-a-list", "@task(deps=5)", "deps"),
    ("deps-item-not-a-task", "@task(deps=[5])", "deps"),
    ("inputs-absolute", '@task(inputs=["/etc/passwd"])', "inputs"),
    ("inputs-not-strings", "@task(inputs=[1])", "inputs"),
    ("outputs-dotdot", '@task(outputs=["../elsewhere/*.whl"])', "outputs"),
    ("outputs-dotdot-inside", '@task(outputs=["dist/../../x"])', "outputs"),
    ("timeout-negative", "@task(timeout=-1)", "timeout"),
    ("timeout-zero", "@task(timeout=0)", "timeout"),
    ("timeout-string", '@task(timeout="5")', "timeout"),
    ("retries-negative", "@task(retries=-1)", "retries"),
    ("retries-fraction", "@task(retries=1.5)", "retries"),
    ("cache-with-service", "@task(cache=True, service=True)", "cache"),
    ("default-not-bool", '@task(default="yes")', "default"),
    ("ci-unknown-key", '@task(ci={"runs_onn": "ubuntu-latest"})', "ci"),
    ("ci-not-a-mapping", '@task(ci=["runs-on"])', "ci"),
    ("schedule-not-cron", '@task(schedule="every day")', "schedule"),
    ("schedule-six-fields", '@task(schedule="0 0 * * * *")', "schedule"),
    ("schedule-minute-out-of-range", '@task(schedule="61 * * * *")', "schedule"),
    ("schedule-hour-out-of-range", '@task(schedule="0 25 * * *")', "schedule"),
    ("alias-invalid", '@task(aliases=["a b"])', "aliases"),
]


@pytest.mark.parametrize("decorator, param", [c[1:] for c in INVALID],
                         ids=[c[0] for c in INVALID])
def test_invalid_task_parameter_is_exit_2_naming_task_parameter_and_line(
        project, decorator, param):
    tf = project.tasksfile(f"""
        @task
        def fine():
            pass

        {decorator}
        def broken():
            pass
    """)
    r = project.run("--list")
    task = "bad name" if "bad name" in decorator else \
        "-x" if '"-x"' in decorator else "docs:" if "docs:" in decorator else "broken"
    assert_definition_error(r, tf, task=task, param=param, line_text=decorator)


def test_unknown_task_parameter_is_an_error_with_did_you_mean(project):
    tf = project.tasksfile("""
        @task(dep=["lint"])
        def build():
            pass
    """)
    r = project.run("--list")
    assert_definition_error(r, tf, task="build", param="dep", line_text="@task(dep=")
    assert "did you mean 'deps'" in r.err


def test_unknown_ci_key_suggests_the_closest(project):
    project.tasksfile("""
        @task(ci={"runs_on": "ubuntu-latest"})
        def build():
            pass
    """)
    r = project.run("--list")
    assert r.code == 2, r
    assert "runs_on" in r.err and "did you mean 'runs-on'" in r.err


def test_list_typed_parameter_is_an_error_naming_the_parameter(project):
    tf = project.tasksfile("""
        @task
        def build(targets: list = []):
            pass
    """)
    r = project.run("--list")
    assert_definition_error(r, tf, task="build", param="targets", line_text="@task")
    assert "list" in r.err


def test_star_args_parameter_of_a_type_other_than_str_is_an_error_naming_it(project):
    # `*names` / `*names: str` takes the words after `--` (test_extra_args.py).
    tf = project.tasksfile("""
        @task
        def build(*names: float):
            pass
    """)
    r = project.run("--list")
    assert_definition_error(r, tf, task="build", param="names", line_text="@task")


def test_star_star_kwargs_parameter_is_an_error(project):
    project.tasksfile("""
        @task
        def build(**options):
            pass
    """)
    r = project.run("--list")
    assert r.code == 2, r
    assert "'build'" in r.err
    assert "Traceback" not in r.err


def test_default_of_the_wrong_type_is_an_error(project):
    tf = project.tasksfile("""
        @task
        def build(n: int = "three"):
            pass
    """)
    r = project.run("--list")
    assert_definition_error(r, tf, task="build", param="n", line_text="@task")


def test_definition_error_shows_a_traceback_with_verbose(project):
    project.tasksfile("""
        @task(retries=-1)
        def build():
            pass
    """)
    r = project.run("-v", "--list")
    assert r.code == 2, r
    assert "Traceback" in r.err
    assert "retries" in r.err


def test_definition_error_is_reported_when_running_a_task_too(project):
    project.tasksfile("""
        @task
        def fine():
            print("must not run")

        @task(timeout=-5)
        def broken():
            pass
    """)
    r = project.run("fine")
    assert r.code == 2, r
    assert "must not run" not in r.out
    assert "timeout" in r.err


# ---------------------------------------------------------------- task options

ARGS_TASKSFILE = """
    @task
    def show(name: str = "world", count: int = 1, ratio: float = 0.5,
             verbose: bool = False, dry_run: bool = False):
        print(f"name={name!r} count={count!r} ratio={ratio!r} verbose={verbose!r} "
              f"dry_run={dry_run!r}")
"""


def shown(r) -> str:
    """The line the `show` task printed (without the `show | ` prefix that marks task
    output when tasks can run in parallel)."""
    assert r.code == 0, r
    lines = [ln.split("| ", 1)[-1] for ln in r.out.splitlines()
             if ln.split("| ", 1)[-1].startswith("name=")]
    assert len(lines) == 1, r.out
    return lines[0]


def test_options_have_their_defaults_when_not_given(project):
    project.tasksfile(ARGS_TASKSFILE)
    assert shown(project.run("show")) == \
        "name='world' count=1 ratio=0.5 verbose=False dry_run=False"


def test_options_are_converted_to_the_annotated_types(project):
    project.tasksfile(ARGS_TASKSFILE)
    line = shown(project.run("show", "--name=you", "--count=3", "--ratio=2.5", "--verbose"))
    assert line == "name='you' count=3 ratio=2.5 verbose=True dry_run=False"


def test_option_value_can_follow_as_the_next_word(project):
    project.tasksfile(ARGS_TASKSFILE)
    line = shown(project.run("show", "--name", "you", "--count", "7", "--ratio", "1"))
    assert line == "name='you' count=7 ratio=1.0 verbose=False dry_run=False"


def test_option_value_can_be_negative_as_the_next_word(project):
    project.tasksfile(ARGS_TASKSFILE)
    assert "count=-2 " in shown(project.run("show", "--count", "-2"))


def test_option_value_after_equals_keeps_further_equals_signs(project):
    project.tasksfile(ARGS_TASKSFILE)
    assert "name='a=b' " in shown(project.run("show", "--name=a=b"))


def test_underscores_in_parameter_names_become_dashes_in_options(project):
    project.tasksfile(ARGS_TASKSFILE)
    assert "dry_run=True" in shown(project.run("show", "--dry-run"))


def test_bool_option_defaulting_to_true_is_turned_off_with_no_prefix(project):
    project.tasksfile("""
        @task
        def build(color: bool = True):
            print(f"color={color!r}")
    """)
    r = project.run("build", "--no-color")
    assert r.code == 0, r
    assert "color=False" in r.out
    r = project.run("build")
    assert "color=True" in r.out


def test_bool_option_accepts_an_explicit_value(project):
    project.tasksfile(ARGS_TASKSFILE)
    assert "verbose=True" in shown(project.run("show", "--verbose=yes"))
    assert "verbose=False" in shown(project.run("show", "--verbose=false"))


def test_unannotated_parameter_takes_the_type_of_its_default(project):
    project.tasksfile("""
        @task
        def build(n=2):
            print(f"n={n!r}")
    """)
    r = project.run("build", "--n=5")
    assert r.code == 0, r
    assert "n=5" in r.out


def test_string_annotations_from_future_import_give_the_same_types(project):
    project.write("tasksfile.py", """\
        from __future__ import annotations
        from runner import task

        @task
        def build(n: int = 1, fast: bool = False):
            print(f"n={n!r} fast={fast!r}")
    """)
    r = project.run("build", "--n=4", "--fast")
    assert r.code == 0, r
    assert "n=4 fast=True" in r.out


def test_required_option_is_given_on_the_command_line(project):
    project.tasksfile("""
        @task
        def deploy(target: str):
            print(f"deploying to {target}")
    """)
    r = project.run("deploy", "--target=prod")
    assert r.code == 0, r
    assert "deploying to prod" in r.out


def test_missing_required_option_is_exit_2_with_usage(project):
    project.tasksfile("""
        @task
        def deploy(target: str):
            print("must not run")
    """)
    r = project.run("deploy")
    assert r.code == 2, r
    assert "--target" in r.err
    assert "usage: runner deploy" in r.err
    assert "must not run" not in r.out
    assert "Traceback" not in r.err


def test_missing_required_option_of_a_dep_is_exit_2_naming_the_dep(project):
    project.tasksfile("""
        @task
        def setup(region: str):
            pass

        @task(deps=[setup])
        def deploy():
            pass
    """)
    r = project.run("deploy")
    assert r.code == 2, r
    assert "'setup'" in r.err and "--region" in r.err
    assert "usage: runner setup" in r.err


@pytest.mark.parametrize("arg", ["--count=x", "--count=1.5", "--ratio=abc", "--verbose=maybe"])
def test_bad_option_value_is_exit_2_with_usage(project, arg):
    project.tasksfile(ARGS_TASKSFILE)
    r = project.run("show", arg)
    assert r.code == 2, r
    assert arg.split("=")[0] in r.err
    assert "usage: runner show" in r.err
    assert "name=" not in r.out
    assert "Traceback" not in r.err


def test_option_missing_its_value_at_the_end_is_exit_2(project):
    project.tasksfile(ARGS_TASKSFILE)
    r = project.run("show", "--count")
    assert r.code == 2, r
    assert "--count" in r.err
    assert "usage: runner show" in r.err


def test_unknown_task_option_is_exit_2_with_did_you_mean_and_usage(project):
    project.tasksfile(ARGS_TASKSFILE)
    r = project.run("show", "--cuont=3")
    assert r.code == 2, r
    assert "--cuont" in r.err
    assert "did you mean '--count'" in r.err
    assert "usage: runner show" in r.err


def test_options_for_two_tasks_on_one_command_line_go_to_each_task(project):
    project.tasksfile("""
        @task
        def a(x: int = 0):
            print(f"a x={x!r}")

        @task
        def b(y: str = ""):
            print(f"b y={y!r}")
    """)
    r = project.run("a", "--x=1", "b", "--y=2")
    assert r.code == 0, r
    assert "a x=1" in r.out
    assert "b y='2'" in r.out


def test_option_of_one_task_is_not_accepted_by_another(project):
    project.tasksfile("""
        @task
        def a(x: int = 0):
            pass

        @task
        def b(y: str = ""):
            pass
    """)
    r = project.run("a", "--y=2", "b")
    assert r.code == 2, r
    assert "--y" in r.err and "'a'" in r.err


def test_bool_option_does_not_take_the_next_task_name_as_its_value(project):
    project.tasksfile(ARGS_TASKSFILE + """
    @task
    def other():
        print("other ran")
    """)
    r = project.run("show", "--verbose", "other")
    assert "verbose=True" in shown(r)
    assert "other ran" in r.out


def test_task_option_named_like_a_global_option_goes_to_the_task(project):
    project.tasksfile("""
        @task
        def bench(jobs: int = 1):
            print(f"bench jobs={jobs}")
    """)
    r = project.run("bench", "--jobs=3")
    assert r.code == 0, r
    assert "bench jobs=3" in r.out


def test_global_dry_run_option_after_a_task_applies_to_the_run(project):
    project.tasksfile("""
        @task
        def build():
            open("built.txt", "w").write("x")
    """)
    r = project.run("build", "-n")
    assert r.code == 0, r
    assert "build" in r.out
    assert not (project.root / "built.txt").exists()


def test_global_keep_going_option_after_a_task_applies_to_the_run(project):
    project.tasksfile("""
        @task
        def fails():
            raise TaskError("broken on purpose")

        @task
        def other():
            open("other.txt", "w").write("ran")
    """)
    r = project.run("fails", "other", "-j", "1")
    assert r.code == 1, r
    assert not (project.root / "other.txt").exists()
    r = project.run("fails", "other", "-j", "1", "-k")
    assert r.code == 1, r
    assert (project.root / "other.txt").exists()


def test_task_help_shows_option_types_defaults_and_required(project):
    project.tasksfile("""
        @task
        def deploy(target: str, retries: int = 3, force: bool = False):
            \"\"\"Deploy the site.\"\"\"
    """)
    r = project.run("deploy", "--help")
    assert r.code == 0, r
    assert "usage: runner deploy" in r.out
    assert "--target" in r.out and "required" in r.out
    assert "--retries" in r.out and "3" in r.out
    assert "--force" in r.out
