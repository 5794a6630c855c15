"""The Helm chart's copies of the collector config, rules, dashboards and datasources are their
sources byte for byte (charts/sync_chart_files.py, `make chart-sync`), and the chart's version
pins follow the repo's."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import yaml

from charts import sync_chart_files as sync

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "monitoring-ml-api"


def test_the_chart_copies_are_their_sources() -> None:
    assert sync.stale_files(sync.expected()) == [], "run: make chart-sync"


def test_every_source_the_templates_read_is_copied() -> None:
    copied = set(sync.expected())
    assert "otel/collector-config.yaml" in copied
    assert "observability/grafana/provisioning/datasources/datasources.yml" in copied
    assert {name for name in copied if name.startswith("observability/prometheus/rules/")} == {
        "observability/prometheus/rules/alerts.yml",
        "observability/prometheus/rules/recording.yml",
    }
    dashboards = {p.name for p in (REPO / "observability/grafana/dashboards").glob("*.json")}
    assert len(dashboards) == 4
    assert {name.rsplit("/", 1)[1] for name in copied if name.endswith(".json")} == dashboards


def test_check_reports_an_edited_a_missing_and_a_stray_copy(tmp_path: Path) -> None:
    """The control: each kind of drift is named."""
    files = tmp_path / "files"
    shutil.copytree(sync.FILES_DIR, files)
    (files / "otel/collector-config.yaml").write_text("receivers: {}\n")
    (files / "observability/prometheus/rules/alerts.yml").unlink()
    (files / "observability/prometheus/rules/old.yml").write_text("groups: []\n")
    assert sync.stale_files(sync.expected(), files) == [
        "observability/prometheus/rules/alerts.yml",
        "observability/prometheus/rules/old.yml",
        "otel/collector-config.yaml",
    ]


def test_the_chart_pins_the_repos_versions() -> None:
    """The API image's tag defaults to appVersion (the package's version), the collector image's
    to .env's OTELCOL_VERSION: the image tags compose builds."""
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    package = re.search(r'^version = "(.+)"$', (REPO / "pyproject.toml").read_text(), re.M)
    otelcol = re.search(r"^OTELCOL_VERSION=(\S+)$", (REPO / ".env").read_text(), re.M)
    assert package and otelcol
    assert chart["appVersion"] == package.group(1)
    assert values["api"]["image"]["tag"] == ""
    assert values["collector"]["image"]["tag"] == otelcol.group(1)
