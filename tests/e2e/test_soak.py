"""A bounded soak: minutes of steady traffic do not grow the workers' memory.

The service runs as deployed (2 gunicorn workers, OTLP to the collector) under replay at RATE
req/s with feedback. Each worker's resident set (VmRSS) is read after WARM_UP_S, when imports,
caches, the exporters' buffers and every metric series exist, and again at the end of SOAK_S
more. A leak per request (a growing dict of ids, unbounded exemplars or series, spans kept
alive) would show as steady growth: at RATE req/s over SOAK_S, 0.25 KiB per request is ~1.5 MiB
and 4 KiB per request ~23 MiB.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import pytest

from devstack.stack import Stack
from tests.e2e.deployment import REPLAY_TIMEOUT_S, WORKERS, client_env, deploy, replay_in_background

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.binaries_only(reason="reads the memory of its own service's worker processes"),
]

RATE = 40
WARM_UP_S = 30
SOAK_S = 150
SAMPLE_EVERY_S = 15
# Allowed growth per worker after warm-up. Measured over three runs (Nov 2026): 173-175 MiB per
# worker after warm-up, growth 0.0-0.6 MiB. The margin absorbs allocator noise (freed memory the
# allocator keeps) and is far below what a per-request leak of a few KiB adds over
# SOAK_S * RATE requests.
RSS_GROWTH_MARGIN_MIB = 20.0


def workers_of(master_pid: int) -> list[int]:
    """PIDs of the processes whose parent is `master_pid` (gunicorn's workers)."""
    children = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # the process ended while we looked
            continue
        # The command name is parenthesised and may hold spaces: fields follow the last ')'.
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if parent == master_pid:
            children.append(int(entry.name))
    return sorted(children)


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for pid {pid}")


def test_worker_memory_does_not_grow_under_steady_traffic(
    stack: Stack, trained_model, tmp_path: Path, record_property
) -> None:
    job = f"mlapi-soak-{uuid.uuid4().hex[:8]}"
    report_path = tmp_path / "report.json"
    with deploy(stack, trained_model.artifact_path, job, tmp_path / "service.log") as service:
        workers = workers_of(service.pid)
        assert len(workers) == WORKERS, workers
        with replay_in_background(
            trained_model.holdout_path,
            service.url,
            f"--rate={RATE}",
            f"--duration={WARM_UP_S + SOAK_S}",
            "--concurrency=8",
            "--batch-size=3",
            "--loop",
            "--shuffle",
            "--seed=1",
            f"--report={report_path}",
            env=client_env(stack, "replay-soak"),
        ) as run:
            time.sleep(WARM_UP_S)
            samples = [[rss_mib(pid) for pid in workers]]
            while run.poll() is None and len(samples) <= SOAK_S // SAMPLE_EVERY_S:
                time.sleep(SAMPLE_EVERY_S)
                samples.append([rss_mib(pid) for pid in workers])
            _, stderr = run.communicate(timeout=REPLAY_TIMEOUT_S)
        assert workers_of(service.pid) == workers, "a worker was restarted during the soak"
    assert run.returncode == 0, stderr[-2000:]
    growth = [end - start for start, end in zip(samples[0], samples[-1], strict=True)]
    report = json.loads(report_path.read_text())
    record_property("soak_replay", {k: report[k] for k in ("sent", "failed", "achieved_rps")})
    assert report["failed"] == report["feedback_failed"] == 0, report
    record_property("soak_rss_mib_after_warm_up", [round(v, 1) for v in samples[0]])
    record_property("soak_rss_mib_at_end", [round(v, 1) for v in samples[-1]])
    record_property("soak_rss_mib_trend", [[round(v, 1) for v in s] for s in samples])
    assert max(growth) < RSS_GROWTH_MARGIN_MIB, f"RSS growth per worker (MiB): {growth}"
