"""POST /predict: JSON rows in, one prediction and one signed id per row out."""

from __future__ import annotations

import time
from typing import Any

from flask import Blueprint

from service.api.openapi import JSON, errors, json_response, operation
from service.api.request_body import read_body, require_json
from service.api.state import app_state
from service.telemetry.http_server import current_trace_id

predict = Blueprint("predict", __name__)


@predict.post("/predict")
@operation(
    operationId="predict",
    summary="Predict one value per row.",
    description=(
        "Content-Type must be application/json (UTF-8): any other type is refused with 415, so a "
        "client can never have its body silently misread. Feature values must be finite JSON "
        "numbers; strings are not coerced."
    ),
    requestBody={
        "required": True,
        "content": {JSON: {"schema": {"$ref": "#/components/schemas/PredictRequest"}}},
    },
    responses={
        "200": json_response("Predictions, in row order.", "PredictionResponse"),
        **errors("400", "408", "413", "415", "422", "500", "503"),
    },
)
def predict_rows() -> dict[str, Any]:
    state = app_state()
    # Before reading the body: a process that cannot predict does no work for the request.
    state.require_ready()
    observed = state.observed
    with observed.validation():
        require_json()
        body = read_body(state.settings.max_body_bytes)
        features = state.parser.parse(body)
    predictions = observed.predict(state.model, features).tolist()
    response = {
        "predictions": predictions,
        "ids": state.ids.issue(predictions, state.model.card.version, int(time.time())),
        "model": state.model_ref,
    }
    # The server span's trace (the caller's, when it sent a traceparent); absent without tracing.
    if (trace_id := current_trace_id()) is not None:
        response["trace_id"] = trace_id
    return response
