"""Where the spans go. If the process already set up OpenTelemetry (a global tracer
provider: `opentelemetry-instrument runner ...`, or a program that calls runner's CLI
in-process), runner's spans join it. Otherwise the plugin makes its own provider from
the standard variables: `OTEL_TRACES_EXPORTER` (otlp, console, none; default otlp when
`OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set, console
otherwise), `OTEL_EXPORTER_OTLP_*` for the exporter, `OTEL_SERVICE_NAME` (default
"runner") and `OTEL_RESOURCE_ATTRIBUTES`."""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import TracerProvider

# How long the end of a run may wait for its spans to be exported, and the OTLP
# exporter's time limit (retries included) unless OTEL_EXPORTER_OTLP_TIMEOUT sets one:
# a collector that is down must not hold up every run for long.
FLUSH_MILLIS = 10_000
OTLP_TIMEOUT = 3.0


class SetupError(Exception):
    """OpenTelemetry is missing or its variables ask for what the plugin cannot do."""


class ExportError(Exception):
    """Spans of the run could not be exported (the collector is down, say)."""


_own: Any = None  # the provider this plugin made, once made
_counting: list[Any] = []  # its OTLP exporters (CountingExporter)


def tracer_provider() -> TracerProvider:
    """The process's tracer provider if it has one, else the plugin's own."""
    global _own
    try:
        from opentelemetry import trace
    except ImportError as e:
        raise SetupError(
            f"OpenTelemetry is not installed: pip install 'runner-otel[sdk]' ({e})"
        ) from None
    provider = trace.get_tracer_provider()
    if not isinstance(provider, trace.ProxyTracerProvider):
        return provider
    if _own is None:
        _own = make_provider(os.environ)
    return _own


def make_provider(environ: Mapping[str, str]) -> TracerProvider:
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError as e:
        raise SetupError(
            f"the OpenTelemetry SDK is not installed: pip install 'runner-otel[sdk]' ({e})"
        ) from None
    name = environ.get("OTEL_SERVICE_NAME") or "runner"
    provider = TracerProvider(resource=Resource.create({"service.name": name}))
    for exporter in make_exporters(environ):
        provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def make_exporters(environ: Mapping[str, str]) -> list[SpanExporter]:
    names = [n.strip().lower() for n in environ.get("OTEL_TRACES_EXPORTER", "").split(",")]
    names = [n for n in names if n]
    if not names:
        endpoint = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or environ.get(
            "OTEL_EXPORTER_OTLP_ENDPOINT"
        )
        names = ["otlp" if endpoint else "console"]
    exporters: list[SpanExporter] = []
    for name in names:
        if name == "none":
            continue
        if name == "console":
            from opentelemetry.sdk.trace.export import ConsoleSpanExporter

            # stderr: standard output may be JSON lines (--log-format json).
            exporters.append(ConsoleSpanExporter(out=sys.stderr))
        elif name == "otlp":
            exporters.append(_otlp_exporter(environ))
        else:
            raise SetupError(
                f"OTEL_TRACES_EXPORTER={name!r}: runner-otel knows otlp, console and none"
            )
    return exporters


def _otlp_exporter(environ: Mapping[str, str]) -> SpanExporter:
    protocol = (
        environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "http/protobuf"
    )
    try:
        if protocol == "grpc":
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        else:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
                OTLPSpanExporter,
            )
    except ImportError as e:
        package = "grpc" if protocol == "grpc" else "http"
        raise SetupError(
            f"the OTLP exporter is not installed: pip install "
            f"opentelemetry-exporter-otlp-proto-{package} ({e})"
        ) from None
    import logging

    from .exporting import CountingExporter

    timed = environ.get("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT") or environ.get(
        "OTEL_EXPORTER_OTLP_TIMEOUT"
    )
    inner = OTLPSpanExporter() if timed else OTLPSpanExporter(timeout=OTLP_TIMEOUT)
    # Its retries are logged line by line; flush() reports a failure once instead.
    logging.getLogger("opentelemetry.exporter.otlp").setLevel(logging.CRITICAL)
    endpoint = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or environ.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT", "the default OTLP endpoint"
    )
    exporter = CountingExporter(inner, _origin(endpoint))
    _counting.append(exporter)
    return exporter


def _origin(url: str) -> str:
    """scheme://host:port of a URL: what a message may show of it."""
    scheme, sep, rest = url.partition("://")
    return f"{scheme}{sep}{rest.split('/', 1)[0].rpartition('@')[2]}" if sep else url


def flush(provider: Any) -> None:
    """Export what the run made before runner exits (a bounded wait); ExportError if
    some of it could not be."""
    force_flush = getattr(provider, "force_flush", None)
    if force_flush is not None:
        force_flush(FLUSH_MILLIS)
    for exporter in _counting:
        lost = exporter.take_lost()
        if lost:
            raise ExportError(f"{lost} spans could not be exported to {exporter.where}")
