"""What every JSON request body shares: decoding within the nesting limit, the value rule, the
row count, and one ApiError naming the first problems (the /predict and /feedback parsers)."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from itertools import islice
from typing import Any

import numpy as np
import orjson

from service.api.errors import ApiError, Detail
from service.json_types import json_type

# Enough to fix a body, small enough that a 10,000-row mistake does not echo 10,000 lines.
MAX_DETAILS = 20
# Shown in place of an over-long key, so the error never echoes a megabyte back.
KEY_PREVIEW_CHARS = 32

# The largest magnitude a feature value (or a feedback actual) may have. scikit-learn's tree models
# cast X to float32, where a larger finite float64 becomes inf and fails the prediction (a 500
# before this bound); squaring a larger feedback error would overflow the accuracy sums to inf.
MAX_ABS_VALUE = float(np.finfo(np.float32).max)

# What a decoded JSON number is (orjson keeps integers; `type() in` keeps bool out).
NUMBER_TYPES = frozenset({float, int})
# The fallback decoder turns integers into floats, so 400-digit integers become inf (caught as
# out of range) instead of tripping Python's int-digit limit.
_DECODER = json.JSONDecoder(parse_int=float)
_STRING = re.compile(rb'"[^"]*"')
_NOT_STRUCTURE = bytes(b for b in range(256) if b not in b'[]{}"')
_OPENERS = (ord("["), ord("{"))


def load_json(body: bytes, max_json_depth: int) -> Any:
    """The JSON document in a UTF-8 body (numbers as int or float), within the nesting limit;
    else ApiError (invalid_encoding, nesting_too_deep, malformed_json). Shared by every JSON
    route."""
    _check_depth(body, max_json_depth)
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        pass  # the stdlib decoder says what is wrong, or reads what orjson refuses (1e400)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiError("invalid_encoding", f"body is not valid UTF-8 (byte {exc.start})") from None
    return _load_diagnosed(text)


def load_json_text(text: str, raw: bytes, limit: int) -> Any:
    """The JSON document in `text` (`raw`: its UTF-8 bytes), as load_json reads a body."""
    _check_depth(raw, limit)
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return _load_diagnosed(text)


def _check_depth(raw: bytes, limit: int) -> None:
    if raw.count(b"[") + raw.count(b"{") > limit and _nesting_depth(raw) > limit:
        raise ApiError("nesting_too_deep", f"JSON nesting is deeper than {limit} levels")


def _load_diagnosed(text: str) -> Any:
    """The stdlib decoder: exact error positions, integers as floats, and what orjson refuses
    but the value rule reports better (1e400 becomes inf: invalid_value, not malformed)."""
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
        raise invalid_body("body", f"must contain at least one {noun}")
    if count > max_rows:
        raise ApiError("too_many_rows", f"{count} {noun}s in one request; the limit is {max_rows}")


def value_problem(value: Any) -> str | None:
    if type(value) not in NUMBER_TYPES:
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


def invalid_body(field: str, problem: str) -> ApiError:
    return rejected([Detail(field, problem, "invalid_body")])


def join_field(path: str, name: str) -> str:
    """`records[3]` + `RM` -> `records[3].RM`; a top-level name stays bare."""
    return f"{path}.{name}" if path else name


def key_preview(key: str) -> str:
    """A client's key as an error shows it: cut to KEY_PREVIEW_CHARS, never echoed in full."""
    return key if len(key) <= KEY_PREVIEW_CHARS else key[:KEY_PREVIEW_CHARS] + "..."
