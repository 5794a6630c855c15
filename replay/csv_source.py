"""Streaming CSV rows for replay: one row in memory at a time (plus a bounded shuffle buffer).

The file is read in the file object's buffered chunks, in the format and with the column names
decided before (replay/csv_format.py, replay/columns.py), so a 1 GB CSV costs the same memory as
a 1 kB one. Cells become JSON numbers when they parse as one, else strings: the server judges
validity, not the client.
"""

from __future__ import annotations

import csv
import random
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from replay.csv_format import Cell, CsvFormat, CsvUnreadable, coerce_cell, open_text, row_reader

# Rows held for --shuffle. Memory is bounded by this, not by the file: the order is a uniform
# shuffle within any window of this many rows (a "shuffle buffer", as in tf.data), not of the
# whole file.
DEFAULT_SHUFFLE_BUFFER = 10_000
# Past this many ragged-row messages stderr only gets a count; the report has the total.
MAX_SKIP_MESSAGES = 20


@dataclass(frozen=True, slots=True)
class Row:
    line: int
    features: dict[str, Cell]
    actual: Cell | None


def _warn_stderr(message: str) -> None:
    print(message, file=sys.stderr)


class CsvSource:
    """Rows of one CSV with known columns; the target column (if present) is split off as
    `actual`. A header row, when the format has one, is skipped (its names are in `columns`)."""

    def __init__(
        self,
        path: str | Path,
        *,
        csv_format: CsvFormat,
        columns: Sequence[str],
        target_column: str | None = "MEDV",
        loop: bool = False,
        shuffle_seed: int | None = None,
        shuffle_buffer: int = DEFAULT_SHUFFLE_BUFFER,
        warn: Callable[[str], None] = _warn_stderr,
    ) -> None:
        if shuffle_buffer < 1:
            raise ValueError("shuffle_buffer must be at least 1")
        self.path = Path(path)
        self.csv_format = csv_format
        self.loop = loop
        self.shuffle_seed = shuffle_seed
        self.shuffle_buffer = shuffle_buffer
        self.skipped_rows = 0
        self._warn = warn
        self.columns = list(columns)
        self.target_index = (
            self.columns.index(target_column) if target_column in self.columns else None
        )
        self.feature_columns = [name for name in self.columns if name != target_column]
        self._feature_indices = [i for i in range(len(self.columns)) if i != self.target_index]
        self._file = open_text(self.path)

    @property
    def has_target(self) -> bool:
        return self.target_index is not None

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> CsvSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _one_pass(self, first_pass: bool) -> Iterator[Row]:
        """Every well-formed row of the file once, in file order."""
        self._file.seek(0)
        reader = row_reader(self._file, self.csv_format.delimiter)
        width = len(self.columns)
        feature_pairs = list(zip(self.feature_columns, self._feature_indices, strict=True))
        target_index = self.target_index
        header_pending = self.csv_format.header
        try:
            for cells in reader:
                if header_pending:  # the first non-blank row
                    header_pending = not any(cell.strip() for cell in cells)
                    continue
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
