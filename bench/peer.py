"""What every peer server is to the harness: its own virtualenv (created once under
~/.cache/mlapi-bench/, keyed by what is installed in it, because peers pin dependencies that
conflict with ours), how to start it on 127.0.0.1, and its request body.

Every peer serves our estimator written as joblib (pickle) into the run's scratch directory, for
the peer's own process to load; our service and this repository never load a pickle. Each venv
pins our scikit-learn version, so the file unpickles to the same estimator.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import joblib

ENV_ROOT = Path.home() / ".cache" / "mlapi-bench"
INSTALL_TIMEOUT_S = 900
MODEL_NAME = "housing"
MODEL_FILE = "model.joblib"


@dataclass(frozen=True)
class PeerLaunch:
    """One started-to-be peer: its command, extra environment, port and HTTP paths."""

    argv: list[str]
    port: int
    ready_path: str
    infer_path: str
    env: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Peer:
    """A peer server under comparison, same model, same single-row load.

    `launch(env_dir, repo_dir, workers)` writes what the peer needs into `repo_dir` (the
    estimator is already there as MODEL_FILE) and says how to start it.
    """

    variant: str
    label: str
    name: str
    version: str
    requirements: tuple[str, ...]
    reported: tuple[str, ...]
    launch: Callable[[Path, Path, int], PeerLaunch]
    infer_body: Callable[[list[list[float]]], dict[str, Any]]
    # Bump when `requirements` change: a new directory, so no stale env is reused.
    revision: int = 1

    def env_dir(self) -> Path:
        sklearn = metadata.version("scikit-learn")
        return ENV_ROOT / f"{self.name}-{self.version}-sklearn-{sklearn}-r{self.revision}"

    def ensure_env(self) -> Path:
        """The peer's virtualenv, created on first use (pip from PyPI), reused after."""
        env_dir = self.env_dir()
        if (env_dir / "bin" / "python").exists():
            return env_dir
        staging = env_dir.with_name(env_dir.name + ".staging")
        shutil.rmtree(staging, ignore_errors=True)
        print(f"bench: installing {self.label} into {env_dir} (once)", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(staging)], check=True)
        sklearn = f"scikit-learn=={metadata.version('scikit-learn')}"
        subprocess.run(
            [str(staging / "bin" / "python"), "-m", "pip", "install", "--quiet",
             *self.requirements, sklearn],
            check=True,
            timeout=INSTALL_TIMEOUT_S,
        )  # fmt: skip
        # Complete or absent: an interrupted install never looks usable. The moved venv's console
        # scripts keep the staging path in their shebang, so everything runs as `python -m`.
        staging.rename(env_dir)
        return env_dir

    def versions(self) -> dict[str, str]:
        """Versions of the reported packages in the peer's venv (empty if it was never built)."""
        python = self.env_dir() / "bin" / "python"
        if not python.exists():
            return {}
        listing = subprocess.run(
            [str(python), "-m", "pip", "list", "--format=json"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        wanted = {*self.reported, "scikit-learn"}
        return {p["name"]: p["version"] for p in json.loads(listing) if p["name"].lower() in wanted}


def write_estimator(estimator: object, repo_dir: Path) -> Path:
    repo_dir.mkdir(parents=True, exist_ok=True)
    path = repo_dir / MODEL_FILE
    joblib.dump(estimator, path)
    return path


def app_source(name: str) -> Path:
    """A program of bench/peer_apps/, run by a peer's interpreter (it imports only the peer)."""
    return Path(__file__).with_name("peer_apps") / name


def rows_body(key: str) -> Callable[[Sequence[Sequence[float]]], dict[str, Any]]:
    """A body holding the rows as a list of lists under `key`."""
    return lambda rows: {key: [list(row) for row in rows]}
