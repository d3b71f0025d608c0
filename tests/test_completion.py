"""`runner --completion bash|zsh|fish` (SPEC §2): the scripts, run by the real shells.
Bash's own machinery: source the script, set COMP_WORDS/COMP_CWORD as bash sets them
(it splits `docs:build` and `--k=x` at `:` and `=`), call the function, read COMPREPLY.
Fish answers `complete -C LINE` itself; zsh's completion system needs a terminal, so
its script is syntax-checked and run with the two completion builtins it calls
(`_describe`, `_files`) standing in to show what it passes them."""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys

import pytest
from conftest import clean_env
from test_imports import HEAVY, loaded

TASKS = """
    @task(default=True)
    def build(n: int = 1, fast: bool = False):
        \"\"\"Build everything.\"\"\"

    @task(name="docs:build")
    def docs_build():
        \"\"\"Build the docs.\"\"\"

    @task(name="docs:serve")
    def docs_serve():
        \"\"\"Serve the docs.\"\"\"

    @task
    def test(k: str = "", *args: str):
        \"\"\"Run the tests.\"\"\"
"""


@pytest.fixture
def shell_env(tmp_path):
    """An environment whose PATH finds `runner` (this interpreter's runner)."""
    bin_dir = tmp_path / "shell-bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "runner"
    wrapper.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -m runner "$@"\n')
    wrapper.chmod(0o755)
    env = clean_env()
    env["PATH"] = f"{bin_dir}:{env['PATH']}"
    return env


