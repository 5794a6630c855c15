"""The body of POST /predict: every accepted JSON shape -> a float64 matrix in the model's feature
order.

Accepted bodies (see the OpenAPI document):
- ``{"records": [{feature: number, ...}, ...]}``
- ``{"columns": [...], "data": [[...], ...]}`` (pandas "split"; an ``index`` member is ignored)
- a single record ``{feature: number, ...}``
- a bare array of records, or a JSON *string* holding such an array (clients that serialise the
  body twice send that; the string is parsed as JSON, never evaluated).

The happy path builds the matrix in one pass at C speed (itemgetter, one ``set(map(type, ...))``
and one ``np.array``); only a rejected body pays for the row-by-row diagnosis that names every
bad row and field.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from itertools import chain
from operator import itemgetter
from typing import Any

import numpy as np

from service.api.errors import Detail
from service.api.json_body import (
    MAX_ABS_VALUE,
    NUMBER_TYPES,
    check_row_count,
    collect,
    invalid_body,
    join_field,
    key_preview,
    load_json,
    load_json_text,
    rejected,
    value_problem,
)
from service.json_types import json_type
from service.settings import Settings

RowPath = Callable[[int], str]


@dataclass(frozen=True)
class PayloadLimits:
    max_rows: int
    max_json_depth: int
    max_key_length: int

    @classmethod
    def from_settings(cls, settings: Settings) -> PayloadLimits:
        return cls(settings.max_rows, settings.max_json_depth, settings.max_key_length)


class PayloadParser:
    """Turns a request body into an ``(n_rows, n_features)`` float64 matrix, or raises ApiError."""

    def __init__(self, feature_names: Sequence[str], limits: PayloadLimits) -> None:
        self._names = list(feature_names)
        self._name_set = frozenset(self._names)
        self._width = len(self._names)
        self._limits = limits
        getter = itemgetter(*self._names)
        # itemgetter returns a bare value, not a tuple, for a single name.
        self._values_of: Callable[[dict[str, Any]], Sequence[Any]] = (
            getter if self._width > 1 else lambda row: (getter(row),)
        )

    def parse(self, body: bytes) -> np.ndarray:
        limit = self._limits.max_json_depth
        document = load_json(body, limit)
        if type(document) is str:
            document = load_json_text(document, document.encode("utf-8", "surrogatepass"), limit)
            if type(document) is not list:
                raise invalid_body("body", "a JSON string body must hold an array of records")
        return self._to_matrix(document)

    # -- shapes -----------------------------------------------------------------------------

    def _to_matrix(self, document: Any) -> np.ndarray:
        if type(document) is list:
            return self._records(document, lambda i: f"[{i}]")
        if type(document) is not dict:
            kind = json_type(document)
            raise invalid_body("body", f"must be an object or an array, got {kind}")
        if "records" in document:
            self._reject_members(document, {"records"})
            records = document["records"]
            if type(records) is not list:
                raise invalid_body("records", f"must be an array, got {json_type(records)}")
            return self._records(records, lambda i: f"records[{i}]")
        if "columns" in document or "data" in document:
            return self._split(document)
        return self._records([document], lambda i: "")

    def _records(self, rows: list[Any], row_path: RowPath) -> np.ndarray:
        self._check_row_count(len(rows))
        values_of, width = self._values_of, self._width
        flat: list[Any] = []
        extend = flat.extend
        try:
            for row in rows:
                if type(row) is not dict or len(row) != width:
                    raise KeyError
                extend(values_of(row))
        except KeyError:
            raise rejected(collect(self._record_problems(rows, row_path))) from None
        return self._matrix(flat, len(rows), self._names, row_path)

    def _split(self, document: dict[str, Any]) -> np.ndarray:
        self._reject_members(document, {"columns", "data", "index"})
        columns: list[str] = document.get("columns", [])
        data: list[Any] = document.get("data", [])
        problems = [
            Detail(name, "is required", "missing_field")
            for name in ("columns", "data")
            if name not in document
        ]
        if "columns" in document and not (
            type(columns) is list and all(type(c) is str for c in columns)
        ):
            problems.append(Detail("columns", "must be an array of strings", "invalid_body"))
        if "data" in document and type(data) is not list:
            problems.append(Detail("data", "must be an array of arrays", "invalid_body"))
        if "index" in document and type(document["index"]) is not list:
            problems.append(Detail("index", "must be an array when present", "invalid_body"))
        if problems:
            raise rejected(problems)
        self._check_row_count(len(data))
        order = self._column_order(columns)
        width = len(columns)
        if not all(type(row) is list and len(row) == width for row in data):
            raise rejected(collect(_split_row_problems(data, width)))
        matrix = self._matrix(list(chain.from_iterable(data)), len(data), columns, _data_path)
        return matrix if order is None else matrix[:, order]

    def _column_order(self, columns: list[str]) -> list[int] | None:
        """Indices that put ``columns`` in model order; None when they already are."""
        if columns == self._names:
            return None
        if problems := collect(self._column_problems(columns)):
            raise rejected(problems)
        return [columns.index(name) for name in self._names]

    def _column_problems(self, columns: list[str]) -> Iterator[Detail]:
        seen: set[str] = set()
        for j, name in enumerate(columns):
            if name in seen:
                yield Detail(f"columns[{j}]", f"{name} is listed twice", "invalid_body")
            elif name not in self._name_set:
                yield self._unknown_key(f"columns[{j}]", name, None)
            seen.add(name)
        for name in self._names:
            if name not in seen:
                yield Detail("columns", f"must include {name}", "missing_field", feature=name)

    def _check_row_count(self, rows: int) -> None:
        check_row_count(rows, self._limits.max_rows)

    def _reject_members(self, document: dict[str, Any], allowed: set[str]) -> None:
        unknown = (self._unknown_key("", key, None) for key in document if key not in allowed)
        if problems := collect(unknown):
            raise rejected(problems)

    # -- diagnosis (rejected bodies only) ---------------------------------------------------

    def _matrix(
        self, flat: list[Any], rows: int, columns: Sequence[str], row_path: RowPath
    ) -> np.ndarray:
        width = len(columns)
        if not set(map(type, flat)) <= NUMBER_TYPES:
            raise rejected(collect(_value_problems(flat, width, columns, row_path)))
        matrix = np.array(flat, dtype=np.float64).reshape(rows, width)
        # False for NaN too: one pass refuses NaN, +-inf and finite values beyond float32.
        if not (np.abs(matrix) <= MAX_ABS_VALUE).all():
            raise rejected(collect(_value_problems(flat, width, columns, row_path)))
        return matrix

    def _record_problems(self, rows: list[Any], row_path: RowPath) -> Iterator[Detail]:
        for i, row in enumerate(rows):
            path = row_path(i)
            if type(row) is not dict:
                yield Detail(path, f"must be an object, got {json_type(row)}", "invalid_body", i)
                continue
            for name in self._names:
                field = join_field(path, name)
                if name not in row:
                    yield Detail(field, "is required", "missing_field", i, name)
                elif (problem := value_problem(row[name])) is not None:
                    yield Detail(field, problem, "invalid_value", i, name)
            for key in row:
                if key not in self._name_set:
                    yield self._unknown_key(path, key, i)

    def _unknown_key(self, path: str, key: str, row: int | None) -> Detail:
        limit = self._limits.max_key_length
        if len(key) > limit:
            shown = join_field(path, key_preview(key))
            problem = f"key has {len(key)} characters; the limit is {limit}"
            return Detail(shown, problem, "key_too_long", row)
        # feature stays None: an arbitrary client key must never become a metric attribute.
        return Detail(join_field(path, key), "is not a feature of this model", "unknown_field", row)


def _value_problems(
    flat: list[Any], width: int, columns: Sequence[str], row_path: RowPath
) -> Iterator[Detail]:
    for k, value in enumerate(flat):
        problem = value_problem(value)
        if problem is not None:
            i, j = divmod(k, width)
            name = columns[j]
            yield Detail(join_field(row_path(i), name), problem, "invalid_value", i, name)


def _split_row_problems(data: list[Any], width: int) -> Iterator[Detail]:
    for i, row in enumerate(data):
        if type(row) is not list:
            yield Detail(
                _data_path(i),
                f"must be an array of {width} numbers, got {json_type(row)}",
                "invalid_body",
                i,
            )
        elif len(row) != width:
            yield Detail(
                _data_path(i), f"has {len(row)} values; columns has {width}", "invalid_body", i
            )


def _data_path(i: int) -> str:
    return f"data[{i}]"
