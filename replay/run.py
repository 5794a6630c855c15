"""One replay run: how the CSV reads → its columns against the model card → open-loop schedule
→ HTTP → stats, feedback and the report."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from replay.columns import Columns, ColumnsError, mismatch, name_columns
from replay.csv_format import Sniffed, sniff
from replay.csv_source import DEFAULT_SHUFFLE_BUFFER, CsvSource, Row
from replay.feedback import FEEDBACK_PATH, FeedbackPoster, feedback_items
from replay.report import Progress, RunStats, build_report
from replay.scheduler import run_open_loop
from replay.sender import Outcome, Sender
from replay.served_model import MODEL_PATH, fetch_served_model
from replay.shift import apply_shifts, check_columns
from replay.tracing import attach_run_baggage, start_tracing, stop_tracing

PREDICT_PATH = "/predict"
# This many requests failing to connect (or TLS-handshake) before any response, or answered 404
# before any other response, means the target is down or wrong: stop instead of burning the
# whole --duration on refused connections or 404s.
FAIL_FAST_ATTEMPTS = 3


class TargetUnreachable(Exception):
    """The target gave no response at all to what the run needs before it starts."""


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
    # None: the model card's target name (MEDV without a card).
    target_column: str | None = None
    # None: not asked for (feedback still goes out at once when the file has a target column).
    feedback_delay: float | None = None
    headers: dict[str, str] = field(default_factory=dict)
    timeout: float = 10.0
    verify: bool | str = True
    shifts: dict[str, float] = field(default_factory=dict)
    max_retries: int = 2
    # Overrides of what is guessed from the file's first lines.
    delimiter: str | None = None
    header: bool | None = None
    columns: tuple[str, ...] | None = None
    # Send even when the columns do not fit the model card.
    force: bool = False


@dataclass(slots=True)
class RunOutcome:
    report: dict[str, Any]
    # Why the run stopped early when the target is down or wrong: "unreachable: ..." or
    # "has no /predict: ...", to follow "target URL".
    stopped: str | None
    interrupted: bool


class _FailFast:
    """Trips after FAIL_FAST_ATTEMPTS connect/TLS failures before any response, or as many 404s
    before any other response."""

    def __init__(self, stop: threading.Event, base_url: str) -> None:
        self._stop = stop
        self._base_url = base_url
        self._lock = threading.Lock()
        self._failures = 0
        self._not_found = 0
        self._other_response = False
        self.reason: str | None = None

    def observe(self, outcome: Outcome) -> None:
        with self._lock:
            if self.reason is not None or self._other_response:
                return
            if outcome.status is None:
                if outcome.error in ("connect", "tls") and self._not_found == 0:
                    self._failures += 1
                    if self._failures >= FAIL_FAST_ATTEMPTS:
                        self._trip(
                            f"unreachable: {outcome.error} failed {self._failures} times, "
                            f"no response yet: {outcome.detail}"
                        )
            elif outcome.status == 404:
                self._not_found += 1
                if self._not_found >= FAIL_FAST_ATTEMPTS:
                    self._trip(
                        f"has no {PREDICT_PATH}: it answered 404 {self._not_found} times, "
                        f"nothing else yet; is --target the API's base URL? Requests went to "
                        f"{self._base_url}{PREDICT_PATH}"
                    )
            else:
                self._other_response = True

    def _trip(self, reason: str) -> None:
        self.reason = reason
        self._stop.set()


def _stderr(message: str) -> None:
    print(message, file=sys.stderr)


def execute(
    config: RunConfig,
    progress_stream: TextIO | None = None,
    notify: Callable[[str], None] = _stderr,
) -> RunOutcome:
    """Run the replay described by `config`, saying on `notify` how the file is read. Raises
    CsvUnreadable for a broken CSV, ColumnsError for columns that cannot be named or do not
    fit the model, TargetUnreachable when the card needed to name them cannot be fetched."""
    sniffed = sniff(config.csv_path, delimiter=config.delimiter, header=config.header)
    stop = threading.Event()
    provider = start_tracing()
    sender = Sender(
        config.target,
        run_id=config.run_id,
        pool_size=config.concurrency + 1,  # +1: the feedback thread
        timeout=config.timeout,
        headers=config.headers,
        verify=config.verify,
        max_retries=config.max_retries,
        stop=stop,
        tracer=provider.get_tracer("replay"),
    )
    try:
        columns = _columns(config, sniffed, sender, notify)
        with CsvSource(
            config.csv_path,
            csv_format=sniffed.format,
            columns=columns.names,
            target_column=columns.target,
            loop=config.loop,
            shuffle_seed=config.shuffle_seed,
            shuffle_buffer=config.shuffle_buffer,
        ) as source:
            check_columns(config.shifts, source.feature_columns)
            return _send_all(config, source, sender, stop, progress_stream)
    finally:
        sender.close()
        stop_tracing(provider)


def _columns(
    config: RunConfig, sniffed: Sniffed, sender: Sender, notify: Callable[[str], None]
) -> Columns:
    """Name the columns (from the card when the file has no header), say how the file is read,
    and refuse columns that do not fit the model unless --force."""
    path = config.csv_path
    card_url = sender.url(MODEL_PATH)
    lookup = fetch_served_model(sender.get_json, card_url)
    needs_card = config.columns is None and not sniffed.format.header
    if needs_card and lookup.unreachable:
        raise TargetUnreachable(f"unreachable: {lookup.problem}")
    columns = name_columns(
        path,
        sniffed,
        lookup.served,
        given=config.columns,
        target_column=config.target_column,
        card_problem=lookup.problem,
    )
    notify(f"replay: reading {path}: {sniffed.format.describe()}; {columns.describe()}")
    if lookup.served is None:
        notify(f"replay: columns not checked against the model card: {lookup.problem}")
    elif wrong := mismatch(columns, lookup.served):
        where = f"{path}: the columns do not fit the model {lookup.served.describe()}: {wrong}"
        if not config.force:
            raise ColumnsError(
                f"{where}; the server would refuse every row. Fix the header, name the columns "
                "with --columns, or send anyway with --force"
            )
        notify(f"replay: {where}; sending anyway (--force)")
    if config.feedback_delay is not None and not columns.has_target:
        notify(
            f"replay: --feedback-delay {config.feedback_delay:g} has no effect: {path} has no "
            f"{columns.target} column, so no ground truth is sent (see --target-column)"
        )
    return columns


def _send_all(
    config: RunConfig,
    source: CsvSource,
    sender: Sender,
    stop: threading.Event,
    progress_stream: TextIO | None,
) -> RunOutcome:
    stats = RunStats()
    fail_fast = _FailFast(stop, config.target)
    feedback = None
    if source.has_target:
        feedback = FeedbackPoster(
            sender.post_json,
            delay=config.feedback_delay or 0.0,
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
        fail_fast.observe(outcome)
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
