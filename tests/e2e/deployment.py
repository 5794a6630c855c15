"""The real service under the stack, and the real replay CLI that drives it.

One place for how the e2e suite runs `mlapi serve` (as compose does: OTLP to the collector, 2
gunicorn workers) and `replay`, so every test module sees the same deployment.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from devstack.server import ServerProcess
from devstack.stack import Stack, stop_process

REPLAY_TIMEOUT_S = 120.0
WORKERS = 2
# Not a secret: signs this test run's prediction ids only (the service needs >= 32 bytes).
FEEDBACK_KEY = "e2e-" + "k" * 40


def service_env(stack: Stack, model_path: Path, job: str) -> dict[str, str]:
    """The service as compose runs it: OTLP to the collector, here with a 1 s export interval."""
    return {
        "MLAPI_MODEL_PATH": str(model_path),
        "OTEL_SERVICE_NAME": job,
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://{stack.otlp_grpc_endpoint}",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
        "OTEL_METRIC_EXPORT_INTERVAL": "1000",
        "OTEL_BSP_SCHEDULE_DELAY": "200",
        "MLAPI_FEEDBACK_KEY": FEEDBACK_KEY,
    }


def client_env(stack: Stack, name: str) -> dict[str, str]:
    """Replay's own spans go to the same collector, so Jaeger can show the client as parent."""
    return {
        **os.environ,
        "OTEL_SERVICE_NAME": name,
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://{stack.otlp_grpc_endpoint}",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
        "OTEL_BSP_SCHEDULE_DELAY": "200",
    }


def deploy(
    stack: Stack,
    model_path: Path,
    job: str,
    log_path: Path,
    extra_env: dict[str, str] | None = None,
) -> ServerProcess:
    """`mlapi serve` with WORKERS workers exporting to `stack` as `job` (not started yet)."""
    env = {**service_env(stack, model_path, job), **(extra_env or {})}
    return ServerProcess(log_path, workers=WORKERS, env=env)


def replay_command(csv: Path, target: str, *args: str) -> list[str]:
    """The replay CLI of this interpreter, replaying `csv` against `target`."""
    return [sys.executable, "-m", "replay", str(csv), "--target", target, *args]


@contextmanager
def replay_in_background(
    csv: Path, target: str, *args: str, env: dict[str, str]
) -> Iterator[subprocess.Popen[str]]:
    """The replay CLI running while the block runs (stderr piped for the caller's
    `communicate`); killed and reaped if the block leaves it running."""
    run = subprocess.Popen(
        replay_command(csv, target, *args),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield run
    finally:
        stop_process(run, signal.SIGKILL)


def replay(csv: Path, target: str, report: Path, *args: str, env: dict[str, str]) -> dict:
    """Run the replay CLI to completion; its JSON report."""
    completed = subprocess.run(
        replay_command(csv, target, "--report", str(report), *args),
        env=env,
        capture_output=True,
        text=True,
        timeout=REPLAY_TIMEOUT_S,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    return json.loads(report.read_text())
