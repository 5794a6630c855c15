"""The environment of the integration suite's servers: the session's model, a private HOME."""

from __future__ import annotations

from pathlib import Path

from service.model.training import TrainResult

# Telemetry on, exported nowhere: for servers whose test is not about telemetry.
NO_EXPORT = {"OTEL_METRICS_EXPORTER": "none", "OTEL_TRACES_EXPORTER": "none"}


def server_env(trained_model: TrainResult, home: Path) -> dict[str, str]:
    """The model under test, and a private HOME without XDG_RUNTIME_DIR, so a control socket
    gunicorn might create would land where the tests can see it."""
    home.mkdir(parents=True, exist_ok=True)
    return {
        "MLAPI_MODEL_PATH": str(trained_model.artifact_path),
        "HOME": str(home),
        "XDG_RUNTIME_DIR": "",
    }
