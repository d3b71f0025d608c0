"""`runner --audit`: what a task really reads, writes, runs and takes from the
environment, against what it declares (SPEC §2 `--audit`, §3 `audit`).

Real Python audit hooks and a real `strace -f` (the tests that need strace skip when
it is missing or cannot trace here: under a tracer of its own, as in an audited run of
this suite, a second one cannot attach).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import (
    clean_env,
    no_process_left,
    poll,
    processes_mentioning,
    processes_with_arg,
    stop,
    use_tasklib,
)


def _strace_problem() -> str | None:
    from runner.audit import _find_strace

    return _find_strace()[1]


STRACE_PROBLEM = _strace_problem()
needs_strace = pytest.mark.skipif(STRACE_PROBLEM is not None, reason=str(STRACE_PROBLEM))


def findings(result) -> list[dict]:
    """The audit_finding events of a `--log-format json` run."""
    events = [json.loads(line) for line in result.out.splitlines() if line.startswith("{")]
    return [e for e in events if e["event"] == "audit_finding"]


def audit_events(result) -> list[dict]:
    return [json.loads(line) for line in result.out.splitlines()
            if line.startswith('{"event":"audit_')]


def by_what(found: list[dict], what: str) -> dict[str, dict]:
    """Findings of one kind, by the file (or tool, or variable) each names first."""
    return {f["names"][0]: f for f in found if f["what"] == what}


# ---------------------------------------------------------------- reads


def test_an_undeclared_read_in_python_is_flagged_with_the_pattern_to_add(project):
    project.write("src/a.txt", "a")
    project.write("config/app.toml", "x = 1")
    project.tasksfile("""
        @task(inputs=["src/*.txt"])
        def build():
            open("config/app.toml").read()
    """)
    r = project.run("--audit", "build")
    assert r.code == 0, r.output
    assert ('build: read config/app.toml, which no input pattern matches: '
            'add inputs=[..., "config/app.toml"]') in r.out
    assert "audit (warn): 1 finding in 1 of 1 task audited" in r.out


def test_several_undeclared_files_of_a_directory_get_one_pattern(project):
    for name in ("a", "b", "c"):
        project.write(f"config/{name}.toml", name)
    project.tasksfile("""
        import glob

        @task(inputs=["tasksfile.py"])
        def build():
            for p in sorted(glob.glob("config/*.toml")):
                open(p).read()
    """)
    r = project.run("--audit", "--log-format", "json", "build")
    assert r.code == 0, r.output
    [f] = findings(r)
    assert f["task"] == "build" and f["what"] == "read" and f["param"] == "inputs"
    assert f["suggestion"] == "config/*.toml"
    assert f["names"] == ["config/a.toml", "config/b.toml", "config/c.toml"]


@needs_strace
def test_an_undeclared_read_through_cat_in_a_command_is_flagged(project):
    project.write("src/a.txt", "a")
    project.write("config.txt", "secret")
    project.tasksfile("""
        @task(inputs=["src/*.txt"], tools=["cat"])
        def build():
            sh("cat config.txt > /dev/null")
            sh(["cat", "src/a.txt"])
    """)
    r = project.run("--audit", "--log-format", "json", "build")
    assert r.code == 0, r.output
    reads = by_what(findings(r), "read")
    assert list(reads) == ["config.txt"]
    assert reads["config.txt"]["suggestion"] == "config.txt"


@needs_strace
def test_a_command_in_a_subdirectory_is_judged_by_project_paths(project):
    project.write("sub/data/x.csv", "1")
    project.tasksfile("""
        @task(inputs=["tasksfile.py"], tools=["cat"], cwd="sub")
        def build():
            sh("cd data && cat x.csv > /dev/null")
    """)
    r = project.run("--audit", "build")
    assert r.code == 0, r.output
    assert 'build: read sub/data/x.csv, which no input pattern matches' in r.out


def test_a_declared_read_is_not_flagged(project):
    project.write("config/app.toml", "x = 1")
    project.tasksfile("""
        @task(inputs=["config/*.toml"], tools=["cat"])
        def build():
            open("config/app.toml").read()
            sh("cat config/app.toml > /dev/null")
    """)
    r = project.run("--audit=strict", "build")
    assert r.code == 0, r.output
    assert "audit (strict): nothing undeclared in build" in r.out


def test_reading_a_deps_output_or_an_ignored_file_is_not_flagged(project):
    project.write(".gitignore", "scratch/\n")
    project.write("scratch/notes.txt", "n")
    project.write("in.txt", "i")
    project.tasksfile("""
        @task(inputs=["in.txt"], outputs=["out/gen.txt"])
        def gen():
            os.makedirs("out", exist_ok=True)
            open("out/gen.txt", "w").write(open("in.txt").read())

        @task(deps=[gen], inputs=["tasksfile.py"])
        def use():
            open("out/gen.txt").read()   # gen's output: gen's key is in use's key
            open("in.txt").read()        # gen's input, likewise
            open("scratch/notes.txt").read()  # ignored by git
            os.makedirs(".runner/x", exist_ok=True)  # runner's own state is not judged
            open(".runner/x/f", "w").write("x")
        import os
    """)
    r = project.run("--audit=strict", "use")
    assert r.code == 0, r.output
    assert "audit (strict): nothing undeclared in gen, use" in r.out


def test_reading_the_standard_library_and_installed_packages_is_not_flagged(project):
    # A virtual environment inside the project, not ignored by git, with a package.
    venv = project.root / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = next(venv.glob("lib/python*/site-packages"))
    (site / "localpkg.py").write_text("VALUE = 1\n")
    project.tasksfile(f"""
        import json
        import pathspec

        @task(inputs=["tasksfile.py"])
        def use():
            open(json.__file__).read()        # the standard library
            open(pathspec.__file__).read()    # an installed package
            open({str(site / "localpkg.py")!r}).read()  # a package in a venv in the project
            import tokenize                   # imports read code, not inputs
            sh([{str(venv / "bin" / "python")!r}, "-c", "import json, localpkg"])
    """)
    r = project.run("--audit=strict", "use")
    assert r.code == 0, r.output
    assert "audit (strict): nothing undeclared in use" in r.out


# ---------------------------------------------------------------- writes


def test_an_undeclared_write_in_python_is_flagged(project):
    project.tasksfile("""
        @task(inputs=["tasksfile.py"], outputs=["dist/app.txt"])
        def build():
            import os
            os.makedirs("dist", exist_ok=True)
            open("dist/app.txt", "w").write("app")
            open("dist/extra.txt", "w").write("forgotten")
    """)
    r = project.run("--audit", "build")
    assert r.code == 0, r.output
    assert ('build: wrote dist/extra.txt, which no output pattern matches: '
            'add outputs=[..., "dist/extra.txt"]') in r.out
    assert "dist/app.txt" not in r.out


def test_a_file_read_and_then_rewritten_is_both_an_input_and_an_output(project):
    project.write("notes.txt", "n")
    project.tasksfile("""
        @task(inputs=["tasksfile.py"])
        def fmt():
            text = open("notes.txt").read()
            open("notes.txt", "w").write(text.upper())
    """)
    r = project.run("--audit", "--log-format", "json", "fmt")
    assert r.code == 0, r.output
    assert {(f["what"], tuple(f["names"])) for f in findings(r)} == {
        ("read", ("notes.txt",)), ("write", ("notes.txt",))}


def test_renames_and_removals_in_python_are_judged_as_writes(project):
    project.write("keep.txt", "k")
    project.tasksfile("""
        import os

        @task(inputs=["tasksfile.py"], outputs=["out.txt"])
        def build():
            fd = os.open("out.tmp", os.O_WRONLY | os.O_CREAT)
            os.write(fd, b"x")
            os.close(fd)
            os.replace("out.tmp", "out.txt")    # an atomic write of a declared output
            open("other.tmp", "w").write("y")
            os.rename("other.tmp", "other.txt")  # ... and of an undeclared one
            os.remove("keep.txt")                # a file it does not own
    """)
    r = project.run("--audit", "--log-format", "json", "build")
    assert r.code == 0, r.output
    got = {(f["what"], tuple(f["names"])) for f in findings(r)}
    assert got == {("write", ("other.txt",)), ("remove", ("keep.txt",))}


@needs_strace
def test_an_undeclared_write_in_a_command_is_flagged_and_a_temporary_file_is_not(project):
    project.tasksfile("""
        @task(inputs=["tasksfile.py"], outputs=["out/a.txt"], tools=["mkdir", "mv", "rm"])
        def build():
            sh("mkdir -p out && echo a > out/a.txt && echo b > out/b.txt")
            sh("echo t > tmp.txt && rm tmp.txt")            # made and gone again
            sh("echo r > out/r.tmp && mv out/r.tmp out/renamed.txt")
    """)
    r = project.run("--audit", "--log-format", "json", "build")
    assert r.code == 0, r.output
    [write] = [f for f in findings(r) if f["what"] == "write"]
    assert write["names"] == ["out/b.txt", "out/renamed.txt"]
    assert write["suggestion"] == "out/*.txt"
    assert not by_what(findings(r), "read"), "reading back its own files is not an input"


# ---------------------------------------------------------------- tools and env


@needs_strace
def test_an_undeclared_tool_is_flagged_and_a_declared_one_is_not(project):
    project.write("in.txt", "x")
    project.tasksfile("""
        @task(inputs=["in.txt"], tools=["cat"])
        def build():
            sh("cat in.txt | wc -c > /dev/null")
    """)
    r = project.run("--audit", "--log-format", "json", "build")
    assert r.code == 0, r.output
    tools = {f["suggestion"] for f in findings(r) if f["what"] == "tool"}
    assert tools == {"wc"}


def test_an_undeclared_environment_variable_read_is_flagged(project):
    project.tasksfile("""
        import os

        @task(inputs=["tasksfile.py"], env=["DECLARED"])
        def build():
            mode = os.environ["MODE"]
            os.getenv("DECLARED")
            os.environ.get("ALSO", "")
            dict(os.environ)                     # a copy declares nothing: not a read
            import tempfile; tempfile.gettempdir()   # TMPDIR: the library's convention
            sh("true")                           # what runner reads for sh is its own
    """)
    r = project.run("--audit", "--log-format", "json", "build",
                    env=clean_env(MODE="fast", DECLARED="1"))
    assert r.code == 0, r.output
    env = by_what(findings(r), "env")
    assert list(env) == ["MODE", "ALSO"]
    assert env["MODE"]["suggestion"] == "MODE" and env["MODE"]["param"] == "env"


def test_the_environment_is_the_real_one_after_an_audited_run():
    """In process: the recording stand-in for os.environ is gone after the run, and
    writes made through it reached the real environment."""
    code = """
