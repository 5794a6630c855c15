"""Scrape cost: how long one Prometheus scrape takes, of the service's embedded /metrics and of
the collector's prometheus exporter, once traffic (including rejected requests) has created the
series a real deployment has."""

from __future__ import annotations

import json
import statistics
import time
import urllib.request
from typing import Any

from service.model.dataset import FEATURES

SCRAPES = 20
# What Prometheus sends when exemplars are wanted (the collector then answers OpenMetrics).
OPENMETRICS_ACCEPT = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"
# One body per rejection reason the service counts, so its per-reason series exist.
_FIRST = dict.fromkeys(FEATURES, 1.0)
REJECTED_BODIES: tuple[object, ...] = (
    {"records": [{k: v for k, v in _FIRST.items() if k != FEATURES[0]}]},  # missing feature
    {"records": [{**_FIRST, FEATURES[1]: "x"}]},  # not a number
    {"records": [{**_FIRST, "UNKNOWN": 1.0}]},  # unknown feature
    {"records": [{**_FIRST, FEATURES[2]: -1e308 * 10}]},  # not finite (JSON -Infinity)
    {"records": []},  # no rows
)


def send_rejections(predict_url: str) -> None:
    for body in REJECTED_BODIES:
        request = urllib.request.Request(
            predict_url,
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            urllib.request.urlopen(request, timeout=10).close()
        except urllib.error.HTTPError as error:  # the 4xx is the point
            error.close()


def time_scrapes(url: str, accept: str = OPENMETRICS_ACCEPT) -> dict[str, Any]:
    """Median and max wall time of `SCRAPES` sequential GETs, and the size of the last one."""
    timings = []
    body = b""
    for _ in range(SCRAPES):
        request = urllib.request.Request(url, headers={"Accept": accept})
        started = time.perf_counter()
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read()
        timings.append((time.perf_counter() - started) * 1000)
    lines = body.decode(errors="replace").splitlines()
    return {
        "median_ms": round(statistics.median(timings), 3),
        "max_ms": round(max(timings), 3),
        "bytes": len(body),
        "series": sum(1 for line in lines if line and not line.startswith("#")),
        "exemplars": sum(1 for line in lines if " # {" in line),
    }
