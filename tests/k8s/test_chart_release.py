"""A real `helm install` and `helm upgrade` against the kube-apiserver: the objects are stored
(nothing runs: no kubelet), and the generated feedback key survives upgrades, an uninstall and a
reinstall, because the chart reads it back with `lookup` instead of drawing a new one. Under
`helm template` (no cluster) each render draws a fresh key: that is the documented limit."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from tests.k8s.chart import CHART_DIR, Helm, one
from tests.k8s.control_plane import ControlPlane
from tests.k8s.kube_api import KubeApi

pytestmark = pytest.mark.k8s

NAMESPACE = "mlapi-release"
RELEASE = "mlapi"


@pytest.fixture(scope="module")
def kubeconfig(
    control_plane: ControlPlane, kube: KubeApi, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    kube.create_restricted_namespace(NAMESPACE)
    return control_plane.write_kubeconfig(tmp_path_factory.mktemp("kube") / "config")


def helm_release(helm: Helm, kubeconfig: Path, *args: str) -> str:
    result = helm.run(*args, f"--namespace={NAMESPACE}", kubeconfig=kubeconfig)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def installed(helm: Helm, kubeconfig: Path) -> None:
    """The release installed once; each test leaves it installed."""
    helm_release(helm, kubeconfig, "install", RELEASE, str(CHART_DIR))


def stored_key(kube: KubeApi) -> bytes:
    answer = kube.get("v1", "Secret", f"{RELEASE}-monitoring-ml-api-feedback-key", NAMESPACE)
    assert answer.ok, answer.message
    return base64.b64decode(answer.body["data"]["MLAPI_FEEDBACK_KEY"])


def test_the_installed_release_is_stored_in_the_cluster(
    helm: Helm, kube: KubeApi, kubeconfig: Path, installed: None
) -> None:
    releases = json.loads(helm_release(helm, kubeconfig, "list", "--output=json"))
    assert [(r["name"], r["status"]) for r in releases] == [(RELEASE, "deployed")]
    for api_version, kind, name in [
        ("apps/v1", "Deployment", f"{RELEASE}-monitoring-ml-api"),
        ("monitoring.coreos.com/v1", "PodMonitor", f"{RELEASE}-monitoring-ml-api-collector"),
        ("monitoring.coreos.com/v1", "PrometheusRule", f"{RELEASE}-monitoring-ml-api-alerts"),
    ]:
        answer = kube.get(api_version, kind, name, NAMESPACE)
        assert answer.ok, f"{kind}/{name}: {answer.message}"


def test_the_generated_feedback_key_is_kept_across_upgrade_and_reinstall(
    helm: Helm, kube: KubeApi, kubeconfig: Path, installed: None
) -> None:
    first = stored_key(kube)
    assert len(first) >= 32
    # A changed value: the upgrade re-renders every template, the Secret included.
    helm_release(helm, kubeconfig, "upgrade", RELEASE, str(CHART_DIR), "--set=api.logLevel=debug")
    assert stored_key(kube) == first
    helm_release(helm, kubeconfig, "uninstall", RELEASE)
    assert stored_key(kube) == first  # helm.sh/resource-policy: keep
    helm_release(helm, kubeconfig, "install", RELEASE, str(CHART_DIR))
    assert stored_key(kube) == first


def test_helm_template_draws_a_new_key_each_render(
    rendered: dict[str, list[dict[str, Any]]], helm: Helm
) -> None:
    """Why the key must come from `lookup` (or an existing Secret): without a cluster there is
    nothing to read it back from. Install or upgrade against the cluster; never apply the output
    of `helm template` over a running release."""
    again = helm.template("defaults")
    assert one(again, "Secret")["data"] != one(rendered["defaults"], "Secret")["data"]
