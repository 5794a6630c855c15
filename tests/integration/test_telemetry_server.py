"""Telemetry under the real gunicorn: embedded /metrics validated by promtool, traceparent
propagation, bounded series under hostile traffic, an absent collector, refusals at start."""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from devstack.ports import free_port
from devstack.server import ServerProcess
from service.model.dataset import FEATURES

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
ROW = dict(zip(FEATURES, (0.1, 12.5, 7.0, 0.0, 0.5, 6.2, 65.0, 4.0, 4.0, 300.0, 18.0, 390.0, 12.0),
               strict=True))  # fmt: skip
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
# Hostile traffic below: 2,000 requests with ~2,000 distinct paths and feature values. If any of
# them leaked into a label the series count would grow with it; bounded, it stays in the hundreds.
HOSTILE_REQUESTS = 2000
MAX_SERIES = 800
# Export complaints one worker may log while the collector is absent: each SDK/exporter message
# template at most once per minute (without the rate limit: one per failed batch, many per second).
MAX_EXPORT_LOG_LINES_PER_WORKER = 12
EXPORT_COMPLAINT = re.compile(r"export|queue full", re.IGNORECASE)


def promtool() -> str:
    """The stack's promtool (Prometheus 3, built by .ci/stack-bin) when cached, else Debian's."""
    cache = Path(os.environ.get("MLAPI_STACK_CACHE", Path.home() / ".cache/mlapi-stack"))
    version = re.search(r"^PROMETHEUS_VERSION=(\S+)$", (REPO / ".env").read_text(), re.M)
    assert version is not None
    built = cache / f"prometheus-{version.group(1)}" / "promtool"
    if built.exists():
        return str(built)
    found = shutil.which("promtool")
    assert found, "promtool missing: run .ci/stack-bin promtool or apt-get install prometheus"
    return found


def otel_free_env(**extra: str) -> dict[str, str]:
    """The test's environment without inherited OTEL_* variables, plus `extra`."""
    env = {k: "" for k in os.environ if k.startswith("OTEL_")}
    env.update(extra)
    return env


def closed_port_endpoint() -> str:
    return f"http://127.0.0.1:{free_port()}"


def predict(url: str, body: object, **headers: str) -> requests.Response:
    return requests.post(f"{url}/predict", json=body, headers=headers, timeout=10)


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    log = tmp_path_factory.mktemp("embedded") / "server.log"
    with ServerProcess(log, env=otel_free_env(), workers=1, threads=4) as server:
        yield server


def scrape(url: str) -> str:
    response = requests.get(f"{url}/metrics", timeout=10)
    assert response.status_code == 200
    return response.text


def series(exposition: str) -> list[str]:
    return [line for line in exposition.splitlines() if line and not line.startswith("#")]


def predicted_rows(exposition: str) -> float:
    """Rows predicted successfully so far (the sum over the counter's series)."""
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in series(exposition)
        if line.startswith("mlapi_prediction_rows_total{") and 'outcome="ok"' in line
    )


def test_embedded_metrics_pass_promtool(embedded: ServerProcess, tmp_path: Path) -> None:
    assert predict(embedded.url, {"records": [ROW, ROW]}).status_code == 200
    assert predict(embedded.url, {"records": [{**ROW, "RM": "many"}]}).status_code == 422
    assert requests.get(f"{embedded.url}/nope", timeout=10).status_code == 404
    text = scrape(embedded.url)
    for name in (
        "http_server_request_duration_seconds_bucket",
        "mlapi_prediction_value_bucket",
        "mlapi_prediction_rows_total",
        "mlapi_model_inference_duration_seconds_bucket",
        "mlapi_prediction_batch_size_bucket",
        "mlapi_input_rejected_total",
        "mlapi_model_info",
    ):
        assert re.search(rf"^{name}\{{", text, re.M), name
    assert "http_server_duration_milliseconds" not in text
    assert "/healthz" not in text and "/readyz" not in text

    exposition = tmp_path / "metrics.txt"
    exposition.write_text(text)
    with exposition.open("rb") as stdin:
        checked = subprocess.run(
            [promtool(), "check", "metrics"], stdin=stdin, capture_output=True, timeout=60
        )
    assert checked.returncode == 0, checked.stdout.decode() + checked.stderr.decode()


