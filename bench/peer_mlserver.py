"""The peer: MLServer 1.7.1 with its scikit-learn runtime, serving our estimator.

MLServer and mlserver-sklearn come from PyPI into their own virtualenv under
~/.cache/mlapi-bench/ (their pins may conflict with ours), with our scikit-learn version, so the
file they load holds exactly our estimator. Their runtime only loads joblib (pickle) files: the
estimator is written as joblib into a scratch directory for MLServer's own process to load. Our
service and this repository's code never load a pickle.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import joblib

PEER_VERSION = "1.7.1"
# Bump when the install list below changes: a new directory, so no stale env is reused.
ENV_REVISION = 2
MODEL_NAME = "housing"
ENV_ROOT = Path.home() / ".cache" / "mlapi-bench"
INSTALL_TIMEOUT_S = 900


def peer_env() -> Path:
    """The peer's virtualenv (created on first use, reused after); its directory."""
    sklearn = metadata.version("scikit-learn")
    env_dir = ENV_ROOT / f"mlserver-{PEER_VERSION}-sklearn-{sklearn}-r{ENV_REVISION}"
    if (env_dir / "bin" / "python").exists():
        return env_dir
    staging = env_dir.with_name(env_dir.name + ".staging")
    shutil.rmtree(staging, ignore_errors=True)
    print(f"bench: installing MLServer {PEER_VERSION} into {env_dir} (once)", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", str(staging)], check=True)
    subprocess.run(
        [
            str(staging / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "--quiet",
            f"mlserver=={PEER_VERSION}",
            f"mlserver-sklearn=={PEER_VERSION}",
            f"scikit-learn=={sklearn}",
            # uvloop >= 0.22 raises in asyncio.get_event_loop() without a running loop, which
            # MLServer 1.7.1's parallel inference workers call at start; 0.21 was current then.
            "uvloop==0.21.0",
        ],
        check=True,
        timeout=INSTALL_TIMEOUT_S,
    )
    # Complete or absent: an interrupted install never looks usable. The moved venv's console
    # scripts keep the staging path in their shebang, so everything runs as `python -m`.
    staging.rename(env_dir)
    return env_dir


def peer_versions(env_dir: Path) -> dict[str, str]:
    listing = subprocess.run(
        [str(env_dir / "bin" / "python"), "-m", "pip", "list", "--format=json"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    wanted = {"mlserver", "mlserver-sklearn", "scikit-learn", "fastapi", "uvicorn"}
    return {p["name"]: p["version"] for p in json.loads(listing) if p["name"].lower() in wanted}


def write_repository(
    estimator: object, repo_dir: Path, ports: tuple[int, int, int], workers: int
) -> None:
    """settings.json and model-settings.json for one model, and the estimator as joblib."""
    http_port, grpc_port, metrics_port = ports
    repo_dir.mkdir(parents=True, exist_ok=True)
    joblib.dump(estimator, repo_dir / "model.joblib")
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
        "parameters": {"uri": "./model.joblib", "version": "v1"},
    }
    (repo_dir / "model-settings.json").write_text(json.dumps(model_settings))


def peer_argv(env_dir: Path, repo_dir: Path) -> list[str]:
    return [str(env_dir / "bin" / "python"), "-m", "mlserver.cli.main", "start", str(repo_dir)]


def infer_path() -> str:
    return f"/v2/models/{MODEL_NAME}/infer"


def ready_path() -> str:
    return f"/v2/models/{MODEL_NAME}/ready"


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
