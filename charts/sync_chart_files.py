"""Copy the collector config, the Prometheus rules, the Grafana dashboards and datasources into
the Helm chart, whose templates read them with `.Files` (which cannot reach outside the chart).

    python charts/sync_chart_files.py           # write the copies (`make chart-sync`)
    python charts/sync_chart_files.py --check   # exit 1 if a copy differs from its source

The sources are the files docker compose and the e2e tests use; the chart's copy of each one is
charts/monitoring-ml-api/files/<its path in the repo>, byte for byte. Nothing else lives in
files/: a copy whose source is gone is reported (and removed on write).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FILES_DIR = REPO / "charts" / "monitoring-ml-api" / "files"
SOURCE_GLOBS = (
    "otel/collector-config.yaml",
    "observability/prometheus/rules/*.yml",
    "observability/grafana/dashboards/*.json",
    "observability/grafana/provisioning/datasources/datasources.yml",
)


def expected() -> dict[str, bytes]:
    """Path relative to files/ (= the source's path in the repo) -> content."""
    sources = sorted(path for pattern in SOURCE_GLOBS for path in REPO.glob(pattern))
    return {path.relative_to(REPO).as_posix(): path.read_bytes() for path in sources}


def stale_files(wanted: dict[str, bytes], directory: Path = FILES_DIR) -> list[str]:
    """Paths under `directory` that are missing, differ from, or are not in `wanted`."""
    present = {
        path.relative_to(directory).as_posix(): path.read_bytes()
        for path in directory.rglob("*")
        if path.is_file()
    }
    return sorted(
        name for name in wanted.keys() | present.keys() if wanted.get(name) != present.get(name)
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report out-of-date copies")
    args = parser.parse_args(argv)
    wanted = expected()
    stale = stale_files(wanted)
    if args.check:
        for name in stale:
            print(f"out of date: {FILES_DIR / name} (run: make chart-sync)", file=sys.stderr)
        return 1 if stale else 0
    for name in stale:
        path = FILES_DIR / name
        if name in wanted:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(wanted[name])
        else:
            path.unlink()
        print(f"{'wrote' if name in wanted else 'removed'} {path.relative_to(REPO)}")
    # A removed copy may leave its directory empty.
    for directory in sorted(FILES_DIR.rglob("*"), reverse=True):
        if directory.is_dir() and not any(directory.iterdir()):
            directory.rmdir()
    return 0


if __name__ == "__main__":
    sys.exit(main())
