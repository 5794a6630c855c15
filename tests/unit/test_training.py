"""Training: metrics, determinism, and the three files it writes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import train_test_split

from service.model.card import PREDICTION_DRIFT_NAME, ModelCard
from service.model.dataset import FEATURES, TARGET, content_sha256, load_housing
from service.model.drift_reference import build_reference
from service.model.store import load_model
from service.model.thresholds import Thresholds, ThresholdsError
from service.model.training import train
from service.server.cli import main


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


def test_holdout_csv_is_a_replayable_slice_of_the_data(trained_model, model):
    holdout = pd.read_csv(trained_model.holdout_path)
    assert tuple(holdout.columns) == (*FEATURES, TARGET)
    assert len(holdout) == trained_model.card.holdout.rows
    data = load_housing()
    assert len(holdout.merge(data, how="inner")) == len(holdout)  # every row is a real row
    # The card's holdout metrics are reproducible from the CSV alone.
    predicted = model.predict(holdout[list(FEATURES)].to_numpy(np.float64))
    mae = float(np.abs(predicted - holdout[TARGET].to_numpy()).mean())
    assert mae == pytest.approx(trained_model.card.holdout.mae, rel=1e-12)


def test_estimator_is_fitted_on_a_plain_array(model):
    estimator = model.estimator
    assert not hasattr(estimator, "feature_names_in_")
    assert estimator.n_features_in_ == len(FEATURES)


def test_training_twice_gives_identical_predictions(trained_model, model, tmp_path):
    again = train(load_housing(), tmp_path)
    rows = pd.read_csv(trained_model.holdout_path)
    assert rows.equals(pd.read_csv(again.holdout_path))
    x = rows[list(FEATURES)].to_numpy(np.float64)
    first = model.predict(x)
    second = load_model(again.artifact_path).predict(x)
    assert np.array_equal(first, second)
    assert again.card.holdout == trained_model.card.holdout
    assert again.card.features == trained_model.card.features
    assert again.card.drift == trained_model.card.drift


@pytest.mark.usefixtures("tiny_training")
def test_another_seed_gives_another_split(trained_model, tmp_path):
    other = train(load_housing(), tmp_path, seed=7, version="9.9.9")
    assert other.card.version == "9.9.9"
    assert not pd.read_csv(other.holdout_path).equals(pd.read_csv(trained_model.holdout_path))


@pytest.mark.usefixtures("tiny_training")
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


def test_drift_references_come_from_the_training_rows(trained_model, model):
    """Features from the training rows; the prediction from the model's predictions on them
    (why not the holdout: service/model/training.py's docstring)."""
    card = trained_model.card
    values = load_housing()[[*FEATURES, TARGET]].to_numpy(np.float64)
    train_rows, _ = train_test_split(values, test_size=0.2, random_state=42, shuffle=True)
    x_train = train_rows[:, :-1]
    for i, reference in enumerate(card.drift[:-1]):
        assert reference == build_reference(FEATURES[i], x_train[:, i])
    predicted = model.predict(x_train)
    assert card.drift[-1] == build_reference(PREDICTION_DRIFT_NAME, predicted)


@pytest.mark.usefixtures("tiny_training")
def test_thresholds_default_from_the_training_target_and_take_overrides(tmp_path):
    result = train(
        load_housing(),
        tmp_path,
        threshold_overrides=["prediction_high=45", "drift_min_observations=100"],
    )
    thresholds = result.card.thresholds
    assert (thresholds.prediction_high, thresholds.drift_min_observations) == (45.0, 100)
    assert 5 < thresholds.prediction_low < 15  # p5 of MEDV
    assert thresholds.psi_warn == Thresholds.psi_warn  # the class default


def test_a_bad_threshold_override_writes_nothing(tmp_path):
    with pytest.raises(ThresholdsError, match=r"^nope: unknown threshold$"):
        train(load_housing(), tmp_path, threshold_overrides=["nope=1"])
    assert not any(tmp_path.iterdir())


@pytest.mark.usefixtures("tiny_training")
def test_mlapi_train_threshold_option(tmp_path, capsys):
    argv = ["train", "--out", str(tmp_path), "--threshold", "prediction_high=45"]
    assert main([*argv, "--threshold", "feedback_min_rows=50"]) == 0
    thresholds = ModelCard.load(tmp_path / "model.card.json").thresholds
    assert (thresholds.prediction_high, thresholds.feedback_min_rows) == (45.0, 50)
    capsys.readouterr()
    assert main([*argv, "--threshold", "psi_warn=0.3"]) == 2
    assert capsys.readouterr().err == (
        "mlapi: invalid --threshold: psi_warn: must be > 0 and below psi_critical\n"
    )


@pytest.mark.usefixtures("tiny_training")
def test_a_version_too_long_for_prediction_ids_writes_nothing(tmp_path, capsys):
    assert main(["train", "--out", str(tmp_path / "m"), "--version", "v" * 65]) == 2
    assert capsys.readouterr().err == (
        "mlapi: cannot train: version: must be at most 64 bytes (UTF-8)\n"
    )
    assert not (tmp_path / "m").exists()
