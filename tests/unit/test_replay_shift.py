"""`--shift FEATURE=factor` parsing and application."""

from __future__ import annotations

import pytest

from replay.shift import ShiftError, apply_shifts, check_columns, parse_shifts


def test_shift_multiplies_numeric_features_only():
    features: dict[str, object] = {"RM": 6.0, "LSTAT": 10, "CHAS": "yes"}
    apply_shifts(features, parse_shifts(["RM=1.5", "CHAS=2", "LSTAT=0.5"]))
    assert features == {"RM": 9.0, "LSTAT": 5.0, "CHAS": "yes"}


def test_a_product_that_would_overflow_is_left_alone():
    features: dict[str, object] = {"TAX": 1e300}
    apply_shifts(features, {"TAX": 1e10})
    assert features == {"TAX": 1e300}


@pytest.mark.parametrize("text", ["RM", "=2", "RM=x", "RM=", "", "RM=inf", "RM=nan"])
def test_malformed_shift_is_rejected(text):
    with pytest.raises(ShiftError):
        parse_shifts([text])


def test_shift_of_an_unknown_column_is_rejected():
    with pytest.raises(ShiftError, match="RMM"):
        check_columns({"RMM": 1.2}, ["RM", "LSTAT"])
