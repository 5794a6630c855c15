"""The OpenAPI 3.1 document, built from the model card and the limits so it matches what is served.

Error codes come from ``service.errors.ERROR_CODES``, the list the handlers use, and every operation
lists the statuses it really returns (plus ``default``, the error shape of 404/405/500).
"""

from __future__ import annotations

from typing import Any

from service.auth import OPEN_PATHS, REALM
from service.config import Settings
from service.errors import ERROR_CODES
from service.feedback_token import MAX_TOKEN_CHARS
from service.model_card import ModelCard
from service.payload import MAX_ABS_VALUE
from service.version import package_version

JSON = "application/json"
BEARER_SCHEME = "bearerAuth"

Schema = dict[str, Any]
# A feature value or feedback actual: a JSON number within the float32 range (service/payload.py).
VALUE: Schema = {"type": "number", "minimum": -MAX_ABS_VALUE, "maximum": MAX_ABS_VALUE}


def build_openapi(card: ModelCard, settings: Settings) -> dict[str, Any]:
    document = {
        "openapi": "3.1.0",
        "info": {
            "title": "Monitoring ML API",
            "version": package_version(),
            "summary": f"Predictions of the {card.name} model, version {card.version}.",
            "description": _error_code_table(),
        },
        "paths": _paths(),
        "components": {
            "schemas": _schemas(card, settings),
            "responses": _error_responses(),
        },
    }
    if settings.auth_tokens:
        _require_bearer_auth(document)
    return document


def _require_bearer_auth(document: dict[str, Any]) -> None:
    """Auth is on: every operation outside the open paths needs a bearer token and may be 401."""
    components = document["components"]
    components["securitySchemes"] = {
        BEARER_SCHEME: {
            "type": "http",
            "scheme": "bearer",
            "description": "One of the tokens in MLAPI_AUTH_TOKENS or MLAPI_AUTH_TOKENS_FILE.",
        }
    }
    components["responses"]["401"]["headers"] = {
        "WWW-Authenticate": {
            "description": f'Bearer realm="{REALM}", plus error="invalid_token" when a token '
            "was sent but is not valid.",
            "schema": {"type": "string"},
        }
    }
    for path, operations in document["paths"].items():
        if path in OPEN_PATHS:
            continue
        for operation in operations.values():
            operation["security"] = [{BEARER_SCHEME: []}]
            operation["responses"]["401"] = {"$ref": "#/components/responses/401"}


def _paths() -> dict[str, Any]:
    return {
        "/predict": {
            "post": {
                "operationId": "predict",
                "summary": "Predict one value per row.",
                "description": (
                    "Content-Type must be application/json (UTF-8): any other type is refused "
                    "with 415, so a client can never have its body silently misread. Feature "
                    "values must be finite JSON numbers; strings are not coerced."
                ),
                "requestBody": {
                    "required": True,
                    "content": {JSON: {"schema": {"$ref": "#/components/schemas/PredictRequest"}}},
                },
                "responses": {
                    "200": _json_response("Predictions, in row order.", "PredictionResponse"),
                    **_errors("400", "408", "413", "415", "422", "500", "503"),
                },
            }
        },
        "/feedback": {
            "post": {
                "operationId": "feedback",
                "summary": "Ground truth for earlier predictions (live accuracy metrics).",
                "description": (
                    "One item `{id, actual}` or `{items: [...]}`; `id` is a prediction id from a "
                    "/predict response, verified by its signature on any worker or replica, "
                    "refused once older than MLAPI_FEEDBACK_MAX_AGE_S. All or nothing: one bad "
                    "item (its index and field in `details`) rejects the request and nothing is "
                    "recorded. 200, not 202: the feedback is recorded before the response. Ids "
                    "are not single-use: the same id sent twice counts twice."
                ),
                "requestBody": {
                    "required": True,
                    "content": {JSON: {"schema": {"$ref": "#/components/schemas/FeedbackRequest"}}},
                },
                "responses": {
                    "200": _json_response("All items recorded.", "FeedbackResponse"),
                    **_errors("400", "408", "413", "415", "422", "500"),
                },
            }
        },
        "/healthz": {
            "get": {
                "operationId": "healthz",
                "summary": "Liveness: the process answers HTTP.",
                "responses": {"200": _json_response("Alive.", "Health"), **_errors("500")},
            }
        },
        "/readyz": {
            "get": {
                "operationId": "readyz",
                "summary": "Readiness: the model is loaded and its warm-up prediction succeeded.",
                "responses": {
                    "200": _json_response("Ready to predict.", "Ready"),
                    **_errors("500", "503"),
                },
            }
        },
        "/model": {
            "get": {
                "operationId": "model",
                "summary": "The model card of the served model.",
                "responses": {"200": _json_response("Model card.", "ModelCard"), **_errors("500")},
            }
        },
        "/openapi.json": {
            "get": {
                "operationId": "openapi",
                "summary": "This document.",
                "responses": {
                    "200": {"description": "OpenAPI 3.1 document.", "content": {JSON: {}}},
                    **_errors("500"),
                },
            }
        },
    }


