"""Naming a CSV's columns, and checking them against the model before anything is sent.

Names come from `--columns`, else the header, else — for a headerless file exactly as wide as the
model's features (plus one: the target, last) — from the target's model card. The check says
which features are missing and which columns the model does not know: the server would refuse
every row (422) otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from replay.csv_format import Sniffed
from replay.served_model import ServedModel

DEFAULT_TARGET = "MEDV"


class ColumnsError(Exception):
    """The columns cannot be named, or do not fit the model; the message is one line."""


@dataclass(frozen=True, slots=True)
class Columns:
    names: tuple[str, ...]
    target: str  # the ground-truth column's name, whether or not the file has it
    origin: str  # where the names come from, for the line that says how the file was read

    @property
    def has_target(self) -> bool:
        return self.target in self.names

    def describe(self) -> str:
        target = (
            f"target {self.target} (column {self.names.index(self.target) + 1})"
            if self.has_target
            else f"no target column {self.target}"
        )
        return f"{len(self.names)} columns {self.origin}, {target}"


def parse_columns(text: str) -> tuple[str, ...]:
    """`--columns A,B,...`; raises ValueError on an empty or repeated name."""
    names = tuple(name.strip() for name in text.split(","))
    if not all(names):
        raise ValueError(f"--columns {text!r}: expected comma-separated names, none empty")
    if duplicates := _duplicates(names):
        raise ValueError(f"--columns: duplicate names: {duplicates}")
    return names


def name_columns(
    path: Path,
    sniffed: Sniffed,
    served: ServedModel | None,
    *,
    given: Sequence[str] | None,
    target_column: str | None,
    card_problem: str = "",
) -> Columns:
    """The file's column names; `target_column` None means the model's target name (MEDV
    without a card). Raises ColumnsError when they cannot be known."""
    target = target_column or (served.target if served else DEFAULT_TARGET)
    width = len(sniffed.first_row)
    if given is not None:
        if len(given) != width:
            raise ColumnsError(f"--columns names {len(given)} columns, {path} has {width}")
        return Columns(tuple(given), target, "named by --columns")
    if sniffed.format.header:
        if duplicates := _duplicates(sniffed.first_row):
            raise ColumnsError(f"CSV {path}: duplicate header columns: {duplicates}")
        return Columns(sniffed.first_row, target, "named by the header")
    if served is None:
        raise ColumnsError(
            f"{path} has no header ({width} columns) and the model card to name them is "
            f"unavailable ({card_problem}): name them with --columns A,B,..."
        )
    features = served.features
    if width == len(features):
        return Columns(features, target, f"named by the model card ({served.describe()})")
    if width == len(features) + 1:
        return Columns(
            (*features, target), target, f"named by the model card ({served.describe()})"
        )
    raise ColumnsError(
        f"{path} has no header and {width} columns; the model {served.describe()} takes "
        f"{len(features)} features ({len(features) + 1} columns with {target} last): "
        "add a header or name them with --columns A,B,..."
    )


def mismatch(columns: Columns, served: ServedModel) -> str:
    """'' when every feature is there and nothing else but the target; else what is wrong."""
    known = set(served.features)
    missing = [name for name in served.features if name not in columns.names]
    unknown = [
        name or f"(unnamed column {i + 1})"
        for i, name in enumerate(columns.names)
        if name not in known and name != columns.target
    ]
    problems = []
    if missing:
        problems.append(f"missing {', '.join(missing)}")
    if unknown:
        problems.append(f"not features of the model: {', '.join(unknown)}")
    return "; ".join(problems)


def _duplicates(names: Sequence[str]) -> str:
    return ", ".join(
        sorted({name if name else repr(name) for name in names if names.count(name) > 1})
    )
