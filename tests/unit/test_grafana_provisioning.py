"""Grafana's provisioning files and generated dashboards, checked without running Grafana.

Grafana publishes no JSON schema for provisioning files. Their structure below is the one its Go
code reads at apiVersion 1 (grafana/grafana pkg/services/provisioning/datasources/types.go,
`configsV1`/`upsertDataSourceFromConfigV1`, and dashboards/types.go, `configV1`/`configs`), written
down as key sets: an unknown key is silently ignored by Grafana, so a typo would otherwise pass
unnoticed. Values go through Grafana's environment expansion (pkg/services/provisioning/values):
`$NAME`/`${NAME}` are replaced, `$$` is a literal `$`; `grafana_value` reproduces that.

Dashboards have no published JSON schema either (the classic model is defined in CUE); the
essentials Grafana relies on are checked here, and every query runs against the real Prometheus
in tests/e2e/test_grafana_queries.py.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from observability.grafana import build_dashboards as builder

REPO = Path(__file__).resolve().parents[2]
GRAFANA = REPO / "observability" / "grafana"
DATASOURCES_FILE = GRAFANA / "provisioning" / "datasources" / "datasources.yml"
PROVIDERS_FILE = GRAFANA / "provisioning" / "dashboards" / "dashboards.yml"
DASHBOARDS_DIR = GRAFANA / "dashboards"
COMPOSE_FILE = REPO / "docker-compose.yml"

DATASOURCES_TOP_KEYS = {"apiVersion", "datasources", "deleteDatasources", "prune"}
DATASOURCE_KEYS = {
    "orgId", "orgName", "version", "name", "type", "access", "url", "user", "database",
    "basicAuth", "basicAuthUser", "withCredentials", "isDefault", "correlations", "jsonData",
    "secureJsonData", "editable", "uid",
}  # fmt: skip
PROVIDERS_TOP_KEYS = {"apiVersion", "providers"}
PROVIDER_KEYS = {
    "name", "type", "orgId", "folder", "folderUid", "editable", "options", "disableDeletion",
    "updateIntervalSeconds", "allowUiUpdates",
}  # fmt: skip
FILE_PROVIDER_OPTIONS = {"path", "foldersFromFilesStructure"}
EXPECTED_UIDS = {"prometheus": "prometheus", "jaeger": "jaeger", "alertmanager": "alertmanager"}
TRACE_DATASOURCE_TYPES = {"jaeger", "tempo", "zipkin"}
EXPECTED_DASHBOARD_UIDS = {"mlapi-api", "mlapi-quality", "mlapi-traces", "mlapi-alerts"}
# Grafana's uid rule: up to 40 letters, digits, '-' and '_'.
UID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,40}$")
GRID_COLUMNS = 24
# Panel types that draw a quantity and therefore need a unit.
QUANTITY_PANELS = {"timeseries", "stat", "gauge", "bargauge", "heatmap"}
GRAFANA_BUILTIN_VARIABLES = {"__rate_interval", "__interval", "__range"}
VARIABLE_REFERENCE = re.compile(r"\$\{?(\w+)")
# What Grafana's provisioning would take for an environment variable reference.
ENV_REFERENCE = re.compile(r"\$(\{[^}]*\}|\w+)")


# --- helpers ----------------------------------------------------------------------------------


def grafana_value(raw: str) -> str:
    """A provisioning string as Grafana sees it, assuming no environment variable is meant.

    Fails if the string has an unescaped `$`: Grafana would expand it from its environment
    (usually to ""), e.g. turning a link's `${__value.raw}` into nothing.
    """
    parts = raw.split("$$")
    for part in parts:
        reference = ENV_REFERENCE.search(part)
        assert reference is None, f"{raw!r}: {reference.group(0)!r} would be env-expanded"
    return "$".join(parts)


def strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from strings(value)


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


@pytest.fixture(scope="module")
def datasources() -> list[dict[str, Any]]:
    config = load_yaml(DATASOURCES_FILE)
    assert set(config) <= DATASOURCES_TOP_KEYS
    assert config["apiVersion"] == 1
    return config["datasources"]


@pytest.fixture(scope="module")
def by_uid(datasources: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {source["uid"]: source for source in datasources}


@pytest.fixture(scope="module")
def dashboards() -> dict[str, dict[str, Any]]:
    """The committed dashboard files (what Grafana loads), by file name."""
    return {path.name: json.loads(path.read_text()) for path in DASHBOARDS_DIR.glob("*.json")}


def panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel, including those nested in collapsed rows."""
    found = []
    for item in board["panels"]:
        found.append(item)
        found.extend(item.get("panels", []))
    return found


