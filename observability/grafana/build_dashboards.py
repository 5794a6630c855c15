"""Render the Grafana dashboards (dashboards_src/) to dashboards/*.json, which Grafana provisions.

From the repository root (`make dashboards`):

    python -m observability.grafana.build_dashboards           # write the JSON files
    python -m observability.grafana.build_dashboards --check   # exit 1 if they are out of date

Output is deterministic (sorted keys, fixed ids), so the committed files change only when the
dashboards do. Files in dashboards/ that no dashboard produces are reported (and removed on write):
Grafana would otherwise keep provisioning a dashboard that was deleted from the code.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from observability.grafana.dashboards_src import all_dashboards

OUTPUT_DIR = Path(__file__).resolve().parent / "dashboards"


def render(board: dict[str, Any]) -> str:
    return json.dumps(board, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def rendered() -> dict[str, str]:
    """File name -> file content, for every dashboard."""
    return {name: render(board) for name, board in all_dashboards().items()}


def stale_files(expected: dict[str, str], directory: Path = OUTPUT_DIR) -> list[str]:
    """Names of files in `directory` that are missing, differ from, or are not in `expected`."""
    present = {path.name: path.read_text() for path in directory.glob("*.json")}
    return sorted(
        name for name in expected.keys() | present.keys() if expected.get(name) != present.get(name)
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report out-of-date files")
    args = parser.parse_args(argv)
    expected = rendered()
    stale = stale_files(expected)
    if args.check:
        for name in stale:
            print(f"out of date: {OUTPUT_DIR / name}", file=sys.stderr)
        return 1 if stale else 0
    OUTPUT_DIR.mkdir(exist_ok=True)
    for name in stale:
        path = OUTPUT_DIR / name
        if name in expected:
            path.write_text(expected[name])
        else:
            path.unlink()
        print(f"{'wrote' if name in expected else 'removed'} {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
