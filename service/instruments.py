"""The ML meters: what the model predicts, how much, how fast, and what it refuses.

One class, built from a Meter and the model card; later ML signals (feedback, drift) join here.
Every attribute value is bounded: model name/version from the card, a fixed outcome set, reasons
capped in number, feature names that are in the card (anything else becomes "_unknown").
Attribute dicts are built once and reused: the SDK hashes them on every measurement.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Protocol

import numpy as np
from opentelemetry.metrics import CallbackOptions, Meter, Observation

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
# The housing target (MEDV) is in thousands of dollars; the annotation keeps the Prometheus name
# free of a unit suffix while OTLP consumers see what the number means.
PREDICTION_UNIT = "{k$}"


class FeatureLike(Protocol):
    name: str


class TargetLike(Protocol):
    min: float
    max: float


class ModelCardLike(Protocol):
    name: str
    version: str
    artifact_sha256: str
    trained_at: str
    features: Sequence[FeatureLike]
    target: TargetLike


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


class ModelInstruments:
    """Records predictions, rows, inference time, batch size, rejections; exposes model info."""

    def __init__(self, meter: Meter, card: ModelCardLike) -> None:
        self._prediction = meter.create_histogram(
            "mlapi.prediction.value",
            unit=PREDICTION_UNIT,
            description="Predicted values, one observation per row.",
            explicit_bucket_boundaries_advisory=prediction_buckets(
                card.target.min, card.target.max
            ),
        )
        self._rows = meter.create_counter(
            "mlapi.prediction.rows",
            unit="{row}",
            description="Rows sent to the model, by outcome (ok, error).",
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
        self._outcome_attrs = {
            outcome: {**model, "outcome": outcome} for outcome in ("ok", "error")
        }
        self._features = frozenset(f.name for f in card.features)
        self._rejection_attrs: dict[tuple[str, str], dict[str, str]] = {}
        self._reasons: set[str] = set()
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
            callbacks=[self._observe_info],
            unit="1",
            description="Always 1; labels carry the served model's version, sha256, training time.",
        )

    def _observe_info(self, _options: CallbackOptions) -> Iterable[Observation]:
        return self._info

    def record_predictions(self, values: np.ndarray, inference_s: float) -> None:
        """A successful model call: `values` holds one prediction per row."""
        rows = int(values.shape[0])
        model = self._model_attrs
        self._inference.record(inference_s, model)
        self._batch.record(rows, model)
        self._rows.add(rows, self._outcome_attrs["ok"])
        record = self._prediction.record
        # tolist(): Python floats are several times cheaper for the SDK than numpy scalars.
        for value in values.ravel().tolist():
            record(value, model)

    def record_model_error(self, rows: int) -> None:
        self._rows.add(rows, self._outcome_attrs["error"])

    def record_rejection(self, problems: Iterable[tuple[str, str | None]]) -> None:
        """A request refused by validation: `problems` are (reason, feature or None) pairs."""
        add = self._rejected.add
        for reason, feature in problems:
            add(1, self._rejection_attributes(reason, feature))

    def _rejection_attributes(self, reason: str, feature: str | None) -> dict[str, str]:
        key = (reason, feature or NO_FEATURE)
        attrs = self._rejection_attrs.get(key)
        if attrs is not None:
            return attrs
        reason_label = reason
        if reason not in self._reasons:
            if len(self._reasons) >= MAX_REASONS:
                reason_label = OTHER_REASON
            else:
                self._reasons.add(reason)
        if feature is None:
            feature_label = NO_FEATURE
        elif feature in self._features:
            feature_label = feature
        else:
            feature_label = UNKNOWN_FEATURE
        attrs = {**self._model_attrs, "reason": reason_label, "feature": feature_label}
        # Only cache keys that map to themselves, so client-chosen field names never grow the cache.
        if (reason_label, feature_label) == key:
            self._rejection_attrs[key] = attrs
        return attrs