import io, os, sys, tempfile, textwrap
d = tempfile.mkdtemp()
open(os.path.join(d, "tasksfile.py"), "w").write(textwrap.dedent('''
    import os
    from runner import task
    @task(inputs=["tasksfile.py"])
    def t():
        os.environ["SET_BY_TASK"] = os.environ.get("X", "") + "!"
'''))
import runner.cli
real = type(os.environ)
out = io.StringIO()
assert runner.cli.main(["-C", d, "--audit", "t"], out, out) == 0, out.getvalue()
assert type(os.environ) is real, type(os.environ)
assert os.environ["SET_BY_TASK"] == "!" and os.getenv("SET_BY_TASK") == "!"
print("ok")
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env=clean_env(), timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr + r.stdout


def test_a_run_without_audit_loads_and_installs_nothing_of_it(project):
    project.tasksfile("""
        import os, sys

        @task
        def t():
            loaded = [m for m in ("runner.audit", "runner.strace", "runner.findings")
                      if m in sys.modules]
            print("loaded:", loaded, "environ:", type(os.environ).__name__)
    """)
    r = project.run("t")
    assert r.code == 0, r.output
    assert "loaded: [] environ: _Environ" in r.out


# ---------------------------------------------------------------- strict, report, history


def test_strict_runs_a_flagged_task_stores_nothing_and_exits_1(project):
    project.write("config.txt", "c")
    project.tasksfile("""
        @task(inputs=["tasksfile.py"], outputs=["out.txt"])
        def build():
            open("out.txt", "w").write(open("config.txt").read())
    """)
    r = project.run("--audit=strict", "build")
    assert r.code == 1, r.output
    assert project.read("out.txt") == "c", "the task ran"
    assert ("runner: warning: audit: build read config.txt, which no input pattern "
            "matches") in r.err
    assert "audit failed (--audit=strict): nothing was cached for build; exit 1" in r.out
    again = project.run("build")
    assert "> build" in again.out, "nothing was stored: it runs again"
    hit = project.run("build")
    assert "> build" not in hit.out, "a plain run stores its result as usual"


