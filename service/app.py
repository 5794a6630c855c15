"""Flask application factory. Nothing happens at import; everything in ``create_app``."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

import numpy as np
from flask import Flask

from service import auth
from service.config import Settings
from service.errors import register_error_handlers
from service.model_store import LoadedModel, ensure_default_model, load_model
from service.openapi import build_openapi
from service.payload import PayloadLimits, PayloadParser
from service.prediction_ids import feedback_signer
from service.prediction_telemetry import EXTENSION_KEY as PREDICTION_TELEMETRY_KEY
from service.prediction_telemetry import PredictionTelemetry
from service.read_deadline import EXTENSION_KEY as READ_DEADLINE_KEY
from service.read_deadline import ReadDeadline
from service.routes import register_routes
from service.state import EXTENSION_KEY, ServiceState
from service.telemetry import Telemetry, init_telemetry

logger = logging.getLogger(__name__)


def create_app(
    settings: Settings | None = None,
    model: LoadedModel | None = None,
    telemetry: Telemetry | None = None,
) -> Flask:
    """The API for ``model`` (default: the one ``settings`` names), warmed by one prediction.

    Telemetry (default: from the OTEL_* variables) is per process: under gunicorn this factory runs
    in each worker after fork (``preload_app = False``), so every worker gets its own providers,
    export threads and ``service.instance.id``.
    """
    settings = settings or Settings.from_env()
    model = model or load_configured_model(settings)
    app = Flask(__name__)
    # Key order is part of no contract; sorting every response only costs time.
    app.json.sort_keys = False  # type: ignore[attr-defined]
    register_error_handlers(app)
    register_routes(app)
    state = ServiceState(
        settings=settings,
        model=model,
        parser=PayloadParser(model.card.feature_names, PayloadLimits.from_settings(settings)),
        openapi=build_openapi(model.card, settings),
        signer=feedback_signer(os.environ),
    )
    state.ready = warm_up(model)
    # The MlapiThresholdsMissing runbook starts here: what this process will export and alert on.
    logger.info(
        "model %s %s: alert thresholds %s",
        model.card.name,
        model.card.version,
        model.card.thresholds.to_dict(),
    )
    app.extensions[EXTENSION_KEY] = state
    app.extensions[READ_DEADLINE_KEY] = ReadDeadline(settings.request_timeout_s)
    telemetry = telemetry or init_telemetry(model.card)
    auth.redact_authorization_in_spans(os.environ)
    telemetry.attach(app)
    auth.install(app, settings.auth_tokens)
    app.extensions[PREDICTION_TELEMETRY_KEY] = PredictionTelemetry(telemetry, model.card)
    return app


def load_configured_model(
    settings: Settings, announce: Callable[[str], None] = logger.info
) -> LoadedModel:
    """The artifact MLAPI_MODEL_PATH names, or the built-in default (`announce` says when it is
    trained). Raises ModelLoadError."""
    if settings.model_path is None:
        return ensure_default_model(announce)
    return load_model(settings.model_path)


def warm_up(model: LoadedModel) -> bool:
    """One prediction on the training means, so the first request pays no first-call costs."""
    row = np.array([[feature.mean for feature in model.card.features]], dtype=np.float64)
    try:
        prediction = model.predict(row)
    except Exception:
        logger.exception("warm-up prediction failed; /readyz will answer 503")
        return False
    if prediction.shape != (1,) or not np.isfinite(prediction).all():
        logger.error("warm-up prediction returned %r; /readyz will answer 503", prediction)
        return False
    return True
