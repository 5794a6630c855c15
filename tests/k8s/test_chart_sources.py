"""The chart ships the repo's own configuration, as rendered: its PrometheusRules are the rule
files (and pass the pinned promtool), its collector config is otel/collector-config.yaml (and
passes the pinned otelcol's validate), its dashboards are the committed JSON and its datasources
the provisioned ones with only the cluster's URLs. Compared with the sources under
observability/ and otel/, not with the chart's copies."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.k8s.chart import REPO, Helm, one

pytestmark = pytest.mark.k8s

RULES = sorted((REPO / "observability" / "prometheus" / "rules").glob("*.yml"))
DASHBOARDS = sorted((REPO / "observability" / "grafana" / "dashboards").glob("*.json"))
COLLECTOR_CONFIG = REPO / "otel" / "collector-config.yaml"
DATASOURCES = REPO / "observability/grafana/provisioning/datasources/datasources.yml"
TOOL_TIMEOUT_S = 60.0


def run(argv: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=TOOL_TIMEOUT_S,
        check=False,
        env={**os.environ, **(env or {})},
    )


def promtool_check(promtool: Path, groups: list[dict[str, Any]], path: Path) -> str:
    path.write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
    result = run([str(promtool), "check", "rules", str(path)])
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def collector_deployment_env(objects: list[dict[str, Any]]) -> dict[str, str]:
    container = one(objects, "Deployment", "-collector")["spec"]["template"]["spec"]
    return {var["name"]: var["value"] for var in container["containers"][0]["env"]}


def otelcol_validate(
    otelcol: Path, config: str, path: Path, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    path.write_text(config)
    return run([str(otelcol), "validate", f"--config={path}"], env)


@pytest.mark.parametrize("source", RULES, ids=lambda path: path.name)
def test_each_rule_file_is_one_prometheus_rule_with_its_groups(
    rendered: dict[str, list[dict[str, Any]]],
    binaries: dict[str, Path],
    source: Path,
    tmp_path: Path,
) -> None:
    rule = one(rendered["defaults"], "PrometheusRule", f"-{source.stem}")
    groups = rule["spec"]["groups"]
    assert groups == yaml.safe_load(source.read_text())["groups"]
    report = promtool_check(binaries["promtool"], groups, tmp_path / source.name)
    assert re.search(r"SUCCESS: [1-9][0-9]* rules found", report), report


def test_the_prometheus_rules_are_the_rule_files_and_nothing_else(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    names = sorted(
        obj["metadata"]["name"] for obj in rendered["defaults"] if obj["kind"] == "PrometheusRule"
    )
    assert [name.rsplit("-", 1)[1] for name in names] == [path.stem for path in RULES]


def test_promtool_refuses_a_broken_rule(
    rendered: dict[str, list[dict[str, Any]]], binaries: dict[str, Path], tmp_path: Path
) -> None:
    """The control: the check above can fail."""
    groups = one(rendered["defaults"], "PrometheusRule", "-alerts")["spec"]["groups"]
    broken = [{**groups[0], "rules": [{**groups[0]["rules"][0], "expr": "up =="}]}]
    path = tmp_path / "broken.yml"
    path.write_text(yaml.safe_dump({"groups": broken}))
    result = run([str(binaries["promtool"]), "check", "rules", str(path)])
    assert result.returncode != 0
    assert "parse error" in result.stdout + result.stderr


def test_the_collector_config_is_otels_and_valid(
    rendered: dict[str, list[dict[str, Any]]], binaries: dict[str, Path], tmp_path: Path
) -> None:
    objects = rendered["defaults"]
    config = one(objects, "ConfigMap", "-collector")["data"]["config.yaml"]
    assert config == COLLECTOR_CONFIG.read_text()
    env = collector_deployment_env(objects)
    assert env == {"OTELCOL_JAEGER_OTLP_ENDPOINT": "jaeger-collector.observability.svc:4317"}
    result = otelcol_validate(binaries["otelcol"], config, tmp_path / "config.yaml", env)
    assert result.returncode == 0, result.stdout + result.stderr


def test_otelcol_validate_refuses_an_unknown_component(
    rendered: dict[str, list[dict[str, Any]]], binaries: dict[str, Path], tmp_path: Path
) -> None:
    """The control: an exporter our distribution does not have."""
    config = one(rendered["defaults"], "ConfigMap", "-collector")["data"]["config.yaml"]
    broken = config.replace("exporters: [prometheus]", "exporters: [prometheusremotewrite]")
    assert broken != config
    result = otelcol_validate(binaries["otelcol"], broken, tmp_path / "config.yaml", {})
    assert result.returncode != 0
    assert "prometheusremotewrite" in result.stdout + result.stderr


def test_the_dashboards_are_the_committed_json(rendered: dict[str, list[dict[str, Any]]]) -> None:
    maps = [
        obj
        for obj in rendered["defaults"]
        if obj["kind"] == "ConfigMap" and obj["metadata"]["labels"].get("grafana_dashboard") == "1"
    ]
    assert {name: text for cm in maps for name, text in cm["data"].items()} == {
        path.name: path.read_text() for path in DASHBOARDS
    }
    assert all(len(cm["data"]) == 1 for cm in maps)


def expected_datasources(prometheus: str, jaeger: str, jaeger_ui: str, alertmanager: str) -> Any:
    """The provisioned datasources with the chart's URLs: each by uid, the Jaeger UI link's
    origin replaced (its path, with Grafana's `$${__value.raw}`, kept)."""
    provisioning = yaml.safe_load(DATASOURCES.read_text())
    urls = {"prometheus": prometheus, "jaeger": jaeger, "alertmanager": alertmanager}
    for source in provisioning["datasources"]:
        source["url"] = urls[source["uid"]]
        for link in source.get("jsonData", {}).get("exemplarTraceIdDestinations", []):
            if "url" in link:
                link["url"] = re.sub(r"^[a-z]+://[^/]+", jaeger_ui, link["url"])
    return provisioning


def datasources_of(objects: list[dict[str, Any]]) -> Any:
    config_map = one(objects, "ConfigMap", "-datasources")
    assert config_map["metadata"]["labels"]["grafana_datasource"] == "1"
    return yaml.safe_load(config_map["data"]["mlapi-datasources.yaml"])


def test_the_datasources_are_the_provisioned_ones_with_the_clusters_urls(
    rendered: dict[str, list[dict[str, Any]]], helm: Helm
) -> None:
    assert datasources_of(rendered["defaults"]) == expected_datasources(
        "http://prometheus-operated.monitoring.svc:9090",
        "http://jaeger-query.observability.svc:16686",
        "http://localhost:16686",
        "http://alertmanager-operated.monitoring.svc:9093",
    )
    custom = {
        "prometheus": {"url": "http://prometheus.obs:9090"},
        "alertmanager": {"url": "http://alertmanager.obs:9093"},
        "jaeger": {"queryUrl": "http://jaeger.obs:16686", "uiUrl": "https://jaeger.example.com/"},
    }
    assert datasources_of(helm.objects(custom)) == expected_datasources(
        "http://prometheus.obs:9090",
        "http://jaeger.obs:16686",
        "https://jaeger.example.com",
        "http://alertmanager.obs:9093",
    )
