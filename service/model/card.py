"""The model card: a typed, versioned, immutable description of one trained model.

It travels beside the artifact as JSON. Parsing is strict (every key required, no unknown
keys, exact types) so a card written for another schema is refused rather than half-read.
To extend it, add a frozen dataclass field and bump CARD_SCHEMA_VERSION; ``parse_typed``
handles nested dataclasses, tuples of them, str-keyed dicts and ``X | None`` sections.

Version 2 added ``drift`` (fixed reference bins per feature and for the prediction) and
``thresholds`` (the team's alert thresholds). The card is not covered by the artifact's sha256:
a team may edit ``thresholds`` by hand, and the service re-validates the whole card at start.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import tempfile
import types
import typing
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

from service.json_types import json_type
from service.model.drift_reference import DriftReference
from service.model.thresholds import Thresholds

CARD_SCHEMA_VERSION = 2
# Every prediction id carries the model version (service/api/prediction_ids.py): keep it short.
MAX_VERSION_BYTES = 64
# Readable by everyone, like the artifact beside it (written with the default umask).
CARD_FILE_MODE = 0o644
# The `feature` of the drift reference computed on the model's predictions.
PREDICTION_DRIFT_NAME = "prediction"
QUANTILE_KEYS: tuple[str, ...] = ("p01", "p05", "p25", "p50", "p75", "p95", "p99")
_SHA256 = re.compile(r"[0-9a-f]{64}")


class CardError(ValueError):
    """A model card cannot be read or is invalid; the message is one line."""


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise CardError(message)


def _check_finite(owner: object, *names: str) -> None:
    for name in names:
        value = getattr(owner, name)
        _require(math.isfinite(value), f"{name}: must be a finite number, got {value!r}")


@dataclass(frozen=True)
class FeatureSchema:
    """One input column as seen in training (population std, ddof=0)."""

    name: str
    dtype: str
    min: float
    max: float
    mean: float
    std: float
    quantiles: dict[str, float]

    def __post_init__(self) -> None:
        _require(bool(self.name), "name: must not be empty")
        _require(self.dtype == "float64", f"dtype: only 'float64' is supported, got {self.dtype!r}")
        _check_finite(self, "min", "max", "mean", "std")
        _require(self.min <= self.max, f"min {self.min} is greater than max {self.max}")
        _require(self.std >= 0, f"std: must be >= 0, got {self.std}")
        _require(
            tuple(self.quantiles) == QUANTILE_KEYS,
            f"quantiles: keys must be {','.join(QUANTILE_KEYS)} in that order, "
            f"got {','.join(self.quantiles)}",
        )
        for key, value in self.quantiles.items():
            _require(
                math.isfinite(value) and self.min <= value <= self.max,
                f"quantiles.{key}: {value!r} is not a finite number within [min, max]",
            )


@dataclass(frozen=True)
class TargetSchema:
    """The target column's training range, e.g. for sanity bounds on predictions."""

    name: str
    min: float
    max: float
    mean: float
    std: float

    def __post_init__(self) -> None:
        _require(bool(self.name), "name: must not be empty")
        _check_finite(self, "min", "max", "mean", "std")
        _require(self.min <= self.max, f"min {self.min} is greater than max {self.max}")


@dataclass(frozen=True)
class HoldoutMetrics:
    """Accuracy on the rows held out from training."""

    mae: float
    rmse: float
    r2: float
    rows: int

    def __post_init__(self) -> None:
        _check_finite(self, "mae", "rmse", "r2")
        _require(self.mae >= 0 and self.rmse >= 0, "mae and rmse must be >= 0")
        _require(self.rows > 0, f"rows: must be > 0, got {self.rows}")