def test_warn_reports_and_stores(project):
    project.write("config.txt", "c")
    project.tasksfile("""
        @task(inputs=["tasksfile.py"])
        def build():
            open("config.txt").read()
    """)
    r = project.run("--audit", "build")
    assert r.code == 0 and "build: read config.txt" in r.out, r.output
    again = project.run("build")
    assert "> build" not in again.out


def test_an_up_to_date_task_is_reported_as_not_audited_and_runner_audit_runs_it(project):
    project.write("config.txt", "c")
    project.tasksfile("""
        @task(inputs=["tasksfile.py"])
        def build():
            open("config.txt").read()
    """)
    assert project.run("build").code == 0
    r = project.run("--audit", "build")
    assert "build: up to date, so it did not run (-B runs it)" in r.out, r.output
    forced = project.run("audit", "build")
    assert forced.code == 0, forced.output
    assert "> build" in forced.out and "build: read config.txt" in forced.out


def test_strict_in_config_and_runner_audit_in_the_environment(project):
    project.write("config.txt", "c")
    project.write("pyproject.toml", '[tool.runner]\naudit = "strict"\n')
    project.tasksfile("""
        @task(inputs=["tasksfile.py"])
        def build():
            open("config.txt").read()
    """)
    r = project.run("build")
    assert r.code == 1 and "audit (strict): 1 finding" in r.out, r.output
    off = project.run("build", env=clean_env(RUNNER_AUDIT="off"))
    assert off.code == 0 and "audit" not in off.out, off.output
    flag = project.run("--audit=warn", "-B", "build")
    assert flag.code == 0 and "audit (warn): 1 finding" in flag.out, flag.output


