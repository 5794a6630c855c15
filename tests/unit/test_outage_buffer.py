"""The outage buffer: spans that could not be sent are kept within their bound and sent once the
collector is back, oldest first; beyond the bound the oldest go, each one counted."""

from __future__ import annotations

import time

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from service.telemetry.outage_buffer import BufferLimits, OutageBuffer, estimated_bytes

ROOMY = BufferLimits(max_spans=1000, max_bytes=10**9)


class Collector(SpanExporter):
    """Accepts (records) batches while `up`, refuses them while down; counts the attempts."""

    def __init__(self) -> None:
        self.up = True
        self.attempts = 0
        self.received: list[str] = []

    def export(self, spans):  # type: ignore[no-untyped-def]
        self.attempts += 1
        if not self.up:
            return SpanExportResult.FAILURE
        self.received += [span.name for span in spans]
        return SpanExportResult.SUCCESS


def spans(*names: str) -> list[ReadableSpan]:
    tracer = TracerProvider(shutdown_on_exit=False).get_tracer("t")
    made = []
    for name in names:
        span = tracer.start_span(name)
        span.end()
        made.append(span)
    return made


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def buffer(
    collector: Collector, limits: BufferLimits = ROOMY
) -> tuple[OutageBuffer, list[int], Clock]:
    dropped: list[int] = []
    clock = Clock()
    return OutageBuffer(collector, limits, dropped.append, pause_s=5.0, clock=clock), dropped, clock


def test_batches_go_straight_through_while_the_collector_is_up() -> None:
    collector = Collector()
    exporter, dropped, _clock = buffer(collector)
    assert exporter.export(spans("a", "b")) is SpanExportResult.SUCCESS
    assert collector.received == ["a", "b"] and exporter.buffered_spans == 0 and dropped == []


def test_an_outage_loses_nothing_and_costs_one_attempt_per_pause() -> None:
    collector = Collector()
    exporter, dropped, clock = buffer(collector)
    collector.up = False
    exporter.export(spans("a"))  # fails: kept, pause begins
    for name in "bcd":
        exporter.export(spans(name))  # in the pause: kept without an attempt
    assert collector.attempts == 1 and exporter.buffered_spans == 4
    clock.now += 5.0
    exporter.export(spans("e"))  # one attempt with the oldest batch: fails again
    assert collector.attempts == 2 and exporter.buffered_spans == 5
    collector.up = True
    clock.now += 5.0
    assert exporter.export(spans("f")) is SpanExportResult.SUCCESS
    assert collector.received == list("abcdef")  # everything, oldest first
    assert exporter.buffered_spans == 0 and dropped == []


def test_beyond_the_span_bound_the_oldest_spans_are_dropped_and_counted() -> None:
    collector = Collector()
    exporter, dropped, clock = buffer(collector, BufferLimits(max_spans=3, max_bytes=10**9))
    collector.up = False
    exporter.export(spans("a", "b"))
    exporter.export(spans("c", "d", "e"))
    assert exporter.buffered_spans == 3 and sum(dropped) == 2
    collector.up = True
    clock.now += 5.0
    exporter.export(spans("f"))
    assert sum(dropped) == 3 and collector.received == ["d", "e", "f"]


def test_the_memory_bound_applies_too() -> None:
    one = estimated_bytes(spans("x")[0])
    collector = Collector()
    exporter, dropped, _clock = buffer(collector, BufferLimits(max_spans=1000, max_bytes=2 * one))
    collector.up = False
    exporter.export(spans("a", "b", "c", "d"))
    assert exporter.buffered_spans == 2 and sum(dropped) == 2


def test_shutdown_sends_the_buffer_or_counts_what_it_could_not() -> None:
    collector = Collector()
    exporter, dropped, clock = buffer(collector)
    collector.up = False
    exporter.export(spans("a", "b"))
    collector.up = True
    clock.now += 5.0
    exporter.shutdown()
    assert collector.received == ["a", "b"] and dropped == []

    collector = Collector()
    exporter, dropped, clock = buffer(collector)
    collector.up = False
    exporter.export(spans("a", "b"))
    exporter.shutdown()  # in the pause after a failure: no waiting on a dead collector
    assert collector.attempts == 1 and dropped == [2]


def test_the_buffer_is_sent_after_the_outage_even_when_no_span_comes() -> None:
    """The retry does not wait for traffic: a quiet service still delivers its outage."""
    collector = Collector()
    exporter = OutageBuffer(collector, ROOMY, [].append, pause_s=0.05)
    collector.up = False
    exporter.export(spans("a", "b"))
    collector.up = True
    deadline = time.monotonic() + 10
    while collector.received != ["a", "b"] and time.monotonic() < deadline:
        time.sleep(0.02)
    assert collector.received == ["a", "b"] and exporter.buffered_spans == 0
    exporter.shutdown()
