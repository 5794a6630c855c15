"""POST /feedback against real gunicorn: ids verify on any worker without a configured key (the
master shares one generated key), survive a restart with MLAPI_FEEDBACK_KEY, are refused under
another key, and a too-short key stops the server at start with one line."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import requests

from devstack.server import ServerProcess, mlapi_command
from service.credentials import FEEDBACK_KEY_ENV as KEY_ENV
from service.credentials import MIN_FEEDBACK_KEY_BYTES as MIN_KEY_BYTES
from tests.integration.server_env import NO_EXPORT, server_env

pytestmark = pytest.mark.integration

TIMEOUT_S = 10
# No collector in these tests, and embedded /metrics refuses several workers: no metric export.


def predict_ids(url: str, row: dict[str, float], requests_count: int) -> list[dict]:
    """Feedback items for `requests_count` one-row predictions, each on a new connection (so
    gunicorn hands them to whichever worker accepts first)."""
    items = []
    for _ in range(requests_count):
        body = requests.post(f"{url}/predict", json=row, timeout=TIMEOUT_S).json()
        items.append({"id": body["ids"][0], "actual": body["predictions"][0] + 1.0})
    return items


def post_feedback(url: str, items: list[dict]) -> requests.Response:
    return requests.post(f"{url}/feedback", json={"items": items}, timeout=TIMEOUT_S)


def test_without_a_key_the_workers_share_one(trained_model, row, tmp_path: Path) -> None:
    env = {**server_env(trained_model, tmp_path / "home"), **NO_EXPORT, KEY_ENV: ""}
    with ServerProcess(tmp_path / "server.log", env=env, workers=2, threads=2) as server:
        items = predict_ids(server.url, row, 30)
        # One item per request, each on a fresh connection: any worker verifies any worker's id.
        statuses = [
            requests.post(f"{server.url}/feedback", json=item, timeout=TIMEOUT_S).status_code
            for item in items
        ]
        assert statuses == [200] * len(items)
        log = server.log_text()
    assert log.count(f"{KEY_ENV} is not set") == 1  # the master's warning, not one per worker


def test_ids_survive_a_restart_with_the_same_key_only(trained_model, row, tmp_path: Path) -> None:
    key = "r" * MIN_KEY_BYTES
    env = {**server_env(trained_model, tmp_path / "home"), **NO_EXPORT, KEY_ENV: key}
    with ServerProcess(tmp_path / "first.log", env=env) as server:
        items = predict_ids(server.url, row, 3)
        assert f"{KEY_ENV} is not set" not in server.log_text()
    with ServerProcess(tmp_path / "second.log", env=env) as server:
        response = post_feedback(server.url, items)
        assert (response.status_code, response.json()) == (200, {"accepted": 3})
    other = {**env, KEY_ENV: "o" * MIN_KEY_BYTES}
    with ServerProcess(tmp_path / "third.log", env=other) as server:
        response = post_feedback(server.url, items)
        assert response.status_code == 422
        details = response.json()["error"]["details"]
        assert [d["field"] for d in details] == ["items[0].id", "items[1].id", "items[2].id"]
        assert all(d["problem"].startswith("bad_signature") for d in details)


def test_a_short_key_stops_the_server_with_one_line(trained_model, tmp_path: Path) -> None:
    env = {**server_env(trained_model, tmp_path / "home"), **NO_EXPORT, KEY_ENV: "short"}
    proc = subprocess.run(
        [*mlapi_command(), "serve", "--host", "127.0.0.1", "--port", "1"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    # Alone: before gunicorn starts (and so before its generated-key warning).
    assert proc.stderr.splitlines() == [
        f"mlapi: invalid configuration: {KEY_ENV} must be at least {MIN_KEY_BYTES} bytes long"
    ]
