"""Request-body parsing: every accepted JSON shape -> a float64 matrix in the model's feature order.

Accepted bodies (see the OpenAPI document):
- ``{"records": [{feature: number, ...}, ...]}``
- ``{"columns": [...], "data": [[...], ...]}`` (pandas "split"; an ``index`` member is ignored)
- a single record ``{feature: number, ...}``
- a bare array of records, or a JSON *string* holding such an array (the seed's client
  double-encodes its body; the string is parsed as JSON, never evaluated).

The happy path builds the matrix in one pass at C speed (itemgetter, one ``set(map(type, ...))``
and one ``np.array``); only a rejected body pays for the row-by-row diagnosis that names every
bad row and field.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import chain, islice
from operator import itemgetter
from typing import Any

import numpy as np

from service.config import Settings
from service.errors import ApiError, Detail

# Enough to fix a body, small enough that a 10,000-row mistake does not echo 10,000 lines.
MAX_DETAILS = 20
# Shown in place of an over-long key, so the error never echoes a megabyte back.
KEY_PREVIEW_CHARS = 32

# The largest magnitude a feature value (or a feedback actual) may have. scikit-learn's tree models
# cast X to float32, where a larger finite float64 becomes inf and fails the prediction (a 500
# before this bound); squaring a larger feedback error would overflow the accuracy sums to inf.
MAX_ABS_VALUE = float(np.finfo(np.float32).max)

# Integers become floats while parsing: one type to check, and 400-digit integers become inf
# (caught as out of range) instead of tripping Python's int-digit limit.
_DECODER = json.JSONDecoder(parse_int=float)
_ONLY_FLOATS = {float}
_STRING = re.compile(rb'"[^"]*"')
_NOT_STRUCTURE = bytes(b for b in range(256) if b not in b'[]{}"')
_OPENERS = (ord("["), ord("{"))

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
            document = _load(document, document.encode("utf-8", "surrogatepass"), limit)
            if type(document) is not list:
                raise _invalid_body("body", "a JSON string body must hold an array of records")
        return self._to_matrix(document)

    # -- shapes -----------------------------------------------------------------------------

    def _to_matrix(self, document: Any) -> np.ndarray:
        if type(document) is list:
            return self._records(document, lambda i: f"[{i}]")
        if type(document) is not dict:
            kind = json_type(document)
            raise _invalid_body("body", f"must be an object or an array, got {kind}")
        if "records" in document:
            self._reject_members(document, {"records"})
            records = document["records"]
            if type(records) is not list:
                raise _invalid_body("records", f"must be an array, got {json_type(records)}")
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
        if set(map(type, flat)) != _ONLY_FLOATS:
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
            shown = join_field(path, key[:KEY_PREVIEW_CHARS] + "...")
            problem = f"key has {len(key)} characters; the limit is {limit}"
            return Detail(shown, problem, "key_too_long", row)
        # feature stays None: an arbitrary client key must never become a metric attribute.
        return Detail(join_field(path, key), "is not a feature of this model", "unknown_field", row)


def load_json(body: bytes, max_json_depth: int) -> Any:
    """The JSON document in a UTF-8 body (integers as floats), within the nesting limit; else
    ApiError (invalid_encoding, nesting_too_deep, malformed_json). Shared by every JSON route."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiError("invalid_encoding", f"body is not valid UTF-8 (byte {exc.start})") from None
    return _load(text, body, max_json_depth)


def _load(text: str, raw: bytes, limit: int) -> Any:
    if raw.count(b"[") + raw.count(b"{") > limit and _nesting_depth(raw) > limit:
        raise ApiError("nesting_too_deep", f"JSON nesting is deeper than {limit} levels")
    try:
        return _DECODER.decode(text)
    except json.JSONDecodeError as exc:
        raise ApiError(
            "malformed_json", f"{exc.msg} (line {exc.lineno}, column {exc.colno})"
        ) from None
    except RecursionError:
        raise ApiError("nesting_too_deep", "JSON nesting is too deep to parse") from None


def check_row_count(count: int, max_rows: int, noun: str = "row") -> None:
    """At least one row (item) and at most MLAPI_MAX_ROWS (413 too_many_rows)."""
    if count == 0:
        raise _invalid_body("body", f"must contain at least one {noun}")
    if count > max_rows:
        raise ApiError("too_many_rows", f"{count} {noun}s in one request; the limit is {max_rows}")


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


def value_problem(value: Any) -> str | None:
    if type(value) is not float:
        return f"must be a number, got {json_type(value)}"
    if abs(value) <= MAX_ABS_VALUE:
        return None
    if math.isnan(value):
        return "must be a finite number, got NaN"
    if math.isfinite(value):
        return f"must be within +-{MAX_ABS_VALUE:.7g} (the float32 range), got {value:.7g}"
    sign = "-" if value < 0 else ""
    return f"must be a finite number, got {sign}Infinity or a value beyond the float64 range"


def _nesting_depth(raw: bytes) -> int:
    """Deepest bracket nesting outside strings, at C/numpy speed (runs before parsing)."""
    # Escapes first, so the remaining quotes delimit strings exactly: a backslash run pairs up
    # left to right, as JSON tokenises it, and only then can \" be dropped.
    unescaped = raw.replace(b"\\\\", b"").replace(b'\\"', b"")
    brackets = _STRING.sub(b"", unescaped.translate(None, _NOT_STRUCTURE)).replace(b'"', b"")
    codes = np.frombuffer(brackets, dtype=np.uint8)
    steps = np.where(np.isin(codes, _OPENERS), 1, -1)
    return int(steps.cumsum().max(initial=0))


def collect(problems: Iterable[Detail]) -> list[Detail]:
    """The first problems, one past the cap: stops a 100,000-key body from costing 100,000."""
    return list(islice(problems, MAX_DETAILS + 1))


def rejected(problems: list[Detail]) -> ApiError:
    first = problems[0]
    if len(problems) > MAX_DETAILS:
        more = f" (and more; the first {MAX_DETAILS} are listed)"
    else:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    where = f"{first.field}: " if first.field else ""
    return ApiError(first.code, f"{where}{first.problem}{more}", tuple(problems[:MAX_DETAILS]))


def _invalid_body(field: str, problem: str) -> ApiError:
    return rejected([Detail(field, problem, "invalid_body")])


def _data_path(i: int) -> str:
    return f"data[{i}]"


def join_field(path: str, name: str) -> str:
    """`records[3]` + `RM` -> `records[3].RM`; a top-level name stays bare."""
    return f"{path}.{name}" if path else name


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, float):
        return "number"
    return {str: "string", list: "array", dict: "object"}.get(type(value), type(value).__name__)
