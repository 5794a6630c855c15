"""Whole requests in-process, so the cost table's pieces can be checked against the total: the
same POST /predict through apps that differ in one thing (telemetry off, on with a no-op span
exporter, on with OTLP to a live collector; a bare Flask app with and without Telemetry.attach),
interleaved round by round (A B C, C B A, ...), each round's pairs kept."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import Flask

from bench.wsgi_request import PATH, WsgiApp, call


@dataclass(frozen=True)
class Comparison:
    """`numerator` against `denominator`: µs more per request, and the throughput ratio."""

    name: str
    numerator: str
    denominator: str


def bare_app() -> Flask:
    """A Flask app with one route that answers at once: what Flask itself costs per request."""
    app = Flask("bench-bare")

    @app.post(PATH)
    def answer() -> dict[str, bool]:
        return {"ok": True}

    return app


def interleaved(
    variants: dict[str, WsgiApp],
    body: bytes,
    number: int,
    rounds: int,
    flushes: dict[str, Callable[[], object]] | None = None,
) -> dict[str, list[float]]:
    """CPU µs per request of each variant, one figure per round. A variant's flush (its span
    processor's) runs inside its own timing, so its export lands in its own figure."""
    for name, app in variants.items():
        status, content = call(app, body)
        if not status.startswith("200"):
            raise RuntimeError(f"{name}: {status} {content[:300]!r}")
    flushes = flushes or {}
    names = list(variants)
    figures: dict[str, list[float]] = {name: [] for name in names}
    for round_no in range(rounds):
        for name in names if round_no % 2 == 0 else names[::-1]:
            app, flush = variants[name], flushes.get(name, _nothing)
            started = time.process_time()
            for _ in range(number):
                call(app, body)
            flush()
            figures[name].append((time.process_time() - started) / number * 1e6)
    return figures


def _nothing() -> None:
    """No processor to flush (telemetry off)."""


def compare(figures: dict[str, list[float]], comparisons: list[Comparison]) -> dict[str, Any]:
    """Per comparison: per-round extra µs and throughput ratios, and their medians."""
    result = {}
    for c in comparisons:
        if c.numerator not in figures or c.denominator not in figures:
            continue
        pairs = list(zip(figures[c.numerator], figures[c.denominator], strict=True))
        extra = [top - bottom for top, bottom in pairs]
        ratios = [bottom / top for top, bottom in pairs]
        result[c.name] = {
            "numerator": c.numerator,
            "denominator": c.denominator,
            "extra_us": round(statistics.median(extra), 1),
            "extra_us_per_round": [round(x, 1) for x in extra],
            "throughput_ratio": round(statistics.median(ratios), 3),
            "throughput_ratio_per_round": [round(r, 3) for r in ratios],
        }
    return result


def summary(figures: dict[str, list[float]]) -> dict[str, Any]:
    return {
        name: {
            "median_us": round(statistics.median(values), 1),
            "best_us": round(min(values), 1),
            "per_round_us": [round(v, 1) for v in values],
        }
        for name, values in figures.items()
    }
