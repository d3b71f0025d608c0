"""runner-otel: the traces of real runs. In-process runs (`runner.cli.main`) send their
spans to the SDK's in-memory exporter, installed as the process's tracer provider (which
the plugin uses when there is one); subprocess runs check the exporters the plugin sets
up itself: the console, and OTLP to a local HTTP server."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time

import pytest
from plugin_testing import (
    Recorder,
    declared_entry_points,
    enable,
    env_without,
    install_dist_info,
    plugin_dir,
    refused_url,
)

pytest.importorskip("opentelemetry.sdk")

from opentelemetry import trace  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (  # noqa: E402
    InMemorySpanExporter,
)
from opentelemetry.trace import StatusCode  # noqa: E402

from runner import cli  # noqa: E402

TASKS = """\
from runner import task, sh

@task(inputs=["a.txt"], outputs=["out.txt"])
def build():
    \"\"\"Copy a.txt.\"\"\"
    sh("cp a.txt out.txt")
    sh(["echo", "built"])

@task(deps=[build])
def test():
    sh("exit 3")

@task(deps=[build])
def check():
    sh("true")
"""


@pytest.fixture(scope="session")
def memory_exporter() -> InMemorySpanExporter:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)  # once per process: OpenTelemetry's rule
    return exporter


@pytest.fixture
def spans(memory_exporter, monkeypatch):
    """The spans of the runs of this test (in-process runs only)."""
    for name in list(os.environ):
        if name.startswith(("RUNNER_", "OTEL_", "TRACE")):
            monkeypatch.delenv(name)
    memory_exporter.clear()
    yield memory_exporter
    memory_exporter.clear()


@pytest.fixture
def traced(project, monkeypatch):
    """A project with the otel plugin enabled; runs happen in this process."""
    project.write("tasksfile.py", TASKS)
    project.write("a.txt", "a\n")
    enable(project, "otel")
    monkeypatch.chdir(project.root)
    return project


def run(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(list(args), out, err)
    return code, out.getvalue(), err.getvalue()


def by_name(spans) -> dict:
    found = {s.name: s for s in spans.get_finished_spans()}
    assert len(found) == len(spans.get_finished_spans()), "span names repeat"
    return found


def hex_trace(span) -> str:
    return format(span.context.trace_id, "032x")


# ---------------------------------------------------------------- spans and attributes


def test_a_run_is_one_trace_a_span_per_task_and_per_command(traced, spans):
    code, _out, err = run("check")
    assert code == 0, err
    s = by_name(spans)
    assert set(s) == {"run", "task build", "task check", "sh cp", "sh echo", "sh true"}
    assert len({sp.context.trace_id for sp in s.values()}) == 1
    assert s["run"].parent is None
    assert s["task build"].parent.span_id == s["run"].context.span_id
    assert s["task check"].parent.span_id == s["run"].context.span_id
    assert s["sh cp"].parent.span_id == s["task build"].context.span_id
    assert s["sh echo"].parent.span_id == s["task build"].context.span_id
    assert s["sh true"].parent.span_id == s["task check"].context.span_id
    assert s["sh cp"].attributes["process.command_line"] == "cp a.txt out.txt"
    assert s["sh cp"].attributes["process.exit.code"] == 0


def test_task_spans_carry_the_cache_outcome_exit_code_and_fingerprint(traced, spans):
    assert run("build")[0] == 0
    ran = by_name(spans)["task build"].attributes
    code, fingerprint, _ = run("hash", "build")
    assert code == 0
    assert ran["runner.task.cache"] == "ran" and ran["runner.task.status"] == "ok"
    assert ran["runner.task.exit_code"] == 0
    assert ran["runner.task.fingerprint"] == fingerprint.strip()

    spans.clear()
    assert run("build")[0] == 0
    hit = by_name(spans)
    assert hit["task build"].attributes["runner.task.cache"] == "hit"
    assert hit["task build"].attributes["runner.task.fingerprint"] == fingerprint.strip()
    assert "sh cp" not in hit  # nothing ran

    spans.clear()
    os.remove("out.txt")
    assert run("build")[0] == 0
    assert by_name(spans)["task build"].attributes["runner.task.cache"] == "restored"


def test_a_failed_task_and_its_command_are_errors_with_the_exit_code(traced, spans):
    code, _out, _err = run("test")
    assert code == 1
    s = by_name(spans)
    assert s["task test"].attributes["runner.task.exit_code"] == 3
    assert s["task test"].attributes["runner.task.cache"] == "none"
    assert s["task test"].status.status_code is StatusCode.ERROR
    assert s["sh exit"].attributes["process.exit.code"] == 3
    assert s["sh exit"].status.status_code is StatusCode.ERROR
    assert s["run"].attributes["runner.run.status"] == "failed"
    assert s["run"].attributes["runner.run.exit_code"] == 1
    assert s["run"].status.status_code is StatusCode.ERROR
    assert s["task build"].status.status_code is StatusCode.UNSET


def test_a_retried_task_is_one_span_with_its_attempts(traced, spans):
    traced.write(
        "tasksfile.py",
        """\
        import os
        from runner import task, sh

        @task(retries=1)
        def flaky():
            first = not os.path.exists("tried")
            open("tried", "w").close()
            sh("exit 1" if first else "true")
        """,
    )
    assert run("flaky")[0] == 0
    s = spans.get_finished_spans()
    task_spans = [sp for sp in s if sp.name == "task flaky"]
    assert len(task_spans) == 1
    assert task_spans[0].attributes["runner.task.attempts"] == 2
    assert [e.name for e in task_spans[0].events] == ["retry"]
    commands = [sp for sp in s if sp.name.startswith("sh ")]
    assert len(commands) == 2
    assert all(c.parent.span_id == task_spans[0].context.span_id for c in commands)


def test_every_json_log_line_carries_the_trace_id(traced, spans):
    code, out, _err = run("--log-format", "json", "check")
    assert code == 0
    lines = [json.loads(line) for line in out.splitlines()]
    assert {line["event"] for line in lines} >= {"run_started", "task_finished", "run_finished"}
    trace_id = hex_trace(by_name(spans)["run"])
    assert {line.get("trace_id") for line in lines} == {trace_id}


def test_each_run_is_a_new_trace(traced, spans):
    assert run("check")[0] == 0
    assert run("check")[0] == 0
    runs = [s for s in spans.get_finished_spans() if s.name == "run"]
    assert len(runs) == 2 and runs[0].context.trace_id != runs[1].context.trace_id


def test_traceparent_makes_the_run_part_of_that_trace(traced, spans, monkeypatch):
    parent_trace, parent_span = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    monkeypatch.setenv("TRACEPARENT", f"00-{parent_trace}-{parent_span}-01")
    assert run("check")[0] == 0
    root = by_name(spans)["run"]
    assert hex_trace(root) == parent_trace
    assert format(root.parent.span_id, "016x") == parent_span


# ---------------------------------------------------------------- the plugin's own exporters


def subprocess_env(**extra: str) -> dict[str, str]:
    return env_without("OTEL_", "TRACE", **extra)


def test_without_a_collector_spans_go_to_the_console_on_stderr(project):
    project.write("tasksfile.py", TASKS)
    project.write("a.txt", "a\n")
    enable(project, "otel")
    r = project.run("--log-format", "json", "build", env=subprocess_env())
    assert r.code == 0, r.output
    lines = [json.loads(line) for line in r.out.splitlines()]  # stdout stays JSON lines
    assert '"name": "task build"' in r.err and '"name": "sh cp"' in r.err
    assert lines[0]["trace_id"] in r.err.replace("0x", "")


def test_with_an_otlp_endpoint_spans_are_posted_to_it(project):
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    project.write("tasksfile.py", TASKS)
    project.write("a.txt", "a\n")
    enable(project, "otel")
    with Recorder() as collector:
        r = project.run("build", env=subprocess_env(OTEL_EXPORTER_OTLP_ENDPOINT=collector.url))
    assert r.code == 0, r.output
    assert '"name"' not in r.err  # not the console
    assert [q.path for q in collector.requests] == ["/v1/traces"]
    assert collector.requests[0].headers["content-type"] == "application/x-protobuf"
    request = ExportTraceServiceRequest.FromString(collector.requests[0].body)
    resource = request.resource_spans[0]
    service = {a.key: a.value.string_value for a in resource.resource.attributes}
    assert service["service.name"] == "runner"
    names = {s.name for scope in resource.scope_spans for s in scope.spans}
    assert names == {"run", "task build", "sh cp", "sh echo"}


def test_a_collector_that_is_down_is_one_warning_not_a_failed_run(project):
    project.write("tasksfile.py", TASKS)
    project.write("a.txt", "a\n")
    enable(project, "otel")
    started = time.monotonic()
    r = project.run("build", env=subprocess_env(OTEL_EXPORTER_OTLP_ENDPOINT=refused_url()))
    assert r.code == 0, r.output
    assert time.monotonic() - started < 15
    warnings = [line for line in r.err.splitlines() if "warning" in line]
    assert len(warnings) == 1, r.err
    assert "spans could not be exported to http://127.0.0.1:" in warnings[0]
    assert "Transient error" not in r.err


def test_without_opentelemetry_installed_a_run_warns_once_and_succeeds(project, tmp_path):
    blocked = tmp_path / "blocked"
    (blocked / "opentelemetry").mkdir(parents=True)
    (blocked / "opentelemetry" / "__init__.py").write_text("raise ImportError('not here')\n")
    project.write("tasksfile.py", TASKS)
    project.write("a.txt", "a\n")
    enable(project, "otel")
    r = project.run("check", env=subprocess_env(PYTHONPATH=str(blocked)))
    assert r.code == 0, r.output
    warnings = [line for line in r.err.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "pip install 'runner-otel[sdk]'" in warnings[0], r.err


def test_listing_the_tasks_does_not_import_opentelemetry(project):
    project.write("tasksfile.py", TASKS)
    enable(project, "otel")
    code = (
        "import io, sys, runner.cli\n"
        "assert runner.cli.main(['--list'], io.StringIO(), sys.stderr) == 0\n"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=project.root,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_found_through_its_entry_point_when_installed(project, tmp_path):
    project.write("tasksfile.py", TASKS)
    project.write("a.txt", "a\n")
    site = tmp_path / "site"
    install_dist_info(site, "runner-otel", declared_entry_points("otel"))
    path = os.pathsep.join([str(site), str(plugin_dir("otel").parent)])
    r = project.run(
        "--log-format",
        "json",
        "build",
        env=subprocess_env(PYTHONPATH=path, OTEL_TRACES_EXPORTER="none"),
    )
    assert r.code == 0, r.output
    assert all(len(json.loads(line)["trace_id"]) == 32 for line in r.out.splitlines())
