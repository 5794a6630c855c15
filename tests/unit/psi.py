"""The population stability index, computed here the way the `mlapi:drift_psi:*` recording rules
compute it in PromQL (observability/prometheus/rules/recording.yml): the reference that the rule
tests and the drift tests compare against.
"""

from __future__ import annotations

import numpy as np

# Floor applied to both the observed and the reference fraction of every bin before PSI, so an
# empty bin contributes a large but finite term instead of an infinite one. 1e-4 is the usual
# choice: one decile emptying completely (q=0.1, p=0) adds 0.1*ln(0.1/1e-4) ~ 0.69, far above
# psi_critical, which is what we want. The PromQL uses clamp_min(..., 0.0001): test_prometheus_rules
# keeps both equal.
PSI_EPSILON = 1e-4


def psi(
    observed_counts: np.ndarray | list[float],
    reference_fractions: np.ndarray | tuple[float, ...],
    epsilon: float = PSI_EPSILON,
) -> float:
    """sum((p - q) * ln(p / q)), p and q floored at `epsilon`."""
    counts = np.asarray(observed_counts, dtype=float)
    q = np.asarray(reference_fractions, dtype=float)
    if counts.shape != q.shape:
        raise ValueError(f"{counts.size} observed bins but {q.size} reference bins")
    total = counts.sum()
    if total <= 0:
        raise ValueError("PSI needs at least one observation")
    p = np.maximum(counts / total, epsilon)
    q = np.maximum(q, epsilon)
    return float(np.sum((p - q) * np.log(p / q)))
