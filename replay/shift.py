"""`--shift FEATURE=factor`: scale one numeric feature before sending, to demo and test drift."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping


class ShiftError(ValueError):
    """A `--shift` value that is not `FEATURE=factor`, or names no CSV column."""


def parse_shift(text: str) -> tuple[str, float]:
    """Parse `FEATURE=factor` (e.g. `RM=1.3`) into (feature, factor)."""
    name, sep, factor_text = text.partition("=")
    name = name.strip()
    if not sep or not name:
        raise ShiftError(f"--shift {text!r}: expected FEATURE=factor, e.g. RM=1.3")
    try:
        factor = float(factor_text)
    except ValueError:
        raise ShiftError(f"--shift {text!r}: factor {factor_text!r} is not a number") from None
    if not math.isfinite(factor):
        raise ShiftError(f"--shift {text!r}: factor must be finite")
    return name, factor


def parse_shifts(texts: Iterable[str]) -> dict[str, float]:
    """Parse repeated `--shift` values; a feature given twice keeps its last factor."""
    return dict(parse_shift(text) for text in texts)


def check_columns(shifts: Mapping[str, float], feature_columns: Iterable[str]) -> None:
    """Fail early when a shift names a column the CSV does not have (a typo would be silent)."""
    missing = sorted(set(shifts) - set(feature_columns))
    if missing:
        raise ShiftError(f"--shift names columns not in the CSV: {', '.join(missing)}")


def apply_shifts(features: dict[str, object], shifts: Mapping[str, float]) -> None:
    """Multiply the shifted numeric features in place. Non-numeric cells go out unchanged, so
    the server still sees (and rejects) them as without the shift; so does a product that would
    overflow to infinity, which JSON cannot carry."""
    for name, factor in shifts.items():
        value = features.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool):
            shifted = value * factor
            if math.isfinite(shifted):
                features[name] = shifted
