"""Scheduling: `-j`, deps first and once, stopping on failure, `-k`, retries, timeouts,
and how a failing task is reported (SPEC §1 `deps`/`timeout`/`retries`, §2 `-j`/`-k`,
exit codes).

Tasks write what happened to `events.log` (tasklib.log); the order of its lines is the
order things happened in, so no test depends on how long anything takes.
"""

from __future__ import annotations

import re

from conftest import clean_env, events_log, no_process_left, use_tasklib


def starts_and_ends(project):
    """{task: (index of its start line, index of its end line)} from events.log."""
    spans: dict[str, list[int]] = {}
    for i, line in enumerate(events_log(project)):
        what, name = line.split()
        spans.setdefault(name, [-1, -1])[0 if what == "start" else 1] = i
    return {k: tuple(v) for k, v in spans.items()}


def overlap(a, b):
    return a[0] < b[1] and b[0] < a[1]


THREE_INDEPENDENT = """
    from tasklib import log, logged, wait_until

    def work(name):
        log(f"start {name}")
        # Give the others every chance to start meanwhile, if they are allowed to.
        wait_until(lambda: sum(line.startswith("start") for line in logged()) == 3,
                   timeout={wait})
        log(f"end {name}")

    @task
    def a():
        work("a")

    @task
    def b():
        work("b")

    @task
    def c():
        work("c")

    @task(deps=[a, b, c])
    def all():
        pass
"""


def test_jobs_1_runs_one_task_at_a_time(project):
    use_tasklib(project)
    project.tasksfile(THREE_INDEPENDENT.replace("{wait}", "0.5"))
    r = project.run("-j", "1", "all")
    assert r.code == 0, r
    spans = starts_and_ends(project)
    assert set(spans) == {"a", "b", "c"}
    for x in spans:
        for y in spans:
            if x != y:
                assert not overlap(spans[x], spans[y]), events_log(project)


def test_jobs_n_runs_independent_tasks_at_the_same_time(project):
    use_tasklib(project)
    project.tasksfile(THREE_INDEPENDENT.replace("{wait}", "20.0"))
    r = project.run("-j", "3", "all")
    assert r.code == 0, r
    spans = starts_and_ends(project)
    # Every task started before any of them ended: all three ran at once.
    assert max(s for s, _ in spans.values()) < min(e for _, e in spans.values()), \
        events_log(project)


def test_jobs_n_never_runs_more_than_n_tasks_at_once(project):
    use_tasklib(project)
    project.tasksfile("""
        from tasklib import log, logged, wait_until

        def work(name):
            log(f"start {name}")
            wait_until(lambda: sum(l.startswith("start") for l in logged()) >= 2,
                       timeout=1.0)
            log(f"end {name}")

        @task
        def a(): work("a")
        @task
        def b(): work("b")
        @task
        def c(): work("c")
        @task
        def d(): work("d")

        @task(deps=[a, b, c, d])
        def all():
            pass
    """)
    r = project.run("-j", "2", "all")
    assert r.code == 0, r
    running = peak = 0
    for line in events_log(project):
        running += 1 if line.startswith("start") else -1
        peak = max(peak, running)
    assert peak == 2, events_log(project)


def test_deps_finish_before_their_dependents_start(project):
    use_tasklib(project)
    project.tasksfile("""
        import time
        from tasklib import log

        def work(name):
            log(f"start {name}")
            time.sleep(0.1)
            log(f"end {name}")

        @task
        def base(): work("base")
        @task(deps=[base])
        def left(): work("left")
        @task(deps=[base])
        def right(): work("right")
        @task(deps=[left, right])
        def top(): work("top")
    """)
    r = project.run("-j", "4", "top")
    assert r.code == 0, r
    spans = starts_and_ends(project)
    for dep, dependent in [("base", "left"), ("base", "right"), ("left", "top"),
                           ("right", "top")]:
        assert spans[dep][1] < spans[dependent][0], events_log(project)


def test_a_dep_shared_by_many_tasks_runs_once(project):
    use_tasklib(project)
    project.tasksfile("""
        from tasklib import log

        @task
        def setup(): log("run setup")
        @task(deps=[setup])
        def x(): log("run x")
        @task(deps=[setup])
        def y(): log("run y")
        @task(deps=["setup", x])
        def z(): log("run z")
    """)
    r = project.run("-j", "3", "x", "y", "z", "setup")
    assert r.code == 0, r
    assert sorted(events_log(project)) == ["run setup", "run x", "run y", "run z"]


FAIL_THEN_MORE = """
    from tasklib import log

    @task
    def bad():
        log("run bad")
        raise TaskError("bad broke")

    @task
    def later():
        log("run later")

    @task(deps=[later])
    def after_later():
        log("run after_later")

    @task(deps=[bad])
    def needs_bad():
        log("run needs_bad")

    @task(deps=[bad, after_later, needs_bad])
    def all():
        log("run all")
"""


def test_the_first_failure_stops_starting_new_tasks(project):
    use_tasklib(project)
    project.tasksfile(FAIL_THEN_MORE)
    r = project.run("-j", "1", "all")
    assert r.code == 1, r
    assert events_log(project) == ["run bad"]


def test_keep_going_runs_every_branch_that_does_not_depend_on_the_failure(project):
    use_tasklib(project)
    project.tasksfile(FAIL_THEN_MORE)
    r = project.run("-j", "1", "-k", "all")
    assert r.code == 1, r
    assert sorted(events_log(project)) == ["run after_later", "run bad", "run later"]


