"""Replay's HTTP mechanics against a tiny recording http.server on 127.0.0.1 (not the real
service: that is tests/integration/test_replay.py). The stub answers /predict like the API
(predictions + ids), GET /model with a card of features CRIM and RM, target MEDV, and can be
told to be slow, to 404 or to 503 with Retry-After."""

from __future__ import annotations

import json
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from replay.cli import EXIT_ERROR_BUDGET, EXIT_INTERRUPTED, EXIT_OK, EXIT_UNREACHABLE, main
from replay.sender import Sender
from replay.tracing import start_tracing, stop_tracing


class StubState:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: list[tuple[str, dict[str, str], dict]] = []
        self.feedback_status = 200
        self.unavailable_left = 0  # answer this many /predict calls with 503 + Retry-After: 0
        self.predict_status = 200
        self.client_ports: list[int] = []
        self.gets: list[str] = []


class StubHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like gunicorn
    state: StubState

    def log_message(self, *args: object) -> None:  # keep pytest output clean
        pass

    def _reply(self, status: int, payload: object, extra: dict[str, str] | None = None) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        with self.state.lock:
            self.state.gets.append(self.path)
        if self.path != "/model":
            self._reply(404, {"error": {"code": "not_found", "message": "no such path"}})
            return
        features = [{"name": "CRIM"}, {"name": "RM"}]
        self._reply(200, {"name": "stub", "version": "1", "features": features,
                          "target": {"name": "MEDV"}})  # fmt: skip

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        state = self.state
        with state.lock:
            state.requests.append((self.path, dict(self.headers), body))
            state.client_ports.append(self.client_address[1])
            index = len(state.requests)
            unavailable = state.unavailable_left > 0 and self.path == "/predict"
            if unavailable:
                state.unavailable_left -= 1
        if self.path == "/feedback":
            self._reply(state.feedback_status, {"accepted": len(body["items"])})
        elif unavailable:
            self._reply(503, {"error": {"code": "busy"}}, {"Retry-After": "0"})
        elif state.predict_status != 200:
            error = {"code": "invalid_input", "message": f"records[0].RM: bad value {index}"}
            self._reply(state.predict_status, {"error": error})
        else:
            records = body["records"]
            self._reply(
                200,
                {
                    "predictions": [20.0] * len(records),
                    "ids": [f"p{index}-{i}" for i in range(len(records))],
                    "model": {"version": "stub"},
                    # Like a server that joins the caller's trace.
                    "trace_id": self.headers["traceparent"].split("-")[1],
                },
            )


def _serve(tls: ssl.SSLContext | None = None) -> Iterator[tuple[str, StubState]]:
    state = StubState()
    handler = type("Handler", (StubHandler,), {"state": state})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    scheme = "https" if tls else "http"
    try:
        yield f"{scheme}://127.0.0.1:{server.server_address[1]}", state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def stub() -> Iterator[tuple[str, StubState]]:
    yield from _serve()


