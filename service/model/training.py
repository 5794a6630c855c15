"""Deterministic training: fixed seed and split, a skops artifact, its card, the holdout CSV.

The card also gets the drift references and the alert thresholds. Feature references come from
the training rows. The prediction's reference comes from the fitted model's predictions on the
same training rows, not on the holdout: the holdout has ~100 rows, and deciles of 100 values are
so noisy that an independent sample of unseen rows already scores PSI ~0.09 against them
(measured: out-of-fold predictions vs holdout-prediction bins), at the psi_warn level without any
drift. In-sample predictions of this model are close enough to out-of-sample ones for binning:
PSI(out-of-fold predictions of the training rows vs in-sample bins) = 0.02.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import skops.io
from sklearn.ensemble import GradientBoostingRegressor
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score
from sklearn.model_selection import train_test_split

from service.model.card import (
    CARD_SCHEMA_VERSION,
    PREDICTION_DRIFT_NAME,
    QUANTILE_KEYS,
    FeatureSchema,
    HoldoutMetrics,
    ModelCard,
    TargetSchema,
    utc_now_iso,
)
from service.model.dataset import TARGET, content_sha256
from service.model.drift_reference import build_reference
from service.model.store import ARTIFACT_NAME, CARD_NAME, HOLDOUT_NAME
from service.model.thresholds import default_thresholds
from service.version import package_version

# Chosen on holdout R2 and single-row predict latency; see data/README.md ("The default model").
HYPERPARAMETERS = {"n_estimators": 200, "max_depth": 4, "learning_rate": 0.1}
_QUANTILE_LEVELS = tuple(int(key[1:]) / 100 for key in QUANTILE_KEYS)


@dataclass(frozen=True)
class TrainResult:
    card: ModelCard
    artifact_path: Path
    card_path: Path
    holdout_path: Path


def default_version(training_data_sha256: str) -> str:
    """Package version plus a data tag (PEP 440 local label): same code + same data, same name."""
    return f"{package_version()}+data.{training_data_sha256[:8]}"


def train(
    data: pd.DataFrame,
    out_dir: Path,
    *,
    seed: int = 42,
    holdout_fraction: float = 0.2,
    name: str = "housing-price",
    version: str | None = None,
    threshold_overrides: Sequence[str] = (),
) -> TrainResult:
    """Fit on every column but MEDV (in the frame's order) and write the artifact set to out_dir.

    The estimator is fitted on a plain float64 array, so it carries no feature names and serving
    skips pandas' per-request name checks; the card records the column order instead.
    `threshold_overrides` are `NAME=VALUE` strings applied over the defaults derived from the
    training target (ThresholdsError, a ValueError, names a bad one before anything is written).
    """
    if TARGET not in data.columns:
        raise ValueError(f"training data has no {TARGET} column")
    if not 0 < holdout_fraction < 1:
        raise ValueError(f"holdout_fraction must be in (0, 1), got {holdout_fraction}")
    feature_names = [str(column) for column in data.columns if column != TARGET]
    values = data[[*feature_names, TARGET]].to_numpy(dtype=np.float64)
    if not np.isfinite(values).all():
        raise ValueError("training data contains NaN or infinite values")
    data_sha = content_sha256(data)

    train_rows, holdout_rows = train_test_split(
        values, test_size=holdout_fraction, random_state=seed, shuffle=True
    )
    x_train, y_train = train_rows[:, :-1], train_rows[:, -1]
    x_holdout, y_holdout = holdout_rows[:, :-1], holdout_rows[:, -1]
    thresholds = default_thresholds(y_train).with_overrides(threshold_overrides)
    estimator = GradientBoostingRegressor(**HYPERPARAMETERS, random_state=seed)
    estimator.fit(x_train, y_train)
    predicted = estimator.predict(x_holdout)
    drift = (
        *(build_reference(column, x_train[:, i]) for i, column in enumerate(feature_names)),
        build_reference(PREDICTION_DRIFT_NAME, estimator.predict(x_train)),
    )

    artifact_bytes = skops.io.dumps(estimator)
    # Built before anything is written: an invalid card (e.g. a too long --version) leaves no files.
    card = ModelCard(
        schema_version=CARD_SCHEMA_VERSION,
        name=name,
        version=version or default_version(data_sha),
        model_type=f"{type(estimator).__module__}.{type(estimator).__qualname__}",
        artifact_sha256=hashlib.sha256(artifact_bytes).hexdigest(),
        trained_at=utc_now_iso(),
        training_data_sha256=data_sha,
        features=tuple(
            _feature_schema(column, x_train[:, i]) for i, column in enumerate(feature_names)
        ),
        target=TargetSchema(
            name=TARGET,
            min=float(y_train.min()),
            max=float(y_train.max()),
            mean=float(y_train.mean()),
            std=float(y_train.std()),
        ),
        holdout=HoldoutMetrics(
            mae=float(mean_absolute_error(y_holdout, predicted)),
            rmse=float(np.sqrt(mean_squared_error(y_holdout, predicted))),
            r2=float(r2_score(y_holdout, predicted)),
            rows=len(y_holdout),
        ),
        drift=drift,
        thresholds=thresholds,
    )

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    artifact_path = out_dir / ARTIFACT_NAME
    # Artifact first, card second: a crash in between leaves a pair whose sha256 disagrees,
    # which load_model refuses. The default model's cache adds a directory rename on top.
    artifact_path.write_bytes(artifact_bytes)
    card_path = out_dir / CARD_NAME
    card.save(card_path)

    holdout_path = out_dir / HOLDOUT_NAME
    holdout = pd.DataFrame(holdout_rows, columns=[*feature_names, TARGET])
    holdout.to_csv(holdout_path, index=False)
    return TrainResult(card, artifact_path, card_path, holdout_path)


def _feature_schema(name: str, column: np.ndarray) -> FeatureSchema:
    quantiles = np.quantile(column, _QUANTILE_LEVELS)
    return FeatureSchema(
        name=name,
        dtype="float64",
        min=float(column.min()),
        max=float(column.max()),
        mean=float(column.mean()),
        std=float(column.std()),
        quantiles={key: float(q) for key, q in zip(QUANTILE_KEYS, quantiles, strict=True)},
    )
