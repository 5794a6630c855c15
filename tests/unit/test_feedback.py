"""POST /feedback in-process: signed prediction ids round-trip, every refusal is a documented 4xx
naming the item and field, nothing is recorded from a refused batch, and /metrics shows the sums
the accuracy rules read."""

from __future__ import annotations

import json
import re
import time

import jsonschema
import pytest

from service.api.app import create_app
from service.api.errors import ERROR_CODES
from service.api.feedback_body import ID_PROBLEMS, REJECTION_REASONS
from service.api.prediction_ids import PredictionIds
from service.credentials import FeedbackKeys
from service.settings import Settings

KEY = "k" * 40
MAX_AGE_S = 3600


@pytest.fixture
def client(model):
    keys = FeedbackKeys(KEY.encode())
    settings = Settings(max_rows=5, feedback_max_age_s=MAX_AGE_S, feedback_keys=keys)
    return create_app(settings, model).test_client()


def predict(client, row, rows: int = 1) -> tuple[list[float], list[str]]:
    body = client.post("/predict", json={"records": [row] * rows}).get_json()
    return body["predictions"], body["ids"]


def metric(client, name: str, **labels: str) -> float:
    """One sample of the embedded /metrics exposition (the unit tests run without a collector)."""
    text = client.get("/metrics").get_data(as_text=True)
    for line in text.splitlines():
        match = re.fullmatch(rf"{name}\{{(.*)\}} (\S+)", line)
        if match and all(f'{k}="{v}"' in match.group(1) for k, v in labels.items()):
            return float(match.group(2))
    raise AssertionError(f"no {name} {labels} in /metrics")


def documented(client, response, status: int) -> dict:
    """The response has `status`, is listed for POST /feedback and matches its schema."""
    assert response.status_code == status, response.get_data(as_text=True)
    document = client.get("/openapi.json").get_json()
    entry = document["paths"]["/feedback"]["post"]["responses"][str(status)]
    if "$ref" in entry:
        entry = document["components"]["responses"][entry["$ref"].rsplit("/", 1)[1]]
    schema = entry["content"]["application/json"]["schema"]
    jsonschema.Draft202012Validator({**schema, "components": document["components"]}).validate(
        response.get_json()
    )
    return response.get_json()


def test_ids_of_a_prediction_are_accepted_as_feedback(client, row, model):
    predictions, ids = predict(client, row, rows=3)
    assert len(set(ids)) == 3  # equal predictions, distinct ids
    items = [{"id": i, "actual": p + 2.0} for i, p in zip(ids, predictions, strict=True)]
    assert documented(client, client.post("/feedback", json={"items": items}), 200) == {
        "accepted": 3
    }
    single = client.post("/feedback", json={"id": ids[0], "actual": predictions[0] - 4})
    assert documented(client, single, 200) == {"accepted": 1}

    version = {"model_version": model.card.version}
    assert metric(client, "mlapi_feedback_rows_total", **version) == 4
    assert metric(client, "mlapi_feedback_absolute_error_total", **version) == pytest.approx(10)
    assert metric(client, "mlapi_feedback_squared_error_total", **version) == pytest.approx(28)
    assert metric(client, "mlapi_feedback_error_count", **version) == 4
    assert metric(client, "mlapi_feedback_delay_seconds_count", **version) == 4
    assert metric(client, "mlapi_feedback_delay_seconds_bucket", le="5.0", **version) == 4


def test_integer_actuals_are_numbers(client, row):
    _, (pid,) = predict(client, row)
    assert documented(client, client.post("/feedback", json={"id": pid, "actual": 20}), 200)


def test_one_bad_item_refuses_the_batch_naming_every_bad_item(client, row, model):
    predictions, ids = predict(client, row, rows=2)
    forged = ids[1][:-2] + ("AA" if not ids[1].endswith("AA") else "BA")
    (old,) = PredictionIds([KEY.encode()]).issue(
        predictions[:1], model.card.version, int(time.time()) - MAX_AGE_S - 60
    )
    (other_key,) = PredictionIds([b"x" * 40]).issue(predictions[:1], model.card.version, 0)
    items = [
        {"id": ids[0], "actual": 20.0},  # fine, but the batch fails
        {"id": forged, "actual": 20.0},
        {"id": "not-a-token", "actual": 20.0},
        {"id": old, "actual": 20.0},
        {"id": ids[0], "actual": "20"},
    ]
    error = documented(client, client.post("/feedback", json={"items": items}), 422)["error"]
    assert error["code"] == "invalid_prediction_id"
    assert [(d["field"], d["row"]) for d in error["details"]] == [
        ("items[1].id", 1),
        ("items[2].id", 2),
        ("items[3].id", 3),
        ("items[4].actual", 4),
    ]
    problems = [d["problem"] for d in error["details"]]
    assert problems[0].startswith("bad_signature")
    assert problems[1].startswith("malformed")
    assert problems[2].startswith("expired")
    assert problems[3] == "must be a number, got string"
    other = client.post("/feedback", json={"id": other_key, "actual": 1})
    assert documented(client, other, 422)["error"]["details"] == [
        {"field": "id", "problem": ID_BAD_SIGNATURE}
    ]
    version = {"model_version": model.card.version}
    assert metric(client, "mlapi_feedback_rows_total", **version) == 0  # nothing recorded
    assert metric(client, "mlapi_feedback_rejected_total", reason="expired") == 1
    assert metric(client, "mlapi_feedback_rejected_total", reason="bad_signature") >= 1
    assert metric(client, "mlapi_feedback_rejected_total", reason="invalid_value") == 1


