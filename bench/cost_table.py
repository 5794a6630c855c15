"""The cost table: named pieces of the request path, each timed alone, and how many times a
1-row and a 1000-row POST /predict pay for each. Rows with no calls are comparisons (an
alternative, or a whole that the pieces above it add up to), shown but not summed."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench.timing import Timing, time_call


@dataclass(frozen=True)
class Piece:
    group: str
    name: str
    fn: Callable[[], object]
    number: int
    # Calls per request: (1-row request, 1000-row request); (0, 0) for a comparison row.
    calls: tuple[float, float] = (1, 1)
    telemetry: bool = True
    # Operations one fn() call performs (e.g. a 512-span batch): costs are per operation.
    operations: int = 1
    # Which whole-request check it belongs to: "attach" (what Telemetry.attach wires into Flask),
    # "service" (our spans and meters), "processor" (span hand-off), "export" (OTLP).
    layer: str = "service"


@dataclass(frozen=True)
class Row:
    piece: Piece
    timing: Timing

    @property
    def best_us(self) -> float:
        return self.timing.best_us / self.piece.operations

    @property
    def median_us(self) -> float:
        return self.timing.median_us / self.piece.operations

    def per_request_us(self, size: int) -> float:
        """Median cost this piece adds to one request of size index 0 (1 row) or 1 (1000)."""
        return self.median_us * self.piece.calls[size]

    def to_dict(self) -> dict[str, Any]:
        return {
            "group": self.piece.group,
            "name": self.piece.name,
            "telemetry": self.piece.telemetry,
            "layer": self.piece.layer,
            "operations_per_call": self.piece.operations,
            **self.timing.to_dict(),
            "best_us_per_operation": round(self.best_us, 3),
            "median_us_per_operation": round(self.median_us, 3),
            "calls_per_request": {"1 row": self.piece.calls[0], "1000 rows": self.piece.calls[1]},
            "us_per_request": {
                "1 row": round(self.per_request_us(0), 2),
                "1000 rows": round(self.per_request_us(1), 2),
            },
        }


def measure(pieces: list[Piece], repeat: int, progress: Callable[[Row], None]) -> list[Row]:
    rows = []
    for piece in pieces:
        row = Row(piece, time_call(piece.fn, piece.number, repeat))
        progress(row)
        rows.append(row)
    return rows


def totals(rows: list[Row]) -> dict[str, dict[str, float]]:
    """Summed µs per request: telemetry pieces, and the rest of the request path."""
    result: dict[str, dict[str, float]] = {}
    for label, telemetry in (("telemetry", True), ("rest", False)):
        result[label] = {
            size_label: round(
                sum(r.per_request_us(size) for r in rows if r.piece.telemetry is telemetry), 1
            )
            for size, size_label in enumerate(("1 row", "1000 rows"))
        }
    return result


def layer_sum(rows: list[Row], layers: set[str], size: int = 0) -> float:
    """µs per request of the telemetry pieces in `layers`."""
    return sum(
        r.per_request_us(size) for r in rows if r.piece.telemetry and r.piece.layer in layers
    )
