"""Open-loop scheduling: request i is due at start + i / rate, whatever the server's speed.

Each worker thread claims the next due slot, sleeps until it is due and runs the job; the
number of workers is the in-flight bound (`--concurrency`). When every worker is still busy at a
slot's due time, that slot starts late — it is counted, and its latency (measured by the caller
from the due time, not from the late start) carries the wait, so a slow server cannot hide
behind a slowed-down client (no coordinated omission).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

Job = TypeVar("Job")

# A start later than this after its due time is late. Below it is thread wake-up jitter:
# CPython hands the GIL over every 5 ms, so a sleeping thread can wake that much after its time.
LATE_TOLERANCE_S = 0.010


@dataclass(slots=True)
class ScheduleResult:
    """What the schedule did. `missed` counts slots due inside --duration that never started
    because the window closed first (the client or server could not keep the rate)."""

    started: int = 0
    late_starts: int = 0
    max_start_delay_s: float = 0.0
    missed: int = 0
    start_time: float = 0.0
    last_start: float = 0.0
    interrupted: bool = False

    def achieved_rps(self, rate: float) -> float:
        """Started requests over the time they took to start; the first slot is due at
        start_time, so the last start closes its own interval (N slots span N/rate)."""
        if self.started == 0:
            return 0.0
        window = max(self.last_start - self.start_time + 1.0 / rate, 1e-9)
        return self.started / window


class _Slots(Generic[Job]):
    """The shared slot counter; claiming is serialised so jobs and due times stay in order."""

    def __init__(
        self,
        jobs: Iterator[Job],
        *,
        rate: float,
        count: int | None,
        duration: float | None,
        start_time: float,
        clock: Callable[[], float],
    ) -> None:
        self._jobs = jobs
        self._interval = 1.0 / rate
        self._count = count
        self._deadline = None if duration is None else start_time + duration
        self._start_time = start_time
        self._clock = clock
        self._lock = threading.Lock()
        self.claimed = 0
        self.exhausted = False
        self.error: BaseException | None = None

    def claim(self) -> tuple[Job, float] | None:
        with self._lock:
            if self.exhausted or (self._count is not None and self.claimed >= self._count):
                return None
            if self._deadline is not None and self._clock() >= self._deadline:
                return None
            due = self._start_time + self.claimed * self._interval
            if self._deadline is not None and due >= self._deadline:
                return None
            try:
                job = next(self._jobs)
            except StopIteration:
                self.exhausted = True
                return None
            except BaseException as err:  # e.g. the CSV breaks mid-file: stop and re-raise in run
                self.exhausted = True
                self.error = err
                return None
            self.claimed += 1
            return job, due


def run_open_loop(
    jobs: Iterator[Job],
    work: Callable[[Job, float], None],
    *,
    rate: float,
    concurrency: int,
    count: int | None = None,
    duration: float | None = None,
    stop: threading.Event | None = None,
    thread_init: Callable[[], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    lead_time_s: float = 0.05,
) -> ScheduleResult:
    """Run `work(job, due_time)` for each job at `rate` per second with at most `concurrency`
    in flight, until the jobs run out, `count` jobs started, `duration` seconds passed, or
    `stop` is set. Errors from `jobs` or `work` stop the run and are re-raised here."""
    if rate <= 0 or concurrency < 1:
        raise ValueError("rate must be > 0 and concurrency >= 1")
    stop = stop or threading.Event()
    result = ScheduleResult(start_time=clock() + lead_time_s)
    slots = _Slots(
        jobs, rate=rate, count=count, duration=duration, start_time=result.start_time, clock=clock
    )
    stats_lock = threading.Lock()

    def worker() -> None:
        if thread_init is not None:
            thread_init()
        while not stop.is_set():
            claimed = slots.claim()
            if claimed is None:
                return
            job, due = claimed
            delay = due - clock()
            if delay > 0 and stop.wait(delay):
                return
            started = clock()
            with stats_lock:
                result.started += 1
                result.last_start = max(result.last_start, started)
                late_by = started - due
                result.max_start_delay_s = max(result.max_start_delay_s, late_by)
                if late_by > LATE_TOLERANCE_S:
                    result.late_starts += 1
            try:
                work(job, due)
            except BaseException as err:
                slots.error = slots.error or err
                stop.set()
                return

    threads = [
        threading.Thread(target=worker, name=f"replay-worker-{i}", daemon=True)
        for i in range(concurrency)
    ]
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            # Short joins keep the main thread responsive to Ctrl-C.
            while thread.is_alive():
                thread.join(0.2)
    except KeyboardInterrupt:
        result.interrupted = True
        stop.set()
        for thread in threads:
            thread.join()
    if slots.error is not None:
        raise slots.error
    if duration is not None and not slots.exhausted and not stop.is_set():
        planned = math.ceil(duration * rate - 1e-9)
        if count is not None:
            planned = min(planned, count)
        result.missed = max(0, planned - slots.claimed)
    return result
