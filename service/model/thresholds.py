"""The team's alert thresholds: stored in the model card, exported as `mlapi_threshold` gauges.

Alert rules compare live series against those gauges, never against literals, so changing a
threshold means editing the card (or retraining with `--threshold NAME=VALUE`) and restarting the
service: no rule edit, no Prometheus reload.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields, replace

import numpy as np

# Default high/low thresholds are these target quantiles. Not p99/p1: a capped target (MEDV is
# censored at 50) has its p99 at the cap, which a regressor never exceeds: the alert could not fire.
DEFAULT_HIGH_QUANTILE = 0.95
DEFAULT_LOW_QUANTILE = 0.05
# Share of predictions allowed above high (below low) over the alert window: twice the 5 % of
# training targets out there, so a model that predicts like the training data stays silent.
DEFAULT_TAIL_SHARE = 0.1
# Significant digits kept of a derived threshold: far below any alerting difference, far above
# float noise.
QUANTILE_DIGITS = 6

_COUNT_FIELDS = frozenset({"drift_min_observations", "feedback_min_rows"})


class ThresholdsError(ValueError):
    """A threshold value or name is invalid; `field` names it (for 4xx details and CLI errors)."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


@dataclass(frozen=True)
class Thresholds:
    """Alert thresholds of one model version (see README "Setting thresholds")."""

    prediction_high: float
    prediction_low: float
    # Max share of predictions strictly above prediction_high (below prediction_low) over 15 min.
    prediction_high_share: float = DEFAULT_TAIL_SHARE
    prediction_low_share: float = DEFAULT_TAIL_SHARE
    psi_warn: float = 0.1
    psi_critical: float = 0.25
    # Live MAE ceiling as a multiple of the holdout MAE recorded at training time.
    mae_ceiling_factor: float = 1.5
    # Max share of a feature's values outside its training [min, max] over 15 min.
    out_of_range_share: float = 0.05
    # PSI over fewer observations is mostly sampling noise (E[PSI] ~ (bins - 1) / n without drift).
    drift_min_observations: int = 500
    # MAE over fewer feedback rows is too noisy to page on.
    feedback_min_rows: int = 30

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ThresholdsError(f.name, "must be a number")
            if not math.isfinite(value):
                raise ThresholdsError(f.name, "must be finite")
            if f.name in _COUNT_FIELDS and (value != int(value) or value < 1):
                raise ThresholdsError(f.name, "must be a whole number >= 1")
        if self.prediction_low >= self.prediction_high:
            raise ThresholdsError("prediction_low", "must be below prediction_high")
        for name in ("prediction_high_share", "prediction_low_share", "out_of_range_share"):
            if not 0 < getattr(self, name) <= 1:
                raise ThresholdsError(name, "must be in (0, 1]")
        if not 0 < self.psi_warn < self.psi_critical:
            raise ThresholdsError("psi_warn", "must be > 0 and below psi_critical")
        if self.mae_ceiling_factor <= 0:
            raise ThresholdsError("mae_ceiling_factor", "must be > 0")

    def to_dict(self) -> dict[str, float]:
        return asdict(self)

    def with_overrides(self, assignments: Iterable[str]) -> Thresholds:
        """Apply `NAME=VALUE` strings (the repeatable `mlapi train --threshold` option)."""
        changes: dict[str, float] = {}
        names = {f.name for f in fields(self)}
        for assignment in assignments:
            name, sep, raw = assignment.partition("=")
            name = name.strip()
            if not sep:
                raise ThresholdsError(name, "expected NAME=VALUE")
            if name not in names:
                raise ThresholdsError(name, "unknown threshold")
            try:
                value = float(raw)
            except ValueError:
                raise ThresholdsError(name, f"{raw!r} is not a number") from None
            changes[name] = int(value) if name in _COUNT_FIELDS and value.is_integer() else value
        return replace(self, **changes)


def default_thresholds(target: np.ndarray) -> Thresholds:
    """Thresholds derived from the training target distribution (teams override what they know)."""
    values = np.asarray(target, dtype=float).ravel()
    if values.size == 0 or not np.isfinite(values).all():
        raise ValueError("target must be a non-empty array of finite numbers")
    low, high = np.quantile(values, [DEFAULT_LOW_QUANTILE, DEFAULT_HIGH_QUANTILE])
    if low >= high:
        raise ValueError("target has no spread between its 5th and 95th percentile")
    return Thresholds(prediction_high=_meant(high), prediction_low=_meant(low))


def _meant(value: float) -> float:
    """The quantile without the float noise of its interpolation (43.69499999999997 is 43.695):
    the card, the gauges and the start-up log show what a team would have written."""
    return float(f"{value:.{QUANTILE_DIGITS}g}")


def threshold_gauge_values(thresholds: Thresholds, holdout_mae: float) -> dict[str, float]:
    """Values of the `mlapi_threshold{threshold=NAME}` gauges the service exports.

    The MAE ceiling is exported in absolute units (factor x holdout MAE): one comparison in PromQL.
    """
    if not math.isfinite(holdout_mae) or holdout_mae < 0:
        raise ValueError("holdout_mae must be a finite number >= 0")
    values = {name: float(value) for name, value in thresholds.to_dict().items()}
    values["mae_ceiling"] = thresholds.mae_ceiling_factor * holdout_mae
    del values["mae_ceiling_factor"]
    return values
