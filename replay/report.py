"""Run statistics for replay: counters, a fixed-size latency histogram, the slowest traces, the
live progress line, the summary table and the JSON report."""

from __future__ import annotations

import heapq
import json
import math
import re
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from replay.sender import Outcome

SLOWEST_KEPT = 5
# Distinct (status, error code) pairs kept with an example; more are pooled under OTHER_CODE, so
# a server inventing codes cannot grow the report.
MAX_ERROR_KINDS = 20
OTHER_CODE = "_other"
MAX_EXAMPLE_CHARS = 200
# Replay sends {"records": [...]}: the row index in a message is the batch's, not the file's.
_RECORD_PREFIX = re.compile(r"^records\[\d+\]\.")


class LatencyHistogram:
    """Log-bucketed latencies: 1 % relative precision from 10 µs to ~3 hours in ~2,100 fixed
    buckets, so memory is the same for a 10-second and a 10-day run (HDR-histogram style).
    Percentiles report the bucket's upper edge, capped at the exact maximum."""

    MIN_MS = 0.01
    GROWTH = 1.01
    BUCKETS = 2_100

    def __init__(self) -> None:
        self._counts = [0] * self.BUCKETS
        self._log_growth = math.log(self.GROWTH)
        self.count = 0
        self.max_ms = 0.0

    def record(self, ms: float) -> None:
        index = 0
        if ms > self.MIN_MS:
            index = min(int(math.log(ms / self.MIN_MS) / self._log_growth) + 1, self.BUCKETS - 1)
        self._counts[index] += 1
        self.count += 1
        self.max_ms = max(self.max_ms, ms)

    def _upper_edge(self, index: int) -> float:
        return self.MIN_MS * self.GROWTH**index

    def percentile(self, p: float) -> float:
        """The smallest bucket edge with at least p % of observations at or below it."""
        if self.count == 0:
            return 0.0
        rank = max(1, math.ceil(p / 100.0 * self.count))
        seen = 0
        for index, n in enumerate(self._counts):
            seen += n
            if seen >= rank:
                return min(self._upper_edge(index), self.max_ms)
        return self.max_ms


class ErrorTally:
    """Error responses by status and the API's error code, with the first message of each: what
    a user needs to see why requests failed (e.g. 422 missing_field: LSTAT: is required)."""

    def __init__(self) -> None:
        self._kinds: dict[tuple[int, str | None], list[Any]] = {}  # -> [count, example]

    def add(self, status: int, code: str | None, message: str | None) -> None:
        key = (status, code)
        entry = self._kinds.get(key)
        if entry is None:
            if len(self._kinds) >= MAX_ERROR_KINDS:
                key, message = (status, OTHER_CODE), None
                entry = self._kinds.get(key)
            if entry is None:
                entry = self._kinds[key] = [0, _example(message)]
        entry[0] += 1

    def to_list(self) -> list[dict[str, Any]]:
        """Most frequent first."""
        kinds = sorted(self._kinds.items(), key=lambda item: (-item[1][0], item[0][0]))
        return [
            {"status": status, "code": code, "count": count, "example": example}
            for (status, code), (count, example) in kinds
        ]


def _example(message: str | None) -> str | None:
    if message is None:
        return None
    text = " ".join(_RECORD_PREFIX.sub("", message).split())
    return text if len(text) <= MAX_EXAMPLE_CHARS else text[: MAX_EXAMPLE_CHARS - 3] + "..."


