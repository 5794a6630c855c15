"""The bench's arithmetic (no servers, no timing): ratios against the fastest of several peers
round by round, and the cost table's per-request sums."""

from __future__ import annotations

import pytest

from bench.cost_table import Piece, Row, layer_sum, totals
from bench.measure import Sample
from bench.report import RatioSpec, ratio_table
from bench.timing import Timing


def sample(variant: str, round_no: int, rps: float, p99_ms: float = 10.0) -> Sample:
    return Sample(variant, round_no, "wrk", 1000, rps, 1.0, 2.0, p99_ms)


SAMPLES = [
    sample("ours", 0, 300.0), sample("a", 0, 100.0), sample("b", 0, 200.0),
    sample("ours", 1, 300.0), sample("a", 1, 150.0), sample("b", 1, 120.0),
    sample("ours", 2, 300.0), sample("b", 2, 250.0),  # peer a failed in round 2
]  # fmt: skip


def test_several_denominators_take_the_fastest_of_each_round() -> None:
    row = ratio_table(SAMPLES, {"vs_peer": RatioSpec("ours", ("a", "b"))})["vs_peer"]
    assert row["pairs"] == [1.5, 2.0, 1.2]
    assert row["denominator_per_round"] == ["b", "a", "b"]
    assert row["value"] == 1.5
    assert row["denominator"] == "fastest of a, b"


def test_one_denominator_keeps_the_old_shape() -> None:
    row = ratio_table(SAMPLES, {"vs_a": RatioSpec("ours", "a")})["vs_a"]
    assert row["pairs"] == [3.0, 2.0]
    assert "denominator_per_round" not in row


def test_a_latency_ratio_is_inverted_and_the_best_peer_is_the_lowest() -> None:
    samples = [sample("ours", 0, 1.0, p99_ms=20.0), sample("a", 0, 1.0, p99_ms=10.0),
               sample("b", 0, 1.0, p99_ms=40.0)]  # fmt: skip
    row = ratio_table(samples, {"p99": RatioSpec("ours", ("a", "b"), "p99_ms")})["p99"]
    assert row["pairs"] == [0.5]
    assert row["denominator_per_round"] == ["a"]


def row(name: str, median_us: float, calls: tuple[float, float], **kwargs: object) -> Row:
    piece = Piece("group", name, lambda: None, 1, calls, **kwargs)  # type: ignore[arg-type]
    return Row(piece, Timing(1, 1, median_us, median_us, median_us))


def test_per_request_sums_count_calls_and_skip_comparison_rows() -> None:
    rows = [
        row("span", 30.0, (1, 1), layer="attach"),
        row("per row", 10.0, (1, 1000)),
        row("alternative", 99.0, (0, 0)),
        row("batch of 4", 8.0, (3, 3), operations=4, layer="export"),
        row("parse", 5.0, (1, 0), telemetry=False),
    ]
    assert totals(rows) == {
        "telemetry": {"1 row": 46.0, "1000 rows": 10036.0},
        "rest": {"1 row": 5.0, "1000 rows": 0.0},
    }
    assert layer_sum(rows, {"attach", "service"}) == pytest.approx(40.0)
    assert layer_sum(rows, {"export"}, size=1) == pytest.approx(6.0)
