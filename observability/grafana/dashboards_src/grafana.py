"""Grafana dashboard JSON primitives: datasource refs, targets, panels, variables, layout.

Only what our dashboards use. Panels are built without `id` and `gridPos`; `dashboard()` numbers
them in order and flows them left to right on Grafana's 24-column grid, so ids are stable as long
as the panel order is, and nobody edits coordinates by hand.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

Json = dict[str, Any]

# Datasource uids are fixed in provisioning/datasources/datasources.yml; a unit test checks every
# uid used here is provisioned there.
PROMETHEUS: Json = {"type": "prometheus", "uid": "prometheus"}
JAEGER: Json = {"type": "jaeger", "uid": "jaeger"}

# Dashboard JSON schema version of Grafana 12.0; Grafana migrates older versions up on load, and
# nothing we use changed in later schema versions.
SCHEMA_VERSION = 41
GRID_COLUMNS = 24
# The alert list's sort orders are 1 alphabetical, 2 reverse, 3 importance (firing first).
ALERTS_BY_IMPORTANCE = 3
TAG = "mlapi"

# Units (Grafana unit ids). Custom "suffix:" units for what Grafana has no id for.
SECONDS = "s"
MILLISECONDS = "ms"
REQUESTS_PER_SECOND = "reqps"
PER_SECOND = "cps"
RATIO = "percentunit"
COUNT = "short"
NO_UNIT = "none"
THOUSAND_DOLLARS = "suffix: k$"
ROWS = "suffix: rows"
ROWS_PER_SECOND = "suffix: rows/s"
ITEMS_PER_SECOND = "suffix: items/s"


def label(name: str) -> str:
    """A series' label value in a legend (`{{name}}`)."""
    return "{{" + name + "}}"


def prometheus_target(
    expr: str,
    legend: str = "__auto",
    *,
    exemplar: bool = False,
    instant: bool = False,
    fmt: str = "time_series",
) -> Json:
    """One PromQL query of a panel (its refId is given by the panel)."""
    return {
        "datasource": PROMETHEUS,
        "editorMode": "code",
        "exemplar": exemplar,
        "expr": expr,
        "format": fmt,
        "instant": instant,
        "legendFormat": legend,
        "range": not instant,
    }


def jaeger_search_target(service: str, *, limit: int, tags: str = "") -> Json:
    """A Jaeger trace search (the datasource returns one table row per trace)."""
    return {
        "datasource": JAEGER,
        "queryType": "search",
        "service": service,
        "limit": limit,
        "tags": tags,
    }


def _with_ref_ids(targets: Sequence[Json]) -> list[Json]:
    return [{**target, "refId": chr(ord("A") + i)} for i, target in enumerate(targets)]


def panel(
    kind: str,
    title: str,
    description: str,
    targets: Sequence[Json],
    *,
    unit: str | None,
    width: int = 12,
    height: int = 8,
    datasource: Json = PROMETHEUS,
    options: Json | None = None,
    defaults: Json | None = None,
    overrides: Sequence[Json] = (),
) -> Json:
    """Any panel; `unit` is None only for panels that show no quantity (tables of traces...)."""
    field_defaults = dict(defaults or {})
    if unit is not None:
        field_defaults["unit"] = unit
    return {
        "datasource": datasource,
        "description": description,
        "fieldConfig": {"defaults": field_defaults, "overrides": list(overrides)},
        "options": options or {},
        "targets": _with_ref_ids(targets),
        "title": title,
        "type": kind,
        "_size": (width, height),
    }


