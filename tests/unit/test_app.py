"""The Flask app in-process (test client): routes, error shape, readiness, OpenAPI, CLI failures."""

from __future__ import annotations

import json

import jsonschema
import numpy as np
import pytest
from openapi_spec_validator import validate as validate_openapi

from service.api.app import create_app
from service.api.errors import ERROR_CODES
from service.model.store import LoadedModel, load_model
from service.server.cli import main
from service.settings import Settings


@pytest.fixture
def app(model):
    return create_app(Settings(max_rows=5, max_body_bytes=64 * 1024), model)


@pytest.fixture
def client(app):
    return app.test_client()


def error_of(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    error = response.get_json()["error"]
    assert error["code"] == code
    return error


def test_predict_matches_the_model(client, model, row):
    response = client.post("/predict", json={"records": [row, row]})
    assert response.status_code == 200
    body = response.get_json()
    expected = model.predict(np.array([[row[n] for n in model.card.feature_names]] * 2))
    assert body["predictions"] == pytest.approx(expected.tolist(), rel=1e-12)
    assert len(body["ids"]) == 2 and body["ids"][0] != body["ids"][1]
    assert body["model"] == {"name": model.card.name, "version": model.card.version}


def test_seed_client_double_encoded_body(client, row):
    # The seed posts requests.post(url, json=json.dumps([record])): a JSON string body.
    response = client.post("/predict", json=json.dumps([row]))
    assert response.status_code == 200
    assert len(response.get_json()["predictions"]) == 1


def test_app_holds_the_model_and_is_ready(app, client, model):
    assert app.extensions["mlapi"].model is model
    assert client.get("/readyz").get_json()["status"] == "ready"
    assert client.get("/healthz").get_json() == {"status": "ok"}


def test_model_card_route(client, model):
    assert client.get("/model").get_json() == json.loads(json.dumps(model.card.to_dict()))


def test_limits_come_from_settings(client, row):
    error_of(client.post("/predict", json=[row] * 6), 413, "too_many_rows")
    error_of(
        client.post("/predict", data=b" " * (64 * 1024 + 1), content_type="application/json"),
        413,
        "payload_too_large",
    )


def test_invalid_value_names_row_and_field(client, row):
    error = error_of(
        client.post("/predict", json={"records": [row, {**row, "AGE": "old"}]}),
        422,
        "invalid_value",
    )
    assert error["details"] == [
        {"field": "records[1].AGE", "problem": "must be a number, got string", "row": 1}
    ]


def test_content_type_is_required(client, row):
    error_of(client.post("/predict", data=json.dumps(row)), 415, "unsupported_media_type")
    error_of(
        client.post(
            "/predict", data=json.dumps(row), content_type="application/x-www-form-urlencoded"
        ),
        415,
        "unsupported_media_type",
    )


def test_http_errors_use_the_error_shape(client):
    error_of(client.get("/missing"), 404, "not_found")
    response = client.put("/predict", json={})
    error_of(response, 405, "method_not_allowed")
    assert "POST" in response.headers["Allow"]


def test_unexpected_exception_is_a_json_500_without_traceback(app):
    def broken() -> None:
        raise RuntimeError("secret internals")

    app.add_url_rule("/broken", view_func=broken)
    response = app.test_client().get("/broken")
    error = error_of(response, 500, "internal_error")
    assert "secret" not in json.dumps(error)
    assert "Traceback" not in response.get_data(as_text=True)


def test_model_that_fails_warm_up_is_not_ready(model, row):
    class Exploding:
        def predict(self, features):
            raise ValueError("broken estimator")

    app = create_app(Settings(), LoadedModel(model.card, Exploding()))
    client = app.test_client()
    document = client.get("/openapi.json").get_json()
    error_of(client.get("/readyz"), 503, "model_not_ready")
    assert_documented(document, "/readyz", "get", client.get("/readyz"))
    error_of(client.post("/predict", json=row), 503, "model_not_ready")
    assert_documented(document, "/predict", "post", client.post("/predict", json=row))
    assert client.get("/healthz").status_code == 200


def test_openapi_lists_every_error_code_and_feature(client, model):
    document = client.get("/openapi.json").get_json()
    assert document["openapi"] == "3.1.0"
    schemas = document["components"]["schemas"]
    assert set(schemas["Record"]["properties"]) == set(model.card.feature_names)
    assert schemas["RecordArray"]["maxItems"] == 5
    codes = schemas["Error"]["properties"]["error"]["properties"]["code"]["enum"]
    assert codes == list(ERROR_CODES)
    for code, (status, _) in ERROR_CODES.items():
        assert code in document["components"]["responses"][str(status)]["description"]


# The members GET /model serves, in order: written out, so a member lost by the card's
# serialisation fails here instead of vanishing from both sides.
CARD_MEMBERS = [
    "schema_version",
    "name",
    "version",
    "model_type",
    "artifact_sha256",
    "trained_at",
    "training_data_sha256",
    "features",
    "target",
    "holdout",
    "drift",
    "thresholds",
]


def test_openapi_card_schema_matches_the_card(client):
    document = client.get("/openapi.json").get_json()
    assert document["components"]["schemas"]["ModelCard"]["required"] == CARD_MEMBERS


def test_app_from_environment(monkeypatch, trained_model, row):
    monkeypatch.setenv("MLAPI_MODEL_PATH", str(trained_model.artifact_path))
    monkeypatch.setenv("MLAPI_MAX_ROWS", "1")
    client = create_app().test_client()
    assert client.post("/predict", json=row).status_code == 200
    error_of(client.post("/predict", json=[row, row]), 413, "too_many_rows")


def test_cli_reports_a_missing_model_in_one_line(tmp_path, capsys):
    assert main(["serve", "--model", str(tmp_path / "absent.skops")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mlapi: cannot load model: ")
    assert err.count("\n") == 1 and "Traceback" not in err


def test_cli_reports_a_tampered_model_in_one_line(tmp_path, capsys, trained_model):
    tampered = tmp_path / trained_model.artifact_path.name
    data = bytearray(trained_model.artifact_path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    tampered.write_bytes(bytes(data))
    (tmp_path / trained_model.card_path.name).write_bytes(trained_model.card_path.read_bytes())
    assert main(["serve", "--model", str(tampered)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mlapi: cannot load model: ") and err.count("\n") == 1


def test_cli_reports_bad_settings(monkeypatch, capsys):
    monkeypatch.setenv("MLAPI_PORT", "eighty")
    assert main(["serve", "--workers", "0"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == ["mlapi: invalid configuration: MLAPI_PORT='eighty': must be an integer"]


@pytest.mark.usefixtures("tiny_training")
def test_cli_train_writes_a_loadable_model_and_reports_holdout_metrics(tmp_path, capsys):
    assert main(["train", "--out", str(tmp_path), "--seed", "7", "--version", "9.9.9"]) == 0
    out = capsys.readouterr().out
    assert "holdout MAE=" in out and " RMSE=" in out and " R2=" in out
    model = load_model(tmp_path / "model.skops")
    assert model.card.version == "9.9.9"
    assert f"R2={model.card.holdout.r2:.3f}" in out


def documented_schema(document: dict, ref_holder: dict) -> jsonschema.Draft202012Validator:
    """A validator for a schema of the document, its "#/components/..." refs resolvable."""
    return jsonschema.Draft202012Validator({**ref_holder, "components": document["components"]})


def assert_documented(document: dict, path: str, method: str, response) -> None:
    """The response's status is listed for the operation and its body matches that schema."""
    responses = document["paths"][path][method]["responses"]
    assert str(response.status_code) in responses, (path, method, response.status_code)
    entry = responses[str(response.status_code)]
    if "$ref" in entry:
        entry = document["components"]["responses"][entry["$ref"].rsplit("/", 1)[1]]
    schema = entry["content"]["application/json"].get("schema")
    if schema is not None:
        documented_schema(document, schema).validate(response.get_json())


def test_openapi_document_is_valid_openapi_3_1(client):
    validate_openapi(client.get("/openapi.json").get_json())


def test_every_response_matches_the_openapi_document(app, client, row):
    document = client.get("/openapi.json").get_json()
    predict_bodies = [
        {"json": {"records": [row]}},
        {"json": [row, row]},
        {"json": {**row, "RM": None}},
        {"json": {**row, "RM": "x"}},
        {"json": {"records": []}},
        {"json": [row] * 6},
        {"data": b"{", "content_type": "application/json"},
        {"data": b"[" * 100 + b"]" * 100, "content_type": "application/json"},
        {"data": b"\xff", "content_type": "application/json"},
        {"data": b"{}", "content_type": "text/plain"},
        {"data": b" " * (64 * 1024 + 1), "content_type": "application/json"},
    ]
    statuses = set()
    for kwargs in predict_bodies:
        response = client.post("/predict", **kwargs)
        statuses.add(response.status_code)
        assert_documented(document, "/predict", "post", response)
    assert statuses == {200, 400, 413, 415, 422}
    wrong_method = client.get("/predict")
    documented_schema(document, {"$ref": "#/components/schemas/Error"}).validate(
        wrong_method.get_json()
    )
    for path in ("/healthz", "/readyz", "/model", "/openapi.json"):
        assert_documented(document, path, "get", client.get(path))


def test_documented_request_shapes_accept_every_served_shape(client, row):
    document = client.get("/openapi.json").get_json()
    request_schema = documented_schema(document, {"$ref": "#/components/schemas/PredictRequest"})
    names = list(row)
    for body in (
        {"records": [row]},
        {"columns": names, "data": [[row[n] for n in names]]},
        row,
        [row],
        json.dumps([row]),
    ):
        request_schema.validate(body)
        assert client.post("/predict", json=body).status_code == 200
    for body in ({**row, "RM": "1"}, {"records": []}, 3, {"columns": names, "data": [[1.0]]}):
        assert not request_schema.is_valid(body)
        assert client.post("/predict", json=body).status_code == 422
