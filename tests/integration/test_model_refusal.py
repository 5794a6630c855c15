"""`mlapi serve` refuses a damaged model before it binds a port: exit 2 and one stderr line.

tests/unit/test_model_store.py covers every refusal of the loader; this runs the real command, as
an operator or an orchestrator sees it, on the damage a disk or a copy can do to the artifact,
and on an artifact swapped for another model's.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from devstack.ports import HOST, free_port
from devstack.server import mlapi_command
from service.model.dataset import load_housing
from service.model.store import ARTIFACT_NAME, CARD_NAME
from service.model.training import train
from tests.integration.server_env import server_env

pytestmark = pytest.mark.integration

EXIT_USAGE = 2
START_TIMEOUT_S = 60


def truncate(artifact: Path, card: Path) -> None:
    artifact.write_bytes(artifact.read_bytes()[: artifact.stat().st_size // 2])


def flip_one_byte(artifact: Path, card: Path) -> None:
    data = bytearray(artifact.read_bytes())
    data[len(data) // 3] ^= 0x01
    artifact.write_bytes(bytes(data))


def swap_in_another_model(artifact: Path, card: Path) -> None:
    """A consistent artifact of a 3-feature model under this card, re-pinned to its sha256."""
    other = train(load_housing()[["LSTAT", "RM", "NOX", "MEDV"]], artifact.parent / "other")
    shutil.copy(other.artifact_path, artifact)
    document = json.loads(card.read_text())
    document["artifact_sha256"] = other.card.artifact_sha256
    card.write_text(json.dumps(document))


DAMAGE: dict[str, tuple[Callable[[Path, Path], None], str]] = {
    "truncated artifact": (truncate, "was modified, truncated or replaced"),
    "flipped byte": (flip_one_byte, "was modified, truncated or replaced"),
    "another model under this card": (swap_in_another_model, "expects 3 features"),
}


@pytest.mark.parametrize("damage", DAMAGE)
def test_damaged_model_is_refused_in_one_line(trained_model, tmp_path: Path, damage: str) -> None:
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    artifact = Path(shutil.copy(trained_model.artifact_path, model_dir / ARTIFACT_NAME))
    card = Path(shutil.copy(trained_model.card_path, model_dir / CARD_NAME))
    spoil, problem = DAMAGE[damage]
    spoil(artifact, card)
    completed = subprocess.run(
        [
            *mlapi_command(),
            "serve",
            "--host",
            HOST,
            "--port",
            str(free_port()),
            "--model",
            artifact,
        ],
        env={**os.environ, **server_env(trained_model, tmp_path / "home")},
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT_S,
        check=False,
    )
    assert completed.returncode == EXIT_USAGE, completed.stderr
    lines = completed.stderr.splitlines()
    assert len(lines) == 1, completed.stderr
    assert lines[0].startswith("mlapi: cannot load model: "), lines[0]
    assert problem in lines[0], lines[0]
    assert completed.stdout == ""