class RunStats:
    """Thread-safe tallies of one run; worker threads record, the reporter reads snapshots."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self.started_at = clock()
        self.sent = 0
        self.rows_sent = 0
        self.succeeded = 0
        self.failed = 0
        self.retries = 0
        self.responses = 0
        self.traces_joined = 0
        self.traces_not_joined = 0
        self.status_counts: Counter[int] = Counter()
        self.error_counts: Counter[str] = Counter()
        self.error_codes = ErrorTally()
        self.latency = LatencyHistogram()
        self._slowest: list[tuple[float, str]] = []  # min-heap of (ms, trace id)
        self.feedback_sent = 0
        self.feedback_failed = 0
        self.feedback_dropped = 0
        self.feedback_status_counts: Counter[int] = Counter()
        self.feedback_error_counts: Counter[str] = Counter()
        self.feedback_error_codes = ErrorTally()

    def record_request(self, outcome: Outcome, rows: int, latency_ms: float) -> None:
        with self._lock:
            self.sent += 1
            self.rows_sent += rows
            self.retries += outcome.retries
            if outcome.ok:
                self.succeeded += 1
            else:
                self.failed += 1
            if outcome.status is not None:
                self.responses += 1
                self.status_counts[outcome.status] += 1
                if not outcome.ok:
                    self.error_codes.add(outcome.status, outcome.error_code, outcome.error_message)
            else:
                self.error_counts[outcome.error or "request"] += 1
            if outcome.trace_joined is not None:
                if outcome.trace_joined:
                    self.traces_joined += 1
                else:
                    self.traces_not_joined += 1
            self.latency.record(latency_ms)
            if outcome.trace_id:
                entry = (latency_ms, outcome.trace_id)
                if len(self._slowest) < SLOWEST_KEPT:
                    heapq.heappush(self._slowest, entry)
                elif entry > self._slowest[0]:
                    heapq.heapreplace(self._slowest, entry)

    def record_feedback(self, outcome: Outcome, items: int) -> None:
        with self._lock:
            if outcome.ok:
                self.feedback_sent += items
            else:
                self.feedback_failed += items
            if outcome.status is not None:
                self.feedback_status_counts[outcome.status] += 1
                if not outcome.ok:
                    self.feedback_error_codes.add(
                        outcome.status, outcome.error_code, outcome.error_message
                    )
            else:
                self.feedback_error_counts[outcome.error or "request"] += 1

    def record_feedback_dropped(self, items: int) -> None:
        with self._lock:
            self.feedback_dropped += items

    @property
    def error_rate(self) -> float:
        return self.failed / self.sent if self.sent else 0.0

    def slowest_trace_ids(self) -> list[str]:
        with self._lock:
            return [trace for _, trace in sorted(self._slowest, reverse=True)]

    def progress_line(self, since: tuple[float, int]) -> tuple[str, tuple[float, int]]:
        """The line for now, with the rate over the interval since the previous (time, sent)."""
        with self._lock:
            now, sent = self._clock(), self.sent
            rate = (sent - since[1]) / max(now - since[0], 1e-9)
            line = (
                f"sent {sent}  rate {rate:.1f}/s  errors {self.failed}  "
                f"p99 {self.latency.percentile(99):.1f} ms"
            )
            return line, (now, sent)


class Progress:
    """Progress on stderr: a line redrawn every second on a terminal, otherwise (CI logs, pipes)
    a plain line at most every 5 seconds."""

    def __init__(self, stats: RunStats, stream: TextIO | None = None) -> None:
        self._stats = stats
        self._stream = stream or sys.stderr
        self._tty = self._stream.isatty()
        self._interval = 1.0 if self._tty else 5.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="replay-progress", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        if self._tty:
            self._stream.write("\r\x1b[2K")
            self._stream.flush()

    def _run(self) -> None:
        mark = (self._stats.started_at, 0)
        while not self._stop.wait(self._interval):
            line, mark = self._stats.progress_line(mark)
            self._stream.write(f"\r\x1b[2K{line}" if self._tty else f"replay: {line}\n")
            self._stream.flush()


def build_report(
    stats: RunStats,
    *,
    run_id: str,
    target: str,
    skipped_rows: int,
    late_starts: int,
    missed_slots: int,
    achieved_rps: float,
    target_rps: float,
    max_start_delay_ms: float,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The --report document: the run's counts and rates first (the keys scripts read, kept
    stable), then the details this client adds."""
    latency = stats.latency
    report: dict[str, Any] = {
        "sent": stats.sent,
        "succeeded": stats.succeeded,
        "failed": stats.failed,
        "status_counts": {str(code): n for code, n in sorted(stats.status_counts.items())},
        "skipped_rows": skipped_rows,
        "late_starts": late_starts,
        "achieved_rps": round(achieved_rps, 3),
        "latency_ms": {
            "p50": round(latency.percentile(50), 3),
            "p90": round(latency.percentile(90), 3),
            "p99": round(latency.percentile(99), 3),
            "max": round(latency.max_ms, 3),
        },
        "feedback_sent": stats.feedback_sent,
        "slowest_trace_ids": stats.slowest_trace_ids(),
        "run_id": run_id,
        "target": target,
        # Additions beyond the fixed keys.
        "target_rps": target_rps,
        "rows_sent": stats.rows_sent,
        "error_counts": dict(sorted(stats.error_counts.items())),
        # Error responses by status and API error code, one example message each.
        "error_codes": stats.error_codes.to_list(),
        "error_rate": round(stats.error_rate, 6),
        "retries": stats.retries,
        # Responses whose trace_id is our traceparent's (the server joined our trace) or not
        # (a proxy dropped the header, or the server ignores it).
        "traces_joined": stats.traces_joined,
        "traces_not_joined": stats.traces_not_joined,
        "missed_slots": missed_slots,
        "max_start_delay_ms": round(max_start_delay_ms, 3),
        "feedback_failed": stats.feedback_failed,
        "feedback_dropped": stats.feedback_dropped,
        "feedback_status_counts": {
            str(code): n for code, n in sorted(stats.feedback_status_counts.items())
        },
        "feedback_error_counts": dict(sorted(stats.feedback_error_counts.items())),
        "feedback_error_codes": stats.feedback_error_codes.to_list(),
    }
    report.update(extra or {})
    return report


