"""POST /predict: JSON rows in, one prediction and one id per row out."""

from __future__ import annotations

from typing import IO, Any

from flask import Blueprint, request

from service.errors import ApiError
from service.prediction_ids import new_prediction_ids
from service.prediction_telemetry import prediction_telemetry
from service.state import service_state
from service.telemetry import current_trace_id

predict = Blueprint("predict", __name__)

# RFC 8259 JSON is UTF-8; a body declared in another charset is refused rather than guessed at.
_UTF8 = ("utf-8", "utf8")


@predict.post("/predict")
def predict_rows() -> dict[str, Any]:
    state = service_state()
    observed = prediction_telemetry()
    with observed.validation():
        _require_json()
        body = _read_body(request.content_length, state.settings.max_body_bytes)
        features = state.parser.parse(body)
    if not state.ready:
        raise ApiError("model_not_ready", "the model failed its warm-up prediction")
    predictions = observed.predict(state.model, features)
    response = {
        "predictions": predictions.tolist(),
        "ids": new_prediction_ids(len(predictions)),
        "model": state.model_ref,
    }
    # The server span's trace (the caller's, when it sent a traceparent); absent without tracing.
    if (trace_id := current_trace_id()) is not None:
        response["trace_id"] = trace_id
    return response


def _require_json() -> None:
    charset = request.mimetype_params.get("charset", "utf-8").lower()
    if request.mimetype != "application/json" or charset not in _UTF8:
        got = request.headers.get("Content-Type", "none")
        raise ApiError(
            "unsupported_media_type",
            f"Content-Type must be application/json (UTF-8), got {got[:100]!r}",
        )


def _read_body(content_length: int | None, limit: int) -> bytes:
    """The body, refusing before reading when Content-Length is too big and never reading more
    than ``limit + 1`` bytes of a chunked one."""
    if content_length is not None and content_length > limit:
        raise _too_large(limit)
    stream: IO[bytes] = request.stream
    chunks: list[bytes] = []
    size = 0
    while size <= limit:
        chunk = stream.read(limit + 1 - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    if size > limit:
        raise _too_large(limit)
    return b"".join(chunks)


def _too_large(limit: int) -> ApiError:
    return ApiError("payload_too_large", f"the body is larger than the limit of {limit} bytes")