def _schemas(card: ModelCard, settings: Settings) -> dict[str, Schema]:
    names = list(card.feature_names)
    width = len(names)
    return {
        "PredictRequest": {
            "description": "Any one of the accepted body shapes.",
            "oneOf": [
                {"$ref": "#/components/schemas/RecordsBody"},
                {"$ref": "#/components/schemas/SplitBody"},
                {"$ref": "#/components/schemas/Record"},
                {"$ref": "#/components/schemas/RecordArray"},
                {"$ref": "#/components/schemas/EncodedRecordArray"},
            ],
        },
        "Record": {
            "description": "One row: every feature, nothing else.",
            "type": "object",
            "properties": {
                feature.name: {
                    **VALUE,
                    "description": f"Training range [{feature.min:g}, {feature.max:g}].",
                }
                for feature in card.features
            },
            "required": names,
            "additionalProperties": False,
        },
        "RecordArray": {
            "type": "array",
            "items": {"$ref": "#/components/schemas/Record"},
            "minItems": 1,
            "maxItems": settings.max_rows,
        },
        "RecordsBody": {
            "type": "object",
            "properties": {"records": {"$ref": "#/components/schemas/RecordArray"}},
            "required": ["records"],
            "additionalProperties": False,
        },
        "SplitBody": {
            "description": 'pandas orient="split": columns in any order; "index" is ignored.',
            "type": "object",
            "properties": {
                "columns": {
                    "type": "array",
                    "items": {"type": "string", "enum": names},
                    "minItems": width,
                    "maxItems": width,
                    "uniqueItems": True,
                },
                "data": {
                    "type": "array",
                    "items": {
                        "type": "array",
                        "items": {**VALUE},
                        "minItems": width,
                        "maxItems": width,
                    },
                    "minItems": 1,
                    "maxItems": settings.max_rows,
                },
                "index": {"type": "array"},
            },
            "required": ["columns", "data"],
            "additionalProperties": False,
        },
        "EncodedRecordArray": {
            "description": "A JSON string holding a RecordArray (the seed client's format).",
            "type": "string",
            "contentMediaType": JSON,
            "contentSchema": {"$ref": "#/components/schemas/RecordArray"},
        },
        "PredictionResponse": {
            "type": "object",
            "properties": {
                "predictions": {"type": "array", "items": {"type": "number"}},
                "ids": {
                    "description": (
                        "One prediction id per row, in row order: an opaque signed token "
                        "(URL-safe base64) carrying the prediction, model version and time; "
                        "send it back to POST /feedback with the actual value."
                    ),
                    "type": "array",
                    "items": {"$ref": "#/components/schemas/PredictionId"},
                },
                "model": {"$ref": "#/components/schemas/ModelRef"},
                "trace_id": {
                    "description": "W3C trace id of the request (when tracing is on).",
                    "type": "string",
                    "pattern": "^[0-9a-f]{32}$",
                },
            },
            "required": ["predictions", "ids", "model"],
        },
        "PredictionId": {
            "type": "string",
            "pattern": "^[A-Za-z0-9_-]+$",
            "maxLength": MAX_TOKEN_CHARS,
        },
        "FeedbackItem": {
            "type": "object",
            "properties": {
                "id": {"$ref": "#/components/schemas/PredictionId"},
                "actual": {**VALUE, "description": "The true value."},
            },
            "required": ["id", "actual"],
            "additionalProperties": False,
        },
        "FeedbackRequest": {
            "oneOf": [
                {"$ref": "#/components/schemas/FeedbackItem"},
                {
                    "type": "object",
                    "properties": {
                        "items": {
                            "type": "array",
                            "items": {"$ref": "#/components/schemas/FeedbackItem"},
                            "minItems": 1,
                            "maxItems": settings.max_rows,
                        }
                    },
                    "required": ["items"],
                    "additionalProperties": False,
                },
            ],
        },
        "FeedbackResponse": {
            "type": "object",
            "properties": {
                "accepted": {
                    "description": "Items recorded (all of them).",
                    "type": "integer",
                    "minimum": 1,
                }
            },
            "required": ["accepted"],
        },
        "ModelRef": {
            "type": "object",
            "properties": {"name": {"type": "string"}, "version": {"type": "string"}},
            "required": ["name", "version"],
        },
        "Health": {
            "type": "object",
            "properties": {"status": {"const": "ok"}},
            "required": ["status"],
        },
        "Ready": {
            "type": "object",
            "properties": {
                "status": {"const": "ready"},
                "model": {"$ref": "#/components/schemas/ModelRef"},
            },
            "required": ["status", "model"],
        },
        "ModelCard": _card_schema(card.to_dict()),
        "Error": {
            "type": "object",
            "properties": {
                "error": {
                    "type": "object",
                    "properties": {
                        "code": {"type": "string", "enum": list(ERROR_CODES)},
                        "message": {"type": "string"},
                        "details": {
                            "type": "array",
                            "items": {"$ref": "#/components/schemas/ErrorDetail"},
                        },
                    },
                    "required": ["code", "message", "details"],
                }
            },
            "required": ["error"],
        },
        "ErrorDetail": {
            "type": "object",
            "properties": {
                "field": {
                    "description": (
                        'Where: e.g. "records[3].RM", "data[0].LSTAT", "RM", "body", "items[2].id".'
                    ),
                    "type": "string",
                },
                "problem": {"type": "string"},
                "row": {
                    "description": "0-based row (or feedback item) index.",
                    "type": "integer",
                    "minimum": 0,
                },
            },
            "required": ["field", "problem"],
        },
    }