def _counts_text(counts: dict[str, int]) -> str:
    return ", ".join(f"{key}: {n}" for key, n in counts.items()) or "-"


def error_code_lines(kinds: list[dict[str, Any]]) -> list[str]:
    """`422 missing_field (200 requests): LSTAT: is required`, one line per kind ("-": none)."""
    lines = []
    for kind in kinds:
        requests = "request" if kind["count"] == 1 else "requests"
        line = f"{kind['status']} {kind['code'] or '(no error code)'} ({kind['count']} {requests})"
        lines.append(f"{line}: {kind['example']}" if kind["example"] else line)
    return lines or ["-"]


def summary_table(report: dict[str, Any]) -> str:
    """The human summary printed on stdout at the end of a run."""
    latency = report["latency_ms"]
    rows = [
        ("run id", report["run_id"]),
        ("target", report["target"]),
        ("sent", f"{report['sent']} requests, {report['rows_sent']} rows"),
        ("succeeded", report["succeeded"]),
        ("failed", f"{report['failed']} ({report['error_rate']:.2%})"),
        ("status counts", _counts_text(report["status_counts"])),
        ("transport errors", _counts_text(report["error_counts"])),
        ("retries", report["retries"]),
        ("skipped rows", report["skipped_rows"]),
        ("rate", f"{report['achieved_rps']:.1f}/s achieved of {report['target_rps']:g}/s"),
        ("late starts", f"{report['late_starts']} (max {report['max_start_delay_ms']:.1f} ms)"),
        ("missed slots", report["missed_slots"]),
        (
            "latency ms",
            f"p50 {latency['p50']:.1f}  p90 {latency['p90']:.1f}  "
            f"p99 {latency['p99']:.1f}  max {latency['max']:.1f}",
        ),
        (
            "feedback",
            f"{report['feedback_sent']} sent, {report['feedback_failed']} failed, "
            f"{report['feedback_dropped']} dropped",
        ),
    ]
    listed = [
        ("server errors", error_code_lines(report["error_codes"])),
        ("feedback errors", error_code_lines(report["feedback_error_codes"])),
        ("slowest traces", report["slowest_trace_ids"] or ["-"]),
    ]
    width = max(len(name) for name, _ in rows + listed)
    lines = [f"{name:<{width}}  {value}" for name, value in rows]
    for name, values in listed:
        lines.append(f"{name:<{width}}  {values[0]}")
        lines.extend(f"{'':<{width}}  {value}" for value in values[1:])
    return "\n".join(lines)


def write_report(path: Path, report: dict[str, Any]) -> None:
    path.write_text(json.dumps(report, indent=2) + "\n")
