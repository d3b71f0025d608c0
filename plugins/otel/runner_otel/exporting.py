"""An exporter that counts what it failed to send, so that a collector that is down
costs one warning line at the end of a run rather than the SDK's log of retries."""

from __future__ import annotations

from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

    from opentelemetry.sdk.trace import ReadableSpan


class CountingExporter(SpanExporter):
    """Wraps an exporter; `take_lost()` is the number of spans it could not export
    since the last call."""

    def __init__(self, inner: SpanExporter, where: str) -> None:
        self.inner = inner
        self.where = where
        self.lost = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        result = self.inner.export(spans)
        if result is not SpanExportResult.SUCCESS:
            self.lost += len(spans)
        return result

    def take_lost(self) -> int:
        lost, self.lost = self.lost, 0
        return lost

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)
