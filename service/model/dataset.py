"""The bundled Boston housing table: where it lives, its schema, and a validated loader.

Provenance and caveats are in data/README.md.
"""

from __future__ import annotations

import hashlib
import io
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

import numpy as np
import pandas as pd

FEATURES: tuple[str, ...] = (
    "CRIM", "ZN", "INDUS", "CHAS", "NOX", "RM", "AGE",
    "DIS", "RAD", "TAX", "PTRATIO", "B", "LSTAT",
)  # fmt: skip
TARGET = "MEDV"
COLUMNS: tuple[str, ...] = (*FEATURES, TARGET)
EXPECTED_ROWS = 506
CSV_NAME = "housing.csv"
# The installed distribution maps this package onto the repository's data/ directory.
BUNDLED_PACKAGE = "service.bundled_data"


class DatasetError(ValueError):
    """The housing CSV is missing or does not have the expected shape; message is one line."""


def bundled_csv() -> Traversable:
    """Locate the canonical housing CSV, installed or in a source checkout."""
    try:
        return resources.files(BUNDLED_PACKAGE) / CSV_NAME
    except ModuleNotFoundError:
        # Source checkouts and editable installs: setuptools' editable finder cannot map a
        # sub-package without __init__.py, so read the file from the repository itself.
        return Path(__file__).resolve().parents[2] / "data" / CSV_NAME


def content_sha256(frame: pd.DataFrame) -> str:
    """Hash of a table's content: the comma-joined header, a newline, then the float64 values
    row-major little-endian. Independent of CSV formatting, so it names what a model saw."""
    digest = hashlib.sha256(",".join(map(str, frame.columns)).encode() + b"\n")
    digest.update(np.ascontiguousarray(frame.to_numpy(dtype="<f8")).tobytes())
    return digest.hexdigest()


def load_housing(source: Traversable | Path | None = None) -> pd.DataFrame:
    """Read and validate the housing table (the bundled copy unless a source is given)."""
    source = bundled_csv() if source is None else source
    try:
        raw = source.read_bytes()
    except OSError as exc:
        raise DatasetError(f"cannot read housing data {source}: {exc.strerror or exc}") from exc
    try:
        frame = pd.read_csv(io.BytesIO(raw), dtype=np.float64)
    except (ValueError, pd.errors.ParserError) as exc:
        first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DatasetError(f"housing data {source} is not a numeric CSV: {first_line}") from exc
    validate_housing(frame, source=str(source))
    return frame


def validate_housing(frame: pd.DataFrame, *, source: str = "housing data") -> None:
    """Check column names/order, row count and that every value is a finite number."""
    columns = tuple(frame.columns)
    if columns != COLUMNS:
        expected, got = ",".join(COLUMNS), ",".join(map(str, columns))
        raise DatasetError(f"{source}: expected columns {expected}, got {got}")
    if len(frame) != EXPECTED_ROWS:
        raise DatasetError(f"{source}: expected {EXPECTED_ROWS} rows, got {len(frame)}")
    values = frame.to_numpy(dtype=np.float64)
    if not np.isfinite(values).all():
        row, col = np.argwhere(~np.isfinite(values))[0]
        raise DatasetError(f"{source}: row {row} column {COLUMNS[col]} is not a finite number")
