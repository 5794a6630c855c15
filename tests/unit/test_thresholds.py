from __future__ import annotations

import json
import math

import numpy as np
import pytest

from service.model.card import CardError, parse_typed
from service.model.thresholds import (
    DEFAULT_TAIL_SHARE,
    Thresholds,
    ThresholdsError,
    default_thresholds,
    threshold_gauge_values,
)


def test_defaults_come_from_the_target_distribution() -> None:
    target = np.arange(1, 101, dtype=float)  # 1..100
    thresholds = default_thresholds(target)
    assert thresholds.prediction_high == pytest.approx(np.quantile(target, 0.95))
    assert thresholds.prediction_low == pytest.approx(np.quantile(target, 0.05))
    assert thresholds.prediction_high_share == DEFAULT_TAIL_SHARE == pytest.approx(0.1)
    assert (thresholds.psi_warn, thresholds.psi_critical) == (0.1, 0.25)


def test_derived_thresholds_carry_no_float_noise() -> None:
    # The interpolated quantile carries noise (the bundled MEDV's training rows gave
    # 43.69499999999997 in the start-up log).
    target = np.linspace(5, 50, 42).round(1)
    assert repr(float(np.quantile(target, 0.95))) == "47.74499999999999"
    assert repr(default_thresholds(target).prediction_high) == "47.745"


def test_capped_target_still_gets_a_reachable_high_threshold() -> None:
    # MEDV-like: 3 % of targets sit at the cap of 50.
    target = np.concatenate([np.linspace(5, 45, 970), np.full(30, 50.0)])
    assert default_thresholds(target).prediction_high < 50


@pytest.mark.parametrize("target", [np.array([]), np.array([1.0, np.nan]), np.full(10, 3.0)])
def test_defaults_need_a_usable_target(target: np.ndarray) -> None:
    with pytest.raises(ValueError):
        default_thresholds(target)


def test_round_trip_through_json_as_the_card_reads_it() -> None:
    thresholds = Thresholds(prediction_high=40, prediction_low=10, psi_warn=0.2, psi_critical=0.3)
    restored = parse_typed(Thresholds, json.loads(json.dumps(thresholds.to_dict())), "thresholds")
    assert restored == thresholds


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"prediction_low": 50}, "prediction_low"),
        ({"prediction_high_share": 0}, "prediction_high_share"),
        ({"prediction_low_share": 1.5}, "prediction_low_share"),
        ({"out_of_range_share": -0.1}, "out_of_range_share"),
        ({"psi_warn": 0.3}, "psi_warn"),
        ({"psi_warn": 0}, "psi_warn"),
        ({"mae_ceiling_factor": 0}, "mae_ceiling_factor"),
        ({"drift_min_observations": 0}, "drift_min_observations"),
        ({"feedback_min_rows": 2.5}, "feedback_min_rows"),
        ({"prediction_high": math.inf}, "prediction_high"),
        ({"prediction_high": math.nan}, "prediction_high"),
        ({"prediction_high": "40"}, "prediction_high"),
        ({"psi_critical": True}, "psi_critical"),
    ],
)
def test_invalid_values_name_their_field(changes: dict, field: str) -> None:
    data = {"prediction_high": 40, "prediction_low": 10, **changes}
    with pytest.raises(ThresholdsError) as error:
        Thresholds(**data)
    assert error.value.field == field


def test_the_card_refuses_unknown_and_missing_names() -> None:
    with pytest.raises(CardError, match=r"thresholds: unknown key\(s\) psi_warm"):
        parse_typed(
            Thresholds, {"prediction_high": 40, "prediction_low": 10, "psi_warm": 0.1}, "thresholds"
        )
    with pytest.raises(CardError, match=r"thresholds: missing key\(s\) prediction_low"):
        parse_typed(Thresholds, {"prediction_high": 40}, "thresholds")


def test_overrides_from_cli_assignments() -> None:
    base = Thresholds(prediction_high=40, prediction_low=10)
    changed = base.with_overrides(["prediction_high=45.5", " drift_min_observations=200"])
    assert changed.prediction_high == 45.5
    assert changed.drift_min_observations == 200
    assert isinstance(changed.drift_min_observations, int)
    assert changed.prediction_low == 10


@pytest.mark.parametrize(
    ("assignment", "field"),
    [("psi_warn", "psi_warn"), ("nope=1", "nope"), ("psi_warn=high", "psi_warn"),
     ("prediction_high=5", "prediction_low")],
)  # fmt: skip
def test_bad_overrides_are_refused(assignment: str, field: str) -> None:
    with pytest.raises(ThresholdsError) as error:
        Thresholds(prediction_high=40, prediction_low=10).with_overrides([assignment])
    assert error.value.field == field


def test_gauge_values_export_an_absolute_mae_ceiling() -> None:
    thresholds = Thresholds(prediction_high=40, prediction_low=10, mae_ceiling_factor=1.5)
    values = threshold_gauge_values(thresholds, holdout_mae=2.0)
    assert values["mae_ceiling"] == 3.0
    assert "mae_ceiling_factor" not in values
    assert values["prediction_high"] == 40.0
    assert set(values) == {
        "prediction_high",
        "prediction_low",
        "prediction_high_share",
        "prediction_low_share",
        "psi_warn",
        "psi_critical",
        "mae_ceiling",
        "out_of_range_share",
        "drift_min_observations",
        "feedback_min_rows",
    }
    assert all(isinstance(v, float) for v in values.values())


@pytest.mark.parametrize("mae", [-1.0, math.nan, math.inf])
def test_gauge_values_need_a_valid_holdout_mae(mae: float) -> None:
    with pytest.raises(ValueError):
        threshold_gauge_values(Thresholds(prediction_high=40, prediction_low=10), mae)
