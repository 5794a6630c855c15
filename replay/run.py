"""One replay run: CSV rows → open-loop schedule → HTTP → stats, feedback and the report."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from replay.csv_source import DEFAULT_SHUFFLE_BUFFER, CsvSource, Row
from replay.drift import apply_shifts, check_columns
from replay.feedback import FEEDBACK_PATH, FeedbackPoster, feedback_items
from replay.report import Progress, RunStats, build_report
from replay.scheduler import run_open_loop
from replay.sender import Sender
from replay.tracing import attach_run_baggage, start_tracing, stop_tracing

PREDICT_PATH = "/predict"
# This many requests failing to connect (or TLS-handshake) before any response means the target
# is down or wrong: stop instead of burning the whole --duration on refused connections.
FAIL_FAST_ATTEMPTS = 3


@dataclass(slots=True)
class RunConfig:
    csv_path: Path
    target: str
    run_id: str
    rate: float = 10.0
    duration: float | None = None
    count: int | None = None
    concurrency: int = 10
    batch_size: int = 1
    loop: bool = False
    shuffle_seed: int | None = None
    shuffle_buffer: int = DEFAULT_SHUFFLE_BUFFER
    target_column: str = "MEDV"
    feedback_delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    timeout: float = 10.0
    verify: bool | str = True
    shifts: dict[str, float] = field(default_factory=dict)
    max_retries: int = 2


@dataclass(slots=True)
class RunOutcome:
    report: dict[str, Any]
    unreachable: str | None  # why the run stopped early, when the target could not be reached
    interrupted: bool


class _FailFast:
    """Counts connect/TLS failures until the first response; trips after FAIL_FAST_ATTEMPTS."""

    def __init__(self, stop: threading.Event) -> None:
        self._stop = stop
        self._lock = threading.Lock()
        self._failures = 0
        self.reason: str | None = None

    def observe(self, error: str | None, detail: str, any_response: bool) -> None:
        if error not in ("connect", "tls") or any_response:
            return
        with self._lock:
            self._failures += 1
            if self._failures >= FAIL_FAST_ATTEMPTS and self.reason is None:
                self.reason = f"{error} failed {self._failures} times, no response yet: {detail}"
                self._stop.set()


def execute(config: RunConfig, progress_stream: TextIO | None = None) -> RunOutcome:
    """Run the replay described by `config`; raises CsvUnreadable for a broken CSV."""
    with CsvSource(
        config.csv_path,
        target_column=config.target_column,
        loop=config.loop,
        shuffle_seed=config.shuffle_seed,
        shuffle_buffer=config.shuffle_buffer,
    ) as source:
        check_columns(config.shifts, source.feature_columns)
        provider = start_tracing(config.run_id)
        try:
            return _send_all(config, source, progress_stream)
        finally:
            stop_tracing(provider)


def _send_all(config: RunConfig, source: CsvSource, progress_stream: TextIO | None) -> RunOutcome:
    stop = threading.Event()
    stats = RunStats()
    fail_fast = _FailFast(stop)
    sender = Sender(
        config.target,
        run_id=config.run_id,
        pool_size=config.concurrency + 1,  # +1: the feedback thread
        timeout=config.timeout,
        headers=config.headers,
        verify=config.verify,
        max_retries=config.max_retries,
        stop=stop,
    )
    feedback = None
    if source.has_target:
        feedback = FeedbackPoster(
            sender.post_json,
            delay=config.feedback_delay,
            stats=stats,
            url=sender.url(FEEDBACK_PATH),
        )

    def thread_init() -> None:
        attach_run_baggage(config.run_id)

    def send(batch: list[Row], due: float) -> None:
        records = []
        for row in batch:
            if config.shifts:
                apply_shifts(row.features, config.shifts)
            records.append(row.features)
        outcome = sender.post_json(PREDICT_PATH, {"records": records})
        stats.record_request(outcome, len(batch), (time.monotonic() - due) * 1000.0)
        fail_fast.observe(outcome.error, outcome.detail, stats.responses > 0)
        if feedback is not None and outcome.ok and isinstance(outcome.body, dict):
            feedback.offer(feedback_items(outcome.body.get("ids"), [row.actual for row in batch]))

    progress = Progress(stats, progress_stream)
    if feedback is not None:
        feedback.start(thread_init)
    progress.start()
    try:
        schedule = run_open_loop(
            source.batches(config.batch_size),
            send,
            rate=config.rate,
            concurrency=config.concurrency,
            count=config.count,
            duration=config.duration,
            stop=stop,
            thread_init=thread_init,
        )
    finally:
        if feedback is not None:
            feedback.close(abandon=stop.is_set())
        progress.stop()
        sender.close()
    report = build_report(
        stats,
        run_id=config.run_id,
        target=config.target,
        skipped_rows=source.skipped_rows,
        late_starts=schedule.late_starts,
        missed_slots=schedule.missed,
        achieved_rps=schedule.achieved_rps(config.rate),
        target_rps=config.rate,
        max_start_delay_ms=schedule.max_start_delay_s * 1000.0,
        extra={"shuffle_seed": config.shuffle_seed, "batch_size": config.batch_size},
    )
    return RunOutcome(report, fail_fast.reason, schedule.interrupted)
