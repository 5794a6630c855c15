"""One measurement of one variant: load from a separate process (wrk closed-loop, or replay
open-loop at a fixed rate), with the server's CPU seconds and peak RSS from /proc; or the
in-process floor (model.predict alone)."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench.procstats import tree_usage
from bench.variants import Endpoint
from bench.wrk import WrkLoad, run_wrk

# Requests in flight at most for the open-loop runs (replay --concurrency).
REPLAY_CONCURRENCY = 64


@dataclass(frozen=True)
class Sample:
    variant: str
    round: int
    tool: str  # wrk | replay | in-process
    requests: int
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    rows_per_request: int = 1
    cpu_s_per_1k: float | None = None
    peak_rss_mib_per_process: float | None = None
    processes: int | None = None
    # CPU of helpers charged separately (e.g. the collector and Jaeger), seconds per 1k requests.
    helpers_cpu_s_per_1k: dict[str, float] = field(default_factory=dict)

    @property
    def rows_per_s(self) -> float:
        return self.rps * self.rows_per_request

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def wrk_sample(
    endpoint: Endpoint,
    round_no: int,
    seconds: float,
    warmup_s: float,
    load: WrkLoad,
    *,
    rows_per_request: int = 1,
    helpers: dict[str, int] | None = None,
    variant: str | None = None,
) -> Sample:
    """Warm up, then measure `seconds` of wrk; CPU is the server tree's (and each helper's)."""
    run_wrk(endpoint.url, endpoint.body, warmup_s, load)
    helpers = helpers or {}
    before = tree_usage(endpoint.pid)
    helpers_before = {name: tree_usage(pid).cpu_s for name, pid in helpers.items()}
    result = run_wrk(endpoint.url, endpoint.body, seconds, load)
    after = tree_usage(endpoint.pid)
    per_1k = 1000 / max(result.requests, 1)
    return Sample(
        variant=variant or endpoint.name,
        round=round_no,
        tool="wrk",
        requests=result.requests,
        rps=result.rps,
        p50_ms=result.p50_ms,
        p90_ms=result.p90_ms,
        p99_ms=result.p99_ms,
        rows_per_request=rows_per_request,
        cpu_s_per_1k=(after.cpu_s - before.cpu_s) * per_1k,
        peak_rss_mib_per_process=max(after.peak_rss_mib.values()),
        processes=len(after.peak_rss_mib),
        helpers_cpu_s_per_1k={
            name: (tree_usage(pid).cpu_s - helpers_before[name]) * per_1k
            for name, pid in helpers.items()
        },
    )


@dataclass(frozen=True)
class ReplayRun:
    report: dict[str, Any]
    client_cpu_s: float  # the replay process's user + system CPU
    server_cpu_s: float  # the endpoint's process tree, over the same run


def run_replay(
    endpoint: Endpoint, csv: Path, rate: float, seconds: float, report_path: Path
) -> ReplayRun:
    """The project's replay client in its own process at a fixed rate (open loop) for `seconds`,
    its CPU and the server's."""
    base_url = endpoint.url.removesuffix("/predict")
    command = [
        sys.executable, "-m", "replay", str(csv), "--target", base_url, "--rate", str(rate),
        "--duration", str(seconds), "--loop", "--concurrency", str(REPLAY_CONCURRENCY),
        "--report", str(report_path),
    ]  # fmt: skip
    server_before = tree_usage(endpoint.pid).cpu_s
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 120)
    children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    server_cpu = tree_usage(endpoint.pid).cpu_s - server_before
    if done.returncode not in (0, 1):  # 1: some requests failed, which the report shows
        raise RuntimeError(f"replay exited {done.returncode}: {done.stderr[-800:]}")
    client_cpu = sum(
        getattr(children_after, field) - getattr(children_before, field)
        for field in ("ru_utime", "ru_stime")
    )
    return ReplayRun(json.loads(report_path.read_text()), client_cpu, server_cpu)


def replay_sample(
    endpoint: Endpoint, round_no: int, csv: Path, rate: float, seconds: float, workdir: Path
) -> Sample:
    """Open loop: the project's replay client at a fixed rate; latency from each due time."""
    report_path = workdir / f"replay-{endpoint.name}-{round_no}.json"
    before = tree_usage(endpoint.pid)
    run = run_replay(endpoint, csv, rate, seconds, report_path)
    report = run.report
    if report["failed"]:
        raise RuntimeError(f"replay against {endpoint.name}: {report['failed']} requests failed")
    after = tree_usage(endpoint.pid)
    latency = report["latency_ms"]
    return Sample(
        variant=f"{endpoint.name}@{rate:g}/s",
        round=round_no,
        tool="replay",
        requests=report["sent"],
        rps=report["achieved_rps"],
        p50_ms=latency["p50"],
        p90_ms=latency["p90"],
        p99_ms=latency["p99"],
        cpu_s_per_1k=(after.cpu_s - before.cpu_s) * 1000 / max(report["sent"], 1),
        peak_rss_mib_per_process=max(after.peak_rss_mib.values()),
        processes=len(after.peak_rss_mib),
    )


def floor_sample(
    model: Any, matrix: np.ndarray, round_no: int, seconds: float, variant: str
) -> Sample:
    """model.predict alone on `matrix`, in this process, for about `seconds`."""
    model.predict(matrix)
    calls = 0
    latencies = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        started = time.perf_counter()
        model.predict(matrix)
        latencies.append(time.perf_counter() - started)
        calls += 1
    elapsed = sum(latencies)
    p50, p90, p99 = np.percentile(np.array(latencies) * 1000, [50, 90, 99])
    return Sample(
        variant=variant,
        round=round_no,
        tool="in-process",
        requests=calls,
        rps=calls / elapsed,
        p50_ms=float(p50),
        p90_ms=float(p90),
        p99_ms=float(p99),
        rows_per_request=len(matrix),
    )
