"""Liveness and readiness probes (cheap: no model call per probe)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint

from service.state import service_state

health = Blueprint("health", __name__)


@health.get("/healthz")
def healthz() -> dict[str, Any]:
    """The process answers HTTP; says nothing about the model."""
    return {"status": "ok"}


@health.get("/readyz")
def readyz() -> dict[str, Any]:
    """200 only when the model is loaded and its warm-up prediction at start succeeded."""
    state = service_state()
    state.require_ready()
    return {"status": "ready", "model": state.model_ref}
