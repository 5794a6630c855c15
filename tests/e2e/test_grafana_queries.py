"""Every query the Grafana dashboards and datasources hold works against the real stack.

Grafana itself does not run here (its image cannot be obtained, and it is never built: AGPL), so
its part is reproduced: each PromQL target of the committed dashboard JSON (what Grafana loads) is
rendered the way Grafana renders it, then run as a range query against the real Prometheus after
traffic went through the real service, collector and Prometheus. "Works" means it returns at least
one finite sample, i.e. the panel draws something. Exemplar-enabled targets must return exemplars
whose trace_id is a trace stored in Jaeger (the link a click follows), and the Jaeger panels'
searches and the trace-to-metrics queries of the Jaeger datasource run against the real Jaeger and
Prometheus.

Runs on `dashboard_stack`: the `stack_with_traffic` fixture (tests/e2e/conftest.py: traffic
through the service with predictions, some 4xx rejections, values outside the training range and
feedback rows, once Prometheus has scraped it and evaluated the recording rules at least once)
plus one request the service genuinely fails (5xx), which the failing-spans panel must link to.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import secrets
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
import skops.io
import yaml

from devstack.server import ServerProcess
from devstack.stack import Stack, http_get_json
from service.model.store import ARTIFACT_NAME, CARD_NAME, TRUSTED_TYPES
from tests.e2e.deployment import service_env

pytestmark = pytest.mark.e2e

GRAFANA = Path(__file__).resolve().parents[2] / "observability" / "grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
DATASOURCES_FILE = GRAFANA / "provisioning" / "datasources" / "datasources.yml"

# Grafana's built-in variables, rendered for a short test run: the rate window covers all of the
# traffic (a panel of the last hour would include it too), the range is the query window.
QUERY_WINDOW_S = 15 * 60
QUERY_STEP_S = 5
BUILTINS = {"__rate_interval": "5m", "__interval": f"{QUERY_STEP_S}s", "__range": "15m"}
ALL = ".*"  # what a multi-value variable set to "All" renders as (our allValue)
VARIABLE = re.compile(r"\$\{(\w+)\}|\$(\w+)")
WAIT_S = 30.0
FAILING_PANEL = "Failing spans by span name"


@dataclass(frozen=True)
class Target:
    dashboard: str
    panel: str
    ref_id: str
    raw: dict[str, Any]

    @property
    def name(self) -> str:
        return f"{self.dashboard}/{self.panel}/{self.ref_id}"


def load_dashboards() -> list[dict[str, Any]]:
    return [json.loads(path.read_text()) for path in DASHBOARDS]


def panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for item in board["panels"] for p in (item, *item.get("panels", []))]


def targets(kind: str) -> list[Target]:
    return [
        Target(board["uid"], item["title"], target["refId"], target)
        for board in load_dashboards()
        for item in panels(board)
        for target in item.get("targets", [])
        if target["datasource"]["type"] == kind
    ]


PROMQL_TARGETS = targets("prometheus")
JAEGER_TARGETS = targets("jaeger")
EXEMPLAR_TARGETS = [t for t in PROMQL_TARGETS if t.raw.get("exemplar")]
# The service the dashboards are written for (their Jaeger searches name it).
[DASHBOARD_SERVICE] = {t.raw["service"] for t in JAEGER_TARGETS}


def unpredictable_copy(artifact: Path, target_dir: Path) -> Path:
    """A copy of the trained artifact whose every prediction is NaN (its initial estimate is NaN),
    re-pinned in its card: it loads, fails the warm-up prediction, and /predict answers 503."""
    estimator = skops.io.loads(artifact.read_bytes(), trusted=list(TRUSTED_TYPES))
    estimator.init_.constant_ = np.full_like(estimator.init_.constant_, np.nan)
    broken = skops.io.dumps(estimator)
    card = json.loads(artifact.with_name(CARD_NAME).read_text())
    card["artifact_sha256"] = hashlib.sha256(broken).hexdigest()
    target_dir.mkdir(parents=True, exist_ok=True)
    (target_dir / CARD_NAME).write_text(json.dumps(card))
    (target_dir / ARTIFACT_NAME).write_bytes(broken)
    return target_dir / ARTIFACT_NAME


@pytest.fixture(scope="module")
def failing_trace_id(
    stack_with_traffic: Stack, trained_model, tmp_path_factory: pytest.TempPathFactory
) -> str:
    """The trace of a request the service really fails: a deployment of the dashboards' service
    whose model predicts NaN is never ready, so /predict answers 503 and its server span has
    status ERROR. It exports traces only, so no metric panel or variable sees an extra instance.
    """
    stack = stack_with_traffic
    root = tmp_path_factory.mktemp("unready")
    model = unpredictable_copy(trained_model.artifact_path, root / "model")
    env = {**service_env(stack, model, DASHBOARD_SERVICE), "OTEL_METRICS_EXPORTER": "none"}
    process = ServerProcess(root / "service.log", env=env).start(WAIT_S, ready_status=503)
    try:
        trace_id = secrets.token_hex(16)
        row = {feature.name: feature.mean for feature in trained_model.card.features}
        response = requests.post(
            f"{process.url}/predict",
            json={"records": [row]},
            headers={"traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01"},
            timeout=10,
        )
        assert response.status_code == 503, response.text
        assert response.json()["error"]["code"] == "model_not_ready", response.text
        # Before stopping the process: its span must have left it.
        stack.wait_for(lambda: stack.jaeger_trace(trace_id), WAIT_S, what=f"trace {trace_id}")
    finally:
        process.stop()
    return trace_id


@pytest.fixture(scope="module")
def dashboard_stack(stack_with_traffic: Stack, failing_trace_id: str) -> Stack:
    """The stack after all the traffic the dashboards show, the failed request included."""
    return stack_with_traffic


def render(expr: str, values: dict[str, str]) -> str:
    """Replace `$name` / `${name}` like Grafana; an unknown variable is a test failure."""

    def value(found: re.Match[str]) -> str:
        name = found.group(1) or found.group(2)
        assert name in values, f"variable ${name} has no value in {expr!r}"
        return values[name]

    return VARIABLE.sub(value, expr)


def variable_values(board_uid: str) -> dict[str, str]:
    """Every variable of the dashboard at "All", plus Grafana's built-ins."""
    [board] = [b for b in load_dashboards() if b["uid"] == board_uid]
    return {**BUILTINS, **{v["name"]: ALL for v in board["templating"]["list"]}}


