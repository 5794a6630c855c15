"""Bearer auth against real gunicorn: tokens from a secret file reach both workers (and workers
forked after the file is gone), 401/200 by token, replay carries the token, and no token shows up
in the server's output, the replay output, or the embedded /metrics."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from devstack.server import ServerProcess
from service.credentials import TOKENS_ENV, TOKENS_FILE_ENV
from tests.integration.server_env import NO_EXPORT, server_env

pytestmark = pytest.mark.integration

TIMEOUT_S = 10
RESPAWN_TIMEOUT_S = 60
REPLAY_TIMEOUT_S = 120
# No collector here, and embedded /metrics refuses several workers: no export for those servers.


@pytest.fixture(scope="module")
def tokens() -> tuple[str, str, str]:
    """Two accepted tokens and a wrong one, fresh per run so a search for them means something."""
    return secrets.token_urlsafe(24), secrets.token_urlsafe(24), secrets.token_urlsafe(24)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def statuses(url: str, row: dict[str, float], headers: dict[str, str], count: int) -> set[int]:
    """Status codes of `count` predictions, each on a new connection (any worker may answer)."""
    return {
        requests.post(f"{url}/predict", json=row, headers=headers, timeout=TIMEOUT_S).status_code
        for _ in range(count)
    }


def worker_pids(master: int) -> set[int]:
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return {int(pid) for pid in children}


def replace_workers(server: ServerProcess) -> None:
    """SIGKILL every worker; return once as many new ones exist and one answers /readyz."""
    old = worker_pids(server.pid)
    for pid in old:
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + RESPAWN_TIMEOUT_S
    while time.monotonic() < deadline:
        current = worker_pids(server.pid)
        if len(current) == len(old) and not current & old:
            try:
                if requests.get(f"{server.url}/readyz", timeout=1).status_code == 200:
                    return
            except (requests.ConnectionError, requests.Timeout):
                pass
        time.sleep(0.1)
    raise TimeoutError(f"workers not replaced within {RESPAWN_TIMEOUT_S} s:\n{server.log_tail()}")


def run_replay(csv_path: Path, url: str, *args: str, env: dict[str, str] | None = None):
    """`python -m replay` as a user runs it: (exit code, stdout + stderr, report text)."""
    report = csv_path.with_suffix(f".{secrets.token_hex(4)}.json")
    argv = [sys.executable, "-m", "replay", str(csv_path), "--target", url, "--report", str(report)]
    proc = subprocess.run(
        [*argv, "--rate", "40", "--feedback-delay", "0", *args],
        capture_output=True,
        text=True,
        timeout=REPLAY_TIMEOUT_S,
        env={"PATH": "/usr/bin:/bin", "OTEL_TRACES_EXPORTER": "none", **(env or {})},
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.returncode, proc.stdout + proc.stderr, report.read_text()


@pytest.fixture(scope="module")
def holdout_csv(trained_model, tmp_path_factory) -> Path:
    """Twelve holdout rows with MEDV, so replay posts both /predict and /feedback."""
    lines = Path(trained_model.holdout_path).read_text().splitlines()[:13]
    path = tmp_path_factory.mktemp("auth-replay") / "holdout.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_two_workers_with_a_token_file(trained_model, tokens, row, holdout_csv, tmp_path):
    good, second, wrong = tokens
    secret = tmp_path / "tokens"
    secret.write_text(f"# mounted secret\n{good}\n\n{second}\n")
    env = {
        **server_env(trained_model, tmp_path / "home"),
        **NO_EXPORT,
        TOKENS_ENV: "",
        TOKENS_FILE_ENV: str(secret),
        # The most talkative level: still no token anywhere.
        "MLAPI_LOG_LEVEL": "debug",
    }
    server = ServerProcess(tmp_path / "server.log", env=env, workers=2, threads=2)
    with server:
        url = server.url
        assert statuses(url, row, {}, 10) == {401}
        assert statuses(url, row, bearer(wrong), 10) == {401}
        assert statuses(url, row, bearer(good), 10) == {200}
        assert statuses(url, row, bearer(second), 10) == {200}
        refused = requests.get(f"{url}/model", headers=bearer(wrong), timeout=TIMEOUT_S)
        assert refused.status_code == 401
        assert refused.headers["WWW-Authenticate"] == 'Bearer realm="mlapi", error="invalid_token"'
        assert refused.json()["error"]["code"] == "unauthorized"
        for path in ("/healthz", "/readyz", "/openapi.json"):
            assert requests.get(f"{url}{path}", timeout=TIMEOUT_S).status_code == 200, path

        # Replay: the token from --header or from REPLAY_AUTH_TOKEN; /predict and /feedback both.
        outputs = []
        code, output, report = run_replay(
            holdout_csv, url, "--header", f"Authorization: Bearer {good}"
        )
        assert code == 0, output
        data = json.loads(report)
        assert data["status_counts"] == {"200": 12}
        assert data["feedback_status_counts"] == {"200": 12}
        outputs += [output, report]
        code, output, report = run_replay(holdout_csv, url, env={"REPLAY_AUTH_TOKEN": second})
        assert code == 0, output
        outputs += [output, report]
        code, output, report = run_replay(
            holdout_csv, url, "--header", f"Authorization: Bearer {wrong}"
        )
        assert code == 1, output  # every request refused: above --max-error-rate 0
        assert json.loads(report)["status_counts"] == {"401": 12}
        outputs += [output, report]
        for text in outputs:
            assert good not in text and second not in text and wrong not in text

        # The file was read once, before the workers: workers forked after it is gone still
        # hold the tokens.
        secret.unlink()
        replace_workers(server)
        assert statuses(url, row, {}, 5) == {401}
        assert statuses(url, row, bearer(good), 5) == {200}
    log = server.log_text()
    assert '"status":401' in log and '"status":200' in log  # the access log was written
    for token in (good, second, wrong):
        assert token not in log


def test_embedded_metrics_stay_open_and_hold_no_token(trained_model, tokens, row, tmp_path):
    good, _, wrong = tokens
    env = {
        **server_env(trained_model, tmp_path / "home"),
        TOKENS_ENV: good,
        TOKENS_FILE_ENV: "",
        "OTEL_TRACES_SAMPLER": "parentbased_always_on",
        "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST": "Authorization",
    }
    server = ServerProcess(tmp_path / "server.log", env=env)
    with server:
        assert statuses(server.url, row, bearer(wrong), 3) == {401}
        assert statuses(server.url, row, bearer(good), 3) == {200}
        scrape = requests.get(f"{server.url}/metrics", timeout=TIMEOUT_S)
        assert scrape.status_code == 200
    # 401s are counted by route and status, like any response.
    assert 'http_response_status_code="401"' in scrape.text
    assert 'http_route="/predict"' in scrape.text
    log = server.log_text()
    for text in (scrape.text, log):
        assert good not in text and wrong not in text
