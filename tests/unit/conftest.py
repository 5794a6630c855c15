"""Fixtures of the unit suite: the session's model loaded in this process, an environment without
inherited OTEL_* variables, and a training fast enough for tests that are not about the model."""

from __future__ import annotations

import os

import pytest

from service.model import training
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


@pytest.fixture
def tiny_training(monkeypatch: pytest.MonkeyPatch) -> None:
    """Training fits 3 shallow trees instead of the recipe's 200: for tests of what surrounds a
    fit (the CLI, the default model's cache and lock, options, splits, cards), which need a real
    artifact set, not a good model. The recipe itself is tested on the session's model."""
    shallow = {**training.HYPERPARAMETERS, "n_estimators": 3, "max_depth": 2}
    monkeypatch.setattr(training, "HYPERPARAMETERS", shallow)