def _card_schema(card: dict[str, Any]) -> Schema:
    """The served card's top-level members and their JSON types (the card module owns the rest)."""
    return {
        "type": "object",
        "properties": {key: {"type": _json_type(value)} for key, value in card.items()},
        "required": list(card),
    }


def _error_responses() -> dict[str, Any]:
    by_status: dict[int, list[str]] = {}
    for code, (status, _) in ERROR_CODES.items():
        by_status.setdefault(status, []).append(code)
    responses = {
        str(status): {
            "description": "Error codes: " + ", ".join(codes) + ".",
            "content": {JSON: {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
        for status, codes in sorted(by_status.items())
    }
    responses["default"] = {
        "description": "Any other error (e.g. 404 not_found, 405 method_not_allowed).",
        "content": {JSON: {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
    return responses


def _errors(*statuses: str) -> dict[str, Any]:
    refs = {status: {"$ref": f"#/components/responses/{status}"} for status in statuses}
    return {**refs, "default": {"$ref": "#/components/responses/default"}}


def _json_response(description: str, schema: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {JSON: {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
    }


def _error_code_table() -> str:
    rows = "\n".join(
        f"| `{code}` | {status} | {meaning} |" for code, (status, meaning) in ERROR_CODES.items()
    )
    return (
        'Every error is `{"error": {"code", "message", "details": [{"field", '
        '"problem", "row"?}]}}`.\n\n| code | status | meaning |\n|---|---|---|\n' + rows
    )


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    return {str: "string", list: "array", tuple: "array", dict: "object"}[type(value)]