def finite_samples(result: list[dict[str, Any]]) -> int:
    points = [p for series in result for p in series.get("values", [series.get("value")]) if p]
    return sum(math.isfinite(float(value)) for _, value in points)


def range_query(stack: Stack, expr: str) -> list[dict[str, Any]]:
    end = time.time()
    return stack.prom_api(
        "query_range",
        query=expr,
        start=f"{end - QUERY_WINDOW_S:.3f}",
        end=f"{end:.3f}",
        step=str(QUERY_STEP_S),
    )["result"]


def run(stack: Stack, target: dict[str, Any], expr: str) -> list[dict[str, Any]]:
    return stack.prom_query(expr) if target.get("instant") else range_query(stack, expr)


def grafana_regex_escape(value: str) -> str:
    """How Grafana writes a picked value of a multi-value variable into a PromQL regex: regex
    metacharacters backslash-escaped, the backslash itself doubled for the PromQL string."""
    return re.sub(r"([$^*{}\[\]'+?.()|\\])", r"\\\\\1", value)


def is_alert_query(expr: str) -> bool:
    return re.search(r"\bALERTS\b", expr) is not None


def active_alerts(stack: Stack) -> set[tuple[str, str]]:
    return {(a["labels"]["alertname"], a["state"]) for a in stack.prom_api("alerts")["alerts"]}


@pytest.mark.parametrize("target", PROMQL_TARGETS, ids=lambda t: t.name)
def test_promql_target_returns_data(dashboard_stack: Stack, target: Target) -> None:
    expr = render(target.raw["expr"], variable_values(target.dashboard))
    if is_alert_query(expr):
        # ALERTS only has series while an alert is pending or firing: the panel must show exactly
        # what Prometheus reports as active. Two empty sets would agree whatever the query, so
        # something must be active: the traffic (drifted, out of range) puts alerts in pending.
        def agrees() -> bool:
            shown = {
                (s["metric"]["alertname"], s["metric"]["alertstate"])
                for s in dashboard_stack.prom_query(expr)
            }
            return bool(shown) and shown == active_alerts(dashboard_stack)

        dashboard_stack.wait_for(agrees, WAIT_S, what=f"{target.name} to match /api/v1/alerts")
        return
    dashboard_stack.wait_for(
        lambda: finite_samples(run(dashboard_stack, target.raw, expr)),
        WAIT_S,
        what=f"{target.name}: finite data for {expr}",
    )


@pytest.mark.parametrize("board_uid", ["mlapi-api", "mlapi-quality"])
def test_variables_have_values_and_filter_to_them(dashboard_stack: Stack, board_uid: str) -> None:
    """Each label_values() variable lists real values; picking the first one still shows data."""
    [board] = [b for b in load_dashboards() if b["uid"] == board_uid]
    values = variable_values(board_uid)
    for variable in board["templating"]["list"]:
        found = re.fullmatch(r"label_values\((.+), (\w+)\)", variable["definition"])
        assert found, variable["definition"]
        series, label = render(found.group(1), values), found.group(2)
        listed = dashboard_stack.prom_api(f"label/{label}/values", **{"match[]": series})
        assert listed, f"{board_uid} ${variable['name']}: no values for {series}"
        values[variable["name"]] = grafana_regex_escape(sorted(listed)[0])
    for target in PROMQL_TARGETS:
        if target.dashboard != board_uid or is_alert_query(target.raw["expr"]):
            continue
        expr = render(target.raw["expr"], values)
        assert finite_samples(run(dashboard_stack, target.raw, expr)), f"{target.name}: {expr}"


