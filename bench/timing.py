"""timeit-style timing of one callable: fixed calls per repeat, several repeats, best and
median per call. The clock is the process's CPU time (all its threads, e.g. an export thread
or gRPC's own), not wall time: on a shared 2-core machine another process's burst then does not
land in a figure; wall time is kept beside it. The garbage collector stays on (a request pays
for its garbage too)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Timing:
    number: int
    repeat: int
    best_us: float
    median_us: float
    wall_median_us: float

    def to_dict(self) -> dict[str, float | int]:
        return {
            "number": self.number,
            "repeat": self.repeat,
            "best_us": round(self.best_us, 3),
            "median_us": round(self.median_us, 3),
            "wall_median_us": round(self.wall_median_us, 3),
        }


def per_call_us(fn: Callable[[], object], number: int) -> tuple[float, float]:
    """One repeat: `number` calls; (CPU µs, wall µs) per call."""
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(number):
        fn()
    return (
        (time.process_time() - cpu) / number * 1e6,
        (time.perf_counter() - wall) / number * 1e6,
    )


def time_call(fn: Callable[[], object], number: int, repeat: int) -> Timing:
    fn()  # first-call costs (caches, lazy imports) are not per-request costs
    runs = [per_call_us(fn, number) for _ in range(repeat)]
    cpu = [c for c, _ in runs]
    return Timing(
        number, repeat, min(cpu), statistics.median(cpu), statistics.median(w for _, w in runs)
    )
