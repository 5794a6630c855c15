"""Loading an artifact: verified by the card, refused in one line when anything is off."""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import skops.io
from sklearn.linear_model import LinearRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from service.model.card import ModelCard
from service.model.dataset import load_housing
from service.model.store import LoadedModel, ModelLoadError, load_model
from service.model.training import train

REPO = Path(__file__).resolve().parents[2]


def _double(x):
    """A function from outside any trusted module, as an attacker's payload would be."""
    return x * 2


@pytest.fixture
def model_copy(trained_model, tmp_path) -> Path:
    """A private copy of the session's artifact and card; returns the artifact path."""
    shutil.copy(trained_model.card_path, tmp_path)
    return Path(shutil.copy(trained_model.artifact_path, tmp_path))


def refusal(artifact: Path, card: Path | None = None) -> str:
    with pytest.raises(ModelLoadError) as error:
        load_model(artifact, card)
    message = str(error.value)
    assert "\n" not in message
    return message


def write_with_card(estimator: object, card: ModelCard, directory: Path) -> Path:
    """Dump an estimator and give it a card with the matching sha256 (a consistent pair)."""
    artifact = directory / "model.skops"
    skops.io.dump(estimator, artifact)
    sha = hashlib.sha256(artifact.read_bytes()).hexdigest()
    replace(card, artifact_sha256=sha).save(directory / "model.card.json")
    return artifact


def test_loads_and_predicts_float64(trained_model):
    model = load_model(trained_model.artifact_path)
    assert isinstance(model, LoadedModel)
    assert model.card == trained_model.card
    x = np.array([[f.mean for f in model.card.features]] * 3, dtype=np.float64)
    predictions = model.predict(x)
    assert predictions.dtype == np.float64 and predictions.shape == (3,)
    target = model.card.target
    assert (target.min <= predictions).all() and (predictions <= target.max).all()


def test_explicit_card_path(trained_model, tmp_path):
    card = tmp_path / "elsewhere.json"
    shutil.copy(trained_model.card_path, card)
    assert load_model(trained_model.artifact_path, card).card == trained_model.card


EXPECTED = "expected the model's .skops artifact, with its card model.card.json beside it"


def test_missing_artifact(model_copy):
    model_copy.unlink()
    assert refusal(model_copy) == f"{model_copy} does not exist; {EXPECTED}"


def test_missing_card(model_copy):
    card = model_copy.with_name("model.card.json")
    card.unlink()
    assert refusal(model_copy) == f"no model card beside the artifact {model_copy}: expected {card}"


def test_a_directory_is_refused_naming_the_artifact_inside(model_copy, tmp_path):
    assert refusal(model_copy.parent) == (
        f"{model_copy.parent} is a directory; {EXPECTED} ({model_copy} is there)"
    )
    empty = tmp_path / "empty"
    empty.mkdir()
    assert refusal(empty) == f"{empty} is a directory; {EXPECTED}"


def test_the_card_given_as_the_artifact_is_named_as_the_card(model_copy, tmp_path):
    card = model_copy.with_name("model.card.json")
    assert refusal(card) == (
        f"{card} is the model card, not the artifact; give the .skops artifact beside it: "
        f"{model_copy}"
    )
    other = tmp_path / "report.json"
    other.write_text("{}")
    assert refusal(other) == f"{other} is a JSON file; {EXPECTED}"


def test_tampered_artifact(model_copy):
    data = bytearray(model_copy.read_bytes())
    data[len(data) // 2] ^= 0x01
    model_copy.write_bytes(bytes(data))
    assert "was modified, truncated or replaced" in refusal(model_copy)


def test_truncated_artifact(model_copy):
    model_copy.write_bytes(model_copy.read_bytes()[:1000])
    assert "was modified, truncated or replaced" in refusal(model_copy)


def test_truncated_artifact_with_a_matching_card(trained_model, tmp_path):
    artifact = tmp_path / "model.skops"
    artifact.write_bytes(trained_model.artifact_path.read_bytes()[:1000])
    sha = hashlib.sha256(artifact.read_bytes()).hexdigest()
    replace(trained_model.card, artifact_sha256=sha).save(tmp_path / "model.card.json")
    assert "is not a readable skops file" in refusal(artifact)


@pytest.mark.usefixtures("tiny_training")
def test_card_of_another_schema(trained_model, tmp_path):
    """A consistent artifact/card pair for 3 features, paired with the 13-feature card."""
    other = train(load_housing()[["LSTAT", "RM", "NOX", "MEDV"]], tmp_path / "other")
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    card = replace(trained_model.card, artifact_sha256=other.card.artifact_sha256)
    card.save(mixed / "model.card.json")
    assert "expects 3 features, its card lists 13" in refusal(
        other.artifact_path, mixed / "model.card.json"
    )


def test_card_with_feature_names_other_than_the_fit(trained_model, tmp_path):
    data = load_housing()
    estimator = LinearRegression().fit(data.iloc[:, :13], data["MEDV"])  # keeps feature names
    card = replace(
        trained_model.card,
        model_type="sklearn.linear_model._base.LinearRegression",
        features=tuple(reversed(trained_model.card.features)),
        drift=(*reversed(trained_model.card.drift[:-1]), trained_model.card.drift[-1]),
    )
    assert "was fitted on features CRIM," in refusal(write_with_card(estimator, card, tmp_path))


def test_card_naming_another_model_type(trained_model, tmp_path):
    data = load_housing()
    estimator = LinearRegression().fit(data.iloc[:, :13].to_numpy(), data["MEDV"].to_numpy())
    artifact = write_with_card(estimator, trained_model.card, tmp_path)
    assert "holds a sklearn.linear_model._base.LinearRegression, its card says" in refusal(artifact)


def test_unfitted_estimator(trained_model, tmp_path):
    card = replace(trained_model.card, model_type="sklearn.linear_model._base.LinearRegression")
    artifact = write_with_card(LinearRegression(), card, tmp_path)
    assert "holds an unfitted sklearn.linear_model._base.LinearRegression" in refusal(artifact)


def test_untrusted_type_is_refused_before_anything_runs(trained_model, tmp_path):
    data = load_housing()
    pipeline = make_pipeline(FunctionTransformer(_double), LinearRegression())
    pipeline.fit(data.iloc[:, :13].to_numpy(), data["MEDV"].to_numpy())
    card = replace(trained_model.card, model_type="sklearn.pipeline.Pipeline")
    message = refusal(write_with_card(pipeline, card, tmp_path))
    assert "contains types this service does not trust" in message
    assert "test_model_store._double" in message


def test_tree_with_out_of_range_child_is_refused(trained_model, tmp_path):
    """skops distrusts sklearn's Tree because predict() follows its indices unchecked."""
    estimator = load_model(trained_model.artifact_path).estimator
    state = estimator.estimators_[5, 0].tree_.__getstate__()
    nodes = state["nodes"].copy()
    nodes["left_child"][0] = 10_000
    state["nodes"] = nodes
    estimator.estimators_[5, 0].tree_.__setstate__(state)
    artifact = write_with_card(estimator, trained_model.card, tmp_path)
    assert "tree 5 has a child index out of range" in refusal(artifact)
