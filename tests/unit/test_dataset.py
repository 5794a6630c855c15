"""The bundled housing table: shape, provenance record, validation and content hash."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np
import pytest

from service.model.dataset import (
    COLUMNS,
    EXPECTED_ROWS,
    DatasetError,
    bundled_csv,
    content_sha256,
    load_housing,
)

REPO = Path(__file__).resolve().parents[2]


def test_bundled_table_has_the_housing_schema():
    frame = load_housing()
    assert tuple(frame.columns) == COLUMNS
    assert len(frame) == EXPECTED_ROWS
    assert (frame.dtypes == np.float64).all()
    # Spot values from Harrison & Rubinfeld's first row, and MEDV's known cap at 50.
    assert frame.iloc[0].tolist()[:3] == [0.00632, 18.0, 2.31]
    assert frame["MEDV"].max() == 50.0


def test_readme_records_the_sha256_of_the_shipped_file():
    readme = (REPO / "data" / "README.md").read_text(encoding="utf-8")
    recorded = re.findall(r"\b[0-9a-f]{64}\b", readme)
    assert hashlib.sha256(bundled_csv().read_bytes()).hexdigest() in recorded


def test_content_hash_ignores_csv_formatting(tmp_path):
    frame = load_housing()
    reformatted = tmp_path / "housing.csv"
    frame.to_csv(reformatted, index=False, float_format="%.17g")
    assert reformatted.read_bytes() != bundled_csv().read_bytes()
    assert content_sha256(load_housing(reformatted)) == content_sha256(frame)


def test_content_hash_changes_with_one_value():
    frame = load_housing()
    changed = frame.copy()
    changed.loc[3, "RM"] += 0.001
    assert content_sha256(changed) != content_sha256(frame)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda f: f.drop(columns="B"), "expected columns"),
        (lambda f: f[list(reversed(COLUMNS))], "expected columns"),
        (lambda f: f.iloc[:-1], "expected 506 rows, got 505"),
        (lambda f: f.assign(AGE=f["AGE"].where(f.index != 7)), "row 7 column AGE"),
    ],
)
def test_invalid_tables_are_refused_in_one_line(tmp_path, mutate, message):
    path = tmp_path / "bad.csv"
    mutate(load_housing()).to_csv(path, index=False)
    with pytest.raises(DatasetError, match=message) as error:
        load_housing(path)
    assert "\n" not in str(error.value)


def test_non_numeric_and_missing_files_are_refused(tmp_path):
    text = tmp_path / "text.csv"
    text.write_text(",".join(COLUMNS) + "\n" + ",".join(["x"] * len(COLUMNS)) + "\n")
    with pytest.raises(DatasetError, match="not a numeric CSV"):
        load_housing(text)
    with pytest.raises(DatasetError, match="cannot read housing data"):
        load_housing(tmp_path / "absent.csv")
