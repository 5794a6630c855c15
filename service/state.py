"""What one app instance serves: its settings, model, parser and readiness, in app.extensions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import current_app

from service.config import Settings
from service.errors import ApiError
from service.feedback_token import FeedbackSigner
from service.model_store import LoadedModel
from service.payload import PayloadParser

EXTENSION_KEY = "mlapi"


@dataclass
class ServiceState:
    settings: Settings
    model: LoadedModel
    parser: PayloadParser
    openapi: dict[str, Any]
    # Signs prediction ids and verifies them on POST /feedback.
    signer: FeedbackSigner
    # Set once the warm-up prediction at start has succeeded; /readyz and /predict depend on it.
    ready: bool = False

    def require_ready(self) -> None:
        """503 `model_not_ready` unless the warm-up prediction at start succeeded."""
        if not self.ready:
            raise ApiError("model_not_ready", "the model failed its warm-up prediction")

    @property
    def model_ref(self) -> dict[str, str]:
        """The ``model`` member of a prediction response."""
        return {"name": self.model.card.name, "version": self.model.card.version}


def service_state() -> ServiceState:
    state: ServiceState = current_app.extensions[EXTENSION_KEY]
    return state