def bash_complete(project, env, *words: str) -> list[str]:
    """COMPREPLY after bash completes the last of `words` (split as bash splits them)."""
    script = "\n".join([
        "source <(runner --completion bash) || exit 3",
        "COMP_WORDS=(" + " ".join(shlex.quote(w) for w in ("runner", *words)) + ")",
        f"COMP_CWORD={len(words)}",
        "_runner_complete",
        'printf "%s\\n" "${COMPREPLY[@]}"',
    ])
    proc = subprocess.run(["bash", "--norc", "-c", script], cwd=project.root, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    return [ln for ln in proc.stdout.splitlines() if ln]


def hidden(project, *words: str, shell: str = "bash") -> list[str]:
    r = project.run(f"--complete={shell}", "--", *words)
    assert r.code == 0 and r.err == "", r
    return r.out.splitlines()


# ---------------------------------------------------------------- bash, for real

def test_bash_completes_task_names_and_commands_first(project, shell_env):
    project.tasksfile(TASKS)
    got = bash_complete(project, shell_env, "")
    assert got[:4] == ["build", "docs:build", "docs:serve", "test"]
    assert {"graph", "watch", "hash", "history", "ci", "cache", "init"} <= set(got)


def test_bash_completes_by_prefix(project, shell_env):
    project.tasksfile(TASKS)
    assert bash_complete(project, shell_env, "te") == ["test"]
    assert bash_complete(project, shell_env, "build", "d") == ["docs:build", "docs:serve"]


def test_bash_completes_after_a_namespace_colon(project, shell_env):
    project.tasksfile(TASKS)
    # `runner docs:s<TAB>`: bash's words are docs, :, s and it replaces only the `s`.
    assert bash_complete(project, shell_env, "docs", ":", "s") == ["serve"]
    assert bash_complete(project, shell_env, "docs", ":") == ["build", "serve"]


def test_bash_completes_a_tasks_options(project, shell_env):
    project.tasksfile(TASKS)
    got = bash_complete(project, shell_env, "build", "--")
    assert {"--n", "--fast", "--no-fast", "--help"} <= set(got)
    assert "--jobs" in got and "--dry-run" in got  # global options go after a task too
    assert bash_complete(project, shell_env, "build", "--f") == ["--fast", "--file", "--force"]


def test_bash_completes_the_options_of_the_last_task_named(project, shell_env):
    project.tasksfile(TASKS)
    got = bash_complete(project, shell_env, "build", "--n=2", "test", "--")
    assert "--k" in got and "--fast" not in got


def test_bash_completes_subcommands_and_their_option_values(project, shell_env):
    project.tasksfile(TASKS)
    assert bash_complete(project, shell_env, "cache", "") == ["info", "clean", "prune"]
    assert bash_complete(project, shell_env, "ci", "") == ["github"]
    assert bash_complete(project, shell_env, "graph", "--format", "") == [
        "tree", "mermaid", "dot", "json", "html"]
    assert bash_complete(project, shell_env, "graph", "--format", "=", "m") == ["mermaid"]
    assert bash_complete(project, shell_env, "--log-format", "") == ["text", "json"]
    assert "--format" in bash_complete(project, shell_env, "graph", "--f")
    assert bash_complete(project, shell_env, "history", "--task", "d") == [
        "docs:build", "docs:serve"]


def test_bash_completes_the_tasks_of_the_project_minus_c_names(project, shell_env):
    project.tasksfile(TASKS)
    project.write("other/tasksfile.py", "from runner import task\n\n@task\ndef deploy():\n"
                  "    pass\n")
    assert bash_complete(project, shell_env, "-C", "other", "d") == ["deploy"]


def test_paths_are_left_to_the_shell(project):
    project.tasksfile(TASKS)
    assert hidden(project, "-f", "") == [":files"]
    assert hidden(project, "-C", "") == [":dirs"]
    assert hidden(project, "test", "--", "") == [":files"]  # words after -- are the task's
    assert hidden(project, "ci", "github", "--output", "") == [":files"]


def test_a_task_named_like_a_command_is_completed_once_as_a_task(project, shell_env):
    project.tasksfile(TASKS + """
    @task
    def graph():
        \"\"\"My own graph.\"\"\"
    """)
    got = bash_complete(project, shell_env, "gr")
    assert got == ["graph"]
    # and what follows it is that task's options, not the command's
    assert "--format" not in bash_complete(project, shell_env, "graph", "--")


def test_a_broken_tasksfile_still_completes_commands_silently(project, shell_env):
    project.tasksfile("this is not python\n")
    got = bash_complete(project, shell_env, "")
    assert "graph" in got and "build" not in got


def test_no_tasksfile_still_completes_commands_and_options(project, shell_env):
    assert "init" in bash_complete(project, shell_env, "")
    assert "--version" in bash_complete(project, shell_env, "--v")


# ---------------------------------------------------------------- zsh and fish

@pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh is not installed")
def test_zsh_script_is_valid_zsh_and_passes_candidates_with_descriptions(project, shell_env,
                                                                         tmp_path):
    project.tasksfile(TASKS)
    script = tmp_path / "_runner"
    script.write_text(project.run("--completion", "zsh").out)
    check = subprocess.run(["zsh", "-n", str(script)], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    driver = "\n".join([
        "compdef() { print -r -- \"compdef $*\" }",
        "_describe() { print -rl -- \"${(@P)${@[-1]}}\" }",
        "_files() { print -r -- \"_files $*\" }",
        f"source {shlex.quote(str(script))}",
        "words=(runner docs:); CURRENT=2; _runner",
        "words=(runner -C ''); CURRENT=3; _runner",
    ])
    proc = subprocess.run(["zsh", "-f", "-c", driver], cwd=project.root, env=shell_env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "compdef _runner runner",
        "docs\\:build:Build the docs.",
        "docs\\:serve:Serve the docs.",
        "_files -/",
    ]


@pytest.mark.skipif(shutil.which("fish") is None, reason="fish is not installed")
def test_fish_completes_tasks_and_options_with_descriptions(project, shell_env):
    project.tasksfile(TASKS)
    script = project.run("--completion", "fish").out
    check = subprocess.run(["fish", "--no-execute"], input=script, capture_output=True,
                           text=True)
    assert check.returncode == 0, check.stderr
    driver = ("runner --completion fish | source; "
              "complete -C'runner docs:'; echo ==; complete -C'runner build --f'")
    proc = subprocess.run(["fish", "--no-config", "-c", driver], cwd=project.root,
                          env=shell_env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    tasks, options = proc.stdout.split("==\n")
    assert tasks.splitlines() == ["docs:build\tBuild the docs.", "docs:serve\tServe the docs."]
    assert [ln.split("\t")[0] for ln in options.splitlines()] == ["--fast", "--file", "--force"]


# ---------------------------------------------------------------- the commands

def test_completion_needs_no_tasksfile(project):
    r = project.run("--completion", "bash")
    assert r.code == 0, r
    assert "complete -F _runner_complete runner" in r.out


def test_completion_of_an_unknown_shell_is_exit_2(project):
    r = project.run("--completion", "tcsh")
    assert r.code == 2, r
    assert "--completion expects one of bash, zsh, fish, got 'tcsh'" in r.err


COMPLETE_AND_REPORT = """
import io, json, sys
import runner.cli

out, err = io.StringIO(), io.StringIO()
code = runner.cli.main(["--complete=bash", "--", "docs", ":", ""], out, err)
json.dump({"code": code, "out": out.getvalue(), "modules": sorted(sys.modules)}, sys.stdout)
"""


def test_completing_imports_no_heavy_module(project):
    project.tasksfile(TASKS)
    proc = subprocess.run([sys.executable, "-c", COMPLETE_AND_REPORT], cwd=project.root,
                          env=clean_env(), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["code"] == 0
    assert report["out"].split() == ["build", "serve"]
    assert loaded(report["modules"], HEAVY + ("tomllib", "tomli")) == []
