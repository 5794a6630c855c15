"""Self-description: the model card and the OpenAPI document."""

from __future__ import annotations

from typing import Any

from flask import Blueprint

from service.api.openapi import JSON, errors, json_response, operation
from service.api.state import app_state

meta = Blueprint("meta", __name__)


@meta.get("/model")
@operation(
    operationId="model",
    summary="The model card of the served model.",
    responses={"200": json_response("Model card.", "ModelCard"), **errors("500")},
)
def model_card() -> dict[str, Any]:
    return app_state().model.card.to_dict()


@meta.get("/openapi.json")
@operation(
    operationId="openapi",
    summary="This document.",
    responses={
        "200": {"description": "OpenAPI 3.1 document.", "content": {JSON: {}}},
        **errors("500"),
    },
)
def openapi() -> dict[str, Any]:
    return app_state().openapi
