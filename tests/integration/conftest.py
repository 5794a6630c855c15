"""A real ``mlapi serve`` (gunicorn) on a free loopback port, serving the session's model."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from server import ServerProcess

# Telemetry on, exported nowhere: for servers whose test is not about telemetry.
NO_EXPORT = {"OTEL_METRICS_EXPORTER": "none", "OTEL_TRACES_EXPORTER": "none"}


def server_env(trained_model, home: Path) -> dict[str, str]:
    """The model under test, and a private HOME without XDG_RUNTIME_DIR, so a control socket
    gunicorn might create would land where the tests can see it."""
    home.mkdir(parents=True, exist_ok=True)
    return {
        "MLAPI_MODEL_PATH": str(trained_model.artifact_path),
        "HOME": str(home),
        "XDG_RUNTIME_DIR": "",
    }


@pytest.fixture(scope="module")
def server(trained_model, tmp_path_factory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("server")
    process = ServerProcess(root / "server.log", env=server_env(trained_model, root / "home"))
    with process:
        yield process
