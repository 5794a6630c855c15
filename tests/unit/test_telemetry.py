"""Telemetry set-up: export plan, resource, Flask instrumentation, disabled SDK, log rate limit,
and shutdown against an absent collector."""

from __future__ import annotations

import logging
import os
import socket
import time
from collections import Counter

import flask
import numpy as np
import pytest
from opentelemetry import trace
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from service.telemetry.http_server import ACCESS_LOG_FIELDS_KEY
from service.telemetry.instruments import ModelInstruments
from service.telemetry.log_limits import RateLimitFilter
from service.telemetry.plan import export_plan
from service.telemetry.setup import (
    HTTP_DURATION_BUCKETS_S,
    Telemetry,
    build_resource,
    init_telemetry,
)
from tests.unit.otel_helpers import Card, metrics_by_name

pytestmark = pytest.mark.usefixtures("no_otel_env")


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_default_plan_is_embedded_metrics_without_trace_export() -> None:
    plan = export_plan({})
    assert (plan.disabled, plan.traces, plan.metrics) == (False, "none", "prometheus")
    assert plan.embedded_metrics


def test_an_otlp_endpoint_sends_both_signals_over_otlp() -> None:
    plan = export_plan({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317"})
    assert (plan.traces, plan.metrics, plan.traces_protocol) == ("otlp", "otlp", "grpc")
    assert not plan.embedded_metrics


def test_signal_exporters_and_protocols_are_chosen_separately() -> None:
    plan = export_plan(
        {
            "OTEL_TRACES_EXPORTER": "otlp",
            "OTEL_METRICS_EXPORTER": "prometheus",
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf",
        }
    )
    assert (plan.traces, plan.metrics) == ("otlp", "prometheus")
    assert (plan.traces_protocol, plan.metrics_protocol) == ("http/protobuf", "grpc")


@pytest.mark.parametrize(
    "environ",
    [
        {"OTEL_TRACES_EXPORTER": "zipkin"},
        {"OTEL_METRICS_EXPORTER": "console"},
        {"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"},
    ],
)
def test_unsupported_exporters_are_refused(environ: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="supported are"):
        export_plan(environ)


def test_resource_defaults_yield_to_the_standard_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    default = build_resource("1.2.3", "development").attributes
    assert default["service.name"] == "mlapi"
    assert default["service.version"] == "1.2.3"
    assert default["deployment.environment.name"] == "development"

    monkeypatch.setenv("OTEL_SERVICE_NAME", "pricing")
    monkeypatch.setenv(
        "OTEL_RESOURCE_ATTRIBUTES", "deployment.environment.name=prod,team=ds,service.version=9"
    )
    custom = build_resource("1.2.3", "development").attributes
    assert custom["service.name"] == "pricing"
    assert custom["deployment.environment.name"] == "prod"
    assert custom["service.version"] == "9"
    assert custom["team"] == "ds"


def test_every_process_gets_its_own_instance_id(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "service.instance.id=fixed")
    ids = {build_resource("1", "dev").attributes["service.instance.id"] for _ in range(3)}
    assert len(ids) == 3
    assert "fixed" not in ids


def make_app(telemetry: Telemetry) -> flask.Flask:
    app = flask.Flask("t")

    @app.post("/predict/<kind>")
    def predict(kind: str) -> dict:
        return {"trace_id": format(trace.get_current_span().get_span_context().trace_id, "032x")}

    @app.get("/healthz")
    def healthz() -> str:
        return "ok"

    telemetry.attach(app)
    return app


@pytest.fixture
def instrumented(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "none")
    # No trace exporter is configured: spans are recorded only when a sampler is asked for.
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "parentbased_always_on")
    reader = InMemoryMetricReader()
    telemetry = init_telemetry(service_version="1", extra_metric_readers=[reader])
    spans = InMemorySpanExporter()
    assert telemetry.tracer_provider is not None
    telemetry.tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    yield telemetry, make_app(telemetry).test_client(), reader, spans
    telemetry.shutdown(1.0)


def test_http_server_duration_uses_stable_conventions_with_fine_buckets(instrumented) -> None:
    _, client, reader, spans = instrumented
    response = client.post("/predict/a")
    assert response.status_code == 200
    assert client.get("/healthz").status_code == 200

    found = metrics_by_name(reader)
    assert "http.server.duration" not in found
    duration = found["http.server.request.duration"]
    assert duration.unit == "s"
    (point,) = duration.data.data_points
    assert point.attributes["http.route"] == "/predict/<kind>"
    assert point.attributes["http.request.method"] == "POST"
    assert point.attributes["http.response.status_code"] == 200
    assert tuple(point.explicit_bounds) == HTTP_DURATION_BUCKETS_S

    (span,) = spans.get_finished_spans()  # /healthz is excluded from traces too
    assert span.name == "POST /predict/<kind>"
    assert span.kind == trace.SpanKind.SERVER
    assert format(span.context.trace_id, "032x") == response.json["trace_id"]
    assert {e.trace_id for e in point.exemplars} == {span.context.trace_id}


def test_a_w3c_traceparent_joins_the_callers_trace(instrumented) -> None:
    _, client, _, spans = instrumented
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    response = client.post(
        "/predict/a", headers={"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"}
    )
    assert response.json["trace_id"] == trace_id
    (span,) = spans.get_finished_spans()
    assert span.parent is not None
    assert format(span.parent.span_id, "016x") == "00f067aa0ba902b7"


def test_embedded_mode_serves_prometheus_text() -> None:
    telemetry = init_telemetry(service_version="1")
    try:
        assert telemetry.plan.embedded_metrics
        ModelInstruments(telemetry.meter, Card(), ())
        client = make_app(telemetry).test_client()
        client.post("/predict/a")
        response = client.get("/metrics")
        assert response.status_code == 200
        assert response.mimetype == "text/plain"
        body = response.text
        assert 'mlapi_model_info{model_name="housing"' in body
        assert "http_server_request_duration_seconds_bucket" in body
        assert "target_info" in body
        # The stable conventions are in effect without a word written into the environment.
        assert "OTEL_SEMCONV_STABILITY_OPT_IN" not in os.environ
    finally:
        telemetry.shutdown(1.0)


def test_access_log_fields_carry_the_server_span_ids(instrumented) -> None:
    _, client, _, spans = instrumented
    with client:
        client.post("/predict/a")
        fields = flask.request.environ[ACCESS_LOG_FIELDS_KEY]
    (span,) = spans.get_finished_spans()
    assert fields == {
        "trace_id": format(span.context.trace_id, "032x"),
        "span_id": format(span.context.span_id, "016x"),
    }


def test_otlp_mode_has_no_metrics_route(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{closed_port()}")
    telemetry = init_telemetry(service_version="1")
    try:
        assert telemetry.metrics_app is None
        assert make_app(telemetry).test_client().get("/metrics").status_code == 404
    finally:
        telemetry.shutdown(1.0)


def test_sdk_disabled_turns_everything_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{closed_port()}")
    telemetry = init_telemetry(service_version="1")
    assert not telemetry.enabled
    assert telemetry.tracer_provider is None
    assert telemetry.meter_provider is None
    assert telemetry.metrics_app is None

    app = flask.Flask("t")
    original = app.wsgi_app
    telemetry.attach(app)
    assert app.wsgi_app == original
    assert app.test_client().get("/metrics").status_code == 404
    with telemetry.tracer.start_as_current_span("x") as span:
        assert not span.is_recording()
        assert not span.get_span_context().is_valid
    telemetry.shutdown(1.0)


def test_rate_limit_filter_lets_one_through_then_reports_the_count() -> None:
    now = [0.0]
    limiter = RateLimitFilter(interval_s=10.0, clock=lambda: now[0])

    def record(msg: str, *args: object) -> logging.LogRecord:
        return logging.LogRecord("sdk", logging.WARNING, __file__, 1, msg, args, None)

    assert limiter.filter(record("Queue full, dropping %s.", "span"))
    assert not any(limiter.filter(record("Queue full, dropping %s.", "span")) for _ in range(99))
    assert limiter.filter(record("another message"))
    now[0] = 10.5
    passed = record("Queue full, dropping %s.", "span")
    assert limiter.filter(passed)
    assert passed.getMessage() == (
        "Queue full, dropping span. [99 similar messages suppressed in the last 10 s]"
    )


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_shutdown_meets_its_deadline_with_an_absent_collector(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, protocol: str
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{closed_port()}")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", protocol)
    monkeypatch.setenv("OTEL_BSP_MAX_QUEUE_SIZE", "64")
    monkeypatch.setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "16")
    telemetry = init_telemetry(service_version="1")
    instruments = ModelInstruments(telemetry.meter, Card(), ())
    caplog.set_level(logging.WARNING)
    for _ in range(2000):
        with telemetry.tracer.start_as_current_span("request"):
            instruments.record_model_error(rows=1)

    started = time.monotonic()
    telemetry.shutdown(deadline_s=2.0)
    assert time.monotonic() - started < 5.0
    # Rate-limited: each SDK message template at most once (the interval outlasts the test).
    templates = Counter(
        (r.name, r.msg) for r in caplog.records if r.name.startswith("opentelemetry")
    )
    assert templates, "the absent collector should have been reported"
    assert max(templates.values()) == 1, templates


@pytest.mark.parametrize(("exemplar_filter", "expected"), [("", 0), ("trace_based", 1)])
def test_embedded_mode_skips_exemplars_unless_asked(
    monkeypatch: pytest.MonkeyPatch, exemplar_filter: str, expected: int
) -> None:
    # The Prometheus pull exporter drops exemplars, so recording them would be pure cost.
    monkeypatch.setenv("OTEL_METRICS_EXEMPLAR_FILTER", exemplar_filter)
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "always_on")
    reader = InMemoryMetricReader()
    telemetry = init_telemetry(service_version="1", extra_metric_readers=[reader])
    try:
        assert telemetry.plan.embedded_metrics
        with telemetry.tracer.start_as_current_span("request"):
            ModelInstruments(telemetry.meter, Card(), ()).record_predictions(
                np.array([[0.1, 0.2]]), np.array([20.0]), inference_s=0.001
            )
        (point,) = metrics_by_name(reader)["mlapi.prediction.value"].data.data_points
        assert len(point.exemplars) == expected
    finally:
        telemetry.shutdown(1.0)


def test_without_a_trace_exporter_spans_keep_ids_but_are_not_recorded() -> None:
    telemetry = init_telemetry(service_version="1")
    try:
        client = make_app(telemetry).test_client()
        trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
        joined = client.post(
            "/predict/a", headers={"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"}
        )
        assert joined.json["trace_id"] == trace_id
        assert client.post("/predict/a").json["trace_id"] != "0" * 32
        with telemetry.tracer.start_as_current_span("x") as span:
            assert not span.is_recording()
    finally:
        telemetry.shutdown(1.0)


@pytest.mark.parametrize(
    ("method", "path", "name"),
    [
        ("GET", "/no/such/path-1234", "GET"),
        ("DELETE", "/predict/a", "DELETE"),
        ("BREW", "/x", "HTTP"),
    ],
)
def test_a_request_no_route_matched_is_named_by_its_method_alone(
    instrumented, method: str, path: str, name: str
) -> None:
    """404 and 405: span names are span-metric labels, a raw path in one is unbounded."""
    _, client, _, spans = instrumented
    client.open(path, method=method)
    (span,) = spans.get_finished_spans()
    assert span.name == name
