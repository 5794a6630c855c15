"""How a CSV is written: its delimiter and whether its first row is a header, guessed from the
first lines only (the rest of the file is streamed later), and a row reader for that format.

Users' tables come comma-, semicolon- or tab-separated, or as columns aligned with runs of spaces
(the Boston housing table itself); a header is there or not. Each guess can be overridden.
"""

from __future__ import annotations

import csv
import math
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TextIO

Cell = int | float | str

# The delimiter value for columns separated by runs of spaces and tabs (no quoting).
WHITESPACE = "whitespace"
DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab", WHITESPACE: "whitespace"}
# Single-character candidates, in the order that wins a tie; whitespace is the last resort, as
# any delimited file with spaces in its cells also splits on them.
_CANDIDATES = ("\t", ";", ",")
# The guess reads this much of the file at most.
SAMPLE_LINES = 50
SAMPLE_BYTES = 64 * 1024
# Share of the sampled rows that must have the most common width for a delimiter to count.
CONSISTENT_SHARE = 0.9


class CsvUnreadable(Exception):
    """The CSV cannot be read: missing, not text, empty, or broken mid-file."""


@dataclass(frozen=True, slots=True)
class CsvFormat:
    delimiter: str  # one character, or WHITESPACE
    header: bool

    def describe(self) -> str:
        name = DELIMITER_NAMES.get(self.delimiter, repr(self.delimiter))
        return f"{name}-separated, {'header' if self.header else 'no header'}"


@dataclass(frozen=True, slots=True)
class Sniffed:
    """The format, and the first non-blank row read with it: the header's names when there is
    one, else the first data row (its width is the file's)."""

    format: CsvFormat
    first_row: tuple[str, ...]


class RowReader(Protocol):
    line_num: int

    def __iter__(self) -> Iterator[list[str]]: ...

    def __next__(self) -> list[str]: ...


class _WhitespaceReader:
    """Rows of cells separated by runs of spaces/tabs; leading and trailing blanks ignored."""

    def __init__(self, lines: Iterable[str]) -> None:
        self._lines = iter(lines)
        self.line_num = 0

    def __iter__(self) -> Iterator[list[str]]:
        return self

    def __next__(self) -> list[str]:
        line = next(self._lines)
        self.line_num += 1
        return line.split()


def row_reader(lines: Iterable[str], delimiter: str) -> RowReader:
    """A reader of `lines` in this delimiter; `line_num` is the last line read (1-based)."""
    if delimiter == WHITESPACE:
        return _WhitespaceReader(lines)
    return csv.reader(lines, delimiter=delimiter)


def parse_delimiter(text: str) -> str:
    """`--delimiter`: a name (comma, semicolon, tab, whitespace), `\\t`, or one character."""
    names = {name: char for char, name in DELIMITER_NAMES.items()}
    if text.lower() in names:
        return names[text.lower()]
    if text == "\\t":
        return "\t"
    if text == " ":  # a single space would make every run of spaces a row of empty cells
        return WHITESPACE
    if len(text) != 1 or text in '\r\n"' or text.isalnum():
        raise ValueError(
            f"--delimiter {text!r}: expected comma, semicolon, tab, whitespace or one character"
        )
    return text


def open_text(path: Path) -> TextIO:
    try:
        # utf-8-sig: spreadsheet exports often start with a byte-order mark.
        return path.open(newline="", encoding="utf-8-sig")
    except OSError as err:
        raise CsvUnreadable(f"cannot open CSV {path}: {err.strerror or err}") from None


def coerce_cell(text: str) -> Cell:
    """Return the cell as int or finite float when it is a plain number, else the stripped text.

    Python's int()/float() also accept `1_000`, `nan` and `inf`, none of which is a JSON number.
    """
    value = text.strip()
    if "_" in value:
        return value
    try:
        return int(value)
    except ValueError:
        pass
    try:
        number = float(value)
    except ValueError:
        return value
    return number if math.isfinite(number) else value


def is_number(cell: str) -> bool:
    return not isinstance(coerce_cell(cell), str)


def sniff(path: Path, *, delimiter: str | None = None, header: bool | None = None) -> Sniffed:
    """Guess what is not given from the first lines of `path`; raises CsvUnreadable."""
    lines = _sample(path)
    if delimiter is None:
        delimiter = guess_delimiter(lines)
    rows = [row for row in row_reader(lines, delimiter) if any(c.strip() for c in row)]
    if not rows:
        raise CsvUnreadable(f"CSV {path} has no rows (empty or blank lines only)")
    if header is None:
        header = guess_header(rows)
    first = tuple(cell.strip() for cell in rows[0])
    return Sniffed(CsvFormat(delimiter, header), first)


def _sample(path: Path) -> list[str]:
    """The first non-blank lines (up to SAMPLE_LINES or about SAMPLE_BYTES)."""
    lines: list[str] = []
    size = 0
    with open_text(path) as handle:
        try:
            while len(lines) < SAMPLE_LINES and size < SAMPLE_BYTES:
                line = handle.readline(SAMPLE_BYTES)
                if not line:
                    break
                size += len(line)
                if line.strip():
                    lines.append(line)
        except (UnicodeDecodeError, OSError) as err:
            raise CsvUnreadable(f"CSV {path}: cannot read it as UTF-8 text: {err}") from None
    return lines


def guess_delimiter(lines: Sequence[str]) -> str:
    """The single-character delimiter giving the most columns consistently over the sample;
    else runs of whitespace if they do; else a comma (one column, or a ragged file whose
    rows are reported as skipped)."""
    best: tuple[int, int, str] | None = None
    for rank, candidate in enumerate(_CANDIDATES):
        width = _consistent_width(row_reader(lines, candidate))
        if width >= 2 and (best is None or (width, -rank) > best[:2]):
            best = (width, -rank, candidate)
    if best is not None:
        return best[2]
    if _consistent_width(row_reader(lines, WHITESPACE)) >= 2:
        return WHITESPACE
    return ","


def _consistent_width(rows: Iterator[list[str]]) -> int:
    """The most common row width when at least CONSISTENT_SHARE of the rows have it, else 0."""
    widths = Counter(len(row) for row in rows if row)
    if not widths:
        return 0
    width, count = widths.most_common(1)[0]
    return width if count >= CONSISTENT_SHARE * sum(widths.values()) else 0


def guess_header(rows: Sequence[Sequence[str]]) -> bool:
    """The first row is a header when it has text where the rows below have numbers, or when it
    is all text; a first row of numbers is data."""
    first, rest = rows[0], rows[1:]
    text_columns = [i for i, cell in enumerate(first) if cell.strip() and not is_number(cell)]
    if not text_columns:
        return False
    if len(text_columns) == len(first):
        return True
    return any(
        all(i < len(row) and is_number(row[i]) for row in rest) for i in text_columns if rest
    )
