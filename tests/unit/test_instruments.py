"""The ML meters against an in-memory reader: names, units, attributes, buckets, exemplars."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from otel_helpers import Card, metrics_by_name

from service.instruments import (
    BATCH_SIZE_BUCKETS,
    INFERENCE_BUCKETS_S,
    MAX_REASONS,
    ModelInstruments,
    prediction_buckets,
)

MODEL = {"model.name": "housing", "model.version": "3"}


@pytest.fixture
def reader() -> InMemoryMetricReader:
    return InMemoryMetricReader()


@pytest.fixture
def instruments(reader: InMemoryMetricReader) -> ModelInstruments:
    meter = MeterProvider(metric_readers=[reader], shutdown_on_exit=False).get_meter("test")
    return ModelInstruments(meter, Card())


def test_prediction_buckets_are_round_and_cover_the_target_range() -> None:
    buckets = prediction_buckets(5.0, 50.0)
    assert buckets[0] == 5.0
    assert buckets[-1] == 50.0
    assert len(buckets) == 46
    assert {round(b - a, 9) for a, b in itertools.pairwise(buckets)} == {1.0}


def test_prediction_buckets_on_a_small_range_keep_readable_boundaries() -> None:
    buckets = prediction_buckets(0.013, 0.871)
    assert buckets[0] <= 0.013
    assert buckets[-1] >= 0.871
    assert 20 <= len(buckets) <= 60
    assert all(len(repr(b)) <= 6 for b in buckets)


def test_prediction_buckets_refuse_an_empty_range() -> None:
    with pytest.raises(ValueError, match="cannot carry"):
        prediction_buckets(3.0, 3.0)


def test_a_prediction_records_every_meter_with_model_attributes(
    instruments: ModelInstruments, reader: InMemoryMetricReader
) -> None:
    instruments.record_predictions(np.array([21.5, 30.2, 7.0]), inference_s=0.0004)
    found = metrics_by_name(reader)

    values = found["mlapi.prediction.value"]
    assert values.unit == "{k$}"
    (point,) = values.data.data_points
    assert dict(point.attributes) == MODEL
    assert point.count == 3
    assert point.sum == pytest.approx(58.7)
    assert tuple(point.explicit_bounds) == prediction_buckets(5.0, 50.0)

    inference = found["mlapi.model.inference.duration"]
    assert inference.unit == "s"
    (point,) = inference.data.data_points
    assert tuple(point.explicit_bounds) == INFERENCE_BUCKETS_S
    assert dict(point.attributes) == MODEL

    batch = found["mlapi.prediction.batch.size"]
    assert batch.unit == "{row}"
    (point,) = batch.data.data_points
    assert tuple(point.explicit_bounds) == BATCH_SIZE_BUCKETS
    assert point.sum == 3

    rows = found["mlapi.prediction.rows"]
    assert rows.unit == "{row}"
    (point,) = rows.data.data_points
    assert dict(point.attributes) == {**MODEL, "outcome": "ok"}
    assert point.value == 3


def test_model_info_is_one_series_equal_to_one(
    instruments: ModelInstruments, reader: InMemoryMetricReader
) -> None:
    info = metrics_by_name(reader)["mlapi.model.info"]
    (point,) = info.data.data_points
    assert point.value == 1
    assert dict(point.attributes) == {
        **MODEL,
        "model.sha256": "ab" * 32,
        "model.trained_at": "2026-11-26T20:00:00Z",
    }


def test_rejections_map_unknown_fields_to_one_value(
    instruments: ModelInstruments, reader: InMemoryMetricReader
) -> None:
    instruments.record_rejection([("out_of_range", "RM"), ("not_a_number", "CRIM")])
    for i in range(500):
        instruments.record_rejection([("unknown_field", f"client-field-{i}")])
    instruments.record_rejection([("invalid_json", None)])

    rejected = metrics_by_name(reader)["mlapi.input.rejected"]
    series = {
        (p.attributes["reason"], p.attributes["feature"]): p.value
        for p in rejected.data.data_points
    }
    assert series == {
        ("out_of_range", "RM"): 1,
        ("not_a_number", "CRIM"): 1,
        ("unknown_field", "_unknown"): 500,
        ("invalid_json", "_none"): 1,
    }


def test_rejection_reasons_are_capped(
    instruments: ModelInstruments, reader: InMemoryMetricReader
) -> None:
    for i in range(MAX_REASONS + 20):
        instruments.record_rejection([(f"reason_{i}", None)])
    rejected = metrics_by_name(reader)["mlapi.input.rejected"]
    reasons = {p.attributes["reason"] for p in rejected.data.data_points}
    assert len(reasons) == MAX_REASONS + 1
    assert "_other" in reasons


def test_model_errors_count_rows_by_outcome(
    instruments: ModelInstruments, reader: InMemoryMetricReader
) -> None:
    instruments.record_model_error(rows=4)
    (point,) = metrics_by_name(reader)["mlapi.prediction.rows"].data.data_points
    assert dict(point.attributes) == {**MODEL, "outcome": "error"}
    assert point.value == 4


def test_prediction_exemplar_carries_the_trace_id_of_the_sampled_span(
    instruments: ModelInstruments, reader: InMemoryMetricReader
) -> None:
    tracer = TracerProvider(shutdown_on_exit=False).get_tracer("test")
    with tracer.start_as_current_span("model.predict") as span:
        instruments.record_predictions(np.array([21.5]), inference_s=0.0004)
    context = span.get_span_context()

    found = metrics_by_name(reader)
    for name in ("mlapi.prediction.value", "mlapi.model.inference.duration"):
        (point,) = found[name].data.data_points
        assert point.exemplars, name
        assert {e.trace_id for e in point.exemplars} == {context.trace_id}
        assert {e.span_id for e in point.exemplars} == {context.span_id}
