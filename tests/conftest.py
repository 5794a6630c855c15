"""Fixtures shared by every suite: one model trained from the bundled data per test session, and
a valid record for it."""

from __future__ import annotations

import pytest

from service.model.dataset import load_housing
from service.model.training import TrainResult, train


@pytest.fixture(scope="session")
def trained_model(tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    """The default recipe on the bundled data (about 1.5 s). Treat its files as read-only:
    tests that damage an artifact copy it first."""
    return train(load_housing(), tmp_path_factory.mktemp("model"))


@pytest.fixture
def row(trained_model: TrainResult) -> dict[str, float]:
    """One valid /predict record: every feature of the session's model at its training mean."""
    return {feature.name: feature.mean for feature in trained_model.card.features}
