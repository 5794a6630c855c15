"""Workarounds that reach into private OpenTelemetry APIs (SDK 1.45.1, instrumentation 0.66b1),
kept here so that each is in one place, named, and pinned by a unit test to those versions.

- Stable HTTP semantic conventions without writing the process environment: the instrumentation
  reads OTEL_SEMCONV_STABILITY_OPT_IN once per process into a private class mapping; there is no
  public way to opt one app in (semantic-conventions stability migration,
  open-telemetry/opentelemetry-python-contrib#2453). We set the mapping's HTTP entry.
- A bounded flush at shutdown: `BatchSpanProcessor.shutdown()` takes no timeout and waits up to
  30 s for an absent collector (open-telemetry/opentelemetry-python#4569); its inner batch
  processor's `shutdown(timeout_millis=...)` does take one.
- Many values into one histogram series at numpy speed: the API records one value per call
  (6-17 us each, so 1,000 predicted rows cost more than predicting them) and has no bulk or
  weighted record (open-telemetry/opentelemetry-specification#2591). `record_many` records one
  value per distinct bucket through the API (so every bucket it touches gets this request's
  exemplar) and adds the rest straight into the SDK's explicit-bucket aggregations: the same
  counts, sum, min and max as one record() per value.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np
from opentelemetry.instrumentation._semconv import (
    _OpenTelemetrySemanticConventionStability,
    _OpenTelemetryStabilitySignalType,
    _StabilityMode,
)
from opentelemetry.metrics import Histogram
from opentelemetry.sdk.metrics._internal._view_instrument_match import _hash_attributes
from opentelemetry.sdk.metrics._internal.aggregation import _ExplicitBucketHistogramAggregation
from opentelemetry.sdk.metrics._internal.instrument import _Histogram
from opentelemetry.sdk.trace.export import BatchSpanProcessor

logger = logging.getLogger(__name__)


def use_stable_http_semconv() -> None:
    """Instrumentations set up after this emit the stable HTTP conventions only (`http`, not
    `http/dup`); the user's opt-ins for other signals are kept."""
    stability = _OpenTelemetrySemanticConventionStability
    stability._initialize()
    with stability._lock:
        stability._OTEL_SEMCONV_STABILITY_SIGNAL_MAPPING = {
            **stability._OTEL_SEMCONV_STABILITY_SIGNAL_MAPPING,
            _OpenTelemetryStabilitySignalType.HTTP: _StabilityMode.HTTP,
        }


def shutdown_span_processor(processor: BatchSpanProcessor, timeout_millis: float) -> None:
    """Flush what is queued and stop the export thread within `timeout_millis`."""
    processor._batch_processor.shutdown(timeout_millis=timeout_millis)


def record_many(histogram: Histogram, values: np.ndarray, attributes: Mapping[str, str]) -> None:
    """Record every value in `histogram` with `attributes`, as one record() per value would."""
    values = np.asarray(values, dtype=np.float64).ravel()
    # record() ignores (and warns about) values a histogram cannot hold; so does the bulk path.
    kept = values[np.isfinite(values) & (values >= 0)]
    if kept.size < values.size:
        logger.warning("%d values not finite or negative, not recorded", values.size - kept.size)
    if kept.size <= 1 or not isinstance(histogram, _Histogram):
        for value in kept.tolist():
            histogram.record(value, attributes)
        return
    if not _aggregations(histogram, attributes):
        histogram.record(float(kept[0]), attributes)  # creates the series' aggregations
        kept = kept[1:]
    aggregations = _aggregations(histogram, attributes)
    if not aggregations or not all(
        isinstance(a, _ExplicitBucketHistogramAggregation) for a in aggregations
    ):
        for value in kept.tolist():
            histogram.record(value, attributes)
        return
    # One value per bucket through the API, so each bucket gets this request's exemplar.
    boundaries = np.asarray(aggregations[0]._boundaries, dtype=np.float64)
    _, first = np.unique(np.searchsorted(boundaries, kept, side="left"), return_index=True)
    for value in kept[first].tolist():
        histogram.record(value, attributes)
    rest = np.delete(kept, first)
    for aggregation in aggregations:
        _aggregate_many(aggregation, rest)


def _aggregations(histogram: _Histogram, attributes: Mapping[str, str]) -> list[object]:
    """The aggregation of this series in every reader's storage, once it exists."""
    found = []
    for storage in histogram._measurement_consumer._reader_storages.values():
        for match in storage._instrument_view_instrument_matches.get(histogram, ()):
            keys = match._view._attribute_keys
            kept = {k: v for k, v in attributes.items() if keys is None or k in keys}
            aggregation = match._attributes_aggregation.get(_hash_attributes(kept))
            if aggregation is not None:
                found.append(aggregation)
    return found


def _aggregate_many(aggregation: _ExplicitBucketHistogramAggregation, values: np.ndarray) -> None:
    if values.size == 0:
        return
    boundaries = np.asarray(aggregation._boundaries, dtype=np.float64)
    # bisect_left, as aggregate() places one value.
    counts = np.bincount(
        np.searchsorted(boundaries, values, side="left"), minlength=boundaries.size + 1
    ).tolist()
    total, low, high = float(values.sum()), float(values.min()), float(values.max())
    with aggregation._lock:
        if aggregation._value is None:
            aggregation._value = aggregation._get_empty_bucket_counts()
        aggregation._value = [a + b for a, b in zip(aggregation._value, counts, strict=True)]
        aggregation._sum += total
        if aggregation._record_min_max:
            aggregation._min = min(aggregation._min, low)
            aggregation._max = max(aggregation._max, high)
