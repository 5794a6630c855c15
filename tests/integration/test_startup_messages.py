"""What the real `mlapi serve` says when it cannot start, and on its first start: one line naming
what was given and what was expected, exit 2, before gunicorn logs anything (no "Starting
gunicorn", no generated-key warning, no retry loop on a busy port)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from devstack.ports import HOST, free_port
from devstack.server import ServerProcess, mlapi_command
from service.model.store import ARTIFACT_NAME, CARD_NAME
from tests.integration.server_env import NO_EXPORT, server_env

pytestmark = pytest.mark.integration

EXIT_USAGE = 2
START_TIMEOUT_S = 60
EXPECTED = f"expected the model's .skops artifact, with its card {CARD_NAME} beside it"


def serve(trained_model, home: Path, *args: str, env: dict[str, str] | None = None):
    """`mlapi serve` run to its exit, without any inherited OTEL_* setting (embedded /metrics)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    return subprocess.run(
        [*mlapi_command(), "serve", "--host", HOST, *args],
        env={**base, **server_env(trained_model, home), **(env or {})},
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT_S,
        check=False,
    )


def refusal(completed: subprocess.CompletedProcess[str]) -> str:
    """The one stderr line of a refused start."""
    assert completed.returncode == EXIT_USAGE, completed.stderr
    lines = completed.stderr.splitlines()
    assert len(lines) == 1, completed.stderr
    assert completed.stdout == ""
    return lines[0]


@pytest.fixture
def model_dir(trained_model, tmp_path: Path) -> Path:
    directory = tmp_path / "model"
    directory.mkdir()
    shutil.copy(trained_model.artifact_path, directory / ARTIFACT_NAME)
    shutil.copy(trained_model.card_path, directory / CARD_NAME)
    return directory


def test_a_missing_model_file_is_named(trained_model, tmp_path: Path) -> None:
    missing = tmp_path / "missing.skops"
    line = refusal(serve(trained_model, tmp_path / "home", "--model", str(missing)))
    assert line == f"mlapi: cannot load model: {missing} does not exist; {EXPECTED}"


def test_a_directory_names_the_artifact_inside(trained_model, model_dir, tmp_path) -> None:
    line = refusal(serve(trained_model, tmp_path / "home", "--model", str(model_dir)))
    assert line == (
        f"mlapi: cannot load model: {model_dir} is a directory; {EXPECTED} "
        f"({model_dir / ARTIFACT_NAME} is there)"
    )


def test_the_card_given_as_model_names_the_artifact(trained_model, model_dir, tmp_path) -> None:
    card = model_dir / CARD_NAME
    line = refusal(serve(trained_model, tmp_path / "home", "--model", str(card)))
    assert line == (
        f"mlapi: cannot load model: {card} is the model card, not the artifact; give the .skops "
        f"artifact beside it: {model_dir / ARTIFACT_NAME}"
    )


def test_a_busy_port_is_one_line(trained_model, tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind((HOST, 0))
        busy.listen()
        port = busy.getsockname()[1]
        line = refusal(serve(trained_model, tmp_path / "home", "--port", str(port)))
    assert line == (
        f"mlapi: cannot listen on {HOST}:{port}: Address already in use: another process "
        "listens there; stop it or choose another port (--port or MLAPI_PORT)"
    )


@pytest.mark.parametrize(
    ("args", "env", "given", "fix"),
    [
        (("--workers", "2"), {}, "--workers 2", "--workers 1"),
        ((), {"MLAPI_WORKERS": "2"}, "MLAPI_WORKERS=2", "MLAPI_WORKERS=1"),
    ],
)
def test_several_embedded_workers_name_how_they_were_asked_for(
    trained_model, tmp_path: Path, args, env, given, fix
) -> None:
    port = str(free_port())
    line = refusal(serve(trained_model, tmp_path / "home", "--port", port, *args, env=env))
    assert line == (
        f"mlapi: invalid configuration: {given} with embedded /metrics would serve one worker's "
        f"numbers per scrape; set OTEL_EXPORTER_OTLP_ENDPOINT (metrics over OTLP) or {fix}"
    )


def test_a_bad_flag_value_is_named_as_the_flag(trained_model, tmp_path: Path) -> None:
    line = refusal(serve(trained_model, tmp_path / "home", "--threads", "0"))
    assert line == "mlapi: invalid configuration: --threads 0: must be >= 1"


def test_first_start_says_it_trains_and_where_it_caches(trained_model, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    env = {
        **server_env(trained_model, tmp_path / "home"),
        **NO_EXPORT,
        "MLAPI_MODEL_PATH": "",  # the built-in model
        "MLAPI_CACHE_DIR": str(cache),
    }
    with ServerProcess(tmp_path / "server.log", env=env) as server:
        (model_dir,) = (cache / "models").glob("*-card*[0-9]")
        log = server.log_text().splitlines()
    assert log[0] == (
        "mlapi: first start: training the built-in model on the bundled housing data (a few "
        f"seconds), cached in {model_dir} (MLAPI_CACHE_DIR moves it)"
    )
    assert "Starting gunicorn" in log[1]
    # The start-up summary shows the thresholds as the card means them, not 43.69499999999997.
    high = json.loads((model_dir / CARD_NAME).read_text())["thresholds"]["prediction_high"]
    assert high == float(f"{high:.6g}")
    assert any(f"'prediction_high': {high!r}," in line for line in log), log
