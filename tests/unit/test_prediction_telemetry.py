"""Spans and meters around a prediction: span tree, attributes, rejections, model failures."""

from __future__ import annotations

import numpy as np
import pytest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from service.api.errors import ApiError, Detail
from service.api.prediction_telemetry import PredictionTelemetry
from service.settings import Settings
from service.telemetry.instruments import ModelInstruments
from service.telemetry.setup import init_telemetry
from tests.unit.otel_helpers import Card, metrics_by_name


class Doubler:
    def predict(self, features: np.ndarray) -> np.ndarray:
        return features[:, 0] * 2


class Broken:
    def predict(self, features: np.ndarray) -> np.ndarray:
        raise RuntimeError("model blew up")


@pytest.fixture
def observed(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest, no_otel_env: None):
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "none")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "parentbased_always_on")
    reader = InMemoryMetricReader()
    telemetry = init_telemetry(service_version="1", extra_metric_readers=[reader])
    spans = InMemorySpanExporter()
    assert telemetry.tracer_provider is not None
    telemetry.tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    span_features = Settings.from_env({"MLAPI_SPAN_FEATURES": getattr(request, "param", "")})
    instruments = ModelInstruments(telemetry.meter, Card(), ())
    observer = PredictionTelemetry(
        telemetry.tracer, instruments, Card(), span_features.span_features
    )
    yield telemetry, observer, reader, spans
    telemetry.shutdown(1.0)


def finished(spans: InMemorySpanExporter) -> dict:
    return {span.name: span for span in spans.get_finished_spans()}


def test_validate_and_model_spans_are_children_of_the_request_span(observed) -> None:
    telemetry, observer, _, spans = observed
    with telemetry.tracer.start_as_current_span("POST /predict"):
        with observer.validation():
            features = np.array([[3.0, 6.5]])
        observer.predict(Doubler(), features)

    by_name = finished(spans)
    server = by_name["POST /predict"]
    for child in ("validate", "model.predict"):
        assert by_name[child].parent.span_id == server.context.span_id
        assert by_name[child].context.trace_id == server.context.trace_id
    assert dict(by_name["model.predict"].attributes) == {
        "model.name": "housing",
        "model.version": "3",
        "model.sha256_prefix": "ab" * 6,
        "model.batch_size": 1,
        "model.prediction": 6.0,
    }


def test_batches_carry_size_but_no_single_prediction(observed) -> None:
    _, observer, reader, spans = observed
    observer.predict(Doubler(), np.array([[1.0, 0.0], [2.0, 0.0], [3.0, 0.0]]))
    attributes = finished(spans)["model.predict"].attributes
    assert attributes["model.batch_size"] == 3
    assert "model.prediction" not in attributes
    (point,) = metrics_by_name(reader)["mlapi.prediction.value"].data.data_points
    assert point.count == 3


@pytest.mark.parametrize("observed", ["true"], indirect=True)
def test_feature_values_join_the_span_only_when_opted_in(observed) -> None:
    _, observer, _, spans = observed
    observer.predict(Doubler(), np.array([[3.0, 6.5]]))
    attributes = finished(spans)["model.predict"].attributes
    assert (attributes["feature.CRIM"], attributes["feature.RM"]) == (3.0, 6.5)


def test_feature_values_stay_off_the_span_by_default(observed) -> None:
    _, observer, _, spans = observed
    observer.predict(Doubler(), np.array([[3.0, 6.5]]))
    assert not any(k.startswith("feature.") for k in finished(spans)["model.predict"].attributes)


def test_a_rejection_is_counted_and_named_without_stack_or_error_status(observed) -> None:
    _, observer, reader, spans = observed
    error = ApiError(
        "invalid_value",
        "2 problems",
        (
            Detail("records[0].RM", "not a number", "invalid_value", 0, "RM"),
            Detail("records[0].zzz", "unknown", "unknown_field", 0, None),
        ),
    )
    with pytest.raises(ApiError), observer.validation():
        raise error

    span = finished(spans)["validate"]
    assert span.attributes["mlapi.rejection.reason"] == "invalid_value"
    assert span.status.status_code == StatusCode.UNSET
    assert not span.events
    rejected = metrics_by_name(reader)["mlapi.input.rejected"]
    assert {
        (p.attributes["reason"], p.attributes["feature"]): p.value
        for p in rejected.data.data_points
    } == {("invalid_value", "RM"): 1, ("unknown_field", "_none"): 1}


def test_a_model_failure_records_the_exception_and_counts_error_rows(observed) -> None:
    _, observer, reader, spans = observed
    with pytest.raises(RuntimeError):
        observer.predict(Broken(), np.array([[1.0, 2.0], [3.0, 4.0]]))
    span = finished(spans)["model.predict"]
    assert span.status.status_code == StatusCode.ERROR
    assert [event.name for event in span.events] == ["exception"]
    points = metrics_by_name(reader)["mlapi.prediction.rows"].data.data_points
    assert {p.attributes["outcome"]: p.value for p in points} == {"ok": 0, "error": 2}
