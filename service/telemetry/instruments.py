"""The ML meters: what the model predicts, how much, how fast, what it refuses, how its inputs
and outputs compare with training (ranges, drift bins, the card's thresholds) and how accurate it
is once ground truth comes back (POST /feedback).

One class, built from a Meter and the model card. Every attribute value is bounded: model
name/version from the card, a fixed outcome set, reasons capped in number, feature names that are
in the card (anything else becomes "_unknown"), bins of the card's drift references.
Attribute dicts are built once and reused: the SDK hashes them on every measurement.

Per-row signals are counted per batch with numpy (one comparison per feature and edge, one
bincount) into one in-process int64 vector, exported through observable counters. Why not
Counter.add: a one-row request touches 14 drift series, and every add() hashes its attributes
and takes the SDK's locks (measured: 14 adds ~107 us, 140 adds ~1.1 ms; this whole per-batch
count ~18 us for one row, ~0.5-0.7 ms for 1,000). Series are cumulative totals from the start: every
bounded combination exists with 0 at once, so increase() in the rules is exact. Gauges have no
unit: a unit of "1" gets a `_ratio` suffix through the collector but not on the embedded
exporter, and the rules must see one name.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

import numpy as np
from opentelemetry.metrics import CallbackOptions, Meter, Observation

from service.model.drift_reference import MAX_BINS, DriftReference
from service.model.thresholds import Thresholds, threshold_gauge_values
from service.telemetry.otel_patches import record_many

UNKNOWN_FEATURE = "_unknown"
NO_FEATURE = "_none"
OTHER_REASON = "_other"
# Rejection reasons come from code, not clients; the cap guards against a future bug that would
# put raw values there.
MAX_REASONS = 32
PREDICTION_BUCKET_TARGET_COUNT = 50
# Model call alone: 10 µs (tiny trees, one row) to 5 s (huge batches).
INFERENCE_BUCKETS_S = (
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
)  # fmt: skip
BATCH_SIZE_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000)
# Time from prediction to ground truth: 1 s (a test) to 7 days (MLAPI_FEEDBACK_MAX_AGE_S default).
# Floats, so the `le` labels read 5.0 on every export path, as for the other histograms.
FEEDBACK_DELAY_BUCKETS_S = (
    1.0, 5.0, 15.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 21600.0, 43200.0,
    86400.0, 172800.0, 345600.0, 604800.0,
)  # fmt: skip
# Feedback is labelled by the model version inside its (signed) id; more versions than this in
# one process's life is a misconfiguration, and their feedback is pooled under "_other".
MAX_FEEDBACK_VERSIONS = 16
OTHER_VERSION = "_other"
CROSSING_DIRECTIONS = ("above", "below")
OUTCOMES = ("ok", "error")
# The housing target (MEDV) is in thousands of dollars; the annotation keeps the Prometheus name
# free of a unit suffix while OTLP consumers see what the number means.
PREDICTION_UNIT = "{k$}"


class FeatureLike(Protocol):
    name: str
    min: float
    max: float


class TargetLike(Protocol):
    min: float
    max: float


class HoldoutLike(Protocol):
    mae: float


class FeedbackLike(Protocol):
    """Verified ground truth, one entry per item (service/api/feedback_body.py)."""

    predictions: np.ndarray
    actuals: np.ndarray
    issued_at: np.ndarray
    model_versions: tuple[str, ...]


class ModelCardLike(Protocol):
    name: str
    version: str
    artifact_sha256: str
    trained_at: str
    features: Sequence[FeatureLike]
    target: TargetLike
    holdout: HoldoutLike
    # One reference per feature in feature order, then the prediction's (service/model/card.py).
    drift: Sequence[DriftReference]
    thresholds: Thresholds


def _nice_step(raw: float) -> float:
    """The smallest of 1, 2, 2.5, 5 times 10^k that is >= raw."""
    magnitude = 10 ** math.floor(math.log10(raw))
    return next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)


def prediction_buckets(low: float, high: float) -> tuple[float, ...]:
    """Equal-width boundaries on round numbers covering [low, high], about 50 of them: at the
    housing range (5..50) that is one bucket per 1 k$, fine enough to see a shift of the median."""
    if not (math.isfinite(low) and math.isfinite(high)) or high <= low:
        raise ValueError(f"target range [{low}, {high}] cannot carry histogram buckets")
    step = _nice_step((high - low) / PREDICTION_BUCKET_TARGET_COUNT)
    first = math.floor(low / step)
    last = math.ceil(high / step)
    # Rounded so the Prometheus `le` labels read 5.5, not 5.500000000000001.
    return tuple(round(i * step, 10) for i in range(first, last + 1))


def error_buckets(low: float, high: float) -> tuple[float, ...]:
    """1-2-5 boundaries for absolute errors, from the decade below a thousandth of the target
    range up to all of it (for housing, 5..50 k$: 0.01 ... 50)."""
    if not (math.isfinite(low) and math.isfinite(high)) or high <= low:
        raise ValueError(f"target range [{low}, {high}] cannot carry histogram buckets")
    span = high - low
    magnitude = 10 ** math.floor(math.log10(span / 1000))
    bounds: list[float] = []
    while not bounds or bounds[-1] < span:
        bounds.extend(round(m * magnitude, 10) for m in (1, 2, 5))
        magnitude *= 10
    return tuple(bounds)


class _BoundedLabel:
    """One label's values, at most `limit` distinct ones; any further value reads as `overflow`.
    Values come from code, not clients: the bound guards against a future bug."""

    def __init__(self, limit: int, overflow: str, known: Iterable[str] = ()) -> None:
        self._values = set(known)
        self._limit = max(limit, len(self._values))
        self._overflow = overflow

    def __call__(self, value: str) -> str:
        if value not in self._values:
            if len(self._values) >= self._limit:
                return self._overflow
            self._values.add(value)
        return value


class _CumulativeCounts:
    """Totals of a fixed set of series in one int64 vector: one locked numpy add per batch
    (gthread workers share it), read by the observable counters' callbacks."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._counts = np.zeros(size, dtype=np.int64)
        self._lock = threading.Lock()

    def add(self, counts: np.ndarray) -> None:
        with self._lock:
            self._counts += counts

    def snapshot(self) -> list[int]:
        with self._lock:
            return self._counts.tolist()


