"""SPEC §2: `runner TASK -- WORDS...`: the words after `--` reach the task named right
before `--` as its `*args`, and are part of its cache key."""

from __future__ import annotations

import json

ECHO = """
    import json

    @task(inputs=["src.txt"])
    def test(k: str = "", *args: str):
        \"\"\"Run the tests.\"\"\"
        with open("calls.log", "a") as f:
            f.write(json.dumps({"k": k, "args": list(args)}) + "\\n")
        sh(["printf", "word:%s\\\\n", *args])

    @task
    def lint():
        \"\"\"Lint.\"\"\"
"""


def calls(project) -> list[dict]:
    p = project.root / "calls.log"
    return [json.loads(ln) for ln in p.read_text().splitlines()] if p.exists() else []


def test_words_after_double_dash_reach_the_task_as_its_args(project):
    project.tasksfile(ECHO)
    project.write("src.txt", "x")
    r = project.run("test", "--", "-x", "-k", "foo", "--help")
    assert r.code == 0, r
    assert calls(project) == [{"k": "", "args": ["-x", "-k", "foo", "--help"]}]
    assert "word:-x" in r.out and "word:--help" in r.out


def test_options_before_double_dash_still_go_to_the_task(project):
    project.tasksfile(ECHO)
    project.write("src.txt", "x")
    r = project.run("test", "--k=parser", "--", "-v")
    assert r.code == 0, r
    assert calls(project) == [{"k": "parser", "args": ["-v"]}]


def test_same_words_are_a_cache_hit_and_different_words_run_again(project):
    project.tasksfile(ECHO)
    project.write("src.txt", "x")
    assert project.run("test", "--", "-x").code == 0
    assert project.run("test", "--", "-x").code == 0
    assert len(calls(project)) == 1  # the same words: a hit
    assert project.run("test", "--", "-y").code == 0
    assert project.run("test").code == 0  # no words is a third key
    assert [c["args"] for c in calls(project)] == [["-x"], ["-y"], []]
    assert project.run("test", "--", "-x").code == 0  # back to the first: a hit again
    assert len(calls(project)) == 3


def test_different_words_give_a_different_fingerprint(project):
    project.tasksfile(ECHO)
    project.write("src.txt", "x")
    a = project.run("hash", "test", "--", "-x")
    b = project.run("hash", "test", "--", "-y")
    c = project.run("hash", "test", "--", "-x")
    assert a.code == b.code == c.code == 0, (a, b)
    assert a.out != b.out and a.out == c.out


def test_dry_run_says_the_words_changed(project):
    project.tasksfile(ECHO)
    project.write("src.txt", "x")
    assert project.run("test", "--", "-x").code == 0
    r = project.run("-n", "test", "--", "-y")
    assert r.code == 0, r
    assert "argument args changed" in r.out


def test_words_go_to_the_task_named_right_before_the_double_dash_only(project):
    project.tasksfile("""
        import json

        @task
        def first(*args):
            with open("first.log", "w") as f:
                f.write(json.dumps(list(args)))

        @task
        def second(*words: str):
            with open("second.log", "w") as f:
                f.write(json.dumps(list(words)))
    """)
    r = project.run("first", "second", "--", "a", "b")
    assert r.code == 0, r
    assert json.loads(project.read("first.log")) == []
    assert json.loads(project.read("second.log")) == ["a", "b"]


def test_words_for_a_task_without_args_are_exit_2(project):
    project.tasksfile(ECHO)
    r = project.run("lint", "--", "-x")
    assert r.code == 2, r
    assert "task 'lint' takes no arguments after --" in r.err
    assert "*args: str" in r.err
    assert "Traceback" not in r.err


def test_words_without_a_task_before_them_are_exit_2(project):
    project.tasksfile(ECHO)
    r = project.run("--", "--", "-x")
    assert r.code == 2, r
    assert "name it before the --" in r.err


def test_positional_options_before_args_keep_their_values(project):
    project.tasksfile("""
        @task
        def go(n: int = 1, *args: str):
            print(f"n={n} args={list(args)}")
    """)
    r = project.run("go", "--n=3", "--", "x")
    assert r.code == 0, r
    assert "n=3 args=['x']" in r.out


def test_task_help_shows_that_it_takes_words_after_double_dash(project):
    project.tasksfile(ECHO)
    r = project.run("test", "--help")
    assert r.code == 0, r
    assert "usage: runner test [--k TEXT] [-- ARGS...]" in r.out


def test_args_annotated_other_than_str_is_a_definition_error(project):
    project.tasksfile("""
        @task
        def bad(*args: int):
            pass
    """)
    r = project.run("--list")
    assert r.code == 2, r
    assert "task 'bad', parameter 'args'" in r.err
    assert "tasksfile.py:" in r.err


def test_kwargs_still_cannot_become_options(project):
    project.tasksfile("""
        @task
        def bad(*args, **kw):
            pass
    """)
    r = project.run("--list")
    assert r.code == 2, r
    assert "**kw cannot become options" in r.err
