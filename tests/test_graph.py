"""The dependency graph: unknown deps, cycles, each dep run once, and `runner graph`
in every format (SPEC §1 `deps`, §2 `graph`, exit codes)."""

from __future__ import annotations

import json
import re

import pytest

DIAMOND = """
    def log(name):
        with open("log.txt", "a") as f:
            f.write(name + "\\n")

    @task
    def base():
        \"\"\"The shared foundation.\"\"\"
        log("base")

    @task(deps=[base])
    def left():
        log("left")

    @task(deps=["base"])
    def right():
        log("right")

    @task(deps=[left, right])
    def top():
        log("top")

    @task
    def lonely():
        log("lonely")
"""

EDGES = {("left", "base"), ("right", "base"), ("top", "left"), ("top", "right")}


def ran(project) -> list[str]:
    p = project.root / "log.txt"
    return p.read_text().splitlines() if p.exists() else []


# ---------------------------------------------------------------- resolution errors

def test_unknown_dep_is_exit_2_naming_both_tasks_with_did_you_mean(project):
    project.tasksfile("""
        @task
        def lint():
            pass

        @task(deps=["lnit"])
        def build():
            open("built.txt", "w").write("x")
    """)
    r = project.run("build")
    assert r.code == 2, r
    assert "'build'" in r.err and "'lnit'" in r.err
    assert "did you mean 'lint'" in r.err
    assert "Traceback" not in r.err
    assert not (project.root / "built.txt").exists()


UNKNOWN_DEP = """
    @task
    def build():
        pass

    @task
    def other():
        open("other.txt", "w").write("x")

    @task(deps=["biuld"])
    def test():
        pass
"""


@pytest.mark.parametrize("args", [["--list"], ["other"], ["graph"]], ids=" ".join)
def test_unknown_dep_is_reported_when_the_tasksfile_loads_naming_its_line(project, args):
    project.tasksfile(UNKNOWN_DEP)
    r = project.run(*args)
    assert r.code == 2, r
    assert "tasksfile.py:11: task 'test' depends on unknown task 'biuld'" in r.err
    assert "did you mean 'build'" in r.err
    assert "Traceback" not in r.err
    assert not (project.root / "other.txt").exists()


def test_a_dep_named_with_underscores_finds_the_dashed_task(project):
    project.tasksfile("""
        @task
        def make_docs():
            open("docs.txt", "w").write("x")

        @task(deps=["make_docs"])
        def ship():
            pass
    """)
    assert project.run("ship").code == 0
    assert (project.root / "docs.txt").exists()


def test_cycle_is_exit_2_printed_as_the_cycle(project):
    project.tasksfile("""
        @task(deps=["b"])
        def a():
            pass

        @task(deps=["c"])
        def b():
            pass

        @task(deps=["a"])
        def c():
            pass
    """)
    r = project.run("a")
    assert r.code == 2, r
    assert "a -> b -> c -> a" in r.err
    assert "Traceback" not in r.err


def test_cycle_is_printed_the_same_whichever_task_is_asked_for(project):
    project.tasksfile("""
        @task(deps=["b"])
        def a():
            pass

        @task(deps=["c"])
        def b():
            pass

        @task(deps=["a"])
        def c():
            pass
    """)
    r = project.run("c")
    assert r.code == 2, r
    assert "a -> b -> c -> a" in r.err


def test_cycle_below_the_requested_task_is_exit_2(project):
    project.tasksfile("""
        @task(deps=["x"])
        def top():
            open("ran.txt", "w").write("x")

        @task(deps=["y"])
        def x():
            pass

        @task(deps=["x"])
        def y():
            pass
    """)
    r = project.run("top")
    assert r.code == 2, r
    assert "x -> y -> x" in r.err
    assert not (project.root / "ran.txt").exists()


def test_self_dependency_is_exit_2_printed_as_a_cycle(project):
    project.tasksfile("""
        @task(deps=["loop"])
        def loop():
            pass
    """)
    r = project.run("loop")
    assert r.code == 2, r
    assert "loop -> loop" in r.err
    assert "Traceback" not in r.err


# ---------------------------------------------------------------- running deps

def test_diamond_runs_each_dep_once_and_deps_first(project):
    project.tasksfile(DIAMOND)
    r = project.run("top")
    assert r.code == 0, r
    log = ran(project)
    assert sorted(log) == ["base", "left", "right", "top"]
    assert log[0] == "base" and log[-1] == "top"


def test_diamond_runs_each_dep_once_with_parallel_jobs(project):
    project.tasksfile(DIAMOND)
    r = project.run("-j", "4", "top")
    assert r.code == 0, r
    assert sorted(ran(project)) == ["base", "left", "right", "top"]


def test_dep_shared_by_two_requested_tasks_runs_once(project):
    project.tasksfile(DIAMOND)
    r = project.run("left", "right")
    assert r.code == 0, r
    assert sorted(ran(project)) == ["base", "left", "right"]


def test_task_named_twice_on_the_command_line_runs_once(project):
    project.tasksfile(DIAMOND)
    r = project.run("base", "base")
    assert r.code == 0, r
    assert ran(project) == ["base"]


