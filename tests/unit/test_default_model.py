"""The built-in default model: trained once into the cache directory, then loaded from it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from service.model.dataset import content_sha256, load_housing
from service.model.default_model import _default_model_dir, ensure_default_model
from service.model.store import ModelLoadError

REPO = Path(__file__).resolve().parents[2]


def test_default_model_is_trained_once_then_cached(tmp_path):
    said: list[str] = []
    first = ensure_default_model(tmp_path, said.append)
    (model_dir,) = (tmp_path / "models").glob("*-card*[0-9]")
    assert said == [
        "first start: training the built-in model on the bundled housing data (a few seconds), "
        f"cached in {model_dir} (MLAPI_CACHE_DIR moves it)"
    ]
    assert (model_dir / "model.skops").is_file() and (model_dir / "holdout.csv").is_file()
    stamp = (model_dir / "model.skops").stat().st_mtime_ns
    assert ensure_default_model(tmp_path, said.append).card == first.card
    assert len(said) == 1  # loaded from the cache: nothing to say
    assert (model_dir / "model.skops").stat().st_mtime_ns == stamp
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == sorted(
        [model_dir.name, model_dir.name + ".lock"]
    )


def test_two_processes_starting_at_once_share_one_default_model(tmp_path):
    code = (
        "import sys; from pathlib import Path; from service.model.default_model import "
        "ensure_default_model as e; print(e(Path(sys.argv[1])).card.trained_at)"
    )
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(tmp_path)], cwd=REPO, stdout=subprocess.PIPE
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=120)[0] for p in processes]
    assert [p.returncode for p in processes] == [0, 0]
    assert outputs[0] == outputs[1]  # the second loaded what the first trained
    assert len(list((tmp_path / "models").iterdir())) == 2  # the model dir and its lock file


def test_damaged_default_model_names_the_directory_to_delete(tmp_path, trained_model):
    model_dir = _default_model_dir(tmp_path, content_sha256(load_housing()))
    model_dir.mkdir(parents=True)
    shutil.copy(trained_model.card_path, model_dir)
    (model_dir / "model.skops").write_bytes(b"not a zip")
    with pytest.raises(ModelLoadError, match=f"delete {model_dir} to rebuild"):
        ensure_default_model(tmp_path)


def test_unwritable_cache_is_a_load_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")  # a file where a directory must go
    with pytest.raises(ModelLoadError, match="cannot build the default model"):
        ensure_default_model(blocker)
