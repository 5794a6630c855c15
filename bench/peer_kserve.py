"""Peer: KServe 0.21.0's Python model server, a `kserve.Model` subclass wrapping our estimator
(bench/peer_apps/kserve_server.py), V1 protocol (`POST /v1/models/NAME:predict`,
`{"instances": rows}`), `--workers` = our gunicorn worker count, its defaults otherwise
(Prometheus histograms and the per-request latency log on)."""

from __future__ import annotations

from pathlib import Path

from bench.peer import MODEL_FILE, MODEL_NAME, Peer, PeerLaunch, app_source, rows_body
from devstack.ports import free_ports

VERSION = "0.21.0"
APP = "kserve_server.py"


def launch(env_dir: Path, repo_dir: Path, workers: int) -> PeerLaunch:
    (port,) = free_ports(1)
    argv = [
        str(env_dir / "bin" / "python"), str(app_source(APP)),
        "--http_port", str(port), "--workers", str(workers), "--model_name", MODEL_NAME,
        "--model_path", str(repo_dir / MODEL_FILE),
        # Its gRPC server binds [::] unconditionally; nothing here sends gRPC.
        "--enable_grpc", "false",
    ]  # fmt: skip
    return PeerLaunch(
        argv=argv,
        port=port,
        ready_path=f"/v1/models/{MODEL_NAME}",
        infer_path=f"/v1/models/{MODEL_NAME}:predict",
    )


KSERVE = Peer(
    variant="kserve",
    label=f"KServe {VERSION} (kserve.Model)",
    name="kserve",
    version=VERSION,
    requirements=(f"kserve=={VERSION}",),
    reported=("kserve", "fastapi", "uvicorn", "prometheus-client"),
    launch=launch,
    infer_body=rows_body("instances"),
)