def test_only_the_requested_tasks_and_their_deps_run(project):
    project.tasksfile(DIAMOND)
    r = project.run("left")
    assert r.code == 0, r
    assert ran(project) == ["base", "left"]


# ---------------------------------------------------------------- runner graph

def test_graph_json_lists_every_task_with_its_deps(project):
    project.tasksfile(DIAMOND)
    r = project.run("graph", "--format", "json")
    assert r.code == 0, r
    data = json.loads(r.out)
    assert set(data["tasks"]) == {"base", "left", "right", "top", "lonely"}
    edges = {(n, d) for n, t in data["tasks"].items() for d in t["deps"]}
    assert edges == EDGES
    assert data["tasks"]["base"]["summary"] == "The shared foundation."


def test_graph_json_order_puts_deps_first(project):
    project.tasksfile(DIAMOND)
    data = json.loads(project.run("graph", "--format=json").out)
    order = data["order"]
    assert sorted(order) == ["base", "left", "lonely", "right", "top"]
    for n, t in data["tasks"].items():
        for d in t["deps"]:
            assert order.index(d) < order.index(n)


def test_graph_of_one_task_shows_only_it_and_its_deps(project):
    project.tasksfile(DIAMOND)
    r = project.run("graph", "left", "--format", "json")
    assert r.code == 0, r
    assert set(json.loads(r.out)["tasks"]) == {"left", "base"}


def test_graph_dot_has_every_edge(project):
    project.tasksfile(DIAMOND)
    r = project.run("graph", "--format", "dot")
    assert r.code == 0, r
    assert r.out.lstrip().startswith("digraph")
    assert r.out.rstrip().endswith("}")
    edges = set(re.findall(r'"([^"]+)"\s*->\s*"([^"]+)"', r.out))
    assert edges == EDGES
    assert '"lonely"' in r.out


def test_graph_mermaid_has_every_edge(project):
    project.tasksfile(DIAMOND)
    r = project.run("graph", "--format", "mermaid")
    assert r.code == 0, r
    lines = [ln.strip() for ln in r.out.splitlines()]
    assert lines[0].startswith(("graph", "flowchart"))
    labels = dict(re.findall(r'^\s*(\w+)\["([^"]+)"\]$', r.out, flags=re.M))
    assert set(labels.values()) == {"base", "left", "right", "top", "lonely"}
    edges = {(labels[a], labels[b]) for a, b in re.findall(r"^\s*(\w+)\s*-->\s*(\w+)\s*$",
                                                          r.out, flags=re.M)}
    assert edges == EDGES


def test_graph_tree_nests_deps_under_the_tasks_that_need_them(project):
    project.tasksfile(DIAMOND)
    r = project.run("graph", "top")
    assert r.code == 0, r
    lines = r.out.splitlines()

    def indent(i: int) -> int:
        return len(re.match(r"^[\s│├└─|`-]*", lines[i]).group(0))

    def find(name: str, after: int = -1) -> int:
        return next(i for i, ln in enumerate(lines) if i > after
                    and re.sub(r"^[\s│├└─|`-]*", "", ln).split(" ")[0] == name)

    top = find("top")
    left, right = find("left"), find("right")
    base_under_left = find("base", left)
    assert indent(top) == 0
    assert indent(left) > indent(top) and indent(right) > indent(top)
    assert left < base_under_left and indent(base_under_left) > indent(left)
    assert "lonely" not in r.out


def test_graph_tree_is_the_default_format_and_shows_every_root(project):
    project.tasksfile(DIAMOND)
    r = project.run("graph")
    assert r.code == 0, r
    roots = [ln for ln in r.out.splitlines() if ln and not ln[0].isspace()
             and ln[0] not in "│├└|`"]
    assert sorted(roots) == ["lonely", "top"]


@pytest.mark.parametrize("fmt", ["svg", "tre"])
def test_graph_with_an_unknown_format_is_exit_2(project, fmt):
    project.tasksfile(DIAMOND)
    r = project.run("graph", "--format", fmt)
    assert r.code == 2, r
    assert fmt in r.err
    assert "Traceback" not in r.err


def test_graph_format_typo_suggests_the_closest(project):
    project.tasksfile(DIAMOND)
    r = project.run("graph", "--format", "mermiad")
    assert r.code == 2, r
    assert "did you mean 'mermaid'" in r.err


def test_graph_of_an_unknown_task_is_exit_2_with_did_you_mean(project):
    project.tasksfile(DIAMOND)
    r = project.run("graph", "lft")
    assert r.code == 2, r
    assert "did you mean 'left'" in r.err


def test_graph_with_a_cycle_is_exit_2_printed_as_the_cycle(project):
    project.tasksfile("""
        @task(deps=["b"])
        def a():
            pass

        @task(deps=["a"])
        def b():
            pass
    """)
    r = project.run("graph")
    assert r.code == 2, r
    assert "a -> b -> a" in r.err


def test_task_named_graph_wins_over_the_command(project):
    project.tasksfile("""
        @task
        def graph():
            print("my own graph task")
    """)
    r = project.run("graph")
    assert r.code == 0, r
    assert "my own graph task" in r.out
