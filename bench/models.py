"""The models under test, written as servable artifact sets into a scratch directory.

- `default`: the service's own recipe (`service.model.training.train`, GradientBoosting).
- `forest`: the seed's model choice, a RandomForestRegressor of 100 trees, on the same training
  split, as a skops artifact with its card, so our service can serve it too: comparing it with
  the seed separates "serving path" from "model choice".
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import skops.io
from sklearn.ensemble import RandomForestRegressor
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score
from sklearn.model_selection import train_test_split

from service.model.dataset import FEATURES, TARGET, load_housing
from service.model.training import ARTIFACT_NAME, CARD_NAME, TrainResult, train

SEED = 42
SEED_FOREST_TREES = 100
# train()'s split: the forest is fitted and scored on exactly the rows the default model was.
HOLDOUT_FRACTION = 0.2


@dataclass(frozen=True)
class BenchModels:
    default: TrainResult
    forest_artifact: Path


def build_models(workdir: Path) -> BenchModels:
    data = load_housing()
    default = train(data, workdir / "default", seed=SEED, holdout_fraction=HOLDOUT_FRACTION)
    values = data[[*FEATURES, TARGET]].to_numpy(dtype=np.float64)
    train_rows, holdout_rows = train_test_split(
        values, test_size=HOLDOUT_FRACTION, random_state=SEED, shuffle=True
    )
    forest = RandomForestRegressor(n_estimators=SEED_FOREST_TREES, random_state=SEED)
    forest.fit(train_rows[:, :-1], train_rows[:, -1])
    predicted = forest.predict(holdout_rows[:, :-1])
    truth = holdout_rows[:, -1]
    artifact = skops.io.dumps(forest)
    card = dataclasses.replace(
        default.card,
        name="housing-price-forest100",
        model_type=f"{type(forest).__module__}.{type(forest).__qualname__}",
        artifact_sha256=hashlib.sha256(artifact).hexdigest(),
        holdout=dataclasses.replace(
            default.card.holdout,
            mae=float(mean_absolute_error(truth, predicted)),
            rmse=float(np.sqrt(mean_squared_error(truth, predicted))),
            r2=float(r2_score(truth, predicted)),
        ),
    )
    forest_dir = workdir / "forest100"
    forest_dir.mkdir(parents=True, exist_ok=True)
    (forest_dir / ARTIFACT_NAME).write_bytes(artifact)
    card.save(forest_dir / CARD_NAME)
    return BenchModels(default=default, forest_artifact=forest_dir / ARTIFACT_NAME)