@pytest.mark.parametrize("target", EXEMPLAR_TARGETS, ids=lambda t: t.name)
def test_exemplars_open_stored_traces(dashboard_stack: Stack, target: Target) -> None:
    expr = render(target.raw["expr"], variable_values(target.dashboard))
    groups = dashboard_stack.wait_for(
        lambda: dashboard_stack.prom_exemplars(expr, QUERY_WINDOW_S),
        WAIT_S,
        what=f"exemplars of {target.name}",
    )
    trace_ids = {e["labels"]["trace_id"] for group in groups for e in group["exemplars"]}
    assert trace_ids, groups
    trace_id = sorted(trace_ids)[0]
    dashboard_stack.wait_for(
        lambda: dashboard_stack.jaeger_trace(trace_id),
        WAIT_S,
        what=f"trace {trace_id} (exemplar of {target.name}) in Jaeger",
    )


def test_failing_spans_panel_links_the_failed_request(
    dashboard_stack: Stack, failing_trace_id: str
) -> None:
    """The request the service failed is on the failing-spans panel: a dot opens its trace."""
    [target] = [t for t in EXEMPLAR_TARGETS if t.panel == FAILING_PANEL]
    expr = render(target.raw["expr"], variable_values(target.dashboard))

    def exemplar_trace_ids() -> set[str]:
        groups = dashboard_stack.prom_exemplars(expr, QUERY_WINDOW_S)
        return {e["labels"]["trace_id"] for group in groups for e in group["exemplars"]}

    dashboard_stack.wait_for(
        lambda: failing_trace_id in exemplar_trace_ids(),
        WAIT_S,
        what=f"trace {failing_trace_id} among the exemplars of {target.name}: {expr}",
    )


def jaeger_search(stack: Stack, target: dict[str, Any]) -> list[dict[str, Any]]:
    """The search Grafana's Jaeger datasource sends for a search target (logfmt tags -> JSON)."""
    end_us = int(time.time() * 1_000_000)
    params = {
        "service": target["service"],
        "limit": str(target["limit"]),
        "start": str(end_us - QUERY_WINDOW_S * 1_000_000),
        "end": str(end_us),
    }
    if target["tags"]:
        params["tags"] = json.dumps(dict(pair.split("=", 1) for pair in target["tags"].split()))
    query = urllib.parse.urlencode(params)
    return http_get_json(f"{stack.jaeger_query_url}/api/traces?{query}")["data"]


@pytest.mark.parametrize("target", JAEGER_TARGETS, ids=lambda t: t.name)
def test_jaeger_searches_run(dashboard_stack: Stack, target: Target) -> None:
    traces = jaeger_search(dashboard_stack, target.raw)
    assert traces, (
        f"{target.name}: no trace of {target.raw['service']} (tags {target.raw['tags']!r})"
    )
    for trace in traces:
        services = {p["serviceName"] for p in trace["processes"].values()}
        assert target.raw["service"] in services


def test_trace_to_metrics_queries_return_data(dashboard_stack: Stack) -> None:
    """The Jaeger datasource's "metrics for this span" queries, rendered for a real server span."""
    sources = yaml.safe_load(DATASOURCES_FILE.read_text())["datasources"]
    [jaeger] = [s for s in sources if s["type"] == "jaeger"]
    config = jaeger["jsonData"]["tracesToMetrics"]
    [search] = [t.raw for t in JAEGER_TARGETS if not t.raw["tags"]]
    [trace, *_] = jaeger_search(dashboard_stack, search)
    span, process = next(
        (span, trace["processes"][span["processID"]])
        for span in trace["spans"]
        if trace["processes"][span["processID"]]["serviceName"] == search["service"]
        and {"key": "span.kind", "type": "string", "value": "server"} in span["tags"]
    )
    span_tags = {t["key"]: t["value"] for t in [*process["tags"], *span["tags"]]}
    span_tags["service.name"] = process["serviceName"]
    tags = ", ".join(f'{m["value"]}="{span_tags[m["key"]]}"' for m in config["tags"])
    for query in config["queries"]:
        # Provisioning turns `$$` into `$`; then Grafana fills in the span's variables.
        expr = (
            query["query"]
            .replace("$$", "$")
            .replace("$__tags", tags)
            .replace("${__span.name}", span["operationName"])
        )
        assert finite_samples(range_query(dashboard_stack, expr)), f"{query['name']}: {expr}"
