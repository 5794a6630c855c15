"""Properties of the body parsers (service/api/predict_body.py, json_body.py) on generated input.

- Any JSON document and any byte string: a finite float64 matrix of the model's width, or an
  ApiError with a 4xx code and the standard error shape (never another exception).
- Valid records, in every accepted body shape and any key or column order: exactly the values
  sent, in model order.
- Limits (rows, nesting depth, key length) refuse exactly above the limit.

Fixed seed (derandomize) and bounded example counts, so a run is repeatable and short.
"""

from __future__ import annotations

import json
import time
from typing import Any

import numpy as np
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from service.api.errors import ERROR_CODES, ApiError
from service.api.feedback_body import FeedbackRejected, parse_feedback
from service.api.json_body import KEY_PREVIEW_CHARS, MAX_ABS_VALUE, MAX_DETAILS, load_json
from service.api.predict_body import PayloadLimits, PayloadParser
from service.api.prediction_ids import PredictionClaim, PredictionIds
from service.model.dataset import FEATURES

# max_key_length above KEY_PREVIEW_CHARS, so a refused key is always shown shortened.
LIMITS = PayloadLimits(max_rows=6, max_json_depth=6, max_key_length=KEY_PREVIEW_CHARS + 8)
PARSER = PayloadParser(FEATURES, LIMITS)
WIDTH = len(FEATURES)

FIXED = settings(
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=300,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# -- strategies ---------------------------------------------------------------------------------

# Keys that reach every branch: features, body members, and anything else.
KEYS = st.sampled_from([*FEATURES, "records", "columns", "data", "index"]) | st.text(max_size=12)
SCALARS = (
    st.none()
    | st.booleans()
    | st.floats(allow_nan=False, allow_infinity=False)
    # Up to 400 digits: beyond float64, so parsing (integers as floats) yields inf.
    | st.integers(min_value=-(10**400), max_value=10**400)
    | st.text(max_size=12)
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=8) | st.dictionaries(KEYS, children, max_size=15),
    max_leaves=60,
)
# A feature value the model accepts: any JSON number within the float32 range.
VALUES = st.floats(min_value=-MAX_ABS_VALUE, max_value=MAX_ABS_VALUE) | st.integers(
    min_value=-(2**63), max_value=2**63
)
ROWS = st.lists(st.fixed_dictionaries({name: VALUES for name in FEATURES}), min_size=1, max_size=6)
FORMATS = st.sampled_from([{}, {"indent": 2}, {"separators": (",", ":")}, {"ensure_ascii": False}])


@st.composite
def shuffled(draw: st.DrawFn, row: dict[str, Any]) -> dict[str, Any]:
    """The same record, its keys in a drawn order."""
    return {name: row[name] for name in draw(st.permutations(list(row)))}


@st.composite
def bodies(draw: st.DrawFn, rows: list[dict[str, Any]]) -> Any:
    """``rows`` in one of the accepted body shapes (a single record only for one row)."""
    shapes = ["records", "split", "bare", "string"] + (["single"] if len(rows) == 1 else [])
    shape = draw(st.sampled_from(shapes))
    if shape == "split":
        columns = draw(st.permutations(FEATURES))
        body = {"columns": columns, "data": [[row[c] for c in columns] for row in rows]}
        if draw(st.booleans()):
            body["index"] = list(range(len(rows)))
        return {key: body[key] for key in draw(st.permutations(list(body)))}
    records = [draw(shuffled(row)) for row in rows]
    if shape == "records":
        return {"records": records}
    if shape == "string":
        return json.dumps(records)
    return records[0] if shape == "single" else records


def encode(document: Any, options: dict[str, Any] | None = None) -> bytes:
    return json.dumps(document, **(options or {})).encode("utf-8", "surrogatepass")


def expected_matrix(rows: list[dict[str, Any]]) -> np.ndarray:
    return np.array([[float(row[name]) for name in FEATURES] for row in rows], dtype=np.float64)


def depth(document: Any) -> int:
    """Bracket nesting of a decoded JSON document (a scalar is 0)."""
    if isinstance(document, list):
        return 1 + max(map(depth, document), default=0)
    if isinstance(document, dict):
        return 1 + max(map(depth, document.values()), default=0)
    return 0


