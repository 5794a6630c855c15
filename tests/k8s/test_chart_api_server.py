"""Every object the chart renders, for every values case, is accepted by a real kube-apiserver:
server-side dry run with strict field validation (unknown fields are errors), the Prometheus
Operator objects against their CRDs' schemas, and not one warning (deprecations, and the
namespace's restricted Pod Security profile, which admission checks on Deployments too)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.k8s.chart import NAMESPACE, VALUES_CASES, Helm, one
from tests.k8s.kube_api import KubeApi

pytestmark = pytest.mark.k8s


def refusals(kube: KubeApi, objects: list[dict[str, Any]]) -> list[str]:
    """One line per object the server refused or warned about (empty: all accepted cleanly)."""
    problems = []
    for obj in objects:
        answer = kube.create(obj, NAMESPACE, dry_run=True)
        name = f"{obj['kind']}/{obj['metadata']['name']}"
        if not answer.ok:
            problems.append(f"{name}: {answer.status} {answer.message}")
        problems += [f"{name}: warning: {warning}" for warning in answer.warnings]
    return problems


@pytest.mark.parametrize("case", VALUES_CASES)
def test_helm_lint_strict_passes(helm: Helm, case: str) -> None:
    result = helm.lint(case)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout


@pytest.mark.parametrize("case", VALUES_CASES)
def test_every_rendered_object_is_accepted_by_the_api_server(
    kube: KubeApi, rendered: dict[str, list[dict[str, Any]]], case: str
) -> None:
    objects = rendered[case]
    assert len(objects) >= 10
    assert refusals(kube, objects) == []


@pytest.mark.parametrize("case", ["defaults", "auth-on"])
def test_pod_templates_are_admitted_as_pods_under_the_restricted_profile(
    kube: KubeApi, rendered: dict[str, list[dict[str, Any]]], case: str
) -> None:
    """PodSecurity enforces on Pods; the Deployments' templates, posted as Pods, pass it. (The
    ServiceAccount admission plugin needs the pods' ServiceAccount to exist: it is created.)"""
    objects = rendered[case]
    account = one(objects, "ServiceAccount")
    answer = kube.create(account, NAMESPACE)
    assert answer.ok or answer.status == 409, answer.message  # 409: created by the other case
    pods = [
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": deployment["metadata"]["name"],
                **deployment["spec"]["template"]["metadata"],
            },
            "spec": deployment["spec"]["template"]["spec"],
        }
        for deployment in objects
        if deployment["kind"] == "Deployment"
    ]
    assert len(pods) == 2
    assert refusals(kube, pods) == []


def test_an_unknown_field_is_refused(
    kube: KubeApi, rendered: dict[str, list[dict[str, Any]]]
) -> None:
    """The control for the tests above: strict validation turns a typo into an error, in a
    built-in kind and in a CRD's schema."""
    deployment = copy.deepcopy(one(rendered["defaults"], "Deployment", "-api"))
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["livenessProbes"] = container.pop("livenessProbe")
    answer = kube.create(deployment, NAMESPACE, dry_run=True)
    assert answer.status == 400
    assert "strict decoding error" in answer.message
    assert 'unknown field "spec.template.spec.containers[0].livenessProbes"' in answer.message

    monitor = copy.deepcopy(one(rendered["defaults"], "PodMonitor"))
    monitor["spec"]["podMetricsEndpoints"][0]["scrapeInterval"] = "5s"  # the field is `interval`
    answer = kube.create(monitor, NAMESPACE, dry_run=True)
    assert answer.status == 400
    assert "strict decoding error" in answer.message
    assert "scrapeInterval" in answer.message


def test_a_template_that_breaks_the_restricted_profile_is_warned_about(
    kube: KubeApi, rendered: dict[str, list[dict[str, Any]]]
) -> None:
    """The control for the no-warning assertion: with capabilities no longer dropped, the
    Deployment is still accepted, with a PodSecurity warning the tests above would report."""
    deployment = copy.deepcopy(one(rendered["defaults"], "Deployment", "-api"))
    del deployment["spec"]["template"]["spec"]["containers"][0]["securityContext"]["capabilities"]
    answer = kube.create(deployment, NAMESPACE, dry_run=True)
    assert answer.ok, answer.message
    assert any('violate PodSecurity "restricted' in warning for warning in answer.warnings), (
        answer.warnings
    )


def test_the_documented_prometheus_settings_are_valid_for_the_pinned_operator(
    kube: KubeApi,
) -> None:
    """The README's Prometheus resource settings (exemplar storage, selecting the chart's
    monitors and rules by label), against the Prometheus CRD's schema."""
    selector = {"matchLabels": {"release": "kube-prometheus-stack"}}
    prometheus = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "Prometheus",
        "metadata": {"name": "prometheus"},
        "spec": {
            "enableFeatures": ["exemplar-storage"],
            "exemplars": {"maxSize": 100000},
            "podMonitorSelector": selector,
            "ruleSelector": selector,
        },
    }
    answer = kube.create(prometheus, NAMESPACE, dry_run=True)
    assert answer.ok, answer.message
    assert answer.warnings == []