def test_a_bad_audit_mode_is_a_usage_error_naming_it(project):
    project.tasksfile("""
        @task
        def t():
            pass
    """)
    r = project.run("--audit=loud", "t")
    assert r.code == 2 and "--audit expects warn, strict or off, got 'loud'" in r.err
    project.write("pyproject.toml", '[tool.runner]\naudit = "always"\n')
    r = project.run("t")
    assert r.code == 2, r.output
    assert "pyproject.toml:2: tool.runner.audit: expected off, warn or strict" in r.err
    assert "Traceback" not in r.err


def test_the_json_stream_has_the_findings_and_the_verdict(project):
    project.write("config.txt", "c")
    project.tasksfile("""
        @task(inputs=["tasksfile.py"])
        def build():
            open("config.txt").read()
    """)
    r = project.run("--audit=strict", "--log-format", "json", "build")
    assert r.code == 1
    events = audit_events(r)
    assert [e["event"] for e in events] == ["audit_finding", "audit_finished"]
    finding, done = events
    assert finding["task"] == "build" and finding["names"] == ["config.txt"]
    assert finding["suggestion"] == "config.txt" and finding["param"] == "inputs"
    assert done["mode"] == "strict" and done["findings"] == 1 and done["audited"] == ["build"]
    last = json.loads(r.out.splitlines()[-1])
    assert last["event"] == "run_finished" and last["exit_code"] == 1
    assert "audit (" not in r.out, "no text report in the JSON stream"


def test_history_marks_audited_runs(project):
    project.write("config.txt", "c")
    project.tasksfile("""
        @task(inputs=["tasksfile.py"])
        def build():
            open("config.txt").read()
    """)
    project.run("build")
    project.run("audit", "--audit=strict", "build")
    h = project.run("history")
    lines = h.out.splitlines()
    assert lines[1].endswith("build  [audit strict: 1 finding]"), h.out
    assert lines[2].endswith("build"), h.out
    rows = json.loads(project.run("history", "--json").out)
    assert rows[0]["audit"] == {"mode": "strict", "findings": 1}
    assert "audit" not in rows[1]


# ---------------------------------------------------------------- parallel tasks


@needs_strace
def test_two_tasks_running_in_parallel_get_their_own_findings(project):
    use_tasklib(project)
    for name in ("a", "b"):
        project.write(f"{name}.cfg", name)
        project.write(f"{name}2.cfg", name)
    project.tasksfile("""
        import os
        from tasklib import ROOT, wait_until

        def together(me, other):
            # Both tasks are running before either reads anything.
            (ROOT / f"{me}.started").write_text("")
            assert wait_until(lambda: (ROOT / f"{other}.started").exists())

        @task(inputs=["tasksfile.py"], tools=["cat"])
        def a():
            together("a", "b")
            open("a.cfg").read()
            os.environ.get("A_MODE")
            sh("cat a2.cfg > /dev/null")

        @task(inputs=["tasksfile.py"], tools=["cat"])
        def b():
            together("b", "a")
            open("b.cfg").read()
            os.environ.get("B_MODE")
            sh("cat b2.cfg > /dev/null")

        @task(deps=[a, b])
        def both():
            pass
    """)
    r = project.run("--audit", "-j", "2", "--log-format", "json", "both")
    assert r.code == 0, r.output
    got = {}
    for f in findings(r):
        if f["what"] in ("read", "env"):
            got.setdefault(f["task"], set()).update(f["names"])
    assert got == {"a": {"a.cfg", "a2.cfg", "A_MODE"}, "b": {"b.cfg", "b2.cfg", "B_MODE"}}


