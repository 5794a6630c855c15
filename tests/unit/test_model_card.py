"""The model card: JSON round trip and strict, one-line validation."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass

import pytest

from service.model.card import (
    CARD_SCHEMA_VERSION,
    PREDICTION_DRIFT_NAME,
    CardError,
    ModelCard,
    parse_typed,
)
from service.model.drift_reference import MAX_BINS
from service.model.store import load_model
from service.model.thresholds import Thresholds


@dataclass(frozen=True)
class Bins:
    """Shaped like the sections a later schema adds (drift bins, thresholds)."""

    edges: tuple[float, ...]
    enabled: bool
    fractions: dict[str, float] | None = None

    def __post_init__(self) -> None:
        if list(self.edges) != sorted(self.edges):
            raise ValueError("edges must be increasing")


@dataclass(frozen=True)
class Section:
    bins: tuple[Bins, ...]
    psi_warn: float = 0.1


@pytest.fixture
def card_dict(trained_model) -> dict:
    return copy.deepcopy(trained_model.card.to_dict())


def refused(data: object) -> str:
    with pytest.raises(CardError) as error:
        ModelCard.from_dict(data)
    message = str(error.value)
    assert "\n" not in message
    return message


def test_round_trip_through_json_and_file(trained_model, tmp_path):
    card = trained_model.card
    assert ModelCard.from_json(card.to_json()) == card
    assert ModelCard.from_dict(json.loads(json.dumps(card.to_dict()))) == card
    path = tmp_path / "card.json"
    card.save(path)
    assert ModelCard.load(path) == card
    assert [p.name for p in tmp_path.iterdir()] == ["card.json"]  # no temporary left behind


def test_a_saved_card_is_readable_by_other_users(trained_model, tmp_path):
    """The image trains as root and serves as mlapi: a 0600 card (mkstemp's mode) stopped the
    service with "cannot read model card ... Permission denied"."""
    path = tmp_path / "card.json"
    trained_model.card.save(path)
    assert path.stat().st_mode & 0o777 == 0o644
    assert (trained_model.card_path.stat().st_mode & 0o777) == 0o644


def test_card_describes_the_training_data(trained_model):
    card = trained_model.card
    assert card.schema_version == CARD_SCHEMA_VERSION
    assert card.feature_names[0] == "CRIM" and card.feature_names[-1] == "LSTAT"
    assert len(card.features) == 13 and card.target.name == "MEDV"
    for feature in card.features:
        q = feature.quantiles
        assert feature.min <= q["p01"] <= q["p50"] <= q["p99"] <= feature.max
    assert card.trained_at.endswith("Z")


def test_card_is_immutable(trained_model):
    with pytest.raises(AttributeError):
        trained_model.card.version = "other"  # type: ignore[misc]


def test_missing_key(card_dict):
    del card_dict["holdout"]["rmse"]
    assert refused(card_dict) == "card.holdout: missing key(s) rmse"


def test_unknown_key(card_dict):
    card_dict["features"][0]["unit"] = "%"
    assert refused(card_dict) == "card.features[0]: unknown key(s) unit"


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        (("name",), 3, "card.name: expected a string, got integer"),
        (("schema_version",), "1", "card.schema_version: expected an integer, got string"),
        (("holdout", "rows"), 1.5, "card.holdout.rows: expected an integer, got number"),
        (("target", "max"), "50", "card.target.max: expected a number, got string"),
        (("target", "max"), True, "card.target.max: expected a number, got boolean"),
        (("features",), {}, "card.features: expected an array, got object"),
        (("features", 2, "quantiles", "p50"), None, "card.features[2].quantiles.p50: expected"),
    ],
)
def test_wrong_types(card_dict, path, value, expected):
    target = card_dict
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    assert refused(card_dict).startswith(expected)


def test_integers_are_accepted_as_numbers(card_dict, trained_model):
    card_dict["target"]["max"] = 50
    assert ModelCard.from_dict(card_dict).target.max == 50.0


def test_other_schema_version_is_named_before_other_differences(card_dict):
    card_dict["schema_version"] = CARD_SCHEMA_VERSION + 1
    card_dict["drift"] = {"bins": []}
    assert refused(card_dict) == (
        f"card.schema_version: this service reads version {CARD_SCHEMA_VERSION}, "
        f"got {CARD_SCHEMA_VERSION + 1}"
    )


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda d: d.update(artifact_sha256="abc"), "artifact_sha256: must be 64 lowercase hex"),
        (lambda d: d.update(trained_at="2026-11-26T10:00:00+02:00"), "trained_at: must be"),
        (lambda d: d.update(trained_at="yesterday"), "trained_at: must be ISO 8601 in UTC"),
        (lambda d: d.update(features=[]), "features: must not be empty"),
        (lambda d: d["features"].append(d["features"][0]), "features: names must be unique"),
        (lambda d: d["features"][0].update(min=100.0), "card.features[0]: min 100.0 is greater"),
        (lambda d: d["features"][1]["quantiles"].pop("p95"), "quantiles: keys must be"),
        (lambda d: d["features"][1].update(dtype="int64"), "only 'float64' is supported"),
        (lambda d: d["holdout"].update(rows=0), "rows: must be > 0"),
        (lambda d: d.update(version="v" * 65), "version: must be at most 64 bytes"),
    ],
)
def test_invalid_values(card_dict, mutate, expected):
    mutate(card_dict)
    assert expected in refused(card_dict)


def test_not_an_object():
    assert refused([1, 2]) == "card: expected an object, got array"


def test_json_errors_are_one_line(tmp_path, trained_model):
    with pytest.raises(CardError, match="not valid JSON"):
        ModelCard.from_json("{")
    with pytest.raises(CardError, match="NaN is not allowed"):
        ModelCard.from_json(trained_model.card.to_json().replace('"r2": ', '"r2": NaN, "x": '))
    with pytest.raises(CardError, match="cannot read model card") as error:
        ModelCard.load(tmp_path / "absent.json")
    assert "\n" not in str(error.value)


def test_sections_of_a_later_schema_parse_with_the_same_rules():
    parsed = parse_typed(Section, {"bins": [{"edges": [1, 2.5], "enabled": True}]}, "card.drift")
    assert parsed == Section(bins=(Bins(edges=(1.0, 2.5), enabled=True),))
    assert parse_typed(Section, {"bins": [], "psi_warn": 0.2}, "s").psi_warn == 0.2
    with pytest.raises(CardError, match=r"^card.drift.bins\[0\]: edges must be increasing$"):
        parse_typed(Section, {"bins": [{"edges": [3, 1], "enabled": False}]}, "card.drift")
    with pytest.raises(CardError, match=r"bins\[0\].enabled: expected true or false, got integer"):
        parse_typed(Section, {"bins": [{"edges": [], "enabled": 1}]}, "card.drift")
    with pytest.raises(CardError, match=r"bins\[0\]: missing key\(s\) enabled"):
        parse_typed(Section, {"bins": [{"edges": []}]}, "card.drift")


def test_card_carries_drift_references_and_thresholds(trained_model):
    card = trained_model.card
    assert [r.feature for r in card.drift] == [*card.feature_names, PREDICTION_DRIFT_NAME]
    assert all(1 < r.bin_count <= MAX_BINS for r in card.drift)
    assert card.thresholds.prediction_low < card.thresholds.prediction_high


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda d: d["drift"].pop(), "card: drift: must hold one reference per feature"),
        (lambda d: d["drift"].reverse(), "card: drift: must hold one reference per feature"),
        (lambda d: d["drift"][0].update(fractions=[1.0]), "card.drift[0]: CRIM: 9 edges need"),
        (lambda d: d["drift"][1].update(edges=[2, 1]), "card.drift[1]: ZN: edges must be"),
        (lambda d: d.pop("thresholds"), "card: missing key(s) thresholds"),
        (lambda d: d["thresholds"].update(psi_warn=0.5), "card.thresholds: psi_warn: must be"),
        (lambda d: d["thresholds"].update(high=1), "card.thresholds: unknown key(s) high"),
        (lambda d: d["thresholds"].pop("prediction_high"), "card.thresholds: missing key(s)"),
        (
            lambda d: d["thresholds"].update(drift_min_observations=1.5),
            "card.thresholds.drift_min_observations: expected an integer, got number",
        ),
    ],
)
def test_invalid_drift_and_thresholds_are_refused(card_dict, mutate, expected):
    mutate(card_dict)
    assert refused(card_dict).startswith(expected)


def test_a_hand_edited_threshold_keeps_the_artifact_loadable(trained_model, tmp_path):
    """Thresholds are policy, not part of the artifact: editing them in the card needs no
    retraining, and optional thresholds may be left out (their defaults apply)."""
    for source in (trained_model.artifact_path, trained_model.card_path):
        (tmp_path / source.name).write_bytes(source.read_bytes())
    card_path = tmp_path / trained_model.card_path.name
    data = json.loads(card_path.read_text())
    data["thresholds"] = {"prediction_high": 45, "prediction_low": 8.5, "psi_warn": 0.2}
    card_path.write_text(json.dumps(data))
    loaded = load_model(tmp_path / trained_model.artifact_path.name)
    assert loaded.card.artifact_sha256 == trained_model.card.artifact_sha256
    assert loaded.card.thresholds == Thresholds(
        prediction_high=45.0, prediction_low=8.5, psi_warn=0.2
    )
