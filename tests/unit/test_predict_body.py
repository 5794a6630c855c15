"""Body parsing and validation: every accepted shape, every rejection, named rows and fields."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from service.api.errors import ApiError
from service.api.json_body import MAX_DETAILS
from service.api.predict_body import PayloadLimits, PayloadParser
from service.model.dataset import FEATURES

LIMITS = PayloadLimits(max_rows=100, max_json_depth=16, max_key_length=64)


@pytest.fixture
def parser() -> PayloadParser:
    return PayloadParser(FEATURES, LIMITS)


def record(offset: float = 0.0) -> dict[str, float]:
    return {name: float(i) + offset for i, name in enumerate(FEATURES)}


def encode(document: object) -> bytes:
    return json.dumps(document).encode()


def rejection(parser: PayloadParser, body: bytes | str) -> ApiError:
    with pytest.raises(ApiError) as caught:
        parser.parse(body if isinstance(body, bytes) else body.encode())
    return caught.value


def fields(error: ApiError) -> list[str]:
    return [detail.field for detail in error.details]


EXPECTED = np.array([[float(i) + offset for i in range(13)] for offset in (0.0, 100.0)])


@pytest.mark.parametrize(
    "document",
    [
        {"records": [record(), record(100.0)]},
        [record(), record(100.0)],
        json.dumps([record(), record(100.0)]),
        {"columns": list(FEATURES), "data": [list(EXPECTED[0]), list(EXPECTED[1])]},
        {"columns": list(FEATURES), "index": [7, 8], "data": EXPECTED.tolist()},
    ],
    ids=["records", "bare-array", "json-string", "split", "split-with-index"],
)
def test_every_accepted_shape_gives_the_same_matrix(parser, document):
    matrix = parser.parse(encode(document))
    assert matrix.dtype == np.float64
    np.testing.assert_array_equal(matrix, EXPECTED)


def test_single_record_is_one_row(parser):
    np.testing.assert_array_equal(parser.parse(encode(record())), EXPECTED[:1])


def test_record_key_order_does_not_matter(parser):
    shuffled = dict(reversed(list(record().items())))
    np.testing.assert_array_equal(parser.parse(encode({"records": [shuffled]})), EXPECTED[:1])


def test_split_columns_are_reordered_into_model_order(parser):
    columns = list(reversed(FEATURES))
    data = [[float(FEATURES.index(c)) for c in columns]]
    matrix = parser.parse(encode({"columns": columns, "data": data}))
    np.testing.assert_array_equal(matrix, EXPECTED[:1])


def test_integers_become_floats(parser):
    body = encode({name: i for i, name in enumerate(FEATURES)})
    np.testing.assert_array_equal(parser.parse(body), EXPECTED[:1])


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b'{"records": [', "malformed_json"),
        (b"", "malformed_json"),
        (b"{'CRIM': 1}", "malformed_json"),
        (b'{"CRIM": 1} {}', "malformed_json"),
        (b'{"CRIM": \xff}', "invalid_encoding"),
        (b"\xed\xa0\x80", "invalid_encoding"),
        (b"[" * 10_000 + b"]" * 10_000, "nesting_too_deep"),
        (b'{"records": ' + b"[" * 17 + b"]" * 17 + b"}", "nesting_too_deep"),
        (json.dumps("[" * 10_000 + "]" * 10_000).encode(), "nesting_too_deep"),
    ],
    ids=[
        "truncated",
        "empty",
        "single-quotes",
        "trailing-data",
        "bad-utf8",
        "surrogate-utf8",
        "10k-nested",
        "over-limit",
        "nested-in-string",
    ],
)
def test_unparseable_bodies_are_400_class(parser, body, code):
    error = rejection(parser, body)
    assert (error.status, error.code) == (400, code)


def test_depth_scan_ignores_brackets_inside_strings(parser):
    brackets = '[{"\\\\' * 10  # a key full of brackets, quotes and backslashes, all inside a string
    error = rejection(parser, encode({"records": [{**record(), brackets: 1.0}] * 20}))
    assert error.code == "unknown_field"


def test_nesting_within_the_limit_reaches_validation(parser):
    error = rejection(parser, encode({"records": [[[[[[1.0]]]]]]}))
    assert (error.status, error.code, fields(error)) == (422, "invalid_body", ["records[0]"])


@pytest.mark.parametrize(
    ("raw_value", "problem"),
    [
        ('"3.5"', "got string"),
        ("true", "got boolean"),
        ("null", "got null"),
        ("[1]", "got array"),
        ('{"a": 1}', "got object"),
        ("NaN", "got NaN"),
        ("Infinity", "got Infinity"),
        ("-Infinity", "got -Infinity"),
        ("1e400", "beyond the float64 range"),
        ("1" * 5000, "beyond the float64 range"),
    ],
)
def test_bad_values_name_row_and_field(parser, raw_value, problem):
    rows = [json.dumps(record()), json.dumps(record()).replace('"RM": 5.0', f'"RM": {raw_value}')]
    error = rejection(parser, '{"records": [' + ", ".join(rows) + "]}")
    assert (error.status, error.code) == (422, "invalid_value")
    [detail] = error.details
    assert (detail.field, detail.row, detail.feature) == ("records[1].RM", 1, "RM")
    assert problem in detail.problem
    assert detail.to_dict() == {"field": "records[1].RM", "problem": detail.problem, "row": 1}


def test_bad_value_in_split_body_names_row_and_column(parser):
    data = EXPECTED.tolist()
    data[1][3] = None
    error = rejection(parser, encode({"columns": list(FEATURES), "data": data}))
    assert (error.code, fields(error)) == ("invalid_value", ["data[1].CHAS"])
    assert error.details[0].feature == "CHAS"


def test_bad_value_in_single_record_names_the_feature(parser):
    error = rejection(parser, encode({**record(), "LSTAT": "low"}))
    assert (error.code, fields(error)) == ("invalid_value", ["LSTAT"])


def test_missing_and_unknown_fields_are_named(parser):
    row = record()
    del row["NOX"]
    row["NOX2"] = 1.0
    error = rejection(parser, encode({"records": [record(), row]}))
    assert error.status == 422
    assert error.code == "missing_field"
    assert fields(error) == ["records[1].NOX", "records[1].NOX2"]
    assert [d.code for d in error.details] == ["missing_field", "unknown_field"]
    assert error.details[1].feature is None  # client keys never become metric attributes


def test_bare_array_rows_are_named_by_index(parser):
    error = rejection(parser, encode([record(), {"CRIM": 1.0}]))
    assert fields(error)[0] == "[1].ZN"


def test_huge_key_is_rejected_without_being_echoed(parser):
    huge = "K" * 1_000_000
    error = rejection(parser, encode({**record(), huge: 1.0}))
    assert (error.status, error.code) == (422, "key_too_long")
    assert len(json.dumps(error.to_dict())) < 1000


@pytest.mark.parametrize(
    ("document", "field"),
    [
        (3.5, "body"),
        (None, "body"),
        ({"records": {"CRIM": 1}}, "records"),
        ({"records": []}, "body"),
        ([], "body"),
        ({"records": [3]}, "records[0]"),
        (json.dumps({"records": [record()]}), "body"),
        ({"columns": "CRIM", "data": [[1.0]]}, "columns"),
        ({"columns": list(FEATURES), "data": {"0": [1.0]}}, "data"),
        ({"columns": list(FEATURES), "data": [[1.0] * 12]}, "data[0]"),
        ({"columns": list(FEATURES), "data": [[1.0] * 13], "index": 0}, "index"),
        ({"columns": [*FEATURES, "CRIM"], "data": [[1.0] * 14]}, "columns[13]"),
    ],
)
def test_wrong_shapes_are_invalid_body(parser, document, field):
    error = rejection(parser, encode(document))
    assert (error.status, error.code, fields(error)[0]) == (422, "invalid_body", field)


def test_split_body_needs_columns_and_data(parser):
    error = rejection(parser, encode({"data": [[1.0] * 13]}))
    assert (error.code, fields(error)) == ("missing_field", ["columns"])


def test_split_columns_must_cover_every_feature(parser):
    error = rejection(parser, encode({"columns": list(FEATURES[:-1]), "data": [[1.0] * 12]}))
    assert (error.code, error.details[0].feature) == ("missing_field", "LSTAT")


def test_unknown_top_level_members_are_rejected(parser):
    error = rejection(parser, encode({"records": [record()], "extra": 1}))
    assert (error.code, fields(error)) == ("unknown_field", ["extra"])


def test_too_many_rows_is_413(parser):
    error = rejection(parser, encode({"records": [record()] * (LIMITS.max_rows + 1)}))
    assert (error.status, error.code) == (413, "too_many_rows")


def test_max_rows_is_accepted(parser):
    assert parser.parse(encode([record()] * LIMITS.max_rows)).shape == (LIMITS.max_rows, 13)


def test_details_are_capped(parser):
    rows = [{**record(), "RM": None} for _ in range(LIMITS.max_rows)]
    error = rejection(parser, encode(rows))
    assert len(error.details) == MAX_DETAILS
    assert f"the first {MAX_DETAILS} are listed" in error.message


def test_a_body_of_many_unknown_keys_costs_only_the_listed_details(parser):
    many = {f"k{i}": 1.0 for i in range(200_000)}
    error = rejection(parser, encode({**record(), **many}))
    assert (error.code, len(error.details)) == ("unknown_field", MAX_DETAILS)


def test_single_feature_model_is_supported():
    parser = PayloadParser(("x",), LIMITS)
    np.testing.assert_array_equal(parser.parse(b'[{"x": 2}, {"x": 3.5}]'), [[2.0], [3.5]])


def test_error_body_is_the_stable_shape(parser):
    body = rejection(parser, encode({**record(), "RM": math.nan})).to_dict()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["details"][0]["field"] == "RM"
