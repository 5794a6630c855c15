"""CSV streaming: header skipping, delimiters, number-or-string cells, ragged rows, loop and
bounded shuffle. How the format and the names are found is in test_replay_csv_format.py and
test_replay_columns.py."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from replay.csv_format import WHITESPACE, CsvFormat
from replay.csv_source import CsvSource, CsvUnreadable, Row, coerce_cell, shuffled

COMMA_HEADER = CsvFormat(",", header=True)


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _source(path: Path, csv_format: CsvFormat = COMMA_HEADER, **kwargs) -> CsvSource:
    """A source whose names are its header's (the first line, comma-separated)."""
    columns = path.read_bytes().split(b"\n", 1)[0].decode().split(",")
    return CsvSource(path, csv_format=csv_format, columns=columns, **kwargs)


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("18", 18),
        (" 0.00632 ", 0.00632),
        ("-1e3", -1000.0),
        ("abc", "abc"),
        ("", ""),
        ("nan", "nan"),
        ("inf", "inf"),
        ("1_000", "1_000"),
    ],
)
def test_cells_become_json_numbers_only_when_they_are_plain_numbers(cell, expected):
    value = coerce_cell(cell)
    assert value == expected
    assert type(value) is type(expected)


def test_target_column_is_split_off_as_actual(tmp_path):
    path = _write(tmp_path / "a.csv", "CRIM,RM,MEDV\n0.1,6.5,24\n0.2,x,21.6\n")
    with _source(path) as source:
        rows = list(source.rows())
        assert source.feature_columns == ["CRIM", "RM"]
        assert source.has_target
    assert rows == [
        Row(2, {"CRIM": 0.1, "RM": 6.5}, 24),
        Row(3, {"CRIM": 0.2, "RM": "x"}, 21.6),
    ]


def test_csv_without_target_sends_every_column(tmp_path):
    path = _write(tmp_path / "a.csv", "CRIM,RM\n0.1,6.5\n")
    with _source(path) as source:
        assert not source.has_target
        assert [row.features for row in source.rows()] == [{"CRIM": 0.1, "RM": 6.5}]


def test_ragged_rows_are_skipped_counted_and_reported_with_line_numbers(tmp_path):
    path = _write(tmp_path / "a.csv", "A,B\n1,2\n1,2,3\n\n4\n5,6\n")
    messages: list[str] = []
    with _source(path, warn=messages.append) as source:
        rows = list(source.rows())
        assert source.skipped_rows == 2
    assert [row.line for row in rows] == [2, 6]
    assert messages == [
        f"{path}:3: expected 2 fields, got 3; row skipped",
        f"{path}:5: expected 2 fields, got 1; row skipped",
    ]


def test_missing_file_is_unreadable(tmp_path):
    with pytest.raises(CsvUnreadable, match="cannot open CSV"):
        CsvSource(tmp_path / "nope.csv", csv_format=COMMA_HEADER, columns=["A"])


def test_headerless_whitespace_rows_are_named_by_the_given_columns(tmp_path):
    path = _write(tmp_path / "h.txt", " 0.00632  18.00  24.00\n\n 0.02731   0.00  21.60\n")
    columns = ["CRIM", "ZN", "MEDV"]
    with CsvSource(path, csv_format=CsvFormat(WHITESPACE, header=False), columns=columns) as source:
        rows = list(source.rows())
    assert rows == [
        Row(1, {"CRIM": 0.00632, "ZN": 18.0}, 24.0),
        Row(3, {"CRIM": 0.02731, "ZN": 0.0}, 21.6),
    ]


def test_the_header_is_skipped_after_leading_blank_lines(tmp_path):
    path = _write(tmp_path / "s.csv", "\nA;B\n1;2\n")
    with CsvSource(path, csv_format=CsvFormat(";", header=True), columns=["A", "B"]) as source:
        assert [row.features for row in source.rows()] == [{"A": 1, "B": 2}]


def test_broken_bytes_mid_file_raise_unreadable_with_line(tmp_path):
    path = tmp_path / "a.csv"
    # Past the first read buffer, so the header reads fine and the failure comes mid-stream.
    path.write_bytes(b"A,B\n" + b"1,2\n" * 50_000 + b"3,\xff\n")
    with _source(path) as source:
        rows = source.rows()
        next(rows)
        with pytest.raises(CsvUnreadable, match=r"after line \d+: .*can't decode"):
            list(rows)


def test_loop_restarts_and_reports_ragged_rows_once(tmp_path):
    path = _write(tmp_path / "a.csv", "A\n1\n2\n1,2\n")
    messages: list[str] = []
    with _source(path, loop=True, warn=messages.append) as source:
        rows = source.rows()
        values = [next(rows).features["A"] for _ in range(5)]
        assert source.skipped_rows == 1
    assert values == [1, 2, 1, 2, 1]
    assert len(messages) == 1


def test_loop_over_a_file_without_usable_rows_ends(tmp_path):
    path = _write(tmp_path / "a.csv", "A,B\n1\n")
    with _source(path, loop=True, warn=lambda _m: None) as source:
        assert list(source.rows()) == []


def test_batches_group_rows_and_keep_the_remainder(tmp_path):
    path = _write(tmp_path / "a.csv", "A\n" + "".join(f"{i}\n" for i in range(5)))
    with _source(path) as source:
        sizes = [len(batch) for batch in source.batches(2)]
    assert sizes == [2, 2, 1]


def test_shuffle_is_a_permutation_repeatable_by_seed(tmp_path):
    path = _write(tmp_path / "a.csv", "A\n" + "".join(f"{i}\n" for i in range(200)))
    orders = []
    for _ in range(2):
        with _source(path, shuffle_seed=7, shuffle_buffer=16) as source:
            orders.append([row.features["A"] for row in source.rows()])
    assert orders[0] == orders[1]
    assert sorted(orders[0]) == list(range(200))
    assert orders[0] != list(range(200))


def test_shuffle_buffer_bounds_how_far_ahead_rows_are_read():
    consumed = 0

    def rows():
        nonlocal consumed
        for i in range(1000):
            consumed += 1
            yield i

    stream = shuffled(rows(), 10, random.Random(1))
    first = next(stream)
    assert consumed == 11  # buffer of 10 filled, then one more read to emit the first row
    assert first < 10
