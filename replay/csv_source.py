"""Streaming CSV rows for replay: one row in memory at a time (plus a bounded shuffle buffer).

The file is read through the csv module in the file object's buffered chunks, so a 1 GB CSV costs
the same memory as a 1 kB one. Cells become JSON numbers when they parse as one, else strings:
the server judges validity, not the client.
"""

from __future__ import annotations

import csv
import math
import random
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

Cell = int | float | str

# Rows held for --shuffle. Memory is bounded by this, not by the file: the order is a uniform
# shuffle within any window of this many rows (a "shuffle buffer", as in tf.data), not of the
# whole file.
DEFAULT_SHUFFLE_BUFFER = 10_000
# Past this many ragged-row messages stderr only gets a count; the report has the total.
MAX_SKIP_MESSAGES = 20


class CsvUnreadable(Exception):
    """The CSV cannot be read: missing, not text, no header, or broken mid-file."""


@dataclass(frozen=True, slots=True)
class Row:
    line: int
    features: dict[str, Cell]
    actual: Cell | None


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


def _warn_stderr(message: str) -> None:
    print(message, file=sys.stderr)


class CsvSource:
    """Rows of one CSV with a header; the target column (if present) is split off as `actual`."""

    def __init__(
        self,
        path: str | Path,
        *,
        target_column: str = "MEDV",
        loop: bool = False,
        shuffle_seed: int | None = None,
        shuffle_buffer: int = DEFAULT_SHUFFLE_BUFFER,
        warn: Callable[[str], None] = _warn_stderr,
    ) -> None:
        if shuffle_buffer < 1:
            raise ValueError("shuffle_buffer must be at least 1")
        self.path = Path(path)
        self.loop = loop
        self.shuffle_seed = shuffle_seed
        self.shuffle_buffer = shuffle_buffer
        self.skipped_rows = 0
        self._warn = warn
        self._file = self._open()
        header = self._read_header()
        self.columns = header
        self.target_index = header.index(target_column) if target_column in header else None
        self.feature_columns = [name for name in header if name != target_column]
        self._feature_indices = [i for i in range(len(header)) if i != self.target_index]

    @property
    def has_target(self) -> bool:
        return self.target_index is not None

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> CsvSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _open(self) -> TextIO:
        try:
            # utf-8-sig: spreadsheet exports often start with a byte-order mark.
            return self.path.open(newline="", encoding="utf-8-sig")
        except OSError as err:
            raise CsvUnreadable(f"cannot open CSV {self.path}: {err.strerror or err}") from None

    def _read_header(self) -> list[str]:
        try:
            header = next(csv.reader(self._file), None)
        except (csv.Error, UnicodeDecodeError, OSError) as err:
            self.close()
            raise CsvUnreadable(f"CSV {self.path}: cannot read header: {err}") from None
        if not header or all(not name.strip() for name in header):
            self.close()
            raise CsvUnreadable(f"CSV {self.path}: empty or blank first line; a header is required")
        names = [name.strip() for name in header]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            self.close()
            listed = ", ".join(duplicates)
            raise CsvUnreadable(f"CSV {self.path}: duplicate header columns: {listed}")
        return names

    def _one_pass(self, first_pass: bool) -> Iterator[Row]:
        """Every well-formed row of the file once, in file order."""
        self._file.seek(0)
        reader = csv.reader(self._file)
        width = len(self.columns)
        feature_pairs = list(zip(self.feature_columns, self._feature_indices, strict=True))
        target_index = self.target_index
        try:
            next(reader, None)  # header, validated in __init__
            for cells in reader:
                if len(cells) != width:
                    if cells and first_pass:  # blank lines are not rows
                        self._skip(reader.line_num, width, len(cells))
                    continue
                features = {name: coerce_cell(cells[i]) for name, i in feature_pairs}
                actual = None if target_index is None else coerce_cell(cells[target_index])
                yield Row(reader.line_num, features, actual)
        except (csv.Error, UnicodeDecodeError, OSError) as err:
            # Decoding runs a buffer ahead of the parser, so the fault is at or after this line.
            raise CsvUnreadable(f"CSV {self.path}: after line {reader.line_num}: {err}") from None

    def _skip(self, line: int, expected: int, got: int) -> None:
        self.skipped_rows += 1
        if self.skipped_rows <= MAX_SKIP_MESSAGES:
            self._warn(f"{self.path}:{line}: expected {expected} fields, got {got}; row skipped")
        elif self.skipped_rows == MAX_SKIP_MESSAGES + 1:
            self._warn(f"{self.path}: more rows skipped; see skipped_rows in the summary")

    def _file_order(self) -> Iterator[Row]:
        """Rows in file order, once, or forever with `loop` (until a pass finds no row at all)."""
        first_pass = True
        while True:
            produced = False
            for row in self._one_pass(first_pass):
                produced = True
                yield row
            first_pass = False
            if not (self.loop and produced):
                return

    def rows(self) -> Iterator[Row]:
        """The rows to send, shuffled through a bounded buffer when a shuffle seed is set."""
        if self.shuffle_seed is None:
            return self._file_order()
        return shuffled(self._file_order(), self.shuffle_buffer, random.Random(self.shuffle_seed))

    def batches(self, size: int) -> Iterator[list[Row]]:
        """Rows grouped `size` at a time; the last batch may be shorter."""
        if size < 1:
            raise ValueError("batch size must be at least 1")
        batch: list[Row] = []
        for row in self.rows():
            batch.append(row)
            if len(batch) == size:
                yield batch
                batch = []
        if batch:
            yield batch


def shuffled(items: Iterator[Row], buffer_size: int, rng: random.Random) -> Iterator[Row]:
    """Shuffle a stream with at most `buffer_size` items in memory: each new item replaces a
    random buffered one, which is emitted; the buffer is drained in random order at the end."""
    buffer: list[Row] = []
    for item in items:
        if len(buffer) < buffer_size:
            buffer.append(item)
            continue
        slot = rng.randrange(buffer_size)
        yield buffer[slot]
        buffer[slot] = item
    rng.shuffle(buffer)
    yield from buffer
