"""POST /predict: JSON rows in, one prediction and one signed id per row out."""

from __future__ import annotations

from typing import Any

from flask import Blueprint

from service.prediction_ids import prediction_ids
from service.prediction_telemetry import prediction_telemetry
from service.request_body import read_body, require_json
from service.state import service_state
from service.telemetry import current_trace_id

predict = Blueprint("predict", __name__)


@predict.post("/predict")
def predict_rows() -> dict[str, Any]:
    state = service_state()
    # Before reading the body: a process that cannot predict does no work for the request.
    state.require_ready()
    observed = prediction_telemetry()
    with observed.validation():
        require_json()
        body = read_body(state.settings.max_body_bytes)
        features = state.parser.parse(body)
    predictions = observed.predict(state.model, features).tolist()
    response = {
        "predictions": predictions,
        "ids": prediction_ids(state.signer, predictions, state.model.card.version),
        "model": state.model_ref,
    }
    # The server span's trace (the caller's, when it sent a traceparent); absent without tracing.
    if (trace_id := current_trace_id()) is not None:
        response["trace_id"] = trace_id
    return response
