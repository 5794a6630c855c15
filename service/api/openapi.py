"""The OpenAPI 3.1 document, built from the app's routes, the model card and the limits, so it
matches what is served.

Every route declares its operation beside itself with ``@operation(...)``; ``paths`` is read from
the app's URL map, and a route without an operation stops the app from being built, so none can
be left out. Error codes come from ``service.api.errors.ERROR_CODES``, the list the handlers use,
and every operation lists the statuses it really returns (plus ``default``, the error shape of
404/405/500).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Flask

from service.api.auth import OPEN_PATHS, REALM
from service.api.errors import ERROR_CODES
from service.api.json_body import MAX_ABS_VALUE
from service.api.prediction_ids import MAX_ID_CHARS
from service.json_types import json_type
from service.model.card import ModelCard
from service.settings import Settings
from service.version import package_version

JSON = "application/json"
BEARER_SCHEME = "bearerAuth"

Schema = dict[str, Any]
View = TypeVar("View", bound=Callable[..., Any])
OPERATION_ATTRIBUTE = "openapi_operation"
# Served, but not part of the API: the embedded Prometheus exposition (telemetry) and Flask's own.
UNDOCUMENTED_ENDPOINTS = frozenset({"metrics", "static"})
# A feature value or feedback actual: a JSON number within the float32 range (MAX_ABS_VALUE).
VALUE: Schema = {"type": "number", "minimum": -MAX_ABS_VALUE, "maximum": MAX_ABS_VALUE}


def operation(**spec: Any) -> Callable[[View], View]:
    """The OpenAPI operation of the view it decorates (operationId, summary, requestBody,
    responses, ...); build_openapi reads it."""

    def declare(view: View) -> View:
        setattr(view, OPERATION_ATTRIBUTE, spec)
        return view

    return declare


def _paths(app: Flask) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for rule in app.url_map.iter_rules():
        if rule.endpoint in UNDOCUMENTED_ENDPOINTS:
            continue
        spec = getattr(app.view_functions[rule.endpoint], OPERATION_ATTRIBUTE, None)
        if spec is None:
            raise RuntimeError(f"route {rule.rule} ({rule.endpoint}) declares no @operation")
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            # A copy: auth adds security and 401s to the document of one app only.
            paths.setdefault(rule.rule, {})[method.lower()] = copy.deepcopy(spec)
    return paths


def build_openapi(app: Flask, card: ModelCard, settings: Settings) -> dict[str, Any]:
    document = {
        "openapi": "3.1.0",
        "info": {
            "title": "Monitoring ML API",
            "version": package_version(),
            "summary": f"Predictions of the {card.name} model, version {card.version}.",
            "description": _error_code_table(),
        },
        "paths": _paths(app),
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
            "description": "A JSON string holding a RecordArray (a body serialised twice).",
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
            "maxLength": MAX_ID_CHARS,
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
        "properties": {key: {"type": json_type(value)} for key, value in card.items()},
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


def errors(*statuses: str) -> dict[str, Any]:
    """The error responses of an operation: these statuses and `default`."""
    refs = {status: {"$ref": f"#/components/responses/{status}"} for status in statuses}
    return {**refs, "default": {"$ref": "#/components/responses/default"}}


def json_response(description: str, schema: str) -> dict[str, Any]:
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
