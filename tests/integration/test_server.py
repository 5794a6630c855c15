"""The real server (gunicorn + app on loopback): every endpoint and every error class over HTTP."""

from __future__ import annotations

import csv
import http.client
import json
import re
import socket
import time
from pathlib import Path

import numpy as np
import pytest
import requests

from devstack.ports import HOST
from devstack.server import ServerProcess
from service.api.errors import ERROR_CODES
from service.model.store import load_model
from tests.integration.server_env import server_env

pytestmark = pytest.mark.integration

JSON_HEADERS = {"Content-Type": "application/json"}
SOCKET_TIMEOUT_S = 10


@pytest.fixture(scope="module")
def holdout(trained_model) -> tuple[list[dict[str, float]], np.ndarray]:
    """Three holdout rows as records and the loaded model's predictions for them."""
    names = trained_model.card.feature_names
    with Path(trained_model.holdout_path).open(newline="") as handle:
        rows = [{n: float(row[n]) for n in names} for row in csv.DictReader(handle)][:3]
    model = load_model(trained_model.artifact_path)
    expected = model.predict(np.array([[row[n] for n in names] for row in rows]))
    return rows, expected


def post(server: ServerProcess, body: bytes | str, headers: dict[str, str] | None = None):
    data = body.encode() if isinstance(body, str) else body
    return requests.post(
        f"{server.url}/predict",
        data=data,
        headers=headers or JSON_HEADERS,
        timeout=SOCKET_TIMEOUT_S,
    )


def assert_error(response: requests.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/json"
    error = response.json()["error"]
    assert error["code"] == code
    assert isinstance(error["message"], str)
    assert isinstance(error["details"], list)
    assert "Traceback" not in response.text
    return error


def exchange(server: ServerProcess, raw: bytes) -> tuple[int, dict]:
    """Send raw bytes on a fresh connection; the response status and JSON body."""
    with socket.create_connection((HOST, server.port), timeout=SOCKET_TIMEOUT_S) as sock:
        sock.sendall(raw)
        response = http.client.HTTPResponse(sock)
        response.begin()
        return response.status, json.loads(response.read())


# -- endpoints -------------------------------------------------------------------------------


def test_healthz(server):
    response = requests.get(f"{server.url}/healthz", timeout=SOCKET_TIMEOUT_S)
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


def test_readyz_names_the_model(server, trained_model):
    response = requests.get(f"{server.url}/readyz", timeout=SOCKET_TIMEOUT_S)
    card = trained_model.card
    assert response.status_code == 200
    assert response.json() == {
        "status": "ready",
        "model": {"name": card.name, "version": card.version},
    }


def test_model_card_is_the_trained_card(server, trained_model):
    response = requests.get(f"{server.url}/model", timeout=SOCKET_TIMEOUT_S)
    assert response.status_code == 200
    assert response.json() == json.loads(json.dumps(trained_model.card.to_dict()))


def test_openapi_document_describes_the_api(server, trained_model):
    document = requests.get(f"{server.url}/openapi.json", timeout=SOCKET_TIMEOUT_S).json()
    assert document["openapi"] == "3.1.0"
    assert set(document["paths"]) == {
        "/predict",
        "/feedback",
        "/healthz",
        "/readyz",
        "/model",
        "/openapi.json",
    }
    schemas = document["components"]["schemas"]
    assert schemas["Record"]["required"] == list(trained_model.card.feature_names)
    assert schemas["Error"]["properties"]["error"]["properties"]["code"]["enum"] == list(
        ERROR_CODES
    )
    assert set(document["paths"]["/predict"]["post"]["responses"]) == {
        "200",
        "400",
        "408",
        "413",
        "415",
        "422",
        "500",
        "503",
        "default",
    }


def test_every_body_shape_predicts_like_the_model(server, holdout, trained_model):
    rows, expected = holdout
    names = list(trained_model.card.feature_names)
    bodies = [
        {"records": rows},
        rows,
        json.dumps(rows),
        {"columns": names, "data": [[row[n] for n in names] for row in rows]},
    ]
    for body in bodies:
        response = post(server, json.dumps(body))
        assert response.status_code == 200, response.text
        payload = response.json()
        np.testing.assert_allclose(payload["predictions"], expected, rtol=1e-12)
        assert len(payload["ids"]) == len(rows) == len(set(payload["ids"]))
        # Signed prediction ids (URL-safe base64), accepted back by POST /feedback.
        assert all(re.fullmatch(r"[A-Za-z0-9_-]+", i) for i in payload["ids"])
        card = trained_model.card
        assert payload["model"] == {"name": card.name, "version": card.version}


def test_single_record(server, holdout):
    rows, expected = holdout
    response = post(server, json.dumps(rows[0]))
    assert response.status_code == 200
    assert response.json()["predictions"] == pytest.approx([expected[0]], rel=1e-12)


def test_content_type_with_utf8_charset_is_accepted(server, holdout):
    headers = {"Content-Type": "application/json; charset=UTF-8"}
    assert post(server, json.dumps(holdout[0][0]), headers).status_code == 200


# -- error classes ---------------------------------------------------------------------------


def record_with(holdout, **changes: str) -> str:
    """One holdout record as JSON text, with some values replaced by raw JSON text."""
    text = json.dumps({name: f"@{name}@" for name in holdout[0][0]})
    for name, value in holdout[0][0].items():
        text = text.replace(f'"@{name}@"', changes.get(name, repr(value)))
    return text


@pytest.mark.parametrize(
    ("raw_value", "problem"),
    [
        ('"7.1"', "string"),
        ("true", "boolean"),
        ("null", "null"),
        ("NaN", "NaN"),
        ("Infinity", "Infinity"),
        ("-Infinity", "-Infinity"),
        ("1e400", "float64 range"),
    ],
)
def test_bad_values_are_422_naming_row_and_field(server, holdout, raw_value, problem):
    body = f'{{"records": [{record_with(holdout)}, {record_with(holdout, RM=raw_value)}]}}'
    error = assert_error(post(server, body), 422, "invalid_value")
    assert error["details"][0]["field"] == "records[1].RM"
    assert error["details"][0]["row"] == 1
    assert problem in error["details"][0]["problem"]


def test_missing_and_unknown_fields_are_422(server, holdout):
    record = dict(holdout[0][0])
    del record["LSTAT"]
    error = assert_error(post(server, json.dumps([record])), 422, "missing_field")
    assert error["details"][0]["field"] == "[0].LSTAT"
    record = {**holdout[0][0], "COLOUR": 1.0}
    error = assert_error(post(server, json.dumps(record)), 422, "unknown_field")
    assert error["details"][0]["field"] == "COLOUR"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ('{"records": [', 400, "malformed_json"),
        (b'{"RM": "\xff"}', 400, "invalid_encoding"),
        ("[" * 10_000 + "]" * 10_000, 400, "nesting_too_deep"),
        ("42", 422, "invalid_body"),
        ('{"records": {}}', 422, "invalid_body"),
        ('{"records": []}', 422, "invalid_body"),
    ],
    ids=["malformed", "invalid-utf8", "deep-nesting", "number", "records-object", "no-rows"],
)
def test_unusable_bodies(server, body, status, code):
    assert_error(post(server, body), status, code)