@dataclass(frozen=True)
class ModelCard:
    """Everything the service needs to trust, validate inputs for, and describe a model."""

    schema_version: int
    name: str
    version: str
    model_type: str
    artifact_sha256: str
    trained_at: str
    training_data_sha256: str
    features: tuple[FeatureSchema, ...]
    target: TargetSchema
    holdout: HoldoutMetrics
    # One reference per feature, in feature order, then one named PREDICTION_DRIFT_NAME.
    drift: tuple[DriftReference, ...]
    thresholds: Thresholds

    def __post_init__(self) -> None:
        _require(self.schema_version == CARD_SCHEMA_VERSION, _version_problem(self.schema_version))
        for field in ("name", "version", "model_type"):
            _require(bool(getattr(self, field)), f"{field}: must not be empty")
        # The version rides in every prediction id.
        _require(
            len(self.version.encode()) <= MAX_VERSION_BYTES,
            f"version: must be at most {MAX_VERSION_BYTES} bytes (UTF-8)",
        )
        for field in ("artifact_sha256", "training_data_sha256"):
            _require(
                _SHA256.fullmatch(getattr(self, field)) is not None,
                f"{field}: must be 64 lowercase hex digits",
            )
        _require(_is_utc_iso8601(self.trained_at), "trained_at: must be ISO 8601 in UTC")
        _require(len(self.features) > 0, "features: must not be empty")
        names = self.feature_names
        _require(len(set(names)) == len(names), "features: names must be unique")
        _require(self.target.name not in names, "target: must not also be a feature")
        drift_names = tuple(reference.feature for reference in self.drift)
        _require(
            drift_names == (*names, PREDICTION_DRIFT_NAME),
            f"drift: must hold one reference per feature in feature order, then "
            f"{PREDICTION_DRIFT_NAME!r}; got {', '.join(drift_names) or 'none'}",
        )

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(feature.name for feature in self.features)

    def to_dict(self) -> dict[str, Any]:
        return _to_json_value(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n"

    @classmethod
    def from_dict(cls, data: Any) -> Self:
        # Check the version first: a card of another version fails with that message,
        # not on whichever field happens to differ.
        version = data.get("schema_version") if isinstance(data, dict) else None
        _require(
            type(version) is not int or version == CARD_SCHEMA_VERSION,
            f"card.{_version_problem(version)}",
        )
        return parse_typed(cls, data, "card")

    @classmethod
    def from_json(cls, text: str) -> Self:
        try:
            data = json.loads(text, parse_constant=_reject_constant)
        except (ValueError, RecursionError) as exc:
            raise CardError(f"not valid JSON: {_one_line(exc)}") from exc
        return cls.from_dict(data)

    @classmethod
    def load(cls, path: Path) -> Self:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise CardError(f"cannot read model card {path}: {_one_line(exc)}") from exc
        try:
            return cls.from_json(text)
        except CardError as exc:
            raise CardError(f"model card {path}: {exc}") from exc

    def save(self, path: Path) -> None:
        """Write atomically so a reader never sees half a card."""
        path = Path(path)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            # mkstemp creates 0600; a card is no secret, and the service often runs as another
            # user than the one who trained (the image trains as root, serves as mlapi).
            os.fchmod(fd, CARD_FILE_MODE)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(self.to_json())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def _version_problem(version: object) -> str:
    return f"schema_version: this service reads version {CARD_SCHEMA_VERSION}, got {version!r}"


def utc_now_iso() -> str:
    """The card's timestamp format: second precision, explicit Z."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _is_utc_iso8601(text: str) -> bool:
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return False
    return parsed.utcoffset() is not None and parsed.utcoffset().total_seconds() == 0


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not allowed")


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return " ".join(text.split())


def _to_json_value(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return {f.name: _to_json_value(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple | list):
        return [_to_json_value(item) for item in value]
    if isinstance(value, dict):
        return {key: _to_json_value(item) for key, item in value.items()}
    return value


def parse_typed(tp: Any, value: Any, where: str) -> Any:
    """Build a value of annotated type ``tp`` from JSON data, or raise CardError at ``where``.

    Handles frozen dataclasses (recursively), ``tuple[X, ...]``, ``dict[str, X]``, ``X | None``,
    str, int, float (JSON integers accepted) and bool; used for the card and its sections."""
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return _parse_dataclass(tp, value, where)
    if origin in (types.UnionType, typing.Union):
        options = typing.get_args(tp)
        if value is None and type(None) in options:
            return None
        (inner,) = (option for option in options if option is not type(None))
        return parse_typed(inner, value, where)
    if origin is tuple:
        item_type = typing.get_args(tp)[0]
        _require(isinstance(value, list), f"{where}: expected an array, got {json_type(value)}")
        return tuple(parse_typed(item_type, item, f"{where}[{i}]") for i, item in enumerate(value))
    if origin is dict:
        _, item_type = typing.get_args(tp)
        _require(isinstance(value, dict), f"{where}: expected an object, got {json_type(value)}")
        return {key: parse_typed(item_type, item, f"{where}.{key}") for key, item in value.items()}
    if tp is float:
        # JSON has one number type: accept integers for floats, never booleans.
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        _require(ok, f"{where}: expected a number, got {json_type(value)}")
        return float(value)
    if tp is bool:
        ok = isinstance(value, bool)
        _require(ok, f"{where}: expected true or false, got {json_type(value)}")
        return value
    if tp is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
        _require(ok, f"{where}: expected an integer, got {json_type(value)}")
        return value
    if tp is str:
        _require(isinstance(value, str), f"{where}: expected a string, got {json_type(value)}")
        return value
    raise TypeError(f"model card field type {tp!r} has no parser")


def _parse_dataclass(cls: Any, value: Any, where: str) -> Any:
    _require(isinstance(value, dict), f"{where}: expected an object, got {json_type(value)}")
    hints = typing.get_type_hints(cls)
    fields = dataclasses.fields(cls)
    # A key may be left out only where the dataclass gives a default (e.g. optional thresholds).
    missing = [
        f.name
        for f in fields
        if f.name not in value
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    _require(not missing, f"{where}: missing key(s) {', '.join(missing)}")
    names = {f.name for f in fields}
    unknown = sorted(str(key) for key in value if key not in names)
    _require(not unknown, f"{where}: unknown key(s) {', '.join(unknown)}")
    kwargs = {
        f.name: parse_typed(hints[f.name], value[f.name], f"{where}.{f.name}")
        for f in fields
        if f.name in value
    }
    try:
        return cls(**kwargs)
    except ValueError as exc:  # CardError, or a section's own validation error
        raise CardError(f"{where}: {_one_line(exc)}") from exc
