"""Property-based fuzzing of the API from its own OpenAPI document (schemathesis, in-process WSGI).

Every documented operation gets schema-valid (positive) and schema-violating (negative) cases;
each response must not be a 5xx and must conform to the document (status documented, content type
declared, body matching the response schema), a request the schema allows must be served (200)
and one it forbids refused with a documented 4xx.

schemathesis' own ``schema.parametrize()`` over a fixture (``schemathesis.pytest.from_fixture``)
fails on pytest 9.2 (it writes ``Function._nodeid``, which pytest 9.2 removed), so each operation
is a plain parametrized test that draws cases from the operation's public ``as_strategy()``.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    positive_data_acceptance,
    response_schema_conformance,
    status_code_conformance,
)

from service.api.app import create_app
from service.api.json_body import MAX_ABS_VALUE
from service.api.state import AppState
from service.settings import Settings

# A few hundred cases per operation: enough to reach every body shape, bounded for a 2-core CI box.
MAX_EXAMPLES = 200

# Listed here so each is its own test; test_every_documented_operation_is_fuzzed keeps the list
# equal to the document's.
OPERATIONS = [
    ("POST", "/predict"),
    ("POST", "/feedback"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/model"),
    ("GET", "/openapi.json"),
]

# A schema-valid request must be served; a schema-violating one refused with a documented 4xx.
CONFIG = schemathesis.Config.from_dict(
    {
        "checks": {
            "negative_data_rejection": {"expected-statuses": [400, 413, 415, 422]},
            "positive_data_acceptance": {"expected-statuses": [200]},
        }
    }
)


def accepts_schema_valid_bodies(ctx: Any, response: Any, case: schemathesis.Case) -> bool | None:
    """positive_data_acceptance, except for a JSON-string /predict body: JSON Schema cannot
    describe the string's content (``contentSchema`` is an annotation), so schemathesis draws
    any string for it; such a string still has to get a documented 4xx, never a 5xx."""
    if isinstance(case.body, str):
        return None
    return positive_data_acceptance(ctx, response, case)


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
    accepts_schema_valid_bodies,
]


@pytest.fixture(scope="module")
def app(model) -> Flask:
    return create_app(Settings(), model)


@pytest.fixture(scope="module")
def api_schema(app):
    return schemathesis.openapi.from_wsgi("/openapi.json", app, config=CONFIG)


def test_every_documented_operation_is_fuzzed(api_schema):
    paths = api_schema.raw_schema["paths"]
    documented = {(method.upper(), path) for path in paths for method in paths[path]}
    assert documented == set(OPERATIONS)


# sklearn's finite check first sums the float32 matrix; values near the float32 limit overflow
# that sum (a warning) before its exact element-wise check accepts them.
@pytest.mark.filterwarnings("ignore:invalid value encountered in reduce:RuntimeWarning")
@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_every_response_conforms_to_the_openapi_document(app, api_schema, method, path):
    operation = api_schema[path][method]
    cases = st.one_of(
        [operation.as_strategy(generation_mode=m) for m in schemathesis.GenerationMode]
    )
    state = AppState.of(app)

    @given(case=cases)
    @settings(
        max_examples=MAX_EXAMPLES,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    def conforms(case: schemathesis.Case) -> None:
        mode = case.meta.generation.mode
        if path == "/feedback" and mode.is_positive:
            sign_feedback_ids(case.body, state)
        response = case.call_and_validate(checks=CHECKS)
        outcomes[(mode.value, response.status_code)] += 1

    outcomes: Counter[tuple[str, int]] = Counter()
    conforms()
    print(f"\n{operation.label}: {sum(outcomes.values())} cases, (mode, status) {dict(outcomes)}")
    if method == "POST":
        # The fuzzer reached both sides: bodies served and bodies refused.
        assert {status for _, status in outcomes} >= {200, 422}


def sign_feedback_ids(body: dict[str, Any], state: AppState) -> None:
    """Schema-valid ids cannot be drawn (a signature is not a pattern): give every item an id
    this app issued, as /predict would, so a schema-valid body must be recorded (200)."""
    items = body.get("items", [body])
    ids = state.ids.issue([1.0] * len(items), state.model.card.version, int(time.time()))
    for item, token in zip(items, ids, strict=True):
        item["id"] = token


# -- regressions found by the fuzzer -----------------------------------------------------------


def test_feature_beyond_float32_is_422_not_500(app, row):
    # 1e300 is a finite float64; the tree model casts to float32, where it became inf (500).
    response = app.test_client().post("/predict", json={**row, "TAX": 1e300})
    assert response.status_code == 422, response.get_data(as_text=True)
    error = response.get_json()["error"]
    assert error["code"] == "invalid_value"
    assert error["details"][0]["field"] == "TAX"
    assert "float32" in error["details"][0]["problem"]


def test_largest_float32_feature_is_served(app, row):
    extreme = dict.fromkeys(row, MAX_ABS_VALUE)
    response = app.test_client().post("/predict", json=[extreme, {**row, "RM": -MAX_ABS_VALUE}])
    assert response.status_code == 200, response.get_data(as_text=True)


def test_feedback_actual_beyond_float32_is_refused(app, row):
    # Its squared error would overflow the accuracy sums to inf for good.
    client = app.test_client()
    prediction_id = client.post("/predict", json=row).get_json()["ids"][0]
    response = client.post("/feedback", json={"id": prediction_id, "actual": 1e300})
    assert response.status_code == 422, response.get_data(as_text=True)
    assert response.get_json()["error"]["code"] == "invalid_value"
    accepted = client.post("/feedback", json={"id": prediction_id, "actual": -MAX_ABS_VALUE})
    assert accepted.status_code == 200