def test_huge_key_is_422_and_not_echoed(server, holdout):
    body = json.dumps({**holdout[0][0], "K" * 1_000_000: 1.0})
    response = post(server, body)
    assert_error(response, 422, "key_too_long")
    assert len(response.content) < 2000


def test_too_many_rows_is_413(server, holdout):
    rows = [holdout[0][0]] * 10_001
    error = assert_error(post(server, json.dumps({"records": rows})), 413, "too_many_rows")
    assert "10000" in error["message"]


def test_declared_oversize_body_is_refused_before_it_is_sent(server):
    # Only the headers go out: the 413 can only come back if the server never waits for the body.
    head = b"POST /predict HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
    status, body = exchange(server, head + b"Content-Length: 1000000000\r\n\r\n")
    assert (status, body["error"]["code"]) == (413, "payload_too_large")


def test_chunked_body_over_the_limit_is_413(server):
    limit = 8 * 1024 * 1024
    chunk = b"[" + b" " * (1024 * 1024 - 1)
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(limit // len(chunk)))
    body += b"10\r\n" + b" " * 16 + b"\r\n0\r\n\r\n"
    head = b"POST /predict HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
    status, error = exchange(server, head + b"Transfer-Encoding: chunked\r\n\r\n" + body)
    assert (status, error["error"]["code"]) == (413, "payload_too_large")


def test_chunked_body_within_the_limit_is_served(server, holdout):
    data = json.dumps(holdout[0][0]).encode()
    response = requests.post(
        f"{server.url}/predict",
        data=iter([data[:20], data[20:]]),
        headers=JSON_HEADERS,
        timeout=SOCKET_TIMEOUT_S,
    )
    assert response.status_code == 200, response.text


def test_chunked_body_of_exactly_the_limit_is_read_whole(server, holdout):
    # Exactly MLAPI_MAX_BODY_BYTES, chunked: within the limit (one record padded with whitespace).
    limit = 8 * 1024 * 1024
    data = json.dumps(holdout[0][0]).encode()
    padded = data + b" " * (limit - len(data))
    response = requests.post(
        f"{server.url}/predict",
        data=(padded[i : i + 1024 * 1024] for i in range(0, limit, 1024 * 1024)),
        headers=JSON_HEADERS,
        timeout=SOCKET_TIMEOUT_S,
    )
    assert response.status_code == 200, response.text


def test_oversize_body_is_413_json(server):
    response = post(server, b" " * (8 * 1024 * 1024 + 1))
    assert_error(response, 413, "payload_too_large")


@pytest.mark.parametrize("content_type", ["text/plain", "application/json; charset=latin-1", None])
def test_wrong_content_type_is_415(server, holdout, content_type):
    headers = {"Content-Type": content_type} if content_type else {}
    response = requests.post(
        f"{server.url}/predict",
        data=json.dumps(holdout[0][0]),
        headers=headers,
        timeout=SOCKET_TIMEOUT_S,
    )
    assert_error(response, 415, "unsupported_media_type")


def test_wrong_method_is_405_with_allow(server):
    response = requests.get(f"{server.url}/predict", timeout=SOCKET_TIMEOUT_S)
    assert_error(response, 405, "method_not_allowed")
    assert "POST" in response.headers["Allow"]
    assert_error(
        requests.delete(f"{server.url}/model", timeout=SOCKET_TIMEOUT_S), 405, "method_not_allowed"
    )


def test_unknown_path_is_404_json(server):
    assert_error(requests.get(f"{server.url}/nope", timeout=SOCKET_TIMEOUT_S), 404, "not_found")
    response = requests.post(
        f"{server.url}/predict/extra", data="{}", headers=JSON_HEADERS, timeout=SOCKET_TIMEOUT_S
    )
    assert_error(response, 404, "not_found")


# -- serving ---------------------------------------------------------------------------------


def test_access_log_is_one_json_object_per_request(server):
    requests.get(f"{server.url}/healthz?probe=secret", timeout=SOCKET_TIMEOUT_S)
    lines = [json.loads(line) for line in server.log_text().splitlines() if line.startswith("{")]
    health = [entry for entry in lines if entry["path"] == "/healthz"]
    assert health, server.log_tail()
    entry = health[-1]
    assert (entry["method"], entry["status"]) == ("GET", 200)
    assert {"time", "remote_addr", "bytes", "duration_ms", "user_agent", "pid"} <= set(entry)
    assert "secret" not in json.dumps(entry)


def test_startup_summary_reaches_the_server_log(server, trained_model):
    card = trained_model.card
    assert f"model {card.name} {card.version}: alert thresholds" in server.log_text()


def test_no_control_socket_is_created(server):
    # The fixture's HOME, with XDG_RUNTIME_DIR empty: where gunicorn would put its socket.
    home = server.log_path.parent / "home"
    assert home.is_dir()
    assert not (home / ".gunicorn").exists()


def test_sigterm_drains_in_flight_request_and_exits(trained_model, tmp_path, holdout):
    # Two workers: the drain must hold for every worker, not just one. Without a collector,
    # several workers are only allowed with telemetry off (embedded /metrics is per process).
    env = {**server_env(trained_model, tmp_path / "h"), "OTEL_SDK_DISABLED": "true"}
    process = ServerProcess(tmp_path / "server.log", env=env, workers=2, threads=2)
    with process:
        body = json.dumps(holdout[0][0]).encode()
        sock = socket.create_connection((HOST, process.port), timeout=SOCKET_TIMEOUT_S)
        # A first request proves the connection is accepted and owned by a worker.
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        first = http.client.HTTPResponse(sock)
        first.begin()
        first.read()
        assert first.status == 200
        # The second request is in flight (headers and half the body sent) when SIGTERM arrives.
        sock.sendall(
            b"POST /predict HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body) + body[:10]
        )
        process.signal()
        time.sleep(0.5)  # let the workers begin their graceful shutdown before the body completes
        sock.sendall(body[10:])
        second = http.client.HTTPResponse(sock)
        second.begin()
        payload = json.loads(second.read())
        sock.close()
        assert second.status == 200
        assert payload["predictions"] == pytest.approx([holdout[1][0]], rel=1e-12)
        assert process.wait(timeout=5.0) == 0


def test_sigterm_answers_the_sync_workers_backlog(trained_model, tmp_path, holdout):
    # One sync worker, busy reading request A (half its body sent) while request B waits in the
    # listen backlog. gunicorn's own sync worker would stop accepting and reset B at exit;
    # service.server.draining_worker answers both before it exits.
    env = {**server_env(trained_model, tmp_path / "h"), "OTEL_SDK_DISABLED": "true"}
    process = ServerProcess(tmp_path / "server.log", env=env, workers=1, threads=1)
    with process:
        body = json.dumps(holdout[0][0]).encode()
        head = (
            b"POST /predict HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body)
        )
        # The backlog is FIFO: the worker takes A first and blocks reading its body.
        busy = socket.create_connection((HOST, process.port), timeout=SOCKET_TIMEOUT_S)
        busy.sendall(head + body[:10])
        waiting = socket.create_connection((HOST, process.port), timeout=SOCKET_TIMEOUT_S)
        waiting.sendall(head + body)
        process.signal()
        time.sleep(0.5)  # the worker knows it must stop before A's body completes
        busy.sendall(body[10:])
        for sock in (busy, waiting):
            response = http.client.HTTPResponse(sock)
            response.begin()
            payload = json.loads(response.read())
            sock.close()
            assert response.status == 200
            assert payload["predictions"] == pytest.approx([holdout[1][0]], rel=1e-12)
        assert process.wait(timeout=5.0) == 0
