"""The API's one error shape and the Flask handlers that guarantee it for every failure.

Shape: ``{"error": {"code": str, "message": str, "details": [{"field", "problem", "row"?}]}}``.
Codes are stable (clients and alerts key on them); ``ERROR_CODES`` is the single list the OpenAPI
document is built from, and the README's error table must match (tests/unit/test_readme.py).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from flask import Flask, Response, jsonify
from opentelemetry import trace
from werkzeug.exceptions import HTTPException

logger = logging.getLogger(__name__)

# code -> (HTTP status, meaning)
ERROR_CODES: dict[str, tuple[int, str]] = {
    "malformed_json": (400, "The body is not valid JSON."),
    "invalid_encoding": (400, "The body is not valid UTF-8."),
    "nesting_too_deep": (400, "JSON nesting is deeper than MLAPI_MAX_JSON_DEPTH."),
    "bad_request": (400, "The HTTP request itself is malformed."),
    "unauthorized": (
        401,
        "Bearer auth is on (MLAPI_AUTH_TOKENS) and the request has no valid "
        "'Authorization: Bearer <token>' header; see the WWW-Authenticate header.",
    ),
    "not_found": (404, "No such path."),
    "method_not_allowed": (405, "The path exists but not for this method (see the Allow header)."),
    "request_timeout": (
        408,
        "The body did not arrive within MLAPI_REQUEST_TIMEOUT_S (a stalled or trickling upload); "
        "the connection is closed.",
    ),
    "payload_too_large": (413, "The body is larger than MLAPI_MAX_BODY_BYTES."),
    "too_many_rows": (413, "More rows than MLAPI_MAX_ROWS in one request."),
    "unsupported_media_type": (415, "POST bodies must be sent as Content-Type: application/json."),
    "invalid_body": (422, "Valid JSON, but not one of the accepted body shapes."),
    "missing_field": (422, "A feature is missing from a row."),
    "unknown_field": (422, "A row or the body has a key that is not a feature / known member."),
    "key_too_long": (422, "An object key is longer than MLAPI_MAX_KEY_LENGTH."),
    "invalid_value": (
        422,
        "A feature value (or feedback actual) is not a finite JSON number within the float32 "
        "range +-3.4e38 (string, boolean, null, array, object, NaN, Infinity, 1e39, 1e400).",
    ),
    "invalid_prediction_id": (
        422,
        "A feedback id is not a prediction id this service issued and can still accept: "
        "malformed, forged (bad signature), expired (older than MLAPI_FEEDBACK_MAX_AGE_S) or "
        "not yet valid.",
    ),
    "model_not_ready": (503, "The model is not loaded or failed its warm-up prediction."),
    "internal_error": (500, "A bug on the server; the body never carries a traceback."),
}

# Refused by Werkzeug or the auth hook before any view runs: no route counts them.
REFUSED_BEFORE_ROUTES = frozenset(
    {"bad_request", "unauthorized", "not_found", "method_not_allowed"}
)

# HTTP errors raised by Flask/Werkzeug itself, mapped onto the stable codes.
_HTTP_STATUS_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    500: "internal_error",
}


@dataclass(frozen=True)
class Detail:
    """One problem with the input. ``code`` and ``feature`` are for telemetry, not the wire."""

    field: str
    problem: str
    code: str
    row: int | None = None
    feature: str | None = None

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"field": self.field, "problem": self.problem}
        if self.row is not None:
            body["row"] = self.row
        return body


class ApiError(Exception):
    """A failure that is answered with the error shape; ``code`` must be a key of ERROR_CODES."""

    def __init__(self, code: str, message: str, details: tuple[Detail, ...] = ()) -> None:
        super().__init__(message)
        self.status = ERROR_CODES[code][0]
        self.code = code
        self.message = message
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        return {
            "error": {
                "code": self.code,
                "message": self.message,
                "details": [detail.to_dict() for detail in self.details],
            }
        }


def error_response(error: ApiError) -> tuple[Response, int]:
    return jsonify(error.to_dict()), error.status


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(ApiError, error_response)
    app.register_error_handler(HTTPException, _http_exception)
    app.register_error_handler(Exception, _unexpected_exception)


def _http_exception(exc: HTTPException) -> tuple[Response, int]:
    status = exc.code or 500
    code = _HTTP_STATUS_CODES.get(status, "bad_request" if status < 500 else "internal_error")
    response = jsonify(ApiError(code, exc.description or exc.name).to_dict())
    # 405 must keep its Allow header (RFC 9110); other Werkzeug headers describe its HTML body.
    for name, value in exc.get_headers():
        if name.lower() == "allow":
            response.headers[name] = value
    return response, status


def _unexpected_exception(exc: Exception) -> tuple[Response, int]:
    # The traceback goes to the server log and the request's span; the client sees the shape.
    logger.error("unhandled exception", exc_info=exc)
    trace.get_current_span().record_exception(exc)
    return error_response(ApiError("internal_error", "internal server error"))