# ---------------------------------------------------------------- without strace


def test_without_strace_commands_are_not_audited_and_the_report_says_so_once(project, tmp_path):
    bin_dir = tmp_path / "bin-without-strace"
    bin_dir.mkdir()
    for tool in ("cat", "true"):
        os.symlink(f"/usr/bin/{tool}" if os.path.exists(f"/usr/bin/{tool}") else f"/bin/{tool}",
                   bin_dir / tool)
    project.write("config.txt", "c")
    project.tasksfile("""
        @task(inputs=["tasksfile.py"], tools=["cat"])
        def one():
            sh("cat config.txt")
            open("config.txt").read()
            import subprocess
            subprocess.run(["true"], check=True)  # a program its Python code starts

        @task(inputs=["tasksfile.py"], tools=["cat"])
        def two():
            sh("cat config.txt")
    """)
    r = project.run("--audit", "one", "two", env=clean_env(PATH=str(bin_dir)))
    assert r.code == 0, r.output
    assert r.out.count("commands were not audited: strace is not installed") == 1, r.out
    assert "one: read config.txt" in r.out, "Python code is still audited"
    assert 'tools= does not declare: add tools=[..., "true"]' in r.out
    assert "two: read" not in r.out


# ---------------------------------------------------------------- stopping


@needs_strace
def test_ctrl_c_stops_a_traced_command_and_strace_with_it(project, marker):
    m = marker()
    project.tasksfile(f"""
        @task(inputs=["tasksfile.py"])
        def slow():
            sh("sleep {m} & sleep {m}; true")
    """)
    proc = project.popen("--audit", "slow", start_new_session=True)
    try:
        assert poll(lambda: len(processes_with_arg(m)) == 2 or proc.poll() is not None, 30)
        assert any("strace" in Path(f"/proc/{p}/cmdline").read_text()
                   for p in processes_mentioning(m)), "the command runs under strace"
        os.kill(proc.pid, signal.SIGINT)
        _out, err = proc.communicate(timeout=30)
    finally:
        stop(proc)
    assert proc.returncode == 130, err
    assert no_process_left(m)
    assert poll(lambda: not processes_mentioning(m), 5), "strace is gone too"


@needs_strace
def test_a_timeout_kills_the_traced_command_tree(project, marker):
    m = marker()
    project.tasksfile(f"""
        @task(inputs=["tasksfile.py"], timeout=1)
        def slow():
            sh("sh -c 'sleep {m}' & sleep {m}")
    """)
    began = time.monotonic()
    r = project.run("--audit", "slow", timeout=60)
    assert r.code == 1 and "timed out after 1s" in r.output, r.output
    assert time.monotonic() - began < 30
    assert no_process_left(m)
    assert poll(lambda: not processes_mentioning(m), 5)


# ---------------------------------------------------------------- reading strace's output


class Sink:
    """Collects what runner.strace reports, by kind."""

    def __init__(self) -> None:
        self.got: dict[str, list] = {}

    def __getattr__(self, kind):
        return lambda *paths: self.got.setdefault(kind, []).append(
            paths[0] if len(paths) == 1 else paths)


def parse_trace(tmp_path, text, *, cwd="/start", shell=True):
    from runner import strace

    f = tmp_path / "t.trace"
    f.write_text(text)
    sink = Sink()
    strace.parse(str(f), cwd, sink, shell_command=shell,
                 shells=frozenset({"/bin/sh", "/usr/bin/dash"}))
    return sink.got


