"""Request bodies, one file per API shape, so wrk posts bytes prepared once.

Every body carries the same housing rows: the first row for single-row requests, the first
`BATCH_ROWS` rows (the table repeated) for batches. `batch_matrix` is what model.predict gets in
the in-process floor, so /predict and the floor see the very same numbers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.peers import PEERS
from service.model.dataset import FEATURES, load_housing

BATCH_ROWS = 1000


@dataclass(frozen=True)
class Bodies:
    single: Path  # ours: {"records": [row]}
    seed: Path  # the seed client's double-encoded body: a JSON string holding [row]
    # Per peer variant, its own request format (e.g. MLServer: a V2 (1, 13) FP64 tensor).
    peers: dict[str, Path]
    batch: Path  # ours: {"columns": [...], "data": [BATCH_ROWS rows]}
    batch_matrix: np.ndarray
    features_csv: Path  # replay's input: header + feature columns only (no ground truth)


def batch_matrix() -> np.ndarray:
    table = load_housing()[list(FEATURES)].to_numpy(dtype=np.float64)
    repeats = -(-BATCH_ROWS // len(table))
    return np.tile(table, (repeats, 1))[:BATCH_ROWS]


def write_bodies(directory: Path) -> Bodies:
    directory.mkdir(parents=True, exist_ok=True)
    matrix = batch_matrix()
    first = dict(zip(FEATURES, matrix[0].tolist(), strict=True))
    paths = {
        "single": json.dumps({"records": [first]}),
        "seed": json.dumps(json.dumps([first])),
        "batch": json.dumps({"columns": list(FEATURES), "data": matrix.tolist()}),
    }
    written = {}
    for name, text in paths.items():
        written[name] = directory / f"{name}.json"
        written[name].write_text(text)
    peers = {}
    for peer in PEERS:
        peers[peer.variant] = directory / f"peer-{peer.variant}.json"
        peers[peer.variant].write_text(json.dumps(peer.infer_body([matrix[0].tolist()])))
    features_csv = directory / "features.csv"
    load_housing()[list(FEATURES)].to_csv(features_csv, index=False)
    return Bodies(**written, peers=peers, batch_matrix=matrix, features_csv=features_csv)
