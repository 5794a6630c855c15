"""Pieces of the telemetry on the request path, each on the real SDK objects that
init_telemetry() builds for the OTLP path (sampler, resource, views, exemplar filter): the
server span and its context as the Flask/WSGI instrumentation makes them, its attribute and
semconv work, the two leaf spans of service/api/prediction_telemetry.py, every metric call of a
/predict, and the span processor's hand-off. Spans here have no processor; the batch processor
and the export are pieces of their own, so nothing is counted twice."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import numpy as np
from opentelemetry import context, propagate, trace
from opentelemetry.instrumentation import wsgi as otel_wsgi
from opentelemetry.instrumentation._semconv import _StabilityMode
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.semconv._incubating.metrics.http_metrics import (
    create_http_server_active_requests,
)
from opentelemetry.util.http import parse_excluded_urls
from werkzeug.sansio.utils import get_current_url

from bench.cost_table import Piece
from bench.service_api import Subject, excluded_urls, instrument_calls
from bench.wsgi_request import PATH, predict_environ

HTTP = _StabilityMode.HTTP
ROUTE = PATH
SPAN_NAME = f"POST {ROUTE}"
RESPONSE_HEADERS = [("Content-Type", "application/json"), ("Content-Length", "180")]
BATCH = 1000
# One BatchSpanProcessor export batch (the SDK's default size).
SPAN_BATCH = 512
N = 2000  # calls per repeat for microsecond pieces


class DiscardingExporter(SpanExporter):
    """Accepts every batch and keeps nothing: the processor's own cost, without export."""

    def export(self, spans: Any) -> SpanExportResult:
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        """Nothing to release."""


def request_attributes(environ: dict[str, Any]) -> dict[str, Any]:
    attributes = otel_wsgi.collect_request_attributes(environ, HTTP)
    attributes["http.route"] = ROUTE
    return attributes


@contextmanager
def inside_request(subject: Subject) -> Iterator[trace.Span]:
    """A live, sampled server span made current, as during a request: exemplars and leaf
    spans see it as the instrumentation leaves it."""
    tracer = subject.telemetry.tracer
    span = tracer.start_span(SPAN_NAME, kind=trace.SpanKind.SERVER)
    token = context.attach(trace.set_span_in_context(span))
    try:
        yield span
    finally:
        context.detach(token)
        span.end()


def server_span_pieces(subject: Subject, live: trace.Span) -> list[Piece]:
    provider = subject.telemetry.tracer_provider
    assert provider is not None
    tracer = provider.get_tracer("opentelemetry.instrumentation.flask")
    environ = predict_environ(b"{}")
    attributes = request_attributes(environ)
    empty = context.Context()
    group = "server span + context (Flask instrumentation)"

    def extract_and_attach() -> None:
        token = context.attach(propagate.extract(environ, getter=otel_wsgi.wsgi_getter))
        context.detach(token)

    def start_and_end() -> None:
        tracer.start_span(
            SPAN_NAME, context=empty, kind=trace.SpanKind.SERVER,
            start_time=time.time_ns(), attributes=attributes,
        ).end()  # fmt: skip

    def set_again() -> None:
        for key, value in attributes.items():
            live.set_attribute(key, value)

    def use_span() -> None:
        with trace.use_span(live, end_on_exit=False):
            pass

    def access_log_ids() -> None:
        # _add_trace_ids_to_access_log, then current_trace_id() for the response body.
        ids = trace.get_current_span().get_span_context()
        format(ids.trace_id, "032x"), format(ids.span_id, "016x")
        format(trace.get_current_span().get_span_context().trace_id, "032x")

    pieces = [
        Piece(group, "extract traceparent (none sent) + context attach/detach",
              extract_and_attach, N),
        Piece(group, f"start_span SERVER with {len(attributes)} attributes + end",
              start_and_end, N),
        Piece(group, "request attributes set again one by one on the span", set_again, N),
        Piece(group, "use_span: span made current and restored", use_span, N),
        Piece(group, "response status on the span (add_response_attributes)",
              lambda: otel_wsgi.add_response_attributes(live, "200 OK", RESPONSE_HEADERS,
                                                        dict(attributes), HTTP), N),
        Piece(group, "trace/span ids formatted for the access log and the response",
              access_log_ids, N),
    ]  # fmt: skip
    return [replace(p, layer="attach") for p in pieces]


def instrumentation_pieces() -> list[Piece]:
    environ = predict_environ(b"{}")
    attributes = request_attributes(environ)
    excluded = parse_excluded_urls(excluded_urls())
    url = get_current_url("http", "127.0.0.1:8000", "", PATH, b"")
    group = "Flask/WSGI instrumentation: attributes and semconv"

    def filter_metric_attributes() -> None:
        otel_wsgi._parse_active_request_count_attrs(attributes, HTTP)
        otel_wsgi._parse_duration_attrs(attributes, HTTP)

    pieces = [
        Piece(group, "collect_request_attributes (semconv; called twice per request)",
              lambda: otel_wsgi.collect_request_attributes(environ, HTTP), N, calls=(2, 2)),
        Piece(group, "request.url built (cached per request)",
              lambda: get_current_url("http", "127.0.0.1:8000", "", PATH, b""), N),
        Piece(group, "excluded-URL regex on request.url (3 times per request)",
              lambda: excluded.url_disabled(url), N, calls=(3, 3)),
        Piece(group, "custom request-header attributes (env read + sanitiser per request)",
              lambda: otel_wsgi.collect_custom_request_headers_attributes(environ), N),
        Piece(group, "custom response-header attributes (env read + sanitiser per request)",
              lambda: otel_wsgi.collect_custom_response_headers_attributes(RESPONSE_HEADERS), N),
        Piece(group, "active-request and duration attribute filtering",
              filter_metric_attributes, N),
    ]  # fmt: skip
    return [replace(p, layer="attach") for p in pieces]


