"""Guessing how a CSV is written from its first lines: delimiter, header, and the overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from replay.csv_format import (
    SAMPLE_LINES,
    WHITESPACE,
    CsvFormat,
    CsvUnreadable,
    guess_delimiter,
    guess_header,
    parse_delimiter,
    sniff,
)

# Shaped like the seed's housing.csv: aligned with runs of spaces, a leading blank, no header.
ALIGNED = (
    " 0.00632  18.00   2.310  0  0.5380  6.5750  65.20  4.0900   1  296.0  15.30 396.90   4.98"
    "  24.00\n"
    " 0.02731   0.00   7.070  0  0.4690  6.4210  78.90  4.9671   2  242.0  17.80 396.90   9.14"
    "  21.60\n"
)


def _write(tmp_path: Path, text: str, name: str = "in.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "delimiter", "header", "first_row"),
    [
        ("CRIM,ZN,MEDV\n0.1,18,24\n0.2,0,21.6\n", ",", True, ("CRIM", "ZN", "MEDV")),
        ("0.1,18,24\n0.2,0,21.6\n", ",", False, ("0.1", "18", "24")),
        ("CRIM;ZN\n0.1;18\n", ";", True, ("CRIM", "ZN")),
        ("CRIM\tZN\n0.1\t18\n0.2\t0\n", "\t", True, ("CRIM", "ZN")),
        (ALIGNED, WHITESPACE, False, ("0.00632", "18.00", "2.310", "0", "0.5380", "6.5750",
                                      "65.20", "4.0900", "1", "296.0", "15.30", "396.90", "4.98",
                                      "24.00")),
        ("CRIM   ZN\n 0.1   18\n", WHITESPACE, True, ("CRIM", "ZN")),
        # Spaces after the commas do not make it a whitespace-separated file.
        ("CRIM, ZN, RM\n0.1, 18, 6.5\n", ",", True, ("CRIM", "ZN", "RM")),
        # A text column whose cells have spaces: commas still win.
        ("town,RM\nNew York,6.5\nSan Jose,5.1\n", ",", True, ("town", "RM")),
        # Leading blank lines and a byte-order mark are not part of the table.
        ("\ufeff\n\nA,B\n1,2\n", ",", True, ("A", "B")),
    ],
)  # fmt: skip
def test_delimiter_and_header_are_guessed(tmp_path, text, delimiter, header, first_row):
    sniffed = sniff(_write(tmp_path, text))
    assert sniffed.format == CsvFormat(delimiter, header)
    assert sniffed.first_row == first_row


def test_overrides_win_over_the_guesses(tmp_path):
    path = _write(tmp_path, "A,B\n1,2\n")
    sniffed = sniff(path, delimiter=";", header=False)
    assert sniffed.format == CsvFormat(";", header=False)
    assert sniffed.first_row == ("A,B",)


def test_only_the_first_lines_are_read(tmp_path):
    # A ragged tail far below the sample cannot change the guess.
    path = _write(tmp_path, "A,B\n" + "1,2\n" * (SAMPLE_LINES * 4) + "x;y;z;w\n" * 1000)
    assert sniff(path).format == CsvFormat(",", header=True)


@pytest.mark.parametrize(
    ("rows", "header"),
    [
        ([["CRIM", "ZN"], ["0.1", "18"]], True),  # all text over numbers
        ([["0.1", "18"], ["0.2", "0"]], False),  # all numbers
        ([["town", "RM"], ["Paris", "6.5"]], True),  # text where numbers follow
        ([["Paris", "6.5"], ["Rome", "5.1"]], False),  # a text column in the data itself
        ([["A", "B"]], True),  # a lone row of names
        ([["nan", "1"], ["2", "3"]], True),  # nan is no JSON number: text over numbers
    ],
)
def test_header_guess(rows, header):
    assert guess_header(rows) is header


def test_a_single_column_falls_back_to_commas():
    assert guess_delimiter(["A\n", "1\n", "2\n"]) == ","


@pytest.mark.parametrize(
    ("text", "delimiter"),
    [
        ("comma", ","),
        ("semicolon", ";"),
        ("TAB", "\t"),
        ("\\t", "\t"),
        ("\t", "\t"),
        ("whitespace", WHITESPACE),
        (" ", WHITESPACE),
        ("|", "|"),
    ],
)
def test_delimiter_option_values(text, delimiter):
    assert parse_delimiter(text) == delimiter


@pytest.mark.parametrize("text", ["", "ab", "x", "1", '"', "\n"])
def test_bad_delimiter_option_values_are_refused(text):
    with pytest.raises(ValueError, match="--delimiter"):
        parse_delimiter(text)


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "has no rows"),
        (b"\n\n  \n", "has no rows"),
        (b"\xff\xfe\x00bad", "cannot read it as UTF-8 text"),
    ],
)
def test_unreadable_files(tmp_path, content, reason):
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(CsvUnreadable, match=reason):
        sniff(path)


def test_missing_file_and_directory_are_unreadable(tmp_path):
    with pytest.raises(CsvUnreadable, match=r"cannot open CSV .*No such file"):
        sniff(tmp_path / "nope.csv")
    with pytest.raises(CsvUnreadable, match=r"cannot open CSV .*Is a directory"):
        sniff(tmp_path)


def test_describe_says_delimiter_and_header():
    assert CsvFormat(WHITESPACE, header=False).describe() == "whitespace-separated, no header"
    assert CsvFormat(";", header=True).describe() == "semicolon-separated, header"
    assert CsvFormat("|", header=True).describe() == "'|'-separated, header"
