"""Training: metrics, determinism, and the three files it writes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from service.dataset import FEATURES, TARGET, content_sha256, load_housing
from service.model_card import ModelCard
from service.model_store import load_model
from service.training import train


def test_holdout_metrics_meet_the_bar(trained_model):
    holdout = trained_model.card.holdout
    assert holdout.r2 >= 0.85
    assert holdout.mae < 2.5
    assert holdout.mae <= holdout.rmse < 3.5
    assert holdout.rows == 102


def test_writes_artifact_card_and_holdout(trained_model):
    card = trained_model.card
    assert ModelCard.load(trained_model.card_path) == card
    assert trained_model.artifact_path.name == "model.skops"
    assert trained_model.card_path == trained_model.artifact_path.with_name("model.card.json")
    assert card.feature_names == FEATURES
    assert card.training_data_sha256 == content_sha256(load_housing())
    assert card.model_type == "sklearn.ensemble._gb.GradientBoostingRegressor"
    assert card.version.endswith("+data." + card.training_data_sha256[:8])


def test_holdout_csv_is_a_replayable_slice_of_the_data(trained_model):
    holdout = pd.read_csv(trained_model.holdout_path)
    assert tuple(holdout.columns) == (*FEATURES, TARGET)
    assert len(holdout) == trained_model.card.holdout.rows
    data = load_housing()
    assert len(holdout.merge(data, how="inner")) == len(holdout)  # every row is a real row
    # The card's holdout metrics are reproducible from the CSV alone.
    predicted = load_model(trained_model.artifact_path).predict(
        holdout[list(FEATURES)].to_numpy(np.float64)
    )
    mae = float(np.abs(predicted - holdout[TARGET].to_numpy()).mean())
    assert mae == pytest.approx(trained_model.card.holdout.mae, rel=1e-12)


def test_estimator_is_fitted_on_a_plain_array(trained_model):
    estimator = load_model(trained_model.artifact_path).estimator
    assert not hasattr(estimator, "feature_names_in_")
    assert estimator.n_features_in_ == len(FEATURES)


def test_training_twice_gives_identical_predictions(trained_model, tmp_path):
    again = train(load_housing(), tmp_path)
    rows = pd.read_csv(trained_model.holdout_path)
    assert rows.equals(pd.read_csv(again.holdout_path))
    x = rows[list(FEATURES)].to_numpy(np.float64)
    first = load_model(trained_model.artifact_path).predict(x)
    second = load_model(again.artifact_path).predict(x)
    assert np.array_equal(first, second)
    assert again.card.holdout == trained_model.card.holdout
    assert again.card.features == trained_model.card.features


def test_another_seed_gives_another_split(trained_model, tmp_path):
    other = train(load_housing(), tmp_path, seed=7, version="9.9.9")
    assert other.card.version == "9.9.9"
    assert not pd.read_csv(other.holdout_path).equals(pd.read_csv(trained_model.holdout_path))


def test_features_follow_the_frame_and_exclude_the_target(tmp_path):
    data = load_housing()[["LSTAT", "RM", "MEDV"]]
    result = train(data, tmp_path, holdout_fraction=0.25)
    assert result.card.feature_names == ("LSTAT", "RM")
    assert result.card.holdout.rows == 127


@pytest.mark.parametrize(
    ("data", "kwargs", "message"),
    [
        (lambda d: d.drop(columns="MEDV"), {}, "no MEDV column"),
        (lambda d: d.assign(RM=np.nan), {}, "NaN or infinite"),
        (lambda d: d, {"holdout_fraction": 1.0}, "holdout_fraction"),
    ],
)
def test_bad_inputs_are_refused(tmp_path, data, kwargs, message):
    with pytest.raises(ValueError, match=message):
        train(data(load_housing()), tmp_path, **kwargs)
    assert not any(tmp_path.iterdir())
