"""Liveness and readiness probes (cheap: no model call per probe)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint

from service.api.openapi import errors, json_response, operation
from service.api.state import app_state

health = Blueprint("health", __name__)


@health.get("/healthz")
@operation(
    operationId="healthz",
    summary="Liveness: the process answers HTTP.",
    responses={"200": json_response("Alive.", "Health"), **errors("500")},
)
def healthz() -> dict[str, Any]:
    """The process answers HTTP; says nothing about the model."""
    return {"status": "ok"}


@health.get("/readyz")
@operation(
    operationId="readyz",
    summary="Readiness: the model is loaded and its warm-up prediction succeeded.",
    responses={"200": json_response("Ready to predict.", "Ready"), **errors("500", "503")},
)
def readyz() -> dict[str, Any]:
    """200 only when the model is loaded and its warm-up prediction at start succeeded."""
    state = app_state()
    state.require_ready()
    return {"status": "ready", "model": state.model_ref}
