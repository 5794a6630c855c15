from __future__ import annotations

import json
import math

import numpy as np
import pytest

from service.model.card import CardError, parse_typed
from service.model.drift_reference import (
    MAX_BINS,
    DriftReference,
    bin_counts,
    bin_indices,
    build_reference,
    reference_edges,
)
from tests.unit.psi import PSI_EPSILON, psi

RNG = np.random.default_rng(20261126)


def test_continuous_feature_gets_decile_bins_of_a_tenth_each() -> None:
    values = RNG.normal(6.3, 0.7, 5000)
    reference = build_reference("RM", values)
    assert len(reference.edges) == MAX_BINS - 1
    assert reference.bin_count == MAX_BINS
    assert all(f == pytest.approx(0.1, abs=0.002) for f in reference.fractions)


def test_binary_feature_gets_one_bin_per_value() -> None:
    chas = np.array([0.0] * 93 + [1.0] * 7)
    reference = build_reference("CHAS", chas)
    assert reference.edges == (1.0,)
    assert reference.fractions == (0.93, 0.07)


def test_low_cardinality_feature_keeps_every_value_apart() -> None:
    rad = np.array([1, 2, 3, 4, 5, 6, 7, 8, 24] * 10 + [24] * 10, dtype=float)
    reference = build_reference("RAD", rad)
    assert reference.edges == (2, 3, 4, 5, 6, 7, 8, 24)
    assert reference.fractions[-1] == pytest.approx(0.2)


def test_ties_merge_deciles_and_no_bin_opens_below_the_minimum() -> None:
    # ZN-like: three quarters zeros, the rest spread out.
    zn = np.concatenate([np.zeros(750), RNG.uniform(12.5, 100, 250)])
    edges = reference_edges(zn)
    assert edges[0] > 0
    assert len(edges) == len(set(edges)) < MAX_BINS - 1
    reference = build_reference("ZN", zn)
    assert reference.fractions[0] >= 0.75
    assert all(f > 0 for f in reference.fractions)


def test_every_reference_bin_holds_training_values() -> None:
    # Deciles of this small sample interpolate to 0.68 and 0.8 with no value in between.
    values = np.array([0, 0.1, 0.1, 0.2, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 0.8, 1.0, 1.7, 1.8, 5.4])
    reference = build_reference("X", values)
    assert all(f > 0 for f in reference.fractions)
    assert 0.8 in reference.edges


def test_constant_feature_has_a_single_bin() -> None:
    reference = build_reference("CONST", np.full(10, 3.0))
    assert reference.edges == ()
    assert reference.fractions == (1.0,)
    assert bin_counts(np.array([-1e9, 3.0, 1e9]), reference.edges).tolist() == [3]


def test_every_serve_time_value_lands_in_a_bin() -> None:
    edges = (1.0, 2.0, 3.0)
    values = np.array([-np.inf, -1e300, 0.999, 1.0, 1.5, 2.0, 2.999, 3.0, 1e300, np.inf])
    assert bin_indices(values, edges).tolist() == [0, 0, 0, 1, 1, 2, 2, 3, 3, 3]
    assert bin_counts(values, edges).tolist() == [3, 2, 2, 3]


def test_reference_fractions_match_serve_time_binning() -> None:
    values = RNG.lognormal(0, 1.5, 2000)
    reference = build_reference("CRIM", values)
    counts = bin_counts(values, reference.edges)
    assert tuple(counts / counts.sum()) == pytest.approx(reference.fractions)


def as_json(reference: DriftReference) -> dict:
    data = {"feature": reference.feature, "edges": reference.edges}
    return json.loads(json.dumps({**data, "fractions": reference.fractions}))


def test_round_trip_through_json_as_the_card_reads_it() -> None:
    reference = build_reference("LSTAT", RNG.gamma(3, 4, 500))
    assert parse_typed(DriftReference, as_json(reference), "drift[0]") == reference


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"feature": "RM", "edges": [1.0], "fractions": [1.0]}, "need 2 fractions"),
        ({"feature": "RM", "edges": [2.0, 1.0], "fractions": [0.3, 0.3, 0.4]}, "increasing"),
        ({"feature": "RM", "edges": [1.0], "fractions": [0.5, 0.6]}, "sum to 1"),
        ({"feature": "RM", "edges": [1.0], "fractions": [-0.5, 1.5]}, ">= 0"),
        ({"feature": "RM", "edges": [math.nan], "fractions": [0.5, 0.5]}, "finite"),
        ({"feature": "RM", "edges": ["1"], "fractions": [0.5, 0.5]}, "expected a number"),
        ({"feature": "RM", "edges": [True], "fractions": [0.5, 0.5]}, "expected a number"),
        ({"feature": "", "edges": [], "fractions": [1.0]}, "non-empty"),
        ({"feature": "RM", "edges": []}, "missing"),
        ({"feature": "RM", "edges": [], "fractions": [1.0], "extra": 1}, "unknown"),
        ({"feature": "RM", "edges": list(range(10)), "fractions": [0.1] * 10 + [0.0]}, "at most"),
    ],
)
def test_the_card_refuses_invalid_references(data: dict, message: str) -> None:
    with pytest.raises(CardError, match=message):
        parse_typed(DriftReference, data, "drift[0]")


@pytest.mark.parametrize("values", [np.array([]), np.array([1.0, np.nan]), np.array([np.inf])])
def test_training_values_must_be_finite_and_present(values: np.ndarray) -> None:
    with pytest.raises(ValueError):
        build_reference("X", values)


def test_psi_is_zero_for_identical_distributions() -> None:
    assert psi([25, 25, 50], (0.25, 0.25, 0.5)) == 0.0


def test_psi_matches_the_promtool_fixture() -> None:
    # The same numbers as the PSI case in observability/prometheus/rules/tests/recording_test.yml.
    by_hand = (
        (PSI_EPSILON - 0.1) * math.log(PSI_EPSILON / 0.1)
        + (0.15 - 0.2) * math.log(0.15 / 0.2)
        + (0.55 - 0.4) * math.log(0.55 / 0.4)
    )
    value = psi([0, 180, 360, 660], (0.1, 0.2, 0.3, 0.4))
    assert value == pytest.approx(by_hand, rel=1e-15)
    assert value == pytest.approx(0.7522369156606847, rel=1e-15)


def test_psi_grows_with_the_shift() -> None:
    reference = build_reference("RM", RNG.normal(0, 1, 20000))
    shifts = [0.0, 0.25, 0.5, 1.0]
    values = [
        psi(bin_counts(RNG.normal(shift, 1, 20000), reference.edges), reference.fractions)
        for shift in shifts
    ]
    assert values[0] < 0.01
    assert values == sorted(values)
    assert values[-1] > 0.25


def test_psi_rejects_mismatched_or_empty_input() -> None:
    with pytest.raises(ValueError, match="reference bins"):
        psi([1, 2], (0.2, 0.3, 0.5))
    with pytest.raises(ValueError, match="at least one"):
        psi([0, 0], (0.5, 0.5))
