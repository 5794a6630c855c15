"""Fixed drift reference bins: built from training data, counted per request, compared in PromQL.

Why fixed bins: the service only increments one counter per (feature, bin) and Prometheus sums
those counters across workers and replicas, so the observed distribution over any window is exact
no matter how many processes served it. The reference fractions ride along as a gauge; PSI is
computed by the recording rules in observability/prometheus/rules/recording.yml.

Bin layout for a reference with edges e_0 < e_1 < ... < e_{k-1} (k <= 9): bin 0 is (-inf, e_0),
bin i is [e_{i-1}, e_i), bin k is [e_{k-1}, +inf). The outer bins are open-ended so every serve-time
value lands in a bin; NaN sorts last, into bin k (the API rejects non-finite inputs before this).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

MAX_BINS = 10

# Relative tolerance when checking that stored fractions sum to one (they are rounded floats).
_FRACTION_SUM_TOLERANCE = 1e-6


@dataclass(frozen=True)
class DriftReference:
    """Reference distribution of one variable (a feature, or "prediction") over fixed bins."""

    feature: str
    edges: tuple[float, ...]
    fractions: tuple[float, ...]

    def __post_init__(self) -> None:
        if not self.feature:
            raise ValueError("feature must be a non-empty string")
        if len(self.edges) > MAX_BINS - 1:
            raise ValueError(f"{self.feature}: at most {MAX_BINS - 1} edges, got {len(self.edges)}")
        if not all(math.isfinite(e) for e in self.edges):
            raise ValueError(f"{self.feature}: edges must be finite")
        if any(b <= a for a, b in zip(self.edges, self.edges[1:], strict=False)):
            raise ValueError(f"{self.feature}: edges must be strictly increasing")
        if len(self.fractions) != len(self.edges) + 1:
            raise ValueError(
                f"{self.feature}: {len(self.edges)} edges need {len(self.edges) + 1} fractions,"
                f" got {len(self.fractions)}"
            )
        if any(not math.isfinite(f) or f < 0 for f in self.fractions):
            raise ValueError(f"{self.feature}: fractions must be finite and >= 0")
        if not math.isclose(sum(self.fractions), 1.0, rel_tol=_FRACTION_SUM_TOLERANCE):
            raise ValueError(f"{self.feature}: fractions must sum to 1, got {sum(self.fractions)}")

    @property
    def bin_count(self) -> int:
        return len(self.fractions)


def reference_edges(values: np.ndarray, max_bins: int = MAX_BINS) -> tuple[float, ...]:
    """Inner bin edges for one training variable.

    Low-cardinality variables (at most `max_bins` distinct values, e.g. CHAS, RAD) get one bin per
    value: the edges are the distinct values except the smallest. Otherwise the edges are the
    training deciles, deduplicated (ties such as ZN's many zeros or B's cap at 396.9 merge bins),
    keeping only edges above the minimum that open a bin some training value lands in: every
    reference fraction is > 0.
    """
    data = _finite_1d(values)
    distinct = np.unique(data)
    if distinct.size <= max_bins:
        return tuple(float(v) for v in distinct[1:])
    quantiles = np.linspace(0, 1, max_bins + 1)[1:-1]
    edges = [e for e in np.unique(np.quantile(data, quantiles)) if e > distinct[0]]
    # Interpolated deciles of a small sample can fall between the same two values and open a bin
    # no training value lands in (q = 0); dropping its left edge merges it into its neighbour.
    counts = bin_counts(data, edges)
    return tuple(float(e) for e, right_bin in zip(edges, counts[1:], strict=True) if right_bin)


def bin_indices(values: np.ndarray, edges: tuple[float, ...] | np.ndarray) -> np.ndarray:
    """Bin index (0..len(edges)) of every value: the serve-time hot path, one searchsorted."""
    return np.searchsorted(np.asarray(edges, dtype=float), values, side="right")


def bin_counts(values: np.ndarray, edges: tuple[float, ...] | np.ndarray) -> np.ndarray:
    """Number of values per bin, length len(edges) + 1 (what the service adds to its counters)."""
    return np.bincount(bin_indices(values, edges), minlength=len(edges) + 1)


def build_reference(feature: str, values: np.ndarray, max_bins: int = MAX_BINS) -> DriftReference:
    """Edges and reference fractions of one training variable, ready for the model card."""
    data = _finite_1d(values)
    edges = reference_edges(data, max_bins)
    fractions = bin_counts(data, edges) / data.size
    return DriftReference(feature, edges, tuple(float(f) for f in fractions))


def _finite_1d(values: np.ndarray) -> np.ndarray:
    data = np.asarray(values, dtype=float).ravel()
    if data.size == 0:
        raise ValueError("need at least one training value")
    if not np.isfinite(data).all():
        raise ValueError("training values must be finite")
    return data