def timeseries(
    title: str,
    description: str,
    targets: Sequence[Json],
    *,
    unit: str,
    width: int = 12,
    height: int = 8,
    overrides: Sequence[Json] = (),
    min_value: float | None = 0,
) -> Json:
    defaults: Json = {
        "color": {"mode": "palette-classic"},
        "custom": {"drawStyle": "line", "fillOpacity": 10, "lineWidth": 1, "showPoints": "never"},
    }
    if min_value is not None:
        defaults["min"] = min_value
    return panel(
        "timeseries",
        title,
        description,
        targets,
        unit=unit,
        width=width,
        height=height,
        defaults=defaults,
        overrides=overrides,
        options={
            "legend": {"calcs": ["mean", "max"], "displayMode": "table", "placement": "bottom"},
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
    )


def stat(
    title: str,
    description: str,
    targets: Sequence[Json],
    *,
    unit: str,
    width: int = 6,
    height: int = 4,
    thresholds: Sequence[tuple[float | None, str]] = ((None, "green"),),
    mappings: Sequence[Json] = (),
) -> Json:
    """A single big number per series, coloured by absolute `thresholds` ((from, colour) pairs)."""
    return panel(
        "stat",
        title,
        description,
        targets,
        unit=unit,
        width=width,
        height=height,
        defaults={
            "color": {"mode": "thresholds"},
            "mappings": list(mappings),
            "thresholds": {
                "mode": "absolute",
                "steps": [{"color": colour, "value": start} for start, colour in thresholds],
            },
        },
        options={
            "colorMode": "background",
            "graphMode": "area",
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "textMode": "value_and_name",
        },
    )


def heatmap(
    title: str, description: str, target: Json, *, y_unit: str, width: int = 24, height: int = 9
) -> Json:
    """Pre-bucketed Prometheus histogram as a heatmap; exemplars show as dots that open traces."""
    return panel(
        "heatmap",
        title,
        description,
        [target],
        unit=COUNT,
        width=width,
        height=height,
        options={
            "calculate": False,
            "cellGap": 1,
            "color": {
                "mode": "scheme",
                "scheme": "Oranges",
                "scale": "exponential",
                "exponent": 0.5,
            },
            "exemplars": {"color": "rgba(255,0,255,0.7)"},
            "legend": {"show": True},
            "rowsFrame": {"layout": "auto"},
            "tooltip": {"mode": "single", "yHistogram": True},
            "yAxis": {"axisPlacement": "left", "unit": y_unit},
        },
    )


def trace_table(
    title: str, description: str, target: Json, *, width: int = 12, height: int = 9
) -> Json:
    """Jaeger search results, longest trace first."""
    return panel(
        "table",
        title,
        description,
        [target],
        unit=None,
        width=width,
        height=height,
        datasource=JAEGER,
        options={"showHeader": True, "sortBy": [{"desc": True, "displayName": "Duration"}]},
    )


def alert_list(title: str, description: str, *, width: int = 24, height: int = 10) -> Json:
    """Grafana's alert list: rules of every source (our Prometheus rules), firing and pending."""
    return panel(
        "alertlist",
        title,
        description,
        [],
        unit=None,
        width=width,
        height=height,
        datasource=PROMETHEUS,
        options={
            "alertInstanceLabelFilter": "",
            "alertName": "",
            "dashboardAlerts": False,
            "groupBy": [],
            "groupMode": "default",
            "maxItems": 50,
            "showInstances": True,
            "sortOrder": ALERTS_BY_IMPORTANCE,
            "stateFilter": {
                "error": True,
                "firing": True,
                "noData": False,
                "normal": False,
                "pending": True,
            },
            "viewMode": "list",
        },
    )


def row(title: str) -> Json:
    return {"collapsed": False, "panels": [], "title": title, "type": "row", "_size": (24, 1)}


def threshold_line(ref_id: str, colour: str) -> Json:
    """Override drawing the series of query `ref_id` as a dashed, fixed-colour reference line."""
    return {
        "matcher": {"id": "byFrameRefID", "options": ref_id},
        "properties": [
            {"id": "color", "value": {"fixedColor": colour, "mode": "fixed"}},
            {"id": "custom.lineStyle", "value": {"dash": [10, 10], "fill": "dash"}},
            {"id": "custom.fillOpacity", "value": 0},
        ],
    }


def query_variable(name: str, label: str, definition: str, description: str) -> Json:
    """A multi-select Prometheus label-values variable whose "All" is the regex `.*`."""
    return {
        "allValue": ".*",
        "current": {"text": "All", "value": "$__all"},
        "datasource": PROMETHEUS,
        "definition": definition,
        "description": description,
        "hide": 0,
        "includeAll": True,
        "label": label,
        "multi": True,
        "name": name,
        "options": [],
        "query": {
            "qryType": 1,
            "query": definition,
            "refId": "PrometheusVariableQueryEditor-VariableQuery",
        },
        "refresh": 2,
        "regex": "",
        "sort": 1,
        "type": "query",
    }


def _laid_out(panels: Sequence[Json]) -> list[Json]:
    """Number panels 1..n and place them left to right, wrapping at the grid width."""
    placed = []
    x = y = line_height = 0
    for number, item in enumerate(panels, start=1):
        width, height = item["_size"]
        if item["type"] == "row" or x + width > GRID_COLUMNS:
            x, y, line_height = 0, y + line_height, 0
        body = {key: value for key, value in item.items() if key != "_size"}
        placed.append({**body, "gridPos": {"h": height, "w": width, "x": x, "y": y}, "id": number})
        x += width
        line_height = max(line_height, height)
    return placed


def dashboard(
    uid: str,
    title: str,
    description: str,
    panels: Sequence[Json],
    variables: Sequence[Json] = (),
) -> Json:
    """A provisioned, read-only dashboard linked to its siblings (same tag) in the header."""
    return {
        "description": description,
        "editable": False,
        "graphTooltip": 1,
        "links": [
            {
                "asDropdown": False,
                "includeVars": True,
                "keepTime": True,
                "tags": [TAG],
                "title": "Monitoring ML API",
                "type": "dashboards",
            }
        ],
        "panels": _laid_out(panels),
        "refresh": "30s",
        "schemaVersion": SCHEMA_VERSION,
        "tags": [TAG],
        "templating": {"list": list(variables)},
        "time": {"from": "now-1h", "to": "now"},
        "timezone": "browser",
        "title": title,
        "uid": uid,
        "version": 1,
    }