class _BatchSignals:
    """Per-batch counts against the card: drift bins of every feature and of the prediction,
    values outside the training [min, max], predictions beyond the high/low thresholds, and the
    rows by outcome."""

    def __init__(self, card: ModelCardLike, model: dict[str, str]) -> None:
        references = list(card.drift)
        variables = len(references)
        features = len(card.features)
        # Inner edges padded with +inf to a matrix: a value's bin is the number of edges <= it
        # (searchsorted side="right", as service/drift_reference.bin_indices), for all variables
        # in one comparison. Variable j's bins live at slots j * MAX_BINS + bin.
        self._edges = np.full((variables, MAX_BINS - 1), np.inf)
        for j, reference in enumerate(references):
            self._edges[j, : len(reference.edges)] = reference.edges
        self._slot_offsets = np.arange(variables) * MAX_BINS
        self._drift_slots = variables * MAX_BINS
        self._mins = np.array([f.min for f in card.features], dtype=np.float64)
        self._maxs = np.array([f.max for f in card.features], dtype=np.float64)
        self._high = card.thresholds.prediction_high
        self._low = card.thresholds.prediction_low
        self.drift_series = [
            (j * MAX_BINS + b, {**model, "feature": r.feature, "bin": str(b)})
            for j, r in enumerate(references)
            for b in range(r.bin_count)
        ]
        out_of_range = self._drift_slots
        self.out_of_range_series = [
            (out_of_range + d * features + i, {**model, "feature": f.name, "direction": direction})
            for d, direction in enumerate(("below", "above"))
            for i, f in enumerate(card.features)
        ]
        crossings = out_of_range + 2 * features
        self.crossing_series = [
            (crossings + d, {**model, "direction": direction})
            for d, direction in enumerate(CROSSING_DIRECTIONS)
        ]
        rows = crossings + len(CROSSING_DIRECTIONS)
        self.rows_series = [
            (rows + o, {**model, "outcome": outcome}) for o, outcome in enumerate(OUTCOMES)
        ]
        self._error_rows_slot = rows + OUTCOMES.index("error")
        self.counts = _CumulativeCounts(rows + len(OUTCOMES))

    def record(self, features: np.ndarray, predictions: np.ndarray) -> None:
        values = np.column_stack((features, predictions))
        bins = (values[:, :, np.newaxis] >= self._edges).sum(axis=2)
        drift = np.bincount((bins + self._slot_offsets).ravel(), minlength=self._drift_slots)
        below = np.count_nonzero(features < self._mins, axis=0)
        above = np.count_nonzero(features > self._maxs, axis=0)
        crossings = (
            np.count_nonzero(predictions > self._high),
            np.count_nonzero(predictions < self._low),
        )
        rows = (predictions.shape[0], 0)  # ok, error
        self.counts.add(np.concatenate((drift, below, above, crossings, rows)))

    def record_model_error(self, rows: int) -> None:
        counts = np.zeros(self.counts.size, dtype=np.int64)
        counts[self._error_rows_slot] = rows
        self.counts.add(counts)

    def observer(
        self, series: list[tuple[int, dict[str, str]]]
    ) -> Callable[[CallbackOptions], Iterable[Observation]]:
        """The callback of one observable counter: the current totals of `series`."""

        def observe(_options: CallbackOptions) -> Iterable[Observation]:
            counts = self.counts.snapshot()
            return [Observation(counts[slot], attributes) for slot, attributes in series]

        return observe


