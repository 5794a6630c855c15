"""Run statistics: bounded histogram percentiles, slowest traces, report keys and summary."""

from __future__ import annotations

import json

import pytest

from replay.report import (
    MAX_ERROR_KINDS,
    MAX_EXAMPLE_CHARS,
    OTHER_CODE,
    ErrorTally,
    LatencyHistogram,
    RunStats,
    build_report,
    summary_table,
    write_report,
)
from replay.sender import Outcome

REQUIRED_KEYS = {
    "sent", "succeeded", "failed", "status_counts", "skipped_rows", "late_starts",
    "achieved_rps", "latency_ms", "feedback_sent", "slowest_trace_ids", "run_id", "target",
}  # fmt: skip


def test_histogram_percentiles_are_within_one_percent():
    histogram = LatencyHistogram()
    for ms in range(1, 1001):
        histogram.record(float(ms))
    assert histogram.percentile(50) == pytest.approx(500, rel=0.01)
    assert histogram.percentile(99) == pytest.approx(990, rel=0.01)
    assert histogram.percentile(100) == 1000.0
    assert histogram.max_ms == 1000.0


def test_histogram_memory_does_not_grow_with_observations():
    histogram = LatencyHistogram()
    for i in range(100_000):
        histogram.record(i * 0.37)
    histogram.record(1e12)  # beyond the top bucket: clamped, max stays exact
    assert len(histogram._counts) == LatencyHistogram.BUCKETS
    assert histogram.max_ms == 1e12
    assert histogram.count == 100_001


def test_empty_histogram_reports_zero():
    assert LatencyHistogram().percentile(99) == 0.0


def _stats() -> RunStats:
    stats = RunStats()
    for i in range(10):
        stats.record_request(Outcome(200, trace_id=f"{i:032x}"), rows=2, latency_ms=float(i))
    stats.record_request(Outcome(422, trace_id="f" * 32), rows=1, latency_ms=3.0)
    stats.record_request(Outcome(None, "timeout", retries=1), rows=1, latency_ms=100.0)
    stats.record_feedback(Outcome(404), items=3)
    return stats


def test_stats_count_outcomes_and_keep_the_five_slowest_traces():
    stats = _stats()
    assert (stats.sent, stats.succeeded, stats.failed, stats.rows_sent) == (12, 10, 2, 22)
    assert stats.status_counts == {200: 10, 422: 1}
    assert stats.error_counts == {"timeout": 1}
    assert stats.slowest_trace_ids() == [f"{i:032x}" for i in (9, 8, 7, 6, 5)]


def test_report_has_the_fixed_keys_and_is_json(tmp_path):
    report = build_report(
        _stats(),
        run_id="r1",
        target="http://127.0.0.1:1",
        skipped_rows=2,
        late_starts=1,
        missed_slots=0,
        achieved_rps=49.5,
        target_rps=50,
        max_start_delay_ms=12.0,
    )
    assert report.keys() >= REQUIRED_KEYS
    assert report["status_counts"] == {"200": 10, "422": 1}
    assert set(report["latency_ms"]) == {"p50", "p90", "p99", "max"}
    assert report["latency_ms"]["max"] == 100.0
    assert report["feedback_failed"] == 3
    path = tmp_path / "r.json"
    write_report(path, report)
    assert json.loads(path.read_text()) == report
    table = summary_table(report)
    assert "422: 1" in table
    assert f"{9:032x}" in table


def test_error_responses_are_tallied_by_code_with_one_example_each():
    stats = RunStats()
    for row in range(200):
        missing = Outcome(422, error_code="missing_field")
        missing.error_message = f"records[{row}].LSTAT: is required"
        stats.record_request(missing, rows=1, latency_ms=1.0)
    stats.record_request(Outcome(502), rows=1, latency_ms=1.0)  # a proxy's HTML page
    stats.record_feedback(
        Outcome(422, error_code="invalid_prediction_id", error_message="items[0].id: expired"), 1
    )
    report = build_report(
        stats, run_id="r", target="http://127.0.0.1:1", skipped_rows=0, late_starts=0,
        missed_slots=0, achieved_rps=1.0, target_rps=1.0, max_start_delay_ms=0.0,
    )  # fmt: skip
    assert report["error_codes"] == [
        {"status": 422, "code": "missing_field", "count": 200, "example": "LSTAT: is required"},
        {"status": 502, "code": None, "count": 1, "example": None},
    ]
    assert report["feedback_error_codes"] == [
        {"status": 422, "code": "invalid_prediction_id", "count": 1,
         "example": "items[0].id: expired"},
    ]  # fmt: skip
    lines = summary_table(report).splitlines()
    assert "server errors     422 missing_field (200 requests): LSTAT: is required" in lines
    assert any(line.endswith("502 (no error code) (1 request)") for line in lines)
    assert any("422 invalid_prediction_id (1 request): items[0].id: expired" in x for x in lines)


def test_the_error_tally_is_bounded():
    tally = ErrorTally()
    for i in range(MAX_ERROR_KINDS + 50):
        tally.add(422, f"code_{i}", "message " * 100)
    kinds = tally.to_list()
    assert len(kinds) == MAX_ERROR_KINDS + 1
    assert {"status": 422, "code": OTHER_CODE, "count": 50, "example": None} in kinds
    assert all(len(kind["example"] or "") <= MAX_EXAMPLE_CHARS for kind in kinds)