# -- checks ----------------------------------------------------------------------------------------


def parse_or_refuse(body: bytes) -> np.ndarray | ApiError:
    """The matrix, or the ApiError, after checking whichever it is."""
    try:
        matrix = PARSER.parse(body)
    except ApiError as error:
        assert_client_error(error)
        return error
    assert matrix.dtype == np.float64
    assert matrix.ndim == 2 and matrix.shape[0] >= 1 and matrix.shape[1] == WIDTH
    assert (np.abs(matrix) <= MAX_ABS_VALUE).all()
    return matrix


def assert_client_error(error: ApiError) -> None:
    """A 4xx code from the one list, and the standard error shape."""
    assert error.code in ERROR_CODES
    assert 400 <= error.status < 500
    assert error.status == ERROR_CODES[error.code][0]
    body = json.loads(json.dumps(error.to_dict()))
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == error.code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    details = body["error"]["details"]
    assert isinstance(details, list) and len(details) <= MAX_DETAILS
    for detail in details:
        assert set(detail) in ({"field", "problem"}, {"field", "problem", "row"})
        assert isinstance(detail["field"], str) and isinstance(detail["problem"], str)
        assert type(detail.get("row", 0)) is int and detail.get("row", 0) >= 0


def refusal(body: bytes) -> ApiError:
    result = parse_or_refuse(body)
    assert isinstance(result, ApiError), result
    return result


# -- any input ------------------------------------------------------------------------------------


@FIXED
@given(document=JSON_VALUES, options=FORMATS)
def test_any_json_document_parses_or_is_a_client_error(document, options):
    parse_or_refuse(encode(document, options))


@FIXED
@given(body=st.binary(max_size=300))
def test_any_bytes_parse_or_are_a_client_error(body):
    parse_or_refuse(body)


@FIXED
@given(document=JSON_VALUES)
def test_any_json_document_wrapped_in_a_string_parses_or_is_a_client_error(document):
    # The seed's double-encoded body: the string's content is parsed as JSON too.
    parse_or_refuse(encode(json.dumps(document)))


@FIXED
@given(rows=ROWS, corrupt=st.data())
def test_one_bad_value_names_its_row_and_feature(rows, corrupt):
    row = corrupt.draw(st.integers(0, len(rows) - 1))
    name = corrupt.draw(st.sampled_from(FEATURES))
    bad = corrupt.draw(
        st.none()
        | st.booleans()
        | st.text(max_size=5)
        | st.lists(st.integers(), max_size=2)
        | st.floats(min_value=MAX_ABS_VALUE, exclude_min=True).map(lambda v: v * (-1) ** row)
    )
    rows[row] = {**rows[row], name: bad}
    error = refusal(encode({"records": rows}))
    assert error.code == "invalid_value"
    assert [(d.field, d.row) for d in error.details] == [(f"records[{row}].{name}", row)]


# -- valid input ----------------------------------------------------------------------------------


@FIXED
@given(data=st.data(), rows=ROWS, options=FORMATS)
def test_valid_records_parse_to_exactly_the_values_in_model_order(data, rows, options):
    body = data.draw(bodies(rows))
    matrix = parse_or_refuse(encode(body, options))
    assert isinstance(matrix, np.ndarray), matrix
    np.testing.assert_array_equal(matrix, expected_matrix(rows), strict=True)


# -- limits -----------------------------------------------------------------------------------


@FIXED
@given(data=st.data(), count=st.integers(1, LIMITS.max_rows + 3))
def test_rows_are_refused_exactly_above_the_limit(data, count):
    rows = [dict.fromkeys(FEATURES, float(i)) for i in range(count)]
    result = parse_or_refuse(encode(data.draw(bodies(rows))))
    if count > LIMITS.max_rows:
        assert isinstance(result, ApiError) and result.code == "too_many_rows"
        assert result.status == 413
    else:
        assert isinstance(result, np.ndarray) and result.shape == (count, WIDTH)