def test_keep_going_reports_the_dependents_of_a_failure_as_skipped(project):
    use_tasklib(project)
    project.tasksfile(FAIL_THEN_MORE)
    r = project.run("-j", "1", "-k", "all")
    assert r.code == 1, r
    summary = [line.split() for line in r.out.splitlines() if line.startswith("  ")]
    status = {words[1]: words[0] for words in summary}
    assert status == {"bad": "FAILED", "later": "ok", "after-later": "ok",
                      "needs-bad": "skipped", "all": "skipped"}, r.out


def test_a_task_with_retries_that_fails_twice_then_succeeds_passes(project):
    project.tasksfile("""
        from pathlib import Path

        @task(retries=2)
        def flaky():
            count = Path("attempts.txt")
            n = int(count.read_text()) + 1 if count.exists() else 1
            count.write_text(str(n))
            if n < 3:
                raise TaskError(f"attempt {n} failed")
    """)
    r = project.run("flaky")
    assert r.code == 0, r
    assert project.read("attempts.txt") == "3"
    assert "retrying" in r.output
    assert "attempt 1 failed" in r.output


def test_a_task_that_exhausts_its_retries_fails(project):
    project.tasksfile("""
        from pathlib import Path

        @task(retries=1)
        def broken():
            count = Path("attempts.txt")
            n = int(count.read_text()) + 1 if count.exists() else 1
            count.write_text(str(n))
            raise TaskError(f"attempt {n} failed")
    """)
    r = project.run("broken")
    assert r.code == 1, r
    assert project.read("attempts.txt") == "2"
    assert "FAILED broken" in r.err
    assert "attempt 2 failed" in r.err


def test_a_task_past_its_timeout_fails_and_its_command_is_killed(project, marker):
    m = marker()
    project.tasksfile(f"""
        @task(timeout=1)
        def slow():
            sh("sleep {m}")
    """)
    r = project.run("slow")
    assert r.code == 1, r
    assert "timed out" in r.err
    assert no_process_left(m)


def test_a_task_timeout_kills_the_whole_process_tree(project, marker):
    m1, m2 = marker(), marker()
    project.tasksfile(f"""
        @task(timeout=1)
        def slow():
            sh("sleep {m1} & sh -c 'sleep {m2}'; wait")
    """)
    r = project.run("slow")
    assert r.code == 1, r
    assert no_process_left(m1, m2)


def test_a_pure_python_busy_loop_is_stopped_by_its_timeout(project):
    project.tasksfile("""
        @task(timeout=1)
        def spin():
            while True:
                pass
    """)
    r = project.run("spin", timeout=60)
    assert r.code == 1, r
    assert "timed out" in r.err


def test_a_task_blocked_in_python_is_stopped_by_its_timeout(project):
    project.tasksfile("""
        import time

        @task(timeout=1)
        def blocked():
            time.sleep(600)
    """)
    r = project.run("blocked", env=clean_env(RUNNER_KILL_TIMEOUT="1"), timeout=60)
    assert r.code == 1, r
    assert "timed out" in r.err


def test_a_timed_out_task_stops_the_run_like_any_failure(project):
    use_tasklib(project)
    project.tasksfile("""
        import time
        from tasklib import log

        @task(timeout=1)
        def slow():
            while True:
                time.sleep(0.01)

        @task
        def later():
            log("run later")

        @task(deps=[slow, later])
        def all():
            pass
    """)
    r = project.run("-j", "1", "all")
    assert r.code == 1, r
    assert events_log(project) == []


def test_an_exception_in_a_task_is_reported_with_file_line_and_message(project):
    path = project.tasksfile("""
        @task
        def boom():
            value = 41
            raise ValueError(f"unexpected value {value}")
    """)
    line = next(no for no, text in enumerate(path.read_text().splitlines(), 1)
                if "raise ValueError" in text)
    r = project.run("boom")
    assert r.code == 1, r
    assert f"tasksfile.py:{line}" in r.err
    assert "ValueError: unexpected value 41" in r.err
    assert "Traceback" not in r.output


def test_verbose_shows_the_traceback_of_an_exception_in_a_task(project):
    project.tasksfile("""
        def helper():
            raise ValueError("deep inside")

        @task
        def boom():
            helper()
    """)
    r = project.run("-v", "boom")
    assert r.code == 1, r
    assert "Traceback" in r.err
    assert "in helper" in r.err
    assert "ValueError: deep inside" in r.err


def test_sys_exit_with_a_non_zero_code_fails_the_task(project):
    use_tasklib(project)
    project.tasksfile("""
        import sys
        from tasklib import log

        @task
        def quit():
            sys.exit(3)

        @task(deps=[quit])
        def after():
            log("run after")
    """)
    r = project.run("after")
    assert r.code == 1, r
    assert "FAILED quit" in r.err
    assert re.search(r"\bexit\D{0,8}3\b", r.err), r.err
    assert events_log(project) == []


def test_task_error_raised_by_a_task_fails_it_with_its_message(project):
    project.tasksfile("""
        @task
        def deploy():
            raise TaskError("the staging server is not reachable")
    """)
    r = project.run("deploy")
    assert r.code == 1, r
    assert "FAILED deploy" in r.err
    assert "the staging server is not reachable" in r.err
    assert "Traceback" not in r.output
