"""Fixtures of the chart suite: the pinned helm, the chart rendered for every values case, and
one real kube-apiserver (with etcd) per session, with the Prometheus Operator CRDs installed and
a namespace that enforces the restricted Pod Security Standard."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from devstack.stack import locate_binaries, running, wait_for
from tests.k8s.chart import NAMESPACE, VALUES_CASES, Helm
from tests.k8s.control_plane import ControlPlane
from tests.k8s.kube_api import KubeApi, KubeApiError

BINARIES = ("helm", "kube-apiserver", "etcd", "prometheus-operator-crds", "otelcol", "promtool")
CRD_READY_TIMEOUT_S = 30.0


@pytest.fixture(scope="session")
def binaries() -> dict[str, Path]:
    return locate_binaries(BINARIES)


@pytest.fixture(scope="session")
def helm(binaries: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Helm:
    return Helm(binaries["helm"], tmp_path_factory.mktemp("helm"))


@pytest.fixture(scope="session")
def rendered(helm: Helm) -> dict[str, list[dict[str, Any]]]:
    """Case name -> the objects `helm template` renders for it."""
    return {case: helm.template(case) for case in VALUES_CASES}


@pytest.fixture(scope="session")
def control_plane(
    binaries: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ControlPlane]:
    plane = ControlPlane(
        etcd_binary=binaries["etcd"],
        apiserver_binary=binaries["kube-apiserver"],
        workdir=tmp_path_factory.mktemp("control-plane"),
    )
    with running(plane):
        kube = KubeApi(plane.url, plane.session())
        install_crds(kube, binaries["prometheus-operator-crds"])
        # A warning about a pod template fails the dry-run test.
        kube.create_restricted_namespace(NAMESPACE)
        yield plane


@pytest.fixture(scope="session")
def kube(control_plane: ControlPlane) -> KubeApi:
    return KubeApi(control_plane.url, control_plane.session())


def install_crds(kube: KubeApi, crd_dir: Path) -> None:
    """Create every CRD of the directory and wait until the server serves its kind."""
    crds = [yaml.safe_load(path.read_text()) for path in sorted(crd_dir.glob("*.yaml"))]
    assert crds, f"no CRD in {crd_dir}"
    for crd in crds:
        answer = kube.create(crd)
        assert answer.ok, f"CRD {crd['metadata']['name']}: {answer.status} {answer.message}"
    for crd in crds:
        name = crd["metadata"]["name"]
        wait_for(
            lambda name=name: established(kube, name),
            CRD_READY_TIMEOUT_S,
            what=f"CRD {name} Established",
        )
        # Discovery lags Established a little.
        wait_for(
            lambda crd=crd: served(kube, crd),
            CRD_READY_TIMEOUT_S,
            what=f"{crd['spec']['names']['kind']} in discovery",
        )


def established(kube: KubeApi, crd_name: str) -> bool:
    answer = kube.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", crd_name)
    conditions = answer.body.get("status", {}).get("conditions", [])
    return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)


def served(kube: KubeApi, crd: dict[str, Any]) -> bool:
    """Whether discovery lists the CRD's kind in every version it defines."""
    group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
    try:
        for version in crd["spec"]["versions"]:
            kube.resource(f"{group}/{version['name']}", kind)
    except KubeApiError:
        return False
    return True