@FIXED
@given(data=st.data(), count=st.integers(LIMITS.max_rows + 1, LIMITS.max_rows + 20))
def test_too_many_rows_are_refused_before_any_row_is_looked_at(data, count):
    # Shallow rows of anything: only the row count may decide, not depth or content.
    shallow = SCALARS | st.lists(SCALARS, max_size=3) | st.dictionaries(KEYS, SCALARS, max_size=3)
    rows = data.draw(st.lists(shallow, min_size=count, max_size=count))
    body = data.draw(st.sampled_from([{"records": rows}, rows, {"columns": [], "data": rows}]))
    error = refusal(encode(body))
    assert (error.code, error.details) == ("too_many_rows", ())


@st.composite
def nested(draw: st.DrawFn, levels: int) -> Any:
    """A document exactly ``levels`` deep: arrays and objects with bracket-laden keys and
    strings, so only real nesting may count."""
    tricky = st.text(alphabet='[]{}"\\:,ab', max_size=8)
    document: Any = draw(tricky | st.floats(allow_nan=False))
    for _ in range(levels):
        siblings = draw(st.lists(tricky, max_size=2))
        if draw(st.booleans()):
            document = [*siblings, document]
        else:
            document = {**{f"k{s}": s for s in siblings}, draw(tricky): document}
    return document


@FIXED
@given(data=st.data(), levels=st.integers(1, LIMITS.max_json_depth + 3), as_string=st.booleans())
def test_nesting_is_refused_exactly_above_the_limit(data, levels, as_string):
    document = data.draw(nested(levels))
    assert depth(document) == levels
    # The seed's string-encoded body gets the same limit for the document inside the string.
    result = parse_or_refuse(encode(json.dumps(document) if as_string else document))
    too_deep = isinstance(result, ApiError) and result.code == "nesting_too_deep"
    assert too_deep == (levels > LIMITS.max_json_depth)


@FIXED
@given(data=st.data(), levels=st.integers(1, LIMITS.max_json_depth + 3))
def test_nesting_is_refused_before_parsing(data, levels):
    # The innermost value comes last, so the body ends in exactly `levels` closing brackets:
    # without them it is malformed, and only a check that runs before the parser can see depth.
    unclosed = encode(data.draw(nested(levels)))[:-levels]
    error = refusal(unclosed)
    too_deep = levels > LIMITS.max_json_depth
    assert error.code == ("nesting_too_deep" if too_deep else "malformed_json")


@FIXED
@given(
    data=st.data(),
    length=st.integers(1, LIMITS.max_key_length + 8),
    where=st.sampled_from(["record", "records", "bare", "split", "member"]),
)
def test_unknown_keys_are_too_long_exactly_above_the_limit(data, length, where):
    key = data.draw(st.text(min_size=length, max_size=length))
    assume(key not in FEATURES and key not in ("records", "columns", "data", "index"))
    row: dict[str, Any] = {**dict.fromkeys(FEATURES, 1.0), key: 1.0}
    document = {
        "record": row,
        "records": {"records": [row]},
        "bare": [row],
        "split": {"columns": [*FEATURES, key], "data": [[1.0] * (WIDTH + 1)]},
        "member": {"records": [dict.fromkeys(FEATURES, 1.0)], key: 1},
    }[where]
    error = refusal(encode(document))
    if length > LIMITS.max_key_length:
        assert error.code == "key_too_long"
        # Never echoed whole: only a preview of the key reaches the response.
        assert all(key not in detail.field + detail.problem for detail in error.details)
        assert key not in error.message
    else:
        assert error.code == "unknown_field"


# -- the feedback body ----------------------------------------------------------------------------

SIGNER = PredictionIds([b"k" * 32])


def verify(token: object) -> PredictionClaim:
    return SIGNER.verify(token, time.time(), 3600)


FEEDBACK_KEYS = st.sampled_from(["id", "actual", "items"]) | st.text(max_size=8)
FEEDBACK_VALUES = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=6) | st.dictionaries(FEEDBACK_KEYS, children, max_size=4)
    ),
    max_leaves=30,
)


@FIXED
@given(document=FEEDBACK_VALUES)
def test_any_feedback_document_is_recorded_or_is_a_client_error(document):
    try:
        batch = parse_feedback(load_json(encode(document), 16), verify, max_items=6)
    except FeedbackRejected as refused:
        assert refused.reasons
        assert_client_error(refused.error)
    except ApiError as error:
        assert_client_error(error)
    else:  # only signed ids verify, and a random document carries none
        raise AssertionError(f"accepted {batch}")
