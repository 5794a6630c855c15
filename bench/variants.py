"""The servers under comparison, all on 127.0.0.1, managed by the tests' harness's Stack
(devstack/stack.py): the real collector (+ Jaeger behind it) with the shipped configs, our
service under gunicorn in each telemetry mode and layout, the seed-equivalent and the peers
(MLServer, BentoML, KServe).

Servers are started once and left idle between measurements, so that interleaved runs
(A B A B ...) need no restarts; an idle server costs next to nothing.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from bench.peer import Peer, write_estimator
from devstack.ports import HOST, free_ports
from devstack.server import mlapi_command
from devstack.stack import ManagedProcess, Stack

# Stack() wires all four programs; the bench starts only the collector and Jaeger.
STACK_BINARIES = ("otelcol", "jaeger", "prometheus", "alertmanager")
SERVER_READY_TIMEOUT_S = 180.0
# After the collector comes back: the service's trace exporter pauses 5 s after a failure
# (service.telemetry.outage_buffer.RETRY_PAUSE_S) and gRPC reconnects with back-off; measure "up"
# only once exports flow again.
COLLECTOR_SETTLE_S = 8.0
STOPPED_SETTLE_S = 1.0


def clean_environment() -> None:
    """The bench sets every OTEL_*/MLAPI_* variable its servers see; inherited ones would skew."""
    for name in [n for n in os.environ if n.startswith(("OTEL_", "MLAPI_"))]:
        del os.environ[name]


class Telemetry(Enum):
    OFF = "off"  # OTEL_SDK_DISABLED=true
    OTLP = "otlp"  # metrics + 100 % sampled traces to the collector, as docker compose runs it
    EMBEDDED = "embedded"  # the default without a collector: /metrics in-process (1 worker)


@dataclass(frozen=True)
class Layout:
    workers: int
    threads: int

    @classmethod
    def parse(cls, text: str) -> Layout:
        workers, threads = (int(n) for n in text.lower().split("x"))
        return cls(workers, threads)

    def __str__(self) -> str:
        return f"{self.workers}x{self.threads}"


@dataclass(frozen=True)
class Endpoint:
    """Where to send load, and the process tree to charge its CPU and memory to."""

    name: str
    url: str
    body: Path
    process: ManagedProcess

    @property
    def pid(self) -> int:
        assert self.process.popen is not None
        return self.process.popen.pid


class Servers:
    """Starts servers inside one Stack; `stop()` stops them all, last started first."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack

    @property
    def collector(self) -> ManagedProcess:
        return self.stack.processes["otelcol"]

    def start_collector(self) -> None:
        """Jaeger (the collector's trace destination) and the collector, shipped configs."""
        if not self.stack.processes["jaeger"].running:
            self.stack.processes["jaeger"].start()
        self.collector.start()

    def stop_collector(self) -> None:
        self.stack.stop_collector()
        time.sleep(STOPPED_SETTLE_S)

    def restart_collector(self) -> None:
        self.collector.start()
        time.sleep(COLLECTOR_SETTLE_S)

    def ours(
        self,
        name: str,
        model: Path,
        layout: Layout,
        telemetry: Telemetry,
        body: Path,
        extra_env: dict[str, str] | None = None,
    ) -> Endpoint:
        """`mlapi serve`; `extra_env` (e.g. OTEL_* settings under trial) goes on top, with
        `{otlp_grpc}` / `{otlp_http}` replaced by the collector's endpoints."""
        (port,) = free_ports(1)
        env = {"MLAPI_MODEL_PATH": str(model), "OTEL_SERVICE_NAME": "mlapi"}
        if telemetry is Telemetry.OFF:
            env["OTEL_SDK_DISABLED"] = "true"
        elif telemetry is Telemetry.OTLP:
            env |= {
                "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://{self.stack.otlp_grpc_endpoint}",
                "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
                # The SDK default, spelled out: every request is traced (no caller decides).
                "OTEL_TRACES_SAMPLER": "parentbased_always_on",
            }
        # Trials may name the collector's endpoints, which are only known once it runs.
        endpoints = {
            "{otlp_grpc}": f"http://{self.stack.otlp_grpc_endpoint}",
            "{otlp_http}": self.stack.otlp_http_endpoint,
        }
        for key, value in (extra_env or {}).items():
            for placeholder, endpoint in endpoints.items():
                value = value.replace(placeholder, endpoint)
            env[key] = value
        argv = [
            *mlapi_command(),
            "serve",
            "--host",
            HOST,
            "--port",
            str(port),
            "--workers",
            str(layout.workers),
            "--threads",
            str(layout.threads),
        ]
        base = f"http://{HOST}:{port}"
        process = self.stack.add_process(
            name, argv, f"{base}/readyz", env, timeout=SERVER_READY_TIMEOUT_S
        )
        return Endpoint(name, f"{base}/predict", body, process)

    def fixed(self, name: str, python: str, card: Path, body: Path) -> Endpoint:
        """bench/fixed_api.py: a server that takes any rate (for the replay client's ceiling)."""
        (port,) = free_ports(1)
        argv = [python, "-m", "bench.fixed_api", "--port", str(port), "--card", str(card)]
        base = f"http://{HOST}:{port}"
        process = self.stack.add_process(name, argv, f"{base}/model")
        return Endpoint(name, f"{base}/predict", body, process)

    def seed(self, name: str, python: str, body: Path) -> Endpoint:
        (port,) = free_ports(1)
        argv = [python, "-m", "bench.seed_baseline", "--host", HOST, "--port", str(port)]
        base = f"http://{HOST}:{port}"
        # The seed has no health route; its /metrics app answers once the forest is fitted.
        process = self.stack.add_process(
            name, argv, f"{base}/metrics", timeout=SERVER_READY_TIMEOUT_S
        )
        return Endpoint(name, f"{base}/predict", body, process)

    def peer(self, peer: Peer, estimator: object, workers: int, body: Path) -> Endpoint:
        """A peer server in its own venv, serving `estimator` with `workers` processes."""
        env_dir = peer.ensure_env()
        repo_dir = self.stack.workdir / peer.variant
        write_estimator(estimator, repo_dir)
        launch = peer.launch(env_dir, repo_dir, workers)
        base = f"http://{HOST}:{launch.port}"
        process = self.stack.add_process(
            peer.variant,
            launch.argv,
            f"{base}{launch.ready_path}",
            launch.env,
            timeout=SERVER_READY_TIMEOUT_S,
        )
        return Endpoint(peer.variant, f"{base}{launch.infer_path}", body, process)

    def stop(self) -> None:
        self.stack.stop()
