"""The Grafana dashboards of the Monitoring ML API, written as Python.

`build_dashboards.py` (next to this package) renders them to `../dashboards/*.json`, the files
Grafana's file provider loads; a unit test checks the committed JSON is exactly what this code
generates. One module per dashboard; `grafana` holds the JSON primitives, `promql` the query
helpers, `metrics` every metric and label name the queries use.
"""

from __future__ import annotations

from typing import Any

from observability.grafana.dashboards_src import alerts, api, quality, traces


def all_dashboards() -> dict[str, dict[str, Any]]:
    """File name -> dashboard JSON model, for every dashboard we ship."""
    return {
        f"{board['uid']}.json": board
        for board in (api.dashboard(), quality.dashboard(), traces.dashboard(), alerts.dashboard())
    }
