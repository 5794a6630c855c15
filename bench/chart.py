"""The README chart: throughput and latency percentiles per variant (matplotlib, PNG).

python -m bench.chart [bench/results/latest.json]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from bench.report import RESULTS_DIR

PERCENTILES = ("p50_ms", "p90_ms", "p99_ms")


def draw(document: dict[str, Any], output: Path) -> Path | None:
    """The chart of every wrk-measured variant and layout; None when there is none."""
    # Imported here: a headless backend, and only the chart needs matplotlib.
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    measured = {**document["variants"], **document["layouts"]}
    rows = {n: v for n, v in measured.items() if v["tool"] == "wrk"}
    if not rows:
        return None
    names = list(rows)
    figure, (throughput, latency) = plt.subplots(1, 2, figsize=(14, 0.45 * len(names) + 2))
    positions = range(len(names))
    throughput.barh(positions, [rows[n]["rps"] for n in names], color="#4c72b0")
    throughput.set_yticks(list(positions), names)
    throughput.invert_yaxis()
    throughput.set_xlabel("requests/s (wrk, closed loop; median of rounds)")
    width = 0.27
    for offset, key in enumerate(PERCENTILES):
        latency.barh(
            [p + (offset - 1) * width for p in positions],
            [rows[n][key] for n in names],
            height=width,
            label=key.removesuffix("_ms"),
        )
    latency.set_yticks(list(positions), [""] * len(names))
    latency.invert_yaxis()
    latency.set_xscale("log")
    latency.set_xlabel("latency ms (log scale)")
    latency.legend(loc="lower right")
    meta = document["meta"]
    figure.suptitle(
        f"mlapi benchmark — {meta['mode']}, {meta['date']}, {meta['hardware']['cores']} cores, "
        f"layout {meta['settings']['layout']}, wrk -c{meta['settings']['connections']}"
    )
    figure.tight_layout()
    figure.savefig(output, dpi=110)
    plt.close(figure)
    return output


def main() -> None:
    source = Path(sys.argv[1]) if len(sys.argv) > 1 else RESULTS_DIR / "latest.json"
    print(draw(json.loads(source.read_text()), source.with_name("latest.png")))


if __name__ == "__main__":
    main()
