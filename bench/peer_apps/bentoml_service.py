"""Run by BentoML's interpreter (its own venv): the same estimator behind one @bentoml.api.

`bentoml serve bentoml_service:Housing`; BENCH_MODEL is the joblib file, BENCH_WORKERS the
worker count. Copied into the peer's scratch directory by bench/peer_bentoml.py.
"""

import os

import bentoml
import joblib
import numpy as np


@bentoml.service(workers=int(os.environ["BENCH_WORKERS"]))
class Housing:
    def __init__(self) -> None:
        self.model = joblib.load(os.environ["BENCH_MODEL"])

    @bentoml.api
    def predict(self, input: np.ndarray) -> np.ndarray:
        return self.model.predict(input)
