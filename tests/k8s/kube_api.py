"""The few Kubernetes API calls the chart tests make, as plain HTTP: discovery (which resource
path serves a kind), create, get, and a server-side dry run with strict field validation."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import requests

TIMEOUT_S = 10.0
# Server-side dry run: admission and validation run, nothing is stored. Strict: an unknown or
# duplicated field is an error, not a warning that drops it.
DRY_RUN_STRICT = {"dryRun": "All", "fieldValidation": "Strict"}
# PodSecurity admission: refuse pods that break the restricted profile, and warn about
# Deployments whose pod template would.
POD_SECURITY_RESTRICTED = {
    f"pod-security.kubernetes.io/{mode}": "restricted" for mode in ("enforce", "warn", "audit")
}


# Each warning is `299 - "text"` with `\"` escapes (RFC 7234); requests joins repeated headers
# with ", ".
_WARNING = re.compile(r'299 - "((?:[^"\\]|\\.)*)"')
_UNESCAPE = re.compile(r"\\(.)")


class KubeApiError(RuntimeError):
    """The API server answered something other than success."""


@dataclass(frozen=True)
class Resource:
    path: str  # /api/v1 or /apis/<group>/<version>
    plural: str
    namespaced: bool

    def collection_url(self, base_url: str, namespace: str | None) -> str:
        scope = f"/namespaces/{namespace}" if self.namespaced else ""
        return f"{base_url}{self.path}{scope}/{self.plural}"


@dataclass(frozen=True)
class Answer:
    """What the API server said to one request: status, JSON body, and its Warning headers."""

    status: int
    body: dict[str, Any]
    warnings: list[str]

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def message(self) -> str:
        return str(self.body.get("message", self.body))


class KubeApi:
    def __init__(self, base_url: str, session: requests.Session) -> None:
        self.base_url = base_url
        self.session = session

    def resource(self, api_version: str, kind: str) -> Resource:
        """The collection that serves `kind` of `api_version`, from the server's discovery."""
        path = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
        answer = self._answer(self.session.get(f"{self.base_url}{path}", timeout=TIMEOUT_S))
        if not answer.ok:
            raise KubeApiError(f"GET {path} -> {answer.status}: {answer.message}")
        for entry in answer.body["resources"]:
            if entry["kind"] == kind and "/" not in entry["name"]:  # not a subresource
                return Resource(path, entry["name"], entry["namespaced"])
        raise KubeApiError(f"the API server serves no {kind} in {api_version}")

    def create(
        self, obj: dict[str, Any], namespace: str | None = None, *, dry_run: bool = False
    ) -> Answer:
        resource = self.resource(obj["apiVersion"], obj["kind"])
        response = self.session.post(
            resource.collection_url(self.base_url, namespace),
            json=obj,
            params=DRY_RUN_STRICT if dry_run else {"fieldValidation": "Strict"},
            timeout=TIMEOUT_S,
        )
        return self._answer(response)

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> Answer:
        resource = self.resource(api_version, kind)
        url = f"{resource.collection_url(self.base_url, namespace)}/{name}"
        return self._answer(self.session.get(url, timeout=TIMEOUT_S))

    def create_restricted_namespace(self, name: str) -> None:
        namespace = {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": name, "labels": POD_SECURITY_RESTRICTED},
        }
        answer = self.create(namespace)
        if not answer.ok:
            raise KubeApiError(f"namespace {name}: {answer.status} {answer.message}")

    @staticmethod
    def _answer(response: requests.Response) -> Answer:
        try:
            body = response.json()
        except ValueError:
            body = {"message": response.text[:500]}
        header = response.headers.get("Warning", "")
        warnings = [_UNESCAPE.sub(r"\1", text) for text in _WARNING.findall(header)]
        return Answer(response.status_code, body, warnings)
