"""What each values case renders: the objects, the secrets' wiring (one feedback key for every
replica, tokens as a mounted file, no secret value from values), where telemetry goes, who owns
the replica count, the pod's hardening and its shutdown timing."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from tests.k8s.chart import VALUES_CASES, Helm, kinds, one

pytestmark = pytest.mark.k8s

EXTERNAL_COLLECTOR = "http://otel-collector.observability.svc:4317"
# The API's Deployment, Service, PDB and ServiceAccount; 4 dashboards and the datasources; one
# PrometheusRule per rules file.
COMMON = {
    "ConfigMap": 5,
    "Deployment": 1,
    "PodDisruptionBudget": 1,
    "PrometheusRule": 2,
    "Service": 1,
    "ServiceAccount": 1,
}
# The collector's ConfigMap, Deployment, Service and PodMonitor.
COLLECTOR = {"ConfigMap": 1, "Deployment": 1, "Service": 1, "PodMonitor": 1}
HPA = {"HorizontalPodAutoscaler": 1}
FEEDBACK_SECRET = {"Secret": 1}


def total(*parts: dict[str, int]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for part in parts:
        for kind, count in part.items():
            counts[kind] = counts.get(kind, 0) + count
    return counts


EXPECTED_KINDS = {
    "defaults": total(COMMON, COLLECTOR, HPA, FEEDBACK_SECRET),
    "auth-on": total(COMMON, COLLECTOR, HPA, FEEDBACK_SECRET),
    "existing-secrets": total(COMMON, COLLECTOR, HPA),
    "external-collector": total(COMMON, HPA, FEEDBACK_SECRET),
    "hpa-off": total(COMMON, COLLECTOR, FEEDBACK_SECRET),
    "networkpolicy-on": total(COMMON, COLLECTOR, HPA, FEEDBACK_SECRET, {"NetworkPolicy": 2}),
    "networkpolicy-external-collector": total(COMMON, HPA, FEEDBACK_SECRET, {"NetworkPolicy": 1}),
}


def api_pod(objects: list[dict[str, Any]]) -> dict[str, Any]:
    return one(objects, "Deployment", "-api")["spec"]["template"]["spec"]


def api_env(objects: list[dict[str, Any]]) -> dict[str, Any]:
    """The API container's env: name -> value, or name -> valueFrom."""
    container = api_pod(objects)["containers"][0]
    return {var["name"]: var.get("value", var.get("valueFrom")) for var in container["env"]}


def test_every_case_has_its_expectation() -> None:
    assert set(EXPECTED_KINDS) == set(VALUES_CASES)


@pytest.mark.parametrize("case", VALUES_CASES)
def test_each_case_renders_its_objects(
    rendered: dict[str, list[dict[str, Any]]], case: str
) -> None:
    assert dict(kinds(rendered[case])) == EXPECTED_KINDS[case]


