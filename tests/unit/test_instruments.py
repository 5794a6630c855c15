"""The ML meters against an in-memory reader: names, units, attributes, buckets, exemplars."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import Gauge, InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider

from service.api.feedback_body import FeedbackBatch
from service.model.drift_reference import bin_counts
from service.telemetry.instruments import (
    BATCH_SIZE_BUCKETS,
    FEEDBACK_DELAY_BUCKETS_S,
    INFERENCE_BUCKETS_S,
    MAX_FEEDBACK_VERSIONS,
    MAX_REASONS,
    OTHER_VERSION,
    ModelInstruments,
    error_buckets,
    prediction_buckets,
)
from tests.unit.otel_helpers import Card, metrics_by_name

MODEL = {"model.name": "housing", "model.version": "3"}


FEEDBACK_REASONS = ("expired", "invalid_value")


@pytest.fixture
def reader() -> InMemoryMetricReader:
    return InMemoryMetricReader()


@pytest.fixture
def instruments(reader: InMemoryMetricReader) -> ModelInstruments:
    meter = MeterProvider(metric_readers=[reader], shutdown_on_exit=False).get_meter("test")
    return ModelInstruments(meter, Card(), FEEDBACK_REASONS)


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
    instruments.record_predictions(
        np.zeros((3, 2)), np.array([21.5, 30.2, 7.0]), inference_s=0.0004
    )
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
    # Both outcomes exist from the start (error at 0), so increase() in the rules is exact.
    assert {tuple(sorted(p.attributes.items())): p.value for p in rows.data.data_points} == {
        tuple(sorted({**MODEL, "outcome": "ok"}.items())): 3,
        tuple(sorted({**MODEL, "outcome": "error"}.items())): 0,
    }


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


def test_feedback_rejection_reasons_exist_at_zero_and_more_are_capped(
    instruments: ModelInstruments, reader: InMemoryMetricReader
) -> None:
    instruments.record_feedback_rejection([f"reason_{i}" for i in range(2 * MAX_REASONS)])
    rejected = metrics_by_name(reader)["mlapi.feedback.rejected"]
    counts = {p.attributes["reason"]: p.value for p in rejected.data.data_points}
    assert {reason: counts[reason] for reason in FEEDBACK_REASONS} == dict.fromkeys(
        FEEDBACK_REASONS, 0
    )
    assert len(counts) == MAX_REASONS + 1 and counts["_other"] > 0


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
    points = metrics_by_name(reader)["mlapi.prediction.rows"].data.data_points
    assert {p.attributes["outcome"]: p.value for p in points} == {"ok": 0, "error": 4}
    assert all(dict(p.attributes).items() >= MODEL.items() for p in points)


def test_prediction_exemplar_carries_the_trace_id_of_the_sampled_span(
    instruments: ModelInstruments, reader: InMemoryMetricReader
) -> None:
    tracer = TracerProvider(shutdown_on_exit=False).get_tracer("test")
    with tracer.start_as_current_span("model.predict") as span:
        instruments.record_predictions(np.array([[0.1, 0.2]]), np.array([21.5]), inference_s=0.0004)
    context = span.get_span_context()

    found = metrics_by_name(reader)
    for name in ("mlapi.prediction.value", "mlapi.model.inference.duration"):
        (point,) = found[name].data.data_points
        assert point.exemplars, name
        assert {e.trace_id for e in point.exemplars} == {context.trace_id}
        assert {e.span_id for e in point.exemplars} == {context.span_id}


def series(reader: InMemoryMetricReader, name: str, *labels: str) -> dict[tuple, float]:
    """{label values: value} of every data point of `name`; the model attributes are checked."""
    points = metrics_by_name(reader)[name].data.data_points
    assert all(dict(p.attributes).items() >= MODEL.items() for p in points), name
    return {tuple(p.attributes[label] for label in labels): p.value for p in points}


def test_every_bounded_series_exists_at_zero_before_any_request(
    instruments: ModelInstruments, reader: InMemoryMetricReader
) -> None:
    card = Card()
    drift = series(reader, "mlapi.drift.observations", "feature", "bin")
    expected = {(r.feature, str(b)) for r in card.drift for b in range(r.bin_count)}
    assert set(drift) == expected and set(drift.values()) == {0}
    out_of_range = series(reader, "mlapi.feature.out_of_range", "feature", "direction")
    assert set(out_of_range) == {(f, d) for f in ("CRIM", "RM") for d in ("below", "above")}
    assert set(out_of_range.values()) == {0}
    crossings = series(reader, "mlapi.prediction.threshold_crossings", "direction")
    assert crossings == {("above",): 0, ("below",): 0}


def test_a_batch_is_counted_in_drift_bins_ranges_and_threshold_crossings(
    instruments: ModelInstruments, reader: InMemoryMetricReader
) -> None:
    # CRIM edges (0.25, 0.5), RM edge (0.5,), prediction edges (20, 30); ranges [0, 1];
    # thresholds: low 10, high 40. Values on an edge belong to the bin that starts there.
    features = np.array([[0.1, 0.5], [0.25, 0.2], [0.7, 1.5], [-1.0, 0.9]])
    predictions = np.array([5.0, 20.0, 45.0, 29.9])
    instruments.record_predictions(features, predictions, inference_s=0.001)
    instruments.record_predictions(features[:1], predictions[:1], inference_s=0.001)

    drift = series(reader, "mlapi.drift.observations", "feature", "bin")
    assert drift == {
        ("CRIM", "0"): 3, ("CRIM", "1"): 1, ("CRIM", "2"): 1,
        ("RM", "0"): 1, ("RM", "1"): 4,
        ("prediction", "0"): 2, ("prediction", "1"): 2, ("prediction", "2"): 1,
    }  # fmt: skip
    # The vectorised binning agrees with the reference implementation the rules are tested on.
    for j, reference in enumerate(Card().drift):
        column = np.column_stack((features, predictions))[:, j]
        counts = bin_counts(np.r_[column, column[:1]], reference.edges)
        assert [drift[(reference.feature, str(b))] for b in range(len(counts))] == list(counts)
    out_of_range = series(reader, "mlapi.feature.out_of_range", "feature", "direction")
    assert out_of_range == {
        ("CRIM", "below"): 1,
        ("CRIM", "above"): 0,
        ("RM", "below"): 0,
        ("RM", "above"): 1,
    }
    crossings = series(reader, "mlapi.prediction.threshold_crossings", "direction")
    assert crossings == {("above",): 1, ("below",): 2}


def test_thresholds_and_reference_fractions_are_gauges_of_the_card(
    instruments: ModelInstruments, reader: InMemoryMetricReader
) -> None:
    thresholds = series(reader, "mlapi.threshold", "threshold")
    assert thresholds[("prediction_high",)] == 40.0
    assert thresholds[("mae_ceiling",)] == pytest.approx(1.5 * 2.0)
    assert ("mae_ceiling_factor",) not in thresholds
    fractions = series(reader, "mlapi.drift.reference.fraction", "feature", "bin")
    assert fractions[("prediction", "1")] == 0.4
    assert len(fractions) == sum(r.bin_count for r in Card().drift)


def test_no_gauge_has_unit_one(instruments: ModelInstruments, reader: InMemoryMetricReader) -> None:
    """Through the collector a gauge of unit "1" is renamed `<name>_ratio` (measured:
    mlapi_model_info_ratio), on the embedded exporter it is not: the rules need one name."""
    gauges = [m for m in metrics_by_name(reader).values() if isinstance(m.data, Gauge)]
    assert {m.name for m in gauges} == {
        "mlapi.model.info", "mlapi.threshold", "mlapi.drift.reference.fraction"
    }  # fmt: skip
    assert {m.unit for m in gauges} == {""}


def feedback(predictions, actuals, issued_at, versions) -> FeedbackBatch:
    return FeedbackBatch(
        np.array(predictions, dtype=float),
        np.array(actuals, dtype=float),
        np.array(issued_at, dtype=float),
        tuple(versions),
    )


def test_feedback_sums_errors_per_predicting_version(
    instruments: ModelInstruments, reader: InMemoryMetricReader
) -> None:
    assert series_by_version(reader, "mlapi.feedback.rows") == {"3": 0}  # created at start
    instruments.record_feedback(
        feedback([20, 30, 25], [22, 27, 25], [1000, 1000, 400], ["3", "2", "3"]), now=1010.0
    )
    assert series_by_version(reader, "mlapi.feedback.rows") == {"3": 2, "2": 1}
    assert series_by_version(reader, "mlapi.feedback.absolute_error") == {"3": 2.0, "2": 3.0}
    assert series_by_version(reader, "mlapi.feedback.squared_error") == {"3": 4.0, "2": 9.0}
    found = metrics_by_name(reader)
    delay = {
        p.attributes["model.version"]: p for p in found["mlapi.feedback.delay"].data.data_points
    }
    assert (delay["3"].count, delay["3"].sum, delay["2"].sum) == (2, 620.0, 10.0)
    assert found["mlapi.feedback.delay"].unit == "s"
    assert tuple(delay["3"].explicit_bounds) == FEEDBACK_DELAY_BUCKETS_S
    error = {
        p.attributes["model.version"]: p for p in found["mlapi.feedback.error"].data.data_points
    }
    assert (error["3"].count, error["3"].sum, error["2"].max) == (2, 2.0, 3.0)
    assert tuple(error["3"].explicit_bounds) == error_buckets(5.0, 50.0)


def series_by_version(reader: InMemoryMetricReader, name: str) -> dict[str, float]:
    points = metrics_by_name(reader)[name].data.data_points
    return {p.attributes["model.version"]: p.value for p in points}


def test_error_buckets_span_a_thousandth_of_the_range_to_all_of_it() -> None:
    assert error_buckets(5.0, 50.0) == (
        0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0
    )  # fmt: skip


def test_feedback_versions_are_bounded(
    instruments: ModelInstruments, reader: InMemoryMetricReader
) -> None:
    versions = [f"v{i}" for i in range(MAX_FEEDBACK_VERSIONS + 5)]
    n = len(versions)
    instruments.record_feedback(feedback([1] * n, [2] * n, [0] * n, versions), now=1.0)
    rows = series_by_version(reader, "mlapi.feedback.rows")
    assert len(rows) == MAX_FEEDBACK_VERSIONS + 1
    assert rows[OTHER_VERSION] == 6
