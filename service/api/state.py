"""Everything one app instance serves, in one object: ``app.extensions["mlapi"]``.

Built once by ``create_app``; every route reaches it through ``app_state()``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import Flask, current_app

from service.api.errors import ApiError
from service.api.predict_body import PayloadParser
from service.api.prediction_ids import PredictionIds
from service.api.prediction_telemetry import PredictionTelemetry
from service.api.read_deadline import ReadDeadline
from service.model.store import LoadedModel
from service.settings import Settings
from service.telemetry.instruments import ModelInstruments
from service.telemetry.setup import Telemetry

EXTENSION_KEY = "mlapi"


@dataclass
class AppState:
    settings: Settings
    model: LoadedModel
    parser: PayloadParser
    openapi: dict[str, Any]
    # Issues prediction ids and verifies them on POST /feedback.
    ids: PredictionIds
    # Bounds every request body read (MLAPI_REQUEST_TIMEOUT_S).
    read_deadline: ReadDeadline
    telemetry: Telemetry
    # The ML meters of this model (service/telemetry/instruments.py).
    instruments: ModelInstruments
    # Spans and meters around each /predict.
    observed: PredictionTelemetry
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

    def install(self, app: Flask) -> None:
        app.extensions[EXTENSION_KEY] = self

    @staticmethod
    def of(app: Flask) -> AppState:
        state: AppState = app.extensions[EXTENSION_KEY]
        return state


def app_state() -> AppState:
    """The state of the app serving the current request."""
    return AppState.of(current_app)