class ModelInstruments:
    """Records predictions, rows, inference time, batch size, rejections, drift bins, range and
    threshold counts, feedback; exposes model info, thresholds and drift reference fractions."""

    def __init__(
        self, meter: Meter, card: ModelCardLike, feedback_rejection_reasons: Sequence[str]
    ) -> None:
        """`feedback_rejection_reasons`: every reason a POST /feedback can be refused for; each
        series exists at 0 from the start, so that increase() over it is exact."""
        self._prediction = meter.create_histogram(
            "mlapi.prediction.value",
            unit=PREDICTION_UNIT,
            description="Predicted values, one observation per row.",
            explicit_bucket_boundaries_advisory=prediction_buckets(
                card.target.min, card.target.max
            ),
        )
        self._inference = meter.create_histogram(
            "mlapi.model.inference.duration",
            unit="s",
            description="Duration of the model call alone (no parsing, validation or I/O).",
            explicit_bucket_boundaries_advisory=INFERENCE_BUCKETS_S,
        )
        self._batch = meter.create_histogram(
            "mlapi.prediction.batch.size",
            unit="{row}",
            description="Rows per prediction request that reached the model.",
            explicit_bucket_boundaries_advisory=BATCH_SIZE_BUCKETS,
        )
        self._rejected = meter.create_counter(
            "mlapi.input.rejected",
            unit="{problem}",
            description="Input problems that failed validation, by reason and feature.",
        )
        model = {"model.name": card.name, "model.version": card.version}
        self._model_attrs = model
        self._features = frozenset(f.name for f in card.features)
        self._reasons = _BoundedLabel(MAX_REASONS, OTHER_REASON)
        self._rejection_attrs: dict[tuple[str, str], dict[str, str]] = {}
        self._info = [
            Observation(
                1,
                {
                    **model,
                    "model.sha256": card.artifact_sha256,
                    "model.trained_at": str(card.trained_at),
                },
            )
        ]
        meter.create_observable_gauge(
            "mlapi.model.info",
            callbacks=[lambda _options: self._info],
            unit="",
            description="Always 1; labels carry the served model's version, sha256, training time.",
        )
        self._create_batch_signals(meter, card, model)
        self._create_feedback(meter, card, model, feedback_rejection_reasons)

    def _create_batch_signals(
        self, meter: Meter, card: ModelCardLike, model: dict[str, str]
    ) -> None:
        signals = self._signals = _BatchSignals(card, model)
        meter.create_observable_counter(
            "mlapi.prediction.rows",
            callbacks=[signals.observer(signals.rows_series)],
            unit="{row}",
            description="Rows sent to the model, by outcome (ok, error).",
        )
        meter.create_observable_counter(
            "mlapi.drift.observations",
            callbacks=[signals.observer(signals.drift_series)],
            unit="{value}",
            description='Values per drift reference bin (13 features and "prediction").',
        )
        meter.create_observable_counter(
            "mlapi.feature.out_of_range",
            callbacks=[signals.observer(signals.out_of_range_series)],
            unit="{value}",
            description="Feature values below the training minimum or above the maximum.",
        )
        meter.create_observable_counter(
            "mlapi.prediction.threshold_crossings",
            callbacks=[signals.observer(signals.crossing_series)],
            unit="{row}",
            description="Predictions strictly above prediction_high or below prediction_low.",
        )
        fractions = [
            Observation(fraction, {**model, "feature": r.feature, "bin": str(b)})
            for r in card.drift
            for b, fraction in enumerate(r.fractions)
        ]
        meter.create_observable_gauge(
            "mlapi.drift.reference.fraction",
            callbacks=[lambda _options: fractions],
            unit="",
            description="Share of training values per drift bin (the PSI reference).",
        )
        thresholds = [
            Observation(value, {**model, "threshold": name})
            for name, value in threshold_gauge_values(card.thresholds, card.holdout.mae).items()
        ]
        meter.create_observable_gauge(
            "mlapi.threshold",
            callbacks=[lambda _options: thresholds],
            unit="",
            description="The model card's alert thresholds (mae_ceiling in target units).",
        )

    def _create_feedback(
        self, meter: Meter, card: ModelCardLike, model: dict[str, str], reasons: Sequence[str]
    ) -> None:
        self._feedback_rows = meter.create_counter(
            "mlapi.feedback.rows",
            unit="{row}",
            description="Predictions that received ground truth, by the version that made them.",
        )
        self._feedback_absolute = meter.create_counter(
            "mlapi.feedback.absolute_error",
            unit=PREDICTION_UNIT,
            description="Sum of |actual - prediction| (MAE = this / rows over any window).",
        )
        self._feedback_squared = meter.create_counter(
            "mlapi.feedback.squared_error",
            unit="{k$^2}",
            description="Sum of (actual - prediction)^2 (RMSE = sqrt(this / rows)).",
        )
        self._feedback_error = meter.create_histogram(
            "mlapi.feedback.error",
            unit=PREDICTION_UNIT,
            description="|actual - prediction| per labelled prediction.",
            explicit_bucket_boundaries_advisory=error_buckets(card.target.min, card.target.max),
        )
        self._feedback_delay = meter.create_histogram(
            "mlapi.feedback.delay",
            unit="s",
            description="Time from a prediction to its ground truth.",
            explicit_bucket_boundaries_advisory=FEEDBACK_DELAY_BUCKETS_S,
        )
        self._feedback_rejected = meter.create_counter(
            "mlapi.feedback.rejected",
            unit="{problem}",
            description="Feedback problems that made a request fail, by reason.",
        )
        self._versions = _BoundedLabel(MAX_FEEDBACK_VERSIONS, OTHER_VERSION)
        self._version_attrs: dict[str, dict[str, str]] = {}
        served = self._feedback_attributes(card.version)
        for counter in (self._feedback_rows, self._feedback_absolute, self._feedback_squared):
            counter.add(0, served)
        self._feedback_reasons = _BoundedLabel(MAX_REASONS, OTHER_REASON, reasons)
        self._feedback_reason_attrs: dict[str, dict[str, str]] = {}
        for reason in reasons:
            self._feedback_rejected.add(0, self._feedback_reason_attributes(reason))

    def record_predictions(
        self, features: np.ndarray, values: np.ndarray, inference_s: float
    ) -> None:
        """A successful model call: `features` (rows x card features) gave `values`, one
        prediction per row."""
        model = self._model_attrs
        self._inference.record(inference_s, model)
        self._batch.record(int(values.shape[0]), model)
        # One value a row; each bucket touched gets this request's exemplar (otel_patches).
        record_many(self._prediction, values, model)
        self._signals.record(features, values)

    def record_model_error(self, rows: int) -> None:
        self._signals.record_model_error(rows)

    def record_rejection(self, problems: Iterable[tuple[str, str | None]]) -> None:
        """A request refused by validation: `problems` are (reason, feature or None) pairs."""
        add = self._rejected.add
        for reason, feature in problems:
            add(1, self._rejection_attributes(reason, feature))

    def _rejection_attributes(self, reason: str, feature: str | None) -> dict[str, str]:
        if feature is None:
            feature_label = NO_FEATURE
        elif feature in self._features:
            feature_label = feature
        else:
            feature_label = UNKNOWN_FEATURE
        key = (self._reasons(reason), feature_label)
        attrs = self._rejection_attrs.get(key)
        if attrs is None:
            # Keyed by bounded labels only: client-chosen field names never grow the cache.
            attrs = self._rejection_attrs[key] = {
                **self._model_attrs,
                "reason": key[0],
                "feature": key[1],
            }
        return attrs

    def record_feedback(self, batch: FeedbackLike, now: float) -> None:
        """Verified ground truth: sums per model version (MAE/RMSE in PromQL), one histogram
        observation of the absolute error and of the delay per item."""
        errors = batch.actuals - batch.predictions
        absolute = np.abs(errors)
        delays = np.maximum(now - batch.issued_at, 0.0)
        versions = batch.model_versions
        groups = (
            [(versions[0], slice(None))]
            if versions.count(versions[0]) == len(versions)
            else [(v, np.array([x == v for x in versions])) for v in dict.fromkeys(versions)]
        )
        for version, rows in groups:
            attributes = self._feedback_attributes(version)
            group_absolute = absolute[rows]
            self._feedback_rows.add(int(group_absolute.size), attributes)
            self._feedback_absolute.add(float(group_absolute.sum()), attributes)
            self._feedback_squared.add(float(np.square(errors[rows]).sum()), attributes)
            record_many(self._feedback_error, group_absolute, attributes)
            record_many(self._feedback_delay, delays[rows], attributes)

    def record_feedback_rejection(self, reasons: Iterable[str]) -> None:
        """A refused POST /feedback: one count per problem found."""
        for reason in reasons:
            self._feedback_rejected.add(1, self._feedback_reason_attributes(reason))

    def _feedback_reason_attributes(self, reason: str) -> dict[str, str]:
        label = self._feedback_reasons(reason)
        attributes = self._feedback_reason_attrs.get(label)
        if attributes is None:
            attributes = self._feedback_reason_attrs[label] = {**self._model_attrs, "reason": label}
        return attributes

    def _feedback_attributes(self, version: str) -> dict[str, str]:
        label = self._versions(version)
        attributes = self._version_attrs.get(label)
        if attributes is None:
            attributes = self._version_attrs[label] = {"model.version": label}
        return attributes