def test_one_generated_feedback_key_for_every_replica(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    objects = rendered["defaults"]
    secret = one(objects, "Secret")
    assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    key = base64.b64decode(secret["data"]["MLAPI_FEEDBACK_KEY"])
    assert len(key) >= 32  # the service refuses a shorter key
    env = api_env(objects)
    assert env["MLAPI_FEEDBACK_KEY"] == {
        "secretKeyRef": {"name": secret["metadata"]["name"], "key": "MLAPI_FEEDBACK_KEY"}
    }
    assert env["MLAPI_FEEDBACK_KEY_PREVIOUS"]["secretKeyRef"]["optional"] is True
    assert "MLAPI_AUTH_TOKENS_FILE" not in env  # auth is off unless a Secret is named


def test_existing_secrets_are_referenced_never_rendered(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    objects = rendered["existing-secrets"]
    env = api_env(objects)
    assert env["MLAPI_FEEDBACK_KEY"]["secretKeyRef"]["name"] == "mlapi-feedback-key"
    pod = api_pod(objects)
    volume = next(v for v in pod["volumes"] if v["name"] == "auth-tokens")
    assert volume["secret"] == {
        "secretName": "mlapi-auth-tokens",
        "items": [{"key": "tokens.txt", "path": "tokens"}],
        "defaultMode": 0o440,
    }
    mount = next(m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "auth-tokens")
    assert mount["readOnly"] is True
    assert env["MLAPI_AUTH_TOKENS_FILE"] == f"{mount['mountPath']}/tokens"
    assert "MLAPI_AUTH_TOKENS" not in env


def test_auth_on_mounts_the_tokens_file(rendered: dict[str, list[dict[str, Any]]]) -> None:
    env = api_env(rendered["auth-on"])
    assert env["MLAPI_AUTH_TOKENS_FILE"] == "/etc/mlapi/auth/tokens"


def test_telemetry_goes_to_the_charts_collector_or_the_named_one(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    service = one(rendered["defaults"], "Service", "-collector")
    assert api_env(rendered["defaults"])["OTEL_EXPORTER_OTLP_ENDPOINT"] == (
        f"http://{service['metadata']['name']}:4317"
    )
    assert api_env(rendered["external-collector"])["OTEL_EXPORTER_OTLP_ENDPOINT"] == (
        EXTERNAL_COLLECTOR
    )


def test_an_external_collector_needs_its_endpoint(helm: Helm) -> None:
    result = helm.render({"collector": {"enabled": False}})
    assert result.returncode != 0
    assert "collector.externalEndpoint is required" in result.stderr


def test_the_hpa_owns_the_replica_count_unless_it_is_off(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    hpa = one(rendered["defaults"], "HorizontalPodAutoscaler")
    assert "replicas" not in one(rendered["defaults"], "Deployment", "-api")["spec"]
    assert (
        hpa["spec"]["scaleTargetRef"]["name"]
        == one(rendered["defaults"], "Deployment", "-api")["metadata"]["name"]
    )
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 10)
    assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"
    assert one(rendered["hpa-off"], "Deployment", "-api")["spec"]["replicas"] == 3


def test_the_api_pod_is_locked_down(rendered: dict[str, list[dict[str, Any]]]) -> None:
    pod = api_pod(rendered["defaults"])
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001  # the image's USER is a name
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    container = pod["containers"][0]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert {"cpu", "memory"} <= container["resources"]["requests"].keys()
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert [c["topologyKey"] for c in pod["topologySpreadConstraints"]] == [
        "topology.kubernetes.io/zone",
        "kubernetes.io/hostname",
    ]


def test_the_grace_period_covers_the_pre_stop_sleep_and_gunicorns_shutdown(
    rendered: dict[str, list[dict[str, Any]]], helm: Helm
) -> None:
    pod = api_pod(rendered["defaults"])
    sleep = pod["containers"][0]["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert sleep >= 5
    assert pod["terminationGracePeriodSeconds"] >= sleep + 5  # gunicorn exits within 5 s
    result = helm.render({"api": {"preStopSleepSeconds": 10, "terminationGracePeriodSeconds": 12}})
    assert result.returncode != 0
    assert "must cover api.preStopSleepSeconds" in result.stderr


def test_network_policies_open_only_what_each_pod_needs(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    objects = rendered["networkpolicy-on"]
    api = one(objects, "NetworkPolicy", "-api")
    collector = one(objects, "NetworkPolicy", "-collector")
    assert api["spec"]["ingress"] == [
        {
            "ports": [{"port": "http", "protocol": "TCP"}],
            "from": VALUES_CASES["networkpolicy-on"]["networkPolicy"]["apiFrom"],
        }
    ]
    egress_ports = [rule["ports"] for rule in api["spec"]["egress"]]
    assert egress_ports == [
        [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}],
        [{"port": "otlp-grpc", "protocol": "TCP"}],
    ]
    otlp_from = collector["spec"]["ingress"][0]["from"][0]["podSelector"]["matchLabels"]
    assert otlp_from["app.kubernetes.io/component"] == "api"
    assert collector["spec"]["egress"][1]["ports"] == [{"port": 4317, "protocol": "TCP"}]
    external = one(rendered["networkpolicy-external-collector"], "NetworkPolicy")
    assert external["spec"]["egress"][1] == {"ports": [{"port": 4317, "protocol": "TCP"}]}
