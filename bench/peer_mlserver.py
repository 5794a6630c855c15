"""Peer: MLServer 1.7.1 with its scikit-learn runtime (V2 inference protocol), serving our
estimator from joblib, `parallel_workers` = our gunicorn worker count."""

from __future__ import annotations

import json
from pathlib import Path

from bench.peer import MODEL_FILE, MODEL_NAME, Peer, PeerLaunch
from devstack.ports import free_ports

VERSION = "1.7.1"


def write_settings(repo_dir: Path, ports: tuple[int, int, int], workers: int) -> None:
    """settings.json and model-settings.json for one model (the estimator is in repo_dir)."""
    http_port, grpc_port, metrics_port = ports
    settings = {
        "host": "127.0.0.1",
        "http_port": http_port,
        "grpc_port": grpc_port,
        "metrics_port": metrics_port,
        # The same number of model processes as our service's gunicorn workers.
        "parallel_workers": workers,
        # MLServer's default (True) logs at debug level; a production server would not.
        "debug": False,
        # Both default to the working directory, which would be our repository.
        "metrics_dir": str(repo_dir / ".metrics"),
        "environments_dir": str(repo_dir / ".envs"),
    }
    (repo_dir / "settings.json").write_text(json.dumps(settings))
    model_settings = {
        "name": MODEL_NAME,
        "implementation": "mlserver_sklearn.SKLearnModel",
        "parameters": {"uri": f"./{MODEL_FILE}", "version": "v1"},
    }
    (repo_dir / "model-settings.json").write_text(json.dumps(model_settings))


def launch(env_dir: Path, repo_dir: Path, workers: int) -> PeerLaunch:
    ports = (http_port, _, _) = tuple(free_ports(3))
    write_settings(repo_dir, ports, workers)  # type: ignore[arg-type]
    return PeerLaunch(
        argv=[str(env_dir / "bin" / "python"), "-m", "mlserver.cli.main", "start", str(repo_dir)],
        port=http_port,
        ready_path=f"/v2/models/{MODEL_NAME}/ready",
        infer_path=f"/v2/models/{MODEL_NAME}/infer",
    )


def infer_body(rows: list[list[float]]) -> dict[str, object]:
    """A V2 inference request: one FP64 tensor of shape (rows, features)."""
    return {
        "inputs": [
            {
                "name": "features",
                "shape": [len(rows), len(rows[0])],
                "datatype": "FP64",
                "data": [value for row in rows for value in row],
            }
        ]
    }


MLSERVER = Peer(
    variant="mlserver",
    label=f"MLServer {VERSION} + mlserver-sklearn",
    name="mlserver",
    version=VERSION,
    requirements=(
        f"mlserver=={VERSION}",
        f"mlserver-sklearn=={VERSION}",
        # uvloop >= 0.22 raises in asyncio.get_event_loop() without a running loop, which
        # MLServer 1.7.1's parallel inference workers call at start; 0.21 was current then.
        "uvloop==0.21.0",
    ),
    reported=("mlserver", "mlserver-sklearn", "fastapi", "uvicorn"),
    launch=launch,
    infer_body=infer_body,
    # r2: the directory MLServer's venv has had since uvloop was pinned (reused as it is).
    revision=2,
)
