"""Run by KServe's interpreter (its own venv): the estimator as a kserve.Model, V1 protocol.

KServe's own command-line options (--http_port, --workers, --model_name, ...) plus --model_path,
the joblib file; started by bench/peer_kserve.py.
"""

import argparse
from typing import Any

import joblib
import kserve
import numpy as np
import uvicorn
from kserve import model_server
from kserve.protocol.rest import server as rest_server

HOST = "127.0.0.1"


class LoopbackConfig(uvicorn.Config):
    """KServe 0.21 hard-codes host 0.0.0.0 for uvicorn; the bench listens on loopback only."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["host"] = HOST
        super().__init__(*args, **kwargs)


class Housing(kserve.Model):
    def __init__(self, name: str, path: str) -> None:
        super().__init__(name)
        self.path = path
        self.load()

    def load(self) -> bool:
        self.model = joblib.load(self.path)
        self.ready = True
        return self.ready

    def predict(self, payload: dict, headers: dict | None = None) -> dict:
        rows = np.asarray(payload["instances"], dtype=np.float64)
        return {"predictions": self.model.predict(rows).tolist()}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(parents=[model_server.parser])
    parser.add_argument("--model_path", required=True)
    args, _ = parser.parse_known_args()
    rest_server.uvicorn.Config = LoopbackConfig  # type: ignore[misc]
    kserve.ModelServer().start([Housing(args.model_name, args.model_path)])