def test_the_trace_parser_decodes_escaped_paths_and_joins_interrupted_calls(tmp_path):
    got = parse_trace(tmp_path, "\n".join([
        '10 execve("/bin/sh", ["sh", "-c", "x"], 0x1 /* 3 vars */) = 0',
        '10 openat(AT_FDCWD</p/we\\76ird \\"d\\">, "\\303\\251 f.txt", O_RDONLY) = 3</p/x>',
        '10 openat(AT_FDCWD</p>, "half.txt", O_RDONLY <unfinished ...>',
        '11 openat(AT_FDCWD</p>, "other.txt", O_WRONLY|O_CREAT|O_TRUNC, 0666) = 4</p/o>',
        '10 <... openat resumed>) = 5</p/half.txt>',
        '10 openat(AT_FDCWD</p>, "rw.txt", O_RDWR|O_CLOEXEC) = 6</p/rw.txt>',
        '10 openat(AT_FDCWD</p>, "sub", O_RDONLY|O_DIRECTORY) = 7</p/sub>',
        '10 getdents64(7</p/sub>, 0x55 /* 4 entries */, 32768) = 112',
        '10 newfstatat(3</p/x>, "", {st_mode=S_IFREG|0644, ...}, AT_EMPTY_PATH) = 0',
        '10 renameat2(AT_FDCWD</p>, "a.tmp", AT_FDCWD</p>, "a.txt", RENAME_NOREPLACE) = 0',
        '10 unlinkat(AT_FDCWD</p>, "gone", 0) = 0',
        '10 unlinkat(AT_FDCWD</p>, "dir", AT_REMOVEDIR) = 0',
        '10 exit_group(0)                    = ?',
        '',
    ]))
    assert got["read"] == ["/p/we>ird \"d\"/é f.txt", "/p/half.txt", "/p/rw.txt"]
    assert got["write"] == ["/p/other.txt", "/p/rw.txt"]
    assert got["listed"] == ["/p/sub"]
    assert got["rename"] == [("/p/a.tmp", "/p/a.txt")]
    assert got["remove"] == ["/p/gone"]
    assert "ran" not in got, "the shell itself is not a program the command chose"


def test_the_trace_parser_follows_the_working_directory_and_what_the_shell_ran(tmp_path):
    got = parse_trace(tmp_path, "\n".join([
        '10 execve("/bin/sh", ["sh", "-c", "x"], 0x1 /* 3 vars */) = 0',
        '10 chdir("sub")                     = 0',
        '10 vfork()                           = 11',
        '11 execve("./tool", ["./tool"], 0x1 /* 3 vars */) = 0',
        '11 open("data.txt", O_RDONLY)       = 3',
        '11 clone(child_stack=NULL, flags=SIGCHLD) = 12',
        '12 execve("/usr/bin/helper", ["helper"], 0x1 /* 3 vars */) = 0',
        '10 clone(child_stack=NULL, flags=SIGCHLD) = 13',
        '13 stat("../top.txt", {st_mode=S_IFREG|0644, ...}) = 0',
        '13 execve("/usr/bin/cat", ["cat"], 0x1 /* 3 vars */) = 0',
    ]))
    assert got["read"] == ["/start/sub/data.txt", "/start/top.txt"]
    # The shell's children ran ./tool and cat; the helper is the tool's own business.
    assert got["ran"] == ["/start/sub/tool", "/usr/bin/cat"]


def test_the_trace_parser_reports_a_list_commands_own_programs_only(tmp_path):
    got = parse_trace(tmp_path, "\n".join([
        '20 execve("/usr/bin/python3", ["python3", "-m", "ruff"], 0x1 /* 3 vars */) = 0',
        '20 execve("/venv/bin/ruff", ["ruff"], 0x1 /* 3 vars */) = 0',
        '20 clone3({flags=CLONE_VM, ...}, 88) = 21',
        '21 execve("/usr/bin/git", ["git"], 0x1 /* 3 vars */) = 0',
    ]), shell=False)
    assert got["ran"] == ["/usr/bin/python3", "/venv/bin/ruff"]


def test_a_project_inside_the_interpreters_prefix_is_still_judged():
    """A project in /usr/src/app with Python in /usr: only the interpreter's directories
    *inside* the project are left out, never the project itself."""
    from runner.findings import Scope

    root = os.path.join(sys.prefix, "src", "app")
    scope = Scope(root, os.path.join(root, ".runner"), [])
    assert not scope.excluded(os.path.join(root, "main.py"), "main.py")
    assert scope.excluded(os.path.join(root, ".runner", "x"), ".runner/x")


def test_completion_offers_audit_and_the_audit_command(project):
    project.tasksfile("""
        @task
        def build():
            pass
    """)
    flags = project.run("--complete=bash", "--", "--au").out.split()
    assert flags == ["--audit"]
    assert "audit" in project.run("--complete=bash", "--", "au").out.split()