def test_traceparent_joins_the_trace_and_the_access_log_names_it(
    embedded: ServerProcess,
) -> None:
    traceparent = f"00-{TRACE_ID}-00f067aa0ba902b7-01"
    response = predict(embedded.url, {"records": [ROW]}, traceparent=traceparent)
    assert response.status_code == 200
    assert response.json()["trace_id"] == TRACE_ID

    fresh = predict(embedded.url, {"records": [ROW]}).json()["trace_id"]
    assert re.fullmatch(r"[0-9a-f]{32}", fresh) and fresh != TRACE_ID

    access = [
        json.loads(line)
        for line in embedded.log_text().splitlines()
        if line.startswith("{") and TRACE_ID in line
    ]
    assert len(access) == 1
    assert access[0]["path"] == "/predict"
    assert re.fullmatch(r"[0-9a-f]{16}", access[0]["span_id"])


def test_series_stay_bounded_under_random_paths_methods_and_values(
    embedded: ServerProcess,
) -> None:
    rng = random.Random(7)
    methods = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "BREW", "X-EVIL"]
    session = requests.Session()
    rows_before = predicted_rows(scrape(embedded.url))
    for i in range(HOSTILE_REQUESTS):
        kind = i % 3
        if kind == 0:
            session.request(
                rng.choice(methods), f"{embedded.url}/p/{rng.getrandbits(64):x}", timeout=10
            )
        elif kind == 1:
            row = {name: rng.uniform(-1e6, 1e6) for name in FEATURES}
            session.post(f"{embedded.url}/predict", json={"records": [row]}, timeout=10)
        else:
            row = {**ROW, f"field_{rng.getrandbits(64):x}": 1.0, "RM": str(rng.random())}
            session.request(rng.choice(methods), f"{embedded.url}/predict", json=row, timeout=10)
    exposition = scrape(embedded.url)
    # The random feature values were predicted and counted (an exposition that stopped recording
    # would be "bounded" too), and still the series count did not grow with them.
    assert predicted_rows(exposition) - rows_before == len(range(1, HOSTILE_REQUESTS, 3))
    count = len(series(exposition))
    assert count <= MAX_SERIES, f"{count} series after {HOSTILE_REQUESTS} hostile requests"


def test_an_absent_collector_costs_no_request_and_no_shutdown_time(tmp_path: Path) -> None:
    env = otel_free_env(
        OTEL_EXPORTER_OTLP_ENDPOINT=closed_port_endpoint(),
        OTEL_METRIC_EXPORT_INTERVAL="300",
        OTEL_BSP_SCHEDULE_DELAY="100",
        OTEL_BSP_MAX_QUEUE_SIZE="64",
        OTEL_BSP_MAX_EXPORT_BATCH_SIZE="16",
    )
    workers = 2
    server = ServerProcess(tmp_path / "server.log", env=env, workers=workers, threads=2).start()
    try:
        for _ in range(300):
            assert predict(server.url, {"records": [ROW]}).status_code == 200
        assert requests.get(f"{server.url}/metrics", timeout=10).status_code == 404
    finally:
        server.signal(signal.SIGTERM)
        # The 5 s budget is the property under test (an orchestrator kills after its grace period).
        exit_code = server.wait(timeout=5)
    assert exit_code == 0, server.log_tail()
    complaints = [
        line
        for line in server.log_text().splitlines()
        if EXPORT_COMPLAINT.search(line) and not line.startswith("{")
    ]
    assert complaints, "the absent collector should be reported"
    assert len(complaints) <= workers * MAX_EXPORT_LOG_LINES_PER_WORKER, "\n".join(complaints)


def test_embedded_metrics_with_several_workers_are_refused(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "server.log", env=otel_free_env(), workers=2, threads=1)
    with pytest.raises(RuntimeError, match="exited with 2") as refused:
        server.start(ready_timeout=60)
    assert "OTEL_EXPORTER_OTLP_ENDPOINT" in str(refused.value)


def test_sdk_disabled_serves_predictions_without_telemetry(tmp_path: Path) -> None:
    env = otel_free_env(OTEL_SDK_DISABLED="true")
    with ServerProcess(tmp_path / "server.log", env=env, workers=2, threads=2) as server:
        response = predict(server.url, {"records": [ROW]})
        assert response.status_code == 200
        assert "trace_id" not in response.json()
        metrics = requests.get(f"{server.url}/metrics", timeout=10)
        assert metrics.status_code == 404
        assert metrics.json()["error"]["code"] == "not_found"
