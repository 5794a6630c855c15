"""What the target serves, from its model card (`GET /model`): the feature names in order and
the target's name, which is what replay needs to name a headerless file's columns and to check a
header before sending."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from replay.sender import Outcome

MODEL_PATH = "/model"


@dataclass(frozen=True, slots=True)
class ServedModel:
    name: str
    version: str
    features: tuple[str, ...]
    target: str

    def describe(self) -> str:
        return f"{self.name} {self.version}"


def served_model_from_card(card: Any) -> ServedModel | None:
    """The parts of a card replay uses; None when the document is not a model card."""
    if not isinstance(card, dict):
        return None
    features = card.get("features")
    target = card.get("target")
    if not isinstance(features, list) or not isinstance(target, dict):
        return None
    names = [feature.get("name") if isinstance(feature, dict) else None for feature in features]
    target_name = target.get("name")
    if not names or not all(isinstance(name, str) and name for name in names):
        return None
    if not isinstance(target_name, str) or not target_name:
        return None
    return ServedModel(
        name=str(card.get("name", "?")),
        version=str(card.get("version", "?")),
        features=tuple(names),
        target=target_name,
    )


@dataclass(frozen=True, slots=True)
class CardLookup:
    served: ServedModel | None
    problem: str = ""  # why there is no card: one phrase, e.g. "GET URL answered 404 not_found"
    unreachable: bool = False  # no response at all (connection refused, TLS failure)


def fetch_served_model(get_json: Callable[[str], Outcome], url: str) -> CardLookup:
    """The target's model from its card at `url` (GET through `get_json`)."""
    outcome = get_json(MODEL_PATH)
    if outcome.status is None:
        problem = f"GET {url} failed: {outcome.error}: {outcome.detail}"
        return CardLookup(None, problem, unreachable=outcome.error in ("connect", "tls"))
    if not outcome.ok:
        code = f" {outcome.error_code}" if outcome.error_code else ""
        return CardLookup(None, f"GET {url} answered {outcome.status}{code}")
    served = served_model_from_card(outcome.body)
    if served is None:
        return CardLookup(None, f"GET {url} answered a document that is not a model card")
    return CardLookup(served)
