"""Fixtures of the unit suite: the session's model loaded in this process, and an environment
without inherited OTEL_* variables."""

from __future__ import annotations

import os

import pytest

from service.model.store import LoadedModel, load_model
from service.model.training import TrainResult


@pytest.fixture(scope="session")
def model(trained_model: TrainResult) -> LoadedModel:
    """The session's model as the service loads it (verified against its card)."""
    return load_model(trained_model.artifact_path)


@pytest.fixture
def no_otel_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No OTEL_* variable from the shell or CI: the SDK reads them, and a test sets its own."""
    for name in list(os.environ):
        if name.startswith("OTEL_"):
            monkeypatch.delenv(name)
