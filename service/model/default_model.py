"""The built-in default model: trained from the bundled housing data on first start, then cached
(MLAPI_CACHE_DIR) and loaded like any other artifact."""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

from service.model.card import CARD_SCHEMA_VERSION
from service.model.dataset import content_sha256, load_housing
from service.model.store import ARTIFACT_NAME, LoadedModel, ModelLoadError, load_model
from service.model.training import train
from service.settings import env_name
from service.version import package_version


def _default_model_dir(cache_dir: Path, data_sha256: str) -> Path:
    """<cache_dir>/models/<data-sha256[:12]>-<package version>-card<N>/"""
    # The card schema is part of the name: a source tree with a newer schema (same package
    # version) trains its own default instead of refusing the cached older card.
    name = f"{data_sha256[:12]}-{package_version()}-card{CARD_SCHEMA_VERSION}"
    return cache_dir / "models" / name


def ensure_default_model(
    cache_dir: Path, announce: Callable[[str], None] | None = None
) -> LoadedModel:
    """Load the built-in default model from `cache_dir` (MLAPI_CACHE_DIR), training it from the
    bundled data on first use (said through `announce`, with where it is cached).

    Safe when several workers start at once: training happens under an exclusive file lock,
    into a temporary directory renamed into place, so a reader only ever sees a complete set.
    """
    data = load_housing()
    model_dir = _default_model_dir(cache_dir, content_sha256(data))
    if not model_dir.is_dir():
        try:
            model_dir.parent.mkdir(parents=True, exist_ok=True)
            with _exclusive_lock(model_dir.with_name(model_dir.name + ".lock")):
                if not model_dir.is_dir():  # another process may have finished meanwhile
                    if announce is not None:
                        announce(
                            "first start: training the built-in model on the bundled housing "
                            f"data (a few seconds), cached in {model_dir} "
                            f"({env_name('cache_dir')} moves it)"
                        )
                    _train_into(data, model_dir)
        except OSError as exc:
            raise ModelLoadError(
                f"cannot build the default model in {model_dir}: {exc.strerror or exc}"
            ) from exc
    try:
        return load_model(model_dir / ARTIFACT_NAME)
    except ModelLoadError as exc:
        raise ModelLoadError(f"{exc} (delete {model_dir} to rebuild the default model)") from exc


@contextmanager
def _exclusive_lock(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _train_into(data: pd.DataFrame, model_dir: Path) -> None:
    staging = Path(tempfile.mkdtemp(dir=model_dir.parent, prefix=f".{model_dir.name}."))
    try:
        train(data, staging)
        os.rename(staging, model_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
