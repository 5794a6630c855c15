"""The OTLP exporters this process uses: a short export timeout, and traces paused after a
failure, so that an absent collector costs the request path nothing."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

# Short, so an absent collector costs one failed attempt per batch instead of the SDK's 10 s.
DEFAULT_EXPORT_TIMEOUT_S = 2.0
# After a failed trace export, batches are dropped unencoded for this long: a down collector then
# costs the process no CPU (encoding spans that cannot be sent competes with requests for the GIL).
TRACE_EXPORT_PAUSE_S = 5.0


class PauseWhenDownExporter(SpanExporter):
    """Wraps the OTLP span exporter: after a failed export, drops batches without encoding or
    sending them for `pause_s`, then tries again. The inner exporter logs the failure."""

    def __init__(
        self, inner: SpanExporter, pause_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._inner = inner
        self._pause_s = pause_s
        self._clock = clock
        self._resume_at = 0.0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._clock() < self._resume_at:
            return SpanExportResult.FAILURE
        result = self._inner.export(spans)
        if result is not SpanExportResult.SUCCESS:
            self._resume_at = self._clock() + self._pause_s
        return result

    def shutdown(self) -> None:
        # Neither OTLP exporter waits in shutdown(): it only closes the channel or session.
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self._inner.force_flush(timeout_millis)


def otlp_timeout_s(signal: str) -> float | None:
    """Our short default unless the user set one (the exporters then read it themselves)."""
    if os.environ.get(f"OTEL_EXPORTER_OTLP_{signal}_TIMEOUT") or os.environ.get(
        "OTEL_EXPORTER_OTLP_TIMEOUT"
    ):
        return None
    return DEFAULT_EXPORT_TIMEOUT_S


def span_exporter(protocol: str) -> Any:
    # Imported here: only the chosen protocol's stack (grpc is heavy) gets loaded.
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    return OTLPSpanExporter(timeout=otlp_timeout_s("TRACES"))


def metric_exporter(protocol: str, timeout_s: float | None) -> Any:
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
    else:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    return OTLPMetricExporter(timeout=timeout_s)
