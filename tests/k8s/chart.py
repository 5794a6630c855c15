"""The chart under test, the values matrix it is checked with, and the pinned helm that renders it.

Each case is a values file an operator could write; every case is linted, rendered and sent to
the API server. Secret names are references only: the chart never holds a secret value.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
CHART_DIR = REPO / "charts" / "monitoring-ml-api"
FILES_DIR = CHART_DIR / "files"
RELEASE = "mlapi"
NAMESPACE = "mlapi-chart"
HELM_TIMEOUT_S = 120.0

VALUES_CASES: dict[str, dict[str, Any]] = {
    "defaults": {},
    "auth-on": {"auth": {"existingSecret": "mlapi-auth-tokens"}},
    "existing-secrets": {
        "feedbackKey": {"existingSecret": "mlapi-feedback-key"},
        "auth": {"existingSecret": "mlapi-auth-tokens", "key": "tokens.txt"},
    },
    "external-collector": {
        "collector": {
            "enabled": False,
            "externalEndpoint": "http://otel-collector.observability.svc:4317",
        }
    },
    "hpa-off": {"autoscaling": {"enabled": False}, "api": {"replicas": 3}},
    "networkpolicy-on": {
        "networkPolicy": {
            "enabled": True,
            "apiFrom": [
                {
                    "namespaceSelector": {
                        "matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}
                    }
                }
            ],
            "metricsFrom": [
                {
                    "namespaceSelector": {
                        "matchLabels": {"kubernetes.io/metadata.name": "monitoring"}
                    }
                }
            ],
        }
    },
    "networkpolicy-external-collector": {
        "networkPolicy": {"enabled": True},
        "collector": {
            "enabled": False,
            "externalEndpoint": "http://otel-collector.observability.svc:4317",
        },
    },
}


def env_value(key: str) -> str:
    """A KEY=value line of the repo's one versions file."""
    found = re.search(rf"^{key}=(\S+)$", (REPO / ".env").read_text(), re.MULTILINE)
    if found is None:
        raise KeyError(f"{key} is not in .env")
    return found.group(1)


@dataclass(frozen=True)
class Helm:
    binary: Path
    home: Path  # helm's cache, config and data dirs: nothing of the user's is read or written

    def run(self, *args: str, kubeconfig: Path | None = None) -> subprocess.CompletedProcess[str]:
        env = {
            **os.environ,
            "HELM_CACHE_HOME": str(self.home / "cache"),
            "HELM_CONFIG_HOME": str(self.home / "config"),
            "HELM_DATA_HOME": str(self.home / "data"),
            # No cluster unless one is given.
            "KUBECONFIG": str(kubeconfig or self.home / "no-kubeconfig"),
        }
        return subprocess.run(
            [str(self.binary), *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=HELM_TIMEOUT_S,
            check=False,
        )

    def values_file(self, values: dict[str, Any]) -> Path:
        text = yaml.safe_dump(values)
        path = self.home / f"values-{hashlib.sha256(text.encode()).hexdigest()[:12]}.yaml"
        path.write_text(text)
        return path

    def lint(self, case: str) -> subprocess.CompletedProcess[str]:
        return self.run(
            "lint",
            "--strict",
            str(CHART_DIR),
            f"--values={self.values_file(VALUES_CASES[case])}",
            f"--kube-version={env_value('KUBERNETES_VERSION')}",
        )

    def render(self, values: dict[str, Any]) -> subprocess.CompletedProcess[str]:
        """`helm template` of the chart with `values`, for the pinned Kubernetes version."""
        return self.run(
            "template",
            RELEASE,
            str(CHART_DIR),
            f"--namespace={NAMESPACE}",
            f"--values={self.values_file(values)}",
            f"--kube-version={env_value('KUBERNETES_VERSION')}",
        )

    def objects(self, values: dict[str, Any]) -> list[dict[str, Any]]:
        result = self.render(values)
        if result.returncode != 0:
            raise AssertionError(f"helm template failed:\n{result.stderr}")
        return [doc for doc in yaml.safe_load_all(result.stdout) if doc]

    def template(self, case: str) -> list[dict[str, Any]]:
        """The objects rendered for one values case."""
        return self.objects(VALUES_CASES[case])


def kinds(objects: list[dict[str, Any]]) -> Counter[str]:
    return Counter(obj["kind"] for obj in objects)


def one(objects: list[dict[str, Any]], kind: str, name_suffix: str = "") -> dict[str, Any]:
    """The single rendered object of `kind` whose name ends with `name_suffix`."""
    found = [
        obj
        for obj in objects
        if obj["kind"] == kind and obj["metadata"]["name"].endswith(name_suffix)
    ]
    if len(found) != 1:
        names = [obj["metadata"]["name"] for obj in found]
        raise AssertionError(f"expected one {kind} *{name_suffix}, rendered {names}")
    return found[0]
