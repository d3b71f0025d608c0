"""runner-notify: real runs of runner, a real local HTTP server as the webhook, a real
pseudo-terminal for the bell, a stand-in notify-send on PATH for the desktop."""

from __future__ import annotations

import json
import os

from conftest import clean_env, run_in_pty
from plugin_testing import (
    Recorder,
    declared_entry_points,
    enable,
    install_dist_info,
    plugin_dir,
    refused_url,
)

TASKS = """\
import time
from runner import task, sh

@task
def build():
    sh("true")

@task(deps=[build])
def slow():
    time.sleep(0.4)

@task(deps=[build])
def broken():
    sh("exit 4")
"""


def notify_project(project, **settings: object) -> None:
    project.write("tasksfile.py", TASKS)
    lines = "".join(f"{k} = {json.dumps(v)}\n" for k, v in settings.items())
    enable(project, "notify", toml=f"[tool.runner-notify]\n{lines}")


def warnings(result) -> list[str]:
    return [line for line in result.err.splitlines() if "warning" in line]


# ---------------------------------------------------------------- the webhook


def test_a_run_longer_than_after_posts_its_summary_to_the_webhook(project, http_server):
    notify_project(project, after=0.2, bell=False, webhook=http_server.url + "/hook/T0K3N")
    r = project.run("--log-format", "json", "slow")
    assert r.code == 0, r.output
    run_id = json.loads(r.out.splitlines()[0])["run_id"]
    [request] = http_server.requests
    assert request.path == "/hook/T0K3N"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"].startswith("runner-notify/")
    body = request.json()
    assert body["run_id"] == run_id
    assert body["status"] == "ok" and body["exit_code"] == 0
    assert body["duration"] >= 0.4
    assert body["counts"] == {"ok": 2}
    assert body["critical_path"] == ["build", "slow"]
    assert body["project"] == project.root.name
    assert body["text"].startswith(f"{project.root.name}: ok in ") and "(2 ok)" in body["text"]


def test_a_run_shorter_than_after_posts_nothing(project, http_server):
    notify_project(project, after=60, webhook=http_server.url)
    r = project.run("build")
    assert r.code == 0, r.output
    assert http_server.requests == []


def test_a_failed_run_is_posted_as_failed_and_runner_still_exits_1(project, http_server):
    notify_project(project, after=0, webhook=http_server.url)
    r = project.run("broken")
    assert r.code == 1
    body = http_server.requests[0].json()
    assert body["status"] == "failed" and body["exit_code"] == 1
    assert body["counts"] == {"ok": 1, "failed": 1}


def test_a_webhook_that_refuses_the_connection_is_a_warning_not_a_failed_run(project):
    url = refused_url()
    notify_project(project, after=0, webhook=url + "/services/S3CR3T")
    r = project.run("build")
    assert r.code == 0, r.output
    [warning] = warnings(r)
    assert f"webhook {url} could not be reached" in warning
    assert "S3CR3T" not in r.output  # a webhook URL's path is its secret


def test_a_webhook_that_answers_an_error_is_a_warning(project):
    notify_project(project, after=0)
    with Recorder(status=500) as server:
        r = project.run("build", env=clean_env(RUNNER_NOTIFY_WEBHOOK=server.url))
    assert r.code == 0, r.output
    assert len(server.requests) == 1
    [warning] = warnings(r)
    assert f"webhook {server.url} answered 500" in warning


def test_environment_variables_override_the_table(project, http_server):
    notify_project(project, after=3600, webhook=refused_url())
    env = clean_env(RUNNER_NOTIFY_WEBHOOK=http_server.url, RUNNER_NOTIFY_AFTER="0")
    r = project.run("build", env=env)
    assert r.code == 0 and warnings(r) == [], r.output
    assert len(http_server.requests) == 1


# ---------------------------------------------------------------- bell and desktop


def test_the_bell_rings_when_standard_output_is_a_terminal(project):
    notify_project(project, after=0)
    code, output = run_in_pty(project, "build", env=clean_env(TERM="xterm", NO_LIVE="1"))
    assert code == 0, output
    assert "\a" in output


def test_no_bell_for_a_run_shorter_than_after(project):
    notify_project(project, after=3600)
    code, output = run_in_pty(project, "build", env=clean_env(TERM="xterm", NO_LIVE="1"))
    assert code == 0, output
    assert "\a" not in output


def test_no_bell_when_standard_output_is_a_pipe(project):
    notify_project(project, after=0)
    r = project.run("build")
    assert r.code == 0, r.output
    assert "\a" not in r.output


def test_desktop_notification_goes_through_notify_send(project, tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    record = tmp_path / "notified.txt"
    fake = bin_dir / "notify-send"
    fake.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {record}\n')
    fake.chmod(0o755)
    notify_project(project, after=0, bell=False, desktop=True)
    env = clean_env(PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    r = project.run("build", env=env)
    assert r.code == 0 and warnings(r) == [], r.output
    args = record.read_text().splitlines()
    assert args[1] == "runner: ok"
    assert args[2].startswith(f"{project.root.name}: ok in ")


def test_no_notifier_on_path_is_a_warning(project, tmp_path):
    notify_project(project, after=0, bell=False, desktop=True)
    env = clean_env(PATH=str(tmp_path))  # no notify-send there
    r = project.run("build", env=env)
    assert r.code == 0, r.output
    [warning] = warnings(r)
    assert "notify-send is not on PATH" in warning


# ---------------------------------------------------------------- settings and loading


def test_an_unknown_setting_is_exit_2_naming_the_key_and_its_line(project):
    notify_project(project, aftr=10)
    r = project.run("build")
    assert r.code == 2
    line = project.read("pyproject.toml").splitlines().index("aftr = 10") + 1
    assert (
        f"pyproject.toml:{line}: tool.runner-notify.aftr: unknown key (did you mean 'after'?)"
        in r.err
    )


def test_a_wrong_type_is_exit_2(project):
    notify_project(project, after="soon")
    r = project.run("build")
    assert r.code == 2
    assert "tool.runner-notify.after: expected a number of seconds >= 0, got 'soon'" in r.err


def test_a_bad_environment_value_is_exit_2_naming_the_variable(project):
    notify_project(project)
    r = project.run("build", env=clean_env(RUNNER_NOTIFY_BELL="maybe"))
    assert r.code == 2
    assert "RUNNER_NOTIFY_BELL: expected true or false, got 'maybe'" in r.err


def test_found_through_its_entry_point_when_installed(project, tmp_path, http_server):
    project.write("tasksfile.py", TASKS)
    site = tmp_path / "site"
    install_dist_info(site, "runner-notify", declared_entry_points("notify"))
    path = os.pathsep.join([str(site), str(plugin_dir("notify").parent)])
    env = clean_env(PYTHONPATH=path, RUNNER_NOTIFY_AFTER="0", RUNNER_NOTIFY_WEBHOOK=http_server.url)
    r = project.run("build", env=env)
    assert r.code == 0, r.output
    assert len(http_server.requests) == 1
