"""Spans that could not be sent are kept, not lost: a bounded buffer in front of the OTLP span
exporter.

A batch whose export fails goes into the buffer, and so does every batch that arrives in the pause
that follows, without being encoded or sent: a down collector costs the request path (and the GIL)
nothing. After each pause the oldest batch is tried again, by the next export or, when no span
comes, by a retry thread that lives only while the buffer holds spans; once an export succeeds, the
buffer is sent, oldest first, and new batches go straight through again. The buffer is bounded by
span count and by estimated memory; beyond either bound the oldest spans are dropped and counted
(`on_drop`), so what an outage lost is exact and a rule can alert on it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import islice

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

logger = logging.getLogger(__name__)

# After a failed export, batches are buffered unencoded for this long before the next attempt.
RETRY_PAUSE_S = 5.0
# The SDK's default export batch: what a retry sends per export.
RETRY_BATCH_SPANS = 512
# A span of this service held in Python: about 2.8 KiB (measured with tracemalloc: a server span
# with its 11 attributes, `validate`, `model.predict` with 5). Each attribute adds roughly this.
SPAN_BASE_BYTES = 2048
ATTRIBUTE_BYTES = 96


@dataclass(frozen=True)
class BufferLimits:
    """The bound of one process's buffer (MLAPI_TRACE_BUFFER_SPANS, MLAPI_TRACE_BUFFER_BYTES)."""

    max_spans: int
    max_bytes: int


def estimated_bytes(span: ReadableSpan) -> int:
    """Memory a buffered span holds, roughly: cheap (no encoding), and only paid while buffering."""
    attributes = len(span.attributes or ()) + sum(len(e.attributes or ()) + 1 for e in span.events)
    return SPAN_BASE_BYTES + ATTRIBUTE_BYTES * attributes + len(span.name)


class OutageBuffer(SpanExporter):
    """Wraps the OTLP span exporter (which logs its own failures)."""

    def __init__(
        self,
        inner: SpanExporter,
        limits: BufferLimits,
        on_drop: Callable[[int], None],
        pause_s: float = RETRY_PAUSE_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._inner = inner
        self._limits = limits
        self._on_drop = on_drop
        self._pause_s = pause_s
        self._clock = clock
        self._retry_at = 0.0
        # Oldest first, each with its estimated bytes.
        self._buffer: deque[tuple[ReadableSpan, int]] = deque()
        self._bytes = 0
        # The batch processor exports from its worker and from force_flush/shutdown.
        self._lock = threading.Lock()
        self._retrier: threading.Thread | None = None
        self._stopped = threading.Event()

    @property
    def buffered_spans(self) -> int:
        return len(self._buffer)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        with self._lock:
            paused = self._clock() < self._retry_at
            if not self._buffer and not paused:
                result = self._inner.export(spans)
                if result is SpanExportResult.SUCCESS:
                    return result
                self._retry_at = self._clock() + self._pause_s
                paused = True
            self._keep(spans)
            if paused:
                self._retry_later()
                return SpanExportResult.SUCCESS
            return self._send_buffered(len(spans))

    def _retry_later(self) -> None:
        """Make sure someone tries again after the pause, also if no span ever comes again."""
        if self._retrier is None or not self._retrier.is_alive():
            self._retrier = threading.Thread(
                target=self._retry_until_empty, name="mlapi-trace-retry", daemon=True
            )
            self._retrier.start()

    def _retry_until_empty(self) -> None:
        while not self._stopped.wait(max(0.0, self._retry_at - self._clock())):
            with self._lock:
                if not self._buffer:
                    return
                if self._clock() >= self._retry_at:
                    self._send_buffered(RETRY_BATCH_SPANS)

    def _send_buffered(self, batch_size: int) -> SpanExportResult:
        """Oldest first, `batch_size` spans per export, until the buffer is empty or an export
        fails (then pause again)."""
        buffer = self._buffer
        while buffer:
            batch = [span for span, _ in islice(buffer, max(batch_size, 1))]
            if self._inner.export(batch) is not SpanExportResult.SUCCESS:
                self._retry_at = self._clock() + self._pause_s
                return SpanExportResult.FAILURE
            for _ in batch:
                self._bytes -= buffer.popleft()[1]
        return SpanExportResult.SUCCESS

    def _keep(self, spans: Sequence[ReadableSpan]) -> None:
        for span in spans:
            size = estimated_bytes(span)
            self._buffer.append((span, size))
            self._bytes += size
        dropped = 0
        while len(self._buffer) > self._limits.max_spans or self._bytes > self._limits.max_bytes:
            self._bytes -= self._buffer.popleft()[1]
            dropped += 1
        if dropped:
            self._on_drop(dropped)

    def shutdown(self, timeout_millis: float = 30_000) -> None:
        """One last attempt at the buffer unless the collector just failed (the exit must not
        wait on it); what stays is counted as dropped and logged."""
        self._stopped.set()
        with self._lock:
            if self._buffer and self._clock() >= self._retry_at:
                self._send_buffered(RETRY_BATCH_SPANS)
            if self._buffer:
                lost = len(self._buffer)
                self._buffer.clear()
                self._bytes = 0
                self._on_drop(lost)
                logger.warning("%d buffered spans not sent before shutdown", lost)
        # Neither OTLP exporter waits in shutdown(): it only closes the channel or session.
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self._inner.force_flush(timeout_millis)