def datasource_refs(board: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, {type, uid}) for every datasource reference of a dashboard."""
    for item in panels(board):
        if "datasource" in item:
            yield f"panel {item['title']!r}", item["datasource"]
        for target in item.get("targets", []):
            yield f"panel {item['title']!r} target {target['refId']}", target["datasource"]
    for variable in board["templating"]["list"]:
        if "datasource" in variable:
            yield f"variable {variable['name']}", variable["datasource"]


# --- generated JSON -----------------------------------------------------------------------------


def test_committed_dashboards_are_what_the_builder_generates() -> None:
    expected = builder.rendered()
    assert builder.stale_files(expected) == [], "run: make dashboards"
    assert set(expected) == {f"{uid}.json" for uid in EXPECTED_DASHBOARD_UIDS}


@pytest.mark.parametrize("hash_seed", ["0", "1", "2", "3"])
def test_the_builder_renders_the_committed_json_in_any_process(hash_seed: str) -> None:
    """A fresh interpreter per hash seed, which orders every set of strings differently: the
    output depends on the code alone, so a rebuild elsewhere leaves the committed files as they
    are (a second render in this process would repeat any order it drew)."""
    result = subprocess.run(
        [sys.executable, "-m", "observability.grafana.build_dashboards", "--check"],
        cwd=REPO,
        env={**os.environ, "PYTHONHASHSEED": hash_seed},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_check_mode_reports_a_hand_edited_dashboard(tmp_path: Path) -> None:
    expected = builder.rendered()
    for name, text in expected.items():
        (tmp_path / name).write_text(text)
    edited = sorted(expected)[0]
    (tmp_path / edited).write_text(
        expected[edited].replace('"editable": false', '"editable": true')
    )
    (tmp_path / "deleted-from-code.json").write_text("{}")
    assert builder.stale_files(expected, tmp_path) == ["deleted-from-code.json", edited]


# --- datasources ----------------------------------------------------------------------------------


def test_datasources_have_the_provisioning_structure(datasources: list[dict[str, Any]]) -> None:
    for source in datasources:
        assert set(source) <= DATASOURCE_KEYS, set(source) - DATASOURCE_KEYS
        assert source["name"] and source["type"] and source["url"]
        assert source.get("access", "proxy") in {"proxy", "direct"}
        assert UID_PATTERN.match(source["uid"])
        assert source["editable"] is False, "provisioned datasources are code, not UI state"
        for value in strings(source):
            grafana_value(value)
    assert len({s["uid"] for s in datasources}) == len(datasources)
    assert len({s["name"] for s in datasources}) == len(datasources)
    assert sum(bool(s.get("isDefault")) for s in datasources) == 1


def test_datasource_uids_and_types_are_the_fixed_ones(by_uid: dict[str, dict[str, Any]]) -> None:
    assert {uid: source["type"] for uid, source in by_uid.items()} == EXPECTED_UIDS


def test_datasources_point_at_compose_services(by_uid: dict[str, dict[str, Any]]) -> None:
    services = load_yaml(COMPOSE_FILE)["services"]
    for source in by_uid.values():
        host = re.match(r"^https?://([^:/]+)", source["url"])
        assert host is not None and host.group(1) in services, source["url"]


def test_exemplars_link_to_a_provisioned_trace_datasource(
    by_uid: dict[str, dict[str, Any]],
) -> None:
    json_data = by_uid["prometheus"]["jsonData"]
    assert json_data["httpMethod"] == "POST"
    destinations = json_data["exemplarTraceIdDestinations"]
    # The exemplar label OTel data carries through the collector is trace_id.
    assert {d["name"] for d in destinations} == {"trace_id"}
    internal = [d for d in destinations if "datasourceUid" in d]
    assert internal and all(
        by_uid[d["datasourceUid"]]["type"] in TRACE_DATASOURCE_TYPES for d in internal
    )
    [external] = [d for d in destinations if "url" in d]
    assert grafana_value(external["url"]) == "http://localhost:16686/trace/${__value.raw}"
    assert external["urlDisplayLabel"]


def test_traces_link_back_to_span_metrics(by_uid: dict[str, dict[str, Any]]) -> None:
    config = by_uid["jaeger"]["jsonData"]["tracesToMetrics"]
    assert by_uid[config["datasourceUid"]]["type"] == "prometheus"
    assert {"key": "service.name", "value": "service_name"} in config["tags"]
    rendered = [grafana_value(query["query"]) for query in config["queries"]]
    assert rendered and all("{$__tags" in query for query in rendered)
    assert any('span_name="${__span.name}"' in query for query in rendered)


def test_alertmanager_datasource_speaks_the_prometheus_alertmanager_api(
    by_uid: dict[str, dict[str, Any]],
) -> None:
    assert by_uid["alertmanager"]["jsonData"]["implementation"] == "prometheus"


# --- dashboard provider and compose mounts ------------------------------------------------------


def test_dashboard_provider_loads_the_generated_files_read_only() -> None:
    config = load_yaml(PROVIDERS_FILE)
    assert set(config) <= PROVIDERS_TOP_KEYS and config["apiVersion"] == 1
    [provider] = config["providers"]
    assert set(provider) <= PROVIDER_KEYS, set(provider) - PROVIDER_KEYS
    assert set(provider["options"]) <= FILE_PROVIDER_OPTIONS
    assert provider["type"] == "file"
    assert provider["folder"] == "Monitoring ML API"
    assert provider["allowUiUpdates"] is False
    for value in strings(provider):
        grafana_value(value)
    grafana = load_yaml(COMPOSE_FILE)["services"]["grafana"]
    mounts = dict(volume.rsplit(":", 2)[:2] for volume in grafana["volumes"] if ":ro" in volume)
    assert mounts["./observability/grafana/dashboards"] == provider["options"]["path"]
    assert mounts["./observability/grafana/provisioning"] == "/etc/grafana/provisioning"


# --- dashboards ---------------------------------------------------------------------------------


def test_dashboard_uids_are_fixed_and_unique(dashboards: dict[str, dict[str, Any]]) -> None:
    uids = [board["uid"] for board in dashboards.values()]
    assert sorted(uids) == sorted(EXPECTED_DASHBOARD_UIDS)
    for name, board in dashboards.items():
        assert name == f"{board['uid']}.json" and UID_PATTERN.match(board["uid"])


def test_dashboards_have_the_essential_structure(dashboards: dict[str, dict[str, Any]]) -> None:
    for board in dashboards.values():
        assert board["title"] and board["description"]
        assert isinstance(board["schemaVersion"], int) and board["schemaVersion"] >= 39
        assert board["editable"] is False
        assert isinstance(board["templating"]["list"], list)
        ids = [item["id"] for item in panels(board)]
        assert len(ids) == len(set(ids))
        for item in panels(board):
            assert item["type"] and item["title"]
            grid = item["gridPos"]
            assert grid["w"] > 0 and grid["h"] > 0 and grid["x"] >= 0 and grid["y"] >= 0
            assert grid["x"] + grid["w"] <= GRID_COLUMNS
            if item["type"] != "row":
                assert isinstance(item["targets"], list)
                ref_ids = [target["refId"] for target in item["targets"]]
                assert len(ref_ids) == len(set(ref_ids))


def test_panels_do_not_overlap(dashboards: dict[str, dict[str, Any]]) -> None:
    for board in dashboards.values():
        cells: dict[tuple[int, int], str] = {}
        for item in board["panels"]:
            grid = item["gridPos"]
            for x in range(grid["x"], grid["x"] + grid["w"]):
                for y in range(grid["y"], grid["y"] + grid["h"]):
                    assert (x, y) not in cells, f"{item['title']!r} overlaps {cells[(x, y)]!r}"
                    cells[(x, y)] = item["title"]


def test_every_datasource_reference_is_provisioned(
    dashboards: dict[str, dict[str, Any]], by_uid: dict[str, dict[str, Any]]
) -> None:
    for board in dashboards.values():
        for where, ref in datasource_refs(board):
            assert ref["uid"] in by_uid, f"{board['uid']} {where}: {ref}"
            assert ref["type"] == by_uid[ref["uid"]]["type"], f"{board['uid']} {where}: {ref}"


def test_every_panel_is_described_and_quantities_have_units(
    dashboards: dict[str, dict[str, Any]],
) -> None:
    for board in dashboards.values():
        for item in panels(board):
            if item["type"] == "row":
                continue
            assert len(item["description"]) > 20, item["title"]
            if item["type"] in QUANTITY_PANELS:
                assert item["fieldConfig"]["defaults"]["unit"], item["title"]
            if item["type"] == "heatmap":
                assert item["options"]["yAxis"]["unit"], item["title"]


def test_queries_use_only_defined_variables(dashboards: dict[str, dict[str, Any]]) -> None:
    for board in dashboards.values():
        defined = {v["name"] for v in board["templating"]["list"]} | GRAFANA_BUILTIN_VARIABLES
        for item in panels(board):
            for target in item.get("targets", []):
                used = set(VARIABLE_REFERENCE.findall(target.get("expr", "")))
                assert used <= defined, f"{board['uid']} {item['title']!r}: {used - defined}"


def test_variables_filter_by_model_version_and_instance(
    dashboards: dict[str, dict[str, Any]],
) -> None:
    for uid in ("mlapi-api", "mlapi-quality"):
        [board] = [b for b in dashboards.values() if b["uid"] == uid]
        variables = {v["name"]: v for v in board["templating"]["list"]}
        assert set(variables) == {"model_version", "instance"}
        for variable in variables.values():
            assert variable["type"] == "query" and variable["includeAll"]
            assert variable["allValue"] == ".*"
            assert variable["definition"].startswith("label_values(")


def test_latency_predictions_and_spans_show_exemplars(
    dashboards: dict[str, dict[str, Any]],
) -> None:
    exemplar_exprs = [
        target["expr"]
        for board in dashboards.values()
        for item in panels(board)
        for target in item.get("targets", [])
        if target.get("exemplar")
    ]
    for metric in (
        "http_server_request_duration_seconds_bucket",
        "mlapi_prediction_value_bucket",
        "traces_span_metrics_duration_milliseconds_bucket",
    ):
        assert any(metric in expr for expr in exemplar_exprs), metric


def test_traces_dashboard_searches_jaeger_for_the_service(
    dashboards: dict[str, dict[str, Any]],
) -> None:
    [board] = [b for b in dashboards.values() if b["uid"] == "mlapi-traces"]
    searches = [
        target
        for item in panels(board)
        for target in item.get("targets", [])
        if target["datasource"]["type"] == "jaeger"
    ]
    assert {(t["queryType"], t["service"]) for t in searches} == {("search", "mlapi")}
    # Failing traces are reached through exemplars of the error spans' counter: the pinned
    # Jaeger's memory storage finds nothing by `error=true` (tests/e2e/test_grafana_queries.py).
    failing = [
        target["expr"]
        for item in panels(board)
        for target in item.get("targets", [])
        if target.get("exemplar") and 'status_code="STATUS_CODE_ERROR"' in target["expr"]
    ]
    assert any("traces_span_metrics_calls_total" in expr for expr in failing), failing


def test_alerts_dashboard_lists_firing_and_pending_alerts(
    dashboards: dict[str, dict[str, Any]],
) -> None:
    [board] = [b for b in dashboards.values() if b["uid"] == "mlapi-alerts"]
    [alert_list] = [item for item in panels(board) if item["type"] == "alertlist"]
    states = alert_list["options"]["stateFilter"]
    assert states["firing"] and states["pending"]
