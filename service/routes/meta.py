"""Self-description: the model card and the OpenAPI document."""

from __future__ import annotations

from typing import Any

from flask import Blueprint

from service.state import service_state

meta = Blueprint("meta", __name__)


@meta.get("/model")
def model_card() -> dict[str, Any]:
    return service_state().model.card.to_dict()


@meta.get("/openapi.json")
def openapi() -> dict[str, Any]:
    return service_state().openapi
