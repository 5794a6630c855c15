"""Open-loop scheduling without a network: due times, the in-flight bound and late starts."""

from __future__ import annotations

import threading
import time

import pytest

from replay.scheduler import LATE_TOLERANCE_S, run_open_loop


def _recorder():
    lock = threading.Lock()
    calls: list[tuple[int, float]] = []

    def work(job: int, due: float) -> None:
        with lock:
            calls.append((job, due))

    return calls, work


def test_due_times_are_evenly_spaced_at_the_rate():
    calls, work = _recorder()
    result = run_open_loop(iter(range(10)), work, rate=100, concurrency=3)
    dues = sorted(due for _, due in calls)
    assert sorted(job for job, _ in calls) == list(range(10))
    assert dues == pytest.approx([result.start_time + i * 0.01 for i in range(10)])
    assert result.started == 10


def test_count_bounds_an_endless_source():
    calls, work = _recorder()
    result = run_open_loop(iter(range(10**9)), work, rate=1000, concurrency=2, count=25)
    assert len(calls) == 25 == result.started


def test_duration_bounds_the_schedule_by_due_time():
    calls, work = _recorder()
    result = run_open_loop(iter(range(10**9)), work, rate=200, concurrency=4, duration=0.1)
    assert len(calls) == 20
    assert result.missed == 0


def test_busy_workers_make_late_starts_and_due_times_do_not_slip():
    """One worker, work slower than the interval: every later slot starts late, but due times
    stay on the original grid, so latency measured from them includes the wait."""
    calls: list[float] = []

    def slow(job: int, due: float) -> None:
        calls.append(due)
        time.sleep(3 * LATE_TOLERANCE_S)

    result = run_open_loop(iter(range(5)), slow, rate=1000, concurrency=1)
    assert calls == pytest.approx([result.start_time + i * 0.001 for i in range(5)])
    assert result.late_starts == 4
    assert result.max_start_delay_s > LATE_TOLERANCE_S


def test_duration_counts_slots_that_never_started_as_missed():
    def slow(job: int, due: float) -> None:
        time.sleep(0.05)

    result = run_open_loop(iter(range(10**9)), slow, rate=1000, concurrency=1, duration=0.1)
    assert result.started + result.missed == 100
    assert result.missed > 0


def test_stop_event_ends_the_run():
    stop = threading.Event()
    calls, work = _recorder()

    def stopping(job: int, due: float) -> None:
        work(job, due)
        if job == 2:
            stop.set()

    run_open_loop(iter(range(10**9)), stopping, rate=1000, concurrency=1, stop=stop)
    assert [job for job, _ in calls] == [0, 1, 2]


def test_source_errors_are_raised_in_the_caller():
    def broken():
        yield 1
        raise OSError("disk gone")

    _, work = _recorder()
    with pytest.raises(OSError, match="disk gone"):
        run_open_loop(broken(), work, rate=1000, concurrency=2)


def test_thread_init_runs_in_every_worker():
    names: set[str] = set()
    lock = threading.Lock()

    def init() -> None:
        with lock:
            names.add(threading.current_thread().name)

    _, work = _recorder()
    run_open_loop(iter(range(3)), work, rate=1000, concurrency=3, thread_init=init)
    assert len(names) == 3


def test_achieved_rate_of_an_on_time_run_is_the_target_rate():
    _, work = _recorder()
    result = run_open_loop(iter(range(50)), work, rate=500, concurrency=2)
    # N slots due 1/rate apart span N/rate; jitter only shortens or lengthens the last start.
    assert result.achieved_rps(500) == pytest.approx(500, rel=0.2)
