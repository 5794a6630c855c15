"""Flask application factory. Nothing happens at import; everything in ``create_app``."""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
from flask import Flask

from service.api import auth
from service.api.errors import register_error_handlers
from service.api.feedback_body import REJECTION_REASONS
from service.api.json_responses import OrjsonProvider
from service.api.openapi import build_openapi
from service.api.predict_body import PayloadLimits, PayloadParser
from service.api.prediction_ids import prediction_ids_for
from service.api.prediction_telemetry import PredictionTelemetry
from service.api.read_deadline import ReadDeadline
from service.api.routes import register_routes
from service.api.state import AppState
from service.model.default_model import ensure_default_model
from service.model.store import LoadedModel, load_model
from service.settings import Settings
from service.telemetry.instruments import ModelInstruments
from service.telemetry.outage_buffer import BufferLimits
from service.telemetry.setup import Telemetry, init_telemetry

logger = logging.getLogger(__name__)


def create_app(
    settings: Settings | None = None,
    model: LoadedModel | None = None,
    telemetry: Telemetry | None = None,
) -> Flask:
    """The API for ``model`` (default: the one ``settings`` names), warmed by one prediction.

    Telemetry (default: from the OTEL_* variables) is per process: under gunicorn this factory runs
    in each worker after fork (``preload_app = False``), so every worker gets its own providers,
    export threads and ``service.instance.id``. The process environment is only read, never
    written.
    """
    settings = settings or Settings.from_env()
    model = model or load_configured_model(settings)
    telemetry = telemetry or init_telemetry(
        trace_buffer=BufferLimits(settings.trace_buffer_spans, settings.trace_buffer_bytes)
    )
    instruments = ModelInstruments(telemetry.meter, model.card, REJECTION_REASONS)
    app = Flask(__name__)
    app.json = OrjsonProvider(app)
    register_error_handlers(app)
    register_routes(app)
    state = AppState(
        settings=settings,
        model=model,
        parser=PayloadParser(model.card.feature_names, PayloadLimits.from_settings(settings)),
        openapi=build_openapi(app, model.card, settings),
        ids=prediction_ids_for(settings.feedback_keys),
        read_deadline=ReadDeadline(settings.request_timeout_s),
        telemetry=telemetry,
        instruments=instruments,
        observed=PredictionTelemetry(
            telemetry.tracer, instruments, model.card, settings.span_features
        ),
        ready=warm_up(model),
    )
    # The MlapiThresholdsMissing runbook starts here: what this process will export and alert on.
    logger.info(
        "model %s %s: alert thresholds %s",
        model.card.name,
        model.card.version,
        model.card.thresholds.to_dict(),
    )
    state.install(app)
    telemetry.attach(app)
    auth.install(app, settings.auth_tokens)
    return app


def load_configured_model(
    settings: Settings, announce: Callable[[str], None] = logger.info
) -> LoadedModel:
    """The artifact MLAPI_MODEL_PATH names, or the built-in default (`announce` says when it is
    trained). Raises ModelLoadError."""
    if settings.model_path is None:
        return ensure_default_model(settings.cache_dir, announce)
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
