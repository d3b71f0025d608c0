"""Namespaces (`docs:build`): `--list` groups the tasks by namespace (plugin tasks under
their plugin), `runner 'docs:*'` runs every task a pattern matches, and `runner docs`
with only `docs:*` tasks lists them."""

from __future__ import annotations

TASKS = """
    @task
    def build():
        \"\"\"Build.\"\"\"
        print("ran build")

    @task(name="docs:build")
    def docs_build():
        \"\"\"Build the docs.\"\"\"
        print("ran docs:build")

    @task(name="docs:serve", aliases=["ds"])
    def docs_serve():
        \"\"\"Serve the docs.\"\"\"
        print("ran docs:serve")

    @task(name="docs:api:gen")
    def docs_api_gen():
        print("ran docs:api:gen")

    @task(name="test:unit")
    def unit(k: str = ""):
        print("ran test:unit", k)

    @task(name="test:e2e")
    def e2e():
        print("ran test:e2e")
"""

PLUGIN = """
from runner import task


def runner_add_tasks(project):
    def lint():
        \"\"\"Lint it.\"\"\"

    def fmt():
        \"\"\"Format it.\"\"\"

    return [task(name="py:lint")(lint), task(name="fmt")(fmt)]
"""


def ran(r) -> list[str]:
    return sorted(ln.split("ran ", 1)[1].strip() for ln in r.out.splitlines() if "ran " in ln)


def test_list_groups_tasks_by_namespace(project):
    project.tasksfile(TASKS)
    r = project.run("--list")
    assert r.code == 0, r
    assert r.out.splitlines() == [
        "tasks in tasksfile.py:",
        "  build         Build.",
        "",
        "docs:",
        "  docs:api:gen",
        "  docs:build    Build the docs.",
        "  docs:serve    Serve the docs. (aliases: ds)",
        "",
        "test:",
        "  test:e2e",
        "  test:unit",
    ]


def test_list_shows_plugin_tasks_under_their_plugin(project):
    project.tasksfile(TASKS)
    project.write("myplug.py", PLUGIN)
    project.write("pyproject.toml", '[tool.runner]\nplugins = ["myplug.py"]\n')
    r = project.run("--list")
    assert r.code == 0, r
    lines = r.out.splitlines()
    assert lines[lines.index("py: (plugin myplug.py)") + 1].split() == ["py:lint", "Lint", "it."]
    assert lines[lines.index("plugin myplug.py:") + 1].split() == ["fmt", "Format", "it."]


def test_a_namespace_pattern_runs_every_task_of_the_namespace(project):
    project.tasksfile(TASKS)
    r = project.run("docs:*")
    assert r.code == 0, r
    assert ran(r) == ["docs:api:gen", "docs:build", "docs:serve"]


def test_patterns_mix_with_task_names_and_run_each_task_once(project):
    project.tasksfile(TASKS)
    r = project.run("build", "test:*", "test:unit", "--k=x")
    assert r.code == 0, r
    assert ran(r) == ["build", "test:e2e", "test:unit x"]


def test_question_mark_matches_one_character(project):
    project.tasksfile(TASKS)
    r = project.run("test:e?e")
    assert r.code == 0, r
    assert ran(r) == ["test:e2e"]


def test_a_pattern_that_matches_nothing_is_exit_2(project):
    project.tasksfile(TASKS)
    r = project.run("lint:*")
    assert r.code == 2, r
    assert "no task matches 'lint:*'" in r.err


def test_task_options_cannot_follow_a_pattern(project):
    project.tasksfile(TASKS)
    r = project.run("test:*", "--k=x")
    assert r.code == 2, r
    assert "cannot follow a pattern" in r.err


def test_global_options_may_follow_a_pattern(project):
    project.tasksfile(TASKS)
    r = project.run("docs:*", "-j1", "-q")
    assert r.code == 0, r
    assert ran(r) == ["docs:api:gen", "docs:build", "docs:serve"]


def test_the_bare_namespace_alone_lists_its_tasks(project):
    project.tasksfile(TASKS)
    r = project.run("docs")
    assert r.code == 0, r
    assert r.out.splitlines() == [
        "tasks in namespace docs: (run them all with `runner 'docs:*'`)",
        "  docs:api:gen",
        "  docs:build    Build the docs.",
        "  docs:serve    Serve the docs. (aliases: ds)",
    ]
    assert ran(r) == []


def test_the_bare_namespace_among_other_tasks_is_exit_2_naming_the_pattern(project):
    project.tasksfile(TASKS)
    r = project.run("build", "docs")
    assert r.code == 2, r
    assert "'docs' is a namespace, not a task: 'docs:*' runs all of its tasks" in r.err
    assert ran(r) == []


def test_a_task_named_like_a_namespace_wins(project):
    project.tasksfile(TASKS + """
    @task
    def docs():
        print("ran docs")
    """)
    r = project.run("docs")
    assert r.code == 0, r
    assert ran(r) == ["docs"]


def test_a_pattern_works_with_graph_and_dry_run(project):
    project.tasksfile(TASKS)
    r = project.run("-n", "docs:*")
    assert r.code == 0, r
    assert "3 of 3 tasks would run" in r.out
    r = project.run("graph", "docs:*")
    assert r.code == 0, r
    assert sorted(r.out.split()) == ["docs:api:gen", "docs:build", "docs:serve"]


def test_runner_alone_without_a_default_lists_plugin_tasks_under_their_plugin(project):
    project.tasksfile(TASKS)  # no default task
    project.write("myplug.py", PLUGIN)
    project.write("pyproject.toml", '[tool.runner]\nplugins = ["myplug.py"]\n')
    r = project.run()
    assert r.code == 0, r
    assert "plugin myplug.py:" in r.out.splitlines()