@pytest.fixture
def tls_stub(tmp_path) -> Iterator[tuple[str, StubState, Path]]:
    """The stub over TLS with a throwaway self-signed certificate for 127.0.0.1."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    for url, state in _serve(context):
        yield url, state, cert


def _paths(state: StubState) -> list[str]:
    with state.lock:
        return [path for path, _, _ in state.requests]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _write_csv(path: Path, rows: list[str], header: str = "CRIM,RM,MEDV") -> Path:
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def test_each_request_carries_traceparent_request_id_and_run_marker(stub, tmp_path):
    url, state = stub
    csv_path = _write_csv(tmp_path / "rows.csv", ["0.1,6.5,24.0", "0.2,5.9,21.6"])
    report = tmp_path / "report.json"
    code = main(
        [
            str(csv_path),
            "--target",
            url,
            "--rate",
            "50",
            "--run-id",
            "run-42",
            "--header",
            "Authorization: Bearer t0k",
            "--report",
            str(report),
        ]
    )
    assert code == EXIT_OK
    predicts = [(h, b) for p, h, b in state.requests if p == "/predict"]
    assert len(predicts) == 2
    trace_ids = set()
    for headers, body in predicts:
        version, trace_id, span_id, flags = headers["traceparent"].split("-")
        assert (version, len(trace_id), len(span_id)) == ("00", 32, 16)
        assert int(flags, 16) & 0x01  # sampled, so a server that joins the trace records it
        trace_ids.add(trace_id)
        assert headers["X-Replay-Run-Id"] == "run-42"
        assert "replay.run_id=run-42" in headers["baggage"]
        assert headers["Authorization"] == "Bearer t0k"
        assert len(headers["X-Request-ID"]) == 32
        assert "MEDV" not in body["records"][0]
    assert len(trace_ids) == 2
    data = json.loads(report.read_text())
    assert set(data["slowest_trace_ids"]) == trace_ids
    assert (data["traces_joined"], data["traces_not_joined"]) == (2, 0)


def test_feedback_posts_actuals_for_returned_ids(stub, tmp_path):
    url, state = stub
    csv_path = _write_csv(tmp_path / "rows.csv", ["0.1,6.5,24.0", "0.2,5.9,21.6", "0.3,6.1,x"])
    report = tmp_path / "report.json"
    code = main(
        [
            str(csv_path),
            "--target",
            url,
            "--rate",
            "100",
            "--batch-size",
            "3",
            "--feedback-delay",
            "0.2",
            "--report",
            str(report),
        ]
    )
    assert code == EXIT_OK
    feedback = [b for p, _, b in state.requests if p == "/feedback"]
    # The non-numeric actual ("x") gives no feedback item.
    assert feedback == [{"items": [{"id": "p1-0", "actual": 24.0}, {"id": "p1-1", "actual": 21.6}]}]
    assert json.loads(report.read_text())["feedback_sent"] == 2


def test_feedback_404_is_counted_and_reported_once(stub, tmp_path, capsys):
    url, state = stub
    state.feedback_status = 404
    csv_path = _write_csv(tmp_path / "rows.csv", [f"0.{i},6.0,20.0" for i in range(5)])
    report = tmp_path / "report.json"
    code = main([str(csv_path), "--target", url, "--rate", "20", "--report", str(report)])
    assert code == EXIT_OK  # feedback trouble does not fail the prediction run
    data = json.loads(report.read_text())
    assert data["feedback_sent"] == 0
    assert data["feedback_failed"] == 5
    assert sum(data["feedback_status_counts"].values()) >= 1
    err = capsys.readouterr().err.splitlines()
    assert len([line for line in err if "feedback to" in line]) == 1, err
    assert "failed (404: the server has no feedback endpoint)" in "\n".join(err)


def test_shift_changes_the_values_on_the_wire(stub, tmp_path):
    url, state = stub
    csv_path = _write_csv(tmp_path / "rows.csv", ["0.1,6.0,24.0", "0.2,abc,21.6"])
    code = main([str(csv_path), "--target", url, "--shift", "RM=1.5", "--batch-size", "2"])
    assert code == EXIT_OK
    (body,) = [b for p, _, b in state.requests if p == "/predict"]
    assert body == {"records": [{"CRIM": 0.1, "RM": 9.0}, {"CRIM": 0.2, "RM": "abc"}]}


def test_503_with_retry_after_is_retried_and_counted(stub, tmp_path):
    url, state = stub
    state.unavailable_left = 1
    csv_path = _write_csv(tmp_path / "rows.csv", ["0.1,6.5,24.0"])
    report = tmp_path / "report.json"
    code = main([str(csv_path), "--target", url, "--report", str(report)])
    assert code == EXIT_OK
    data = json.loads(report.read_text())
    assert (data["sent"], data["succeeded"], data["retries"]) == (1, 1, 1)
    assert data["status_counts"] == {"200": 1}


def test_4xx_answers_count_against_the_error_budget(stub, tmp_path, capsys):
    url, state = stub
    state.predict_status = 422
    csv_path = _write_csv(tmp_path / "rows.csv", ["0.1,6.5,24.0", "0.2,abc,20.0"])
    report = tmp_path / "report.json"
    code = main([str(csv_path), "--target", url, "--report", str(report)])
    assert code == EXIT_ERROR_BUDGET
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("replay: error rate 100.00% (2/2) exceeds --max-error-rate")
    data = json.loads(report.read_text())
    assert data["status_counts"] == {"422": 2}
    # The server's code and its first message, without the batch's row index.
    assert data["error_codes"] == [
        {"status": 422, "code": "invalid_input", "count": 2, "example": "RM: bad value 1"}
    ]
    assert main([str(csv_path), "--target", url, "--max-error-rate", "1"]) == EXIT_OK


def test_a_target_whose_predict_answers_404_stops_after_three(stub, tmp_path, capsys):
    url, state = stub
    state.predict_status = 404
    csv_path = _write_csv(tmp_path / "rows.csv", [f"0.{i},6.0,20.0" for i in range(9)])
    report = tmp_path / "report.json"
    argv = ["--loop", "--duration", "60", "--rate", "20", "--report", str(report)]
    assert main([str(csv_path), "--target", url, *argv]) == EXIT_UNREACHABLE
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last == (
        f"replay: target {url} has no /predict: it answered 404 3 times, nothing else yet; "
        f"is --target the API's base URL? Requests went to {url}/predict"
    )
    assert json.loads(report.read_text())["status_counts"]["404"] < 20  # not a minute of 404s


def test_a_target_ending_in_an_endpoint_is_taken_as_the_base_url(stub, tmp_path, capsys):
    url, state = stub
    csv_path = _write_csv(tmp_path / "rows.csv", ["0.1,6.5,24.0"])
    assert main([str(csv_path), "--target", f"{url}/predict"]) == EXIT_OK
    assert _paths(state) == ["/predict", "/feedback"]
    assert state.gets == ["/model"]
    err = capsys.readouterr().err
    assert (
        f"replay: --target ends in /predict, an endpoint of the API: using {url} as its base URL"
        in err
    )


def test_unreachable_target_fails_fast_with_one_line(tmp_path, capsys):
    csv_path = _write_csv(tmp_path / "rows.csv", [f"0.{i},6.0,20.0" for i in range(9)])
    url = f"http://127.0.0.1:{_closed_port()}"
    code = main([str(csv_path), "--target", url, "--loop", "--duration", "60", "--rate", "20"])
    assert code == EXIT_UNREACHABLE
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith(f"replay: target {url} unreachable: connect failed 3 times")
    assert "Traceback" not in last


def test_tls_verification_insecure_and_custom_ca(tls_stub, tmp_path, capsys):
    url, state, cert = tls_stub
    csv_path = _write_csv(tmp_path / "rows.csv", [f"0.{i},6.0,20.0" for i in range(5)])
    # An unknown CA is a TLS failure on every first attempt: the run stops as unreachable.
    assert main([str(csv_path), "--target", url, "--rate", "50"]) == EXIT_UNREACHABLE
    assert "tls failed" in capsys.readouterr().err
    assert _paths(state) == []
    assert main([str(csv_path), "--target", url, "--rate", "50", "--insecure"]) == EXIT_OK
    assert main([str(csv_path), "--target", url, "--rate", "50", "--ca-cert", str(cert)]) == 0
    assert _paths(state).count("/predict") == 10


def test_sender_pool_reuses_connections(stub):
    url, state = stub
    provider = start_tracing(env={})
    sender = Sender(
        url, run_id="pool-test", pool_size=2, timeout=5, tracer=provider.get_tracer("t")
    )
    try:
        outcomes = [sender.post_json("/predict", {"records": [{"RM": 6.0}]}) for _ in range(5)]
    finally:
        sender.close()
        stop_tracing(provider)
    assert all(o.ok and o.body["ids"] for o in outcomes)
    assert all(len(o.trace_id) == 32 for o in outcomes)
    assert len(set(state.client_ports)) == 1  # one keep-alive connection for sequential calls


def test_the_proxy_of_the_environment_is_used_with_its_credentials(stub, monkeypatch):
    """As requests would: HTTP_PROXY (user:password in its URL) unless NO_PROXY names the host."""
    url, state = stub
    monkeypatch.setenv("HTTP_PROXY", url.replace("http://", "http://us%65r:pa%3Ass@"))
    monkeypatch.setenv("NO_PROXY", "skipped.invalid")
    provider = start_tracing(env={})
    for target in ("http://api.invalid:8000", "http://skipped.invalid:8000"):
        sender = Sender(
            target, run_id="proxy-test", pool_size=1, timeout=5, tracer=provider.get_tracer("t")
        )
        try:
            outcome = sender.post_json("/predict", {"records": [{"RM": 6.0}]})
        finally:
            sender.close()
        if target.startswith("http://api"):
            assert outcome.ok, outcome
    stop_tracing(provider)
    # The proxy got the absolute URL, with Basic user:pa:ss; the NO_PROXY host was tried
    # directly (and does not resolve).
    ((path, headers, _),) = state.requests
    assert path == "http://api.invalid:8000/predict"
    proxy_auth = [v for k, v in headers.items() if k.lower() == "proxy-authorization"]
    assert proxy_auth == ["Basic dXNlcjpwYTpzcw=="]
    assert outcome.error == "connect"


def test_each_attempt_is_a_client_span_without_request_headers(stub):
    url, state = stub
    provider = start_tracing(env={})
    spans = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    state.predict_status = 422
    token = "Bearer s3cret-token"
    sender = Sender(
        url, run_id="span-test", pool_size=1, timeout=5, headers={"Authorization": token},
        tracer=provider.get_tracer("t"),
    )  # fmt: skip
    try:
        outcome = sender.post_json("/predict", {"records": [{"RM": 6.0}]})
    finally:
        sender.close()
        stop_tracing(provider)
    (span,) = spans.get_finished_spans()
    assert (span.name, span.kind, span.status.status_code) == (
        "POST",
        SpanKind.CLIENT,
        StatusCode.ERROR,
    )
    assert dict(span.attributes) == {
        "http.request.method": "POST",
        "url.full": f"{url}/predict",
        "server.address": "127.0.0.1",
        "server.port": int(url.rsplit(":", 1)[1]),
        "replay.run_id": "span-test",
        "http.response.status_code": 422,
        "error.type": "422",
    }
    # The traceparent sent is this span's; the token went to the server, not into the span.
    ((_, headers, _),) = state.requests
    assert (
        headers["traceparent"].split("-")[1] == f"{span.context.trace_id:032x}" == outcome.trace_id
    )
    assert headers["Authorization"] == token


def test_sigterm_ends_the_run_with_summary_and_report(stub, tmp_path):
    url, state = stub
    csv_path = _write_csv(tmp_path / "rows.csv", ["0.1,6.5,24.0"])
    report = tmp_path / "report.json"
    argv = [sys.executable, "-m", "replay", str(csv_path), "--target", url, "--loop",
            "--duration", "120", "--rate", "20", "--report", str(report)]  # fmt: skip
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and _paths(state).count("/predict") < 3:
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == EXIT_INTERRUPTED
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("replay: interrupted")
    assert "succeeded" in out
    assert json.loads(report.read_text())["sent"] >= 3