def metric_pieces(subject: Subject, live: trace.Span) -> list[Piece]:
    provider = subject.telemetry.meter_provider
    assert provider is not None
    # The instrumentation's two instruments by name on a meter of their own: the service's
    # View (18 buckets) matches by name, so they aggregate as the real ones do.
    meter = provider.get_meter("bench.flask-instrumentation")
    duration = meter.create_histogram("http.server.request.duration", unit="s")
    active = create_http_server_active_requests(meter)
    attributes = request_attributes(predict_environ(b"{}"))
    otel_wsgi.add_response_attributes(live, "200 OK", RESPONSE_HEADERS, attributes, HTTP)
    duration_attributes = otel_wsgi._parse_duration_attrs(attributes, HTTP)
    duration_attributes["http.route"] = ROUTE
    active_attributes = otel_wsgi._parse_active_request_count_attrs(attributes, HTTP)
    instruments = subject.instruments
    calls = instrument_calls(instruments)
    one_row = np.full((1, len(subject.model.card.features)), 1.0)
    rows = np.repeat(one_row, BATCH, axis=0)
    # Predictions spread over the target's range, as a real batch's (about 45 buckets touched).
    one_value, values = np.array([22.5]), np.linspace(5.0, 50.0, BATCH)
    outside = context.Context()
    group = "metrics: instrument calls per request"

    def active_requests() -> None:
        active.add(1, active_attributes)
        active.add(-1, active_attributes)

    def request_duration() -> None:
        duration.record(0.004, duration_attributes, context=trace.set_span_in_context(live))

    return [
        Piece(group, "http.server.active_requests add +1 and -1", active_requests, N,
              layer="attach"),
        Piece(group, "http.server.request.duration record (exemplar)", request_duration, N,
              layer="attach"),
        Piece(group, "mlapi.model.inference.duration record",
              lambda: calls.inference_record(1e-4), N),
        Piece(group, "mlapi.prediction.batch.size record", lambda: calls.batch_record(1), N),
        Piece(group, "mlapi.prediction.value record (1 row, exemplar)",
              lambda: calls.prediction_record(22.5), N, calls=(1, 0)),
        Piece(group, "mlapi.prediction.value record_many (1000 rows, exemplar per bucket)",
              lambda: calls.prediction_record_many(values), 50, calls=(0, 1)),
        Piece(group, "  the same outside a sampled span (no exemplar offered)",
              lambda: calls.prediction_record(22.5, outside), N, calls=(0, 0)),
        Piece(group, "drift/range/threshold/rows counts (numpy, 1 row)",
              lambda: calls.signals_record(one_row, one_value), N, calls=(1, 0)),
        Piece(group, "drift/range/threshold/rows counts (numpy, 1000 rows)",
              lambda: calls.signals_record(rows, values), 50, calls=(0, 1)),
        Piece(group, "  record_predictions whole, 1 row (= the four above)",
              lambda: instruments.record_predictions(one_row, one_value, 1e-4), N, calls=(0, 0)),
        Piece(group, "  record_predictions whole, 1000 rows",
              lambda: instruments.record_predictions(rows, values, 1e-3), 20, calls=(0, 0)),
    ]  # fmt: skip


class _FixedModel:
    """Answers instantly, so PredictionTelemetry.predict() shows its own cost only."""

    def __init__(self, predictions: np.ndarray) -> None:
        self._predictions = predictions

    def predict(self, features: np.ndarray) -> np.ndarray:
        return self._predictions


def prediction_span_pieces(subject: Subject) -> list[Piece]:
    tracer = subject.telemetry.tracer
    card = subject.model.card
    model_attributes = {
        "model.name": card.name,
        "model.version": card.version,
        "model.sha256_prefix": card.artifact_sha256[:12],
    }
    observed = subject.prediction_telemetry
    one_row = np.full((1, len(card.features)), 1.0)
    fixed = _FixedModel(np.array([22.5]))
    group = "prediction spans (service/api/prediction_telemetry.py)"

    def validate_span() -> None:
        tracer.start_span("validate", attributes=None, start_time=time.time_ns()).end()

    def predict_span() -> None:
        attributes: dict[str, Any] = {**model_attributes, "model.batch_size": 1}
        attributes["model.prediction"] = 22.5
        tracer.start_span("model.predict", attributes=attributes, start_time=time.time_ns()).end()

    def validation_whole() -> None:
        with observed.validation():
            pass

    return [
        Piece(group, "validate leaf span (start at measured time + end)", validate_span, N),
        Piece(group, "model.predict leaf span with 5 attributes", predict_span, N),
        Piece(group, "  PredictionTelemetry.validation() whole", validation_whole, N, calls=(0, 0)),
        Piece(group, "  PredictionTelemetry.predict() whole, instant model, 1 row (span + meters)",
              lambda: observed.predict(fixed, one_row), N, calls=(0, 0)),
    ]  # fmt: skip


def processor_piece(spans: list[ReadableSpan]) -> Piece:
    """The batch processor's hand-off of each ended span (enqueue, wake-up, batching) with an
    exporter that does nothing; 3 spans per request."""
    processor = BatchSpanProcessor(DiscardingExporter())
    batch = spans[:SPAN_BATCH]

    def hand_off() -> None:
        for span in batch:
            processor.on_end(span)
        processor.force_flush()

    return Piece(
        "export (the span processor's thread, per span)",
        "BatchSpanProcessor on_end + batching, per span (no-op exporter)",
        hand_off, 10, calls=(3, 3), operations=len(batch), layer="processor",
    )  # fmt: skip
