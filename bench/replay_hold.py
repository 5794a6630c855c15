"""Can one replay process hold 1,000 req/s on this machine? Part of `make bench`, or alone:
`python -m bench.replay_hold [--seconds S]` (about a minute; writes bench/results/replay-hold.json).

Replay runs in its own process at fixed rates against two servers on 127.0.0.1:

- bench/fixed_api.py, which answers at a small fraction of replay's CPU per request: the server
  that can take it, so the client is what is measured — at the held rate, then above it to find
  where one process stops;
- our service with telemetry off in the bench's layout: where client and server together stop on
  two shared cores, and whose CPU runs out.

Each run reports the rate achieved against the rate asked (within 2 % holds), failed requests,
late starts, missed slots, latency from due time, and CPU per request of replay and the server.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.bodies import write_bodies
from bench.measure import REPLAY_CONCURRENCY, run_replay
from bench.models import build_models
from bench.report import RESULTS_DIR, replay_hold_lines
from bench.variants import (
    STACK_BINARIES,
    Endpoint,
    Layout,
    Servers,
    Telemetry,
    clean_environment,
)
from devstack.stack import Stack, locate_binaries

HELD_RATE = 1000.0
# Above the held rate, against the fixed server only: where one client process stops.
PROBE_RATES = (1500.0, 2000.0)
HOLD_TOLERANCE = 0.02
SERVICE_LAYOUT = Layout(2, 1)  # the bench's layout
RESULT_NAME = "replay-hold.json"
# The names of bench.run's variants: there the held rate runs against its ours-off server.
FIXED, OURS = "fixed-api", "ours-off"


def rate_run(
    endpoint: Endpoint, csv: Path, rate: float, seconds: float, workdir: Path
) -> dict[str, Any]:
    report_path = workdir / f"rate-{endpoint.name}-{rate:g}.json"
    run = run_replay(endpoint, csv, rate, seconds, report_path)
    report = run.report
    sent = max(report["sent"], 1)
    achieved = report["achieved_rps"]
    return {
        "server": endpoint.name,
        "rate": rate,
        "seconds": seconds,
        "sent": report["sent"],
        "achieved_rps": achieved,
        "achieved_of_rate": round(achieved / rate, 4),
        "holds": abs(achieved / rate - 1) <= HOLD_TOLERANCE and report["failed"] == 0,
        "failed": report["failed"],
        "error_rate": report["error_rate"],
        "late_starts": report["late_starts"],
        "missed_slots": report["missed_slots"],
        "p50_ms": report["latency_ms"]["p50"],
        "p99_ms": report["latency_ms"]["p99"],
        "client_cpu_ms_per_request": round(run.client_cpu_s * 1000 / sent, 3),
        "server_cpu_ms_per_request": round(run.server_cpu_s * 1000 / sent, 3),
        "client_cores": round(run.client_cpu_s / seconds, 2),
        "server_cores": round(run.server_cpu_s / seconds, 2),
    }


def measure_rates(
    fixed: Endpoint, ours: Endpoint, csv: Path, seconds: float, workdir: Path
) -> dict[str, Any]:
    """The held rate against both servers, then the probe rates against the fixed one."""
    runs = [
        rate_run(fixed, csv, HELD_RATE, seconds, workdir),
        rate_run(ours, csv, HELD_RATE, seconds, workdir),
        *(rate_run(fixed, csv, rate, seconds, workdir) for rate in PROBE_RATES),
    ]
    ceiling = max(run["achieved_rps"] for run in runs if run["server"] == FIXED)
    return {
        "held_rate": HELD_RATE,
        "tolerance": HOLD_TOLERANCE,
        "concurrency": REPLAY_CONCURRENCY,
        "client_ceiling_rps": ceiling,
        "runs": runs,
    }


def start_fixed(servers: Servers, card: Path, body: Path) -> Endpoint:
    return servers.fixed(FIXED, sys.executable, card, body)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="per run (10)")
    args = parser.parse_args(argv)
    clean_environment()
    load_before = [round(x, 2) for x in os.getloadavg()]
    with tempfile.TemporaryDirectory(prefix="mlapi-replay-hold-") as tmp:
        workdir = Path(tmp)
        models = build_models(workdir / "models")
        bodies = write_bodies(workdir / "bodies")
        servers = Servers(Stack(workdir / "stack", locate_binaries(STACK_BINARIES)))
        try:
            fixed = start_fixed(servers, models.default.card_path, bodies.single)
            ours = servers.ours(
                OURS, models.default.artifact_path, SERVICE_LAYOUT, Telemetry.OFF, bodies.single
            )
            result = measure_rates(fixed, ours, bodies.features_csv, args.seconds, workdir)
        finally:
            servers.stop()
    result["load_before"] = load_before
    result["load_after"] = [round(x, 2) for x in os.getloadavg()]
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / RESULT_NAME
    path.write_text(json.dumps(result, indent=2) + "\n")
    print("\n".join(replay_hold_lines(result)))
    print(f"bench: wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
