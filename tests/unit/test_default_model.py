"""The built-in default model: trained once into the cache directory, then loaded from it."""

from __future__ import annotations

import fcntl
import shutil
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from service.model import default_model
from service.model.dataset import content_sha256, load_housing
from service.model.default_model import _default_model_dir, ensure_default_model
from service.model.store import ModelLoadError
from service.model.training import TrainResult

# Only there so that a broken lock fails the test instead of hanging it.
LOCK_WAIT_S = 60.0


@pytest.mark.usefixtures("tiny_training")
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


@pytest.mark.usefixtures("tiny_training")
def test_two_starts_at_once_share_one_default_model(tmp_path, monkeypatch):
    """Two starts in threads: flock(2) locks belong to an open file, so two opens of the lock
    file contend exactly as two processes do. Whichever start trains first waits, holding the
    lock, until the other has asked for it, so both have found no model before either wrote
    one: the second can only get the model by waiting for the lock and looking again."""
    lock_requests = threading.Semaphore(0)
    real_flock, real_train = fcntl.flock, default_model.train
    trainings: list[Path] = []

    def flock(fd: int, operation: int) -> None:
        if operation == fcntl.LOCK_EX:
            lock_requests.release()
        real_flock(fd, operation)

    def train(data: pd.DataFrame, out_dir: Path, **options: Any) -> TrainResult:
        trainings.append(out_dir)
        # Our own request and the other start's (bounded: a start that never asks fails here).
        requested = all(lock_requests.acquire(timeout=LOCK_WAIT_S) for _ in range(2))
        assert requested, "training began before both starts had asked for the lock"
        return real_train(data, out_dir, **options)

    monkeypatch.setattr(fcntl, "flock", flock)
    monkeypatch.setattr(default_model, "train", train)
    with ThreadPoolExecutor(max_workers=2) as starts:
        first, second = (
            future.result(timeout=2 * LOCK_WAIT_S)
            for future in [starts.submit(ensure_default_model, tmp_path) for _ in range(2)]
        )
    assert len(trainings) == 1
    assert first.card == second.card  # the second loaded what the first trained
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