ID_BAD_SIGNATURE = "bad_signature: not signed with this service's feedback key"
# Stands for the JSON number 1e400 (beyond float64) in a body.
HUGE = "__1e400__"


@pytest.mark.parametrize(
    ("body", "status", "code", "field"),
    [
        ({"id": "ID", "actual": HUGE}, 422, "invalid_value", "actual"),
        ({"id": "ID", "actual": True}, 422, "invalid_value", "actual"),
        ({"id": "ID", "actual": None}, 422, "invalid_value", "actual"),
        ({"id": "ID"}, 422, "missing_field", "actual"),
        ({"actual": 3}, 422, "missing_field", "id"),
        ({"id": "ID", "actual": 3, "note": "x"}, 422, "unknown_field", "note"),
        ({"items": [{"id": "ID", "actual": 3}], "extra": 1}, 422, "unknown_field", "extra"),
        ({"items": [3]}, 422, "invalid_body", "items[0]"),
        ({"items": {}}, 422, "invalid_body", "items"),
        ({"items": []}, 422, "invalid_body", "body"),
        ([{"id": "ID", "actual": 3}], 422, "invalid_body", "body"),
        ({"items": [{"id": "ID", "actual": 3}] * 6}, 413, "too_many_rows", None),
        ({"id": 12, "actual": 3}, 422, "invalid_prediction_id", "id"),
    ],
)
def test_malformed_feedback_is_a_documented_4xx(client, row, body, status, code, field):
    _, (pid,) = predict(client, row)
    text = json.dumps(body).replace('"ID"', json.dumps(pid)).replace(f'"{HUGE}"', "1e400")
    response = client.post("/feedback", data=text, content_type="application/json")
    error = documented(client, response, status)["error"]
    assert error["code"] == code
    if field is not None:
        assert error["details"][0]["field"] == field


def test_not_json_is_refused_like_predict(client):
    response = client.post("/feedback", data=b"{}", content_type="text/plain")
    assert documented(client, response, 415)["error"]["code"] == "unsupported_media_type"
    response = client.post("/feedback", data=b"{", content_type="application/json")
    assert documented(client, response, 400)["error"]["code"] == "malformed_json"
    assert metric(client, "mlapi_feedback_rejected_total", reason="malformed_json") == 1


def test_rejection_reasons_are_the_api_error_codes_or_the_id_problems():
    """One name for one problem: a dashboard filtering the counter by the code a client got
    (e.g. invalid_value) finds it."""
    unknown = set(REJECTION_REASONS) - set(ERROR_CODES) - set(ID_PROBLEMS)
    assert not unknown


def test_every_reason_a_refusal_can_count_starts_at_zero(client, row, model):
    """Each way a client can get POST /feedback refused moves a series that existed at 0 before,
    so that increase() over it is exact from the first refusal on."""
    _, (good_id,) = predict(client, row)
    (expired,) = PredictionIds([KEY.encode()]).issue([1.0], model.card.version, 0)
    (future,) = PredictionIds([KEY.encode()]).issue([1.0], model.card.version, 2**32 - 1)
    (forged,) = PredictionIds([b"x" * 40]).issue([1.0], model.card.version, int(time.time()))
    item = {"id": good_id, "actual": 20.0}
    refusals = {
        "unsupported_media_type": {"data": b"{}", "content_type": "text/plain"},
        "malformed_json": {"data": b"{", "content_type": "application/json"},
        "invalid_encoding": {"data": b'{"id": "\xff"}', "content_type": "application/json"},
        "nesting_too_deep": {"data": b"[" * 40 + b"]" * 40, "content_type": "application/json"},
        "invalid_body": {"json": [item]},
        "missing_field": {"json": {"id": good_id}},
        "unknown_field": {"json": {**item, "extra": 1}},
        "invalid_value": {"json": {**item, "actual": "twenty"}},
        "too_many_rows": {"json": {"items": [item] * 6}},
        "malformed": {"json": {**item, "id": "not-an-id"}},
        "bad_signature": {"json": {**item, "id": forged}},
        "expired": {"json": {**item, "id": expired}},
        "not_yet_valid": {"json": {**item, "id": future}},
    }
    for reason, request in refusals.items():
        assert metric(client, "mlapi_feedback_rejected_total", reason=reason) == 0, reason
        assert client.post("/feedback", **request).status_code in (400, 413, 415, 422)
        assert metric(client, "mlapi_feedback_rejected_total", reason=reason) == 1, reason
    # What a refusal cannot be driven to here (a body stalled past MLAPI_REQUEST_TIMEOUT_S needs
    # a real socket, tests/integration/test_limits_server.py) is at zero all the same.
    for reason in set(REJECTION_REASONS) - set(refusals):
        assert metric(client, "mlapi_feedback_rejected_total", reason=reason) == 0, reason


def test_rejection_series_exist_at_zero_from_the_start(client, model):
    for reason in ("expired", "bad_signature", "invalid_value"):
        assert metric(client, "mlapi_feedback_rejected_total", reason=reason) == 0
    assert metric(client, "mlapi_feedback_rows_total", model_version=model.card.version) == 0
