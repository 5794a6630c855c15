"""Compose hardening without a Docker engine: every container runs as a non-root user, and neither
docker-compose.yml nor the repo's config files hold a literal password, secret, token or key.

Users are read from what the real compose binary resolves (all profiles): a service's `user:`,
else the last USER of our own Dockerfile, else the upstream image's default USER (table below).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.unit.compose_cli import REPO, resolved_config

# The USER each upstream image runs as when compose does not set one (None: no USER, i.e. root),
# read from the final stage of its Dockerfile at the tags pinned in .env.
UPSTREAM_USERS: dict[str, str | None] = {
    "prom/prometheus": "nobody",  # prometheus/prometheus Dockerfile: `USER nobody`
    "prom/alertmanager": "nobody",  # prometheus/alertmanager Dockerfile: `USER nobody`
    "jaegertracing/jaeger": "10001",  # jaegertracing/jaeger cmd/jaeger/Dockerfile: USER_UID=10001
    "grafana/grafana": "472",  # grafana/grafana Dockerfile: `USER "$GF_UID"`, GF_UID=472
    "python": None,  # docker-library/python: no USER
    "busybox": None,  # docker-library/busybox: no USER
}
ROOT_USERS = {None, "", "0", "root"}

# A bare `key` is a label name in Grafana's provisioning; a compound one (API_KEY, FEEDBACK_KEY) is
# a secret.
SECRET_KEY = re.compile(r"passw(or)?d|secret|token|credential|[_-]key$", re.IGNORECASE)
# A secret may only arrive from the environment with an empty default, or as a path to a file.
ENV_REFERENCE = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*(:?-)?\}")
FILE_KEY = re.compile(r"_file$", re.IGNORECASE)


@pytest.fixture(scope="module")
def services() -> dict[str, dict[str, Any]]:
    return resolved_config()["services"]


def dockerfile_user(build: dict[str, Any]) -> str | None:
    """The last USER of a Dockerfile: the one its final stage runs as."""
    dockerfile = Path(build["context"]) / build.get("dockerfile", "Dockerfile")
    users = re.findall(r"^USER\s+(\S+)", dockerfile.read_text(), re.MULTILINE)
    return users[-1] if users else None


def effective_user(service: dict[str, Any]) -> str | None:
    if service.get("user"):
        return service["user"]
    if "build" in service:
        return dockerfile_user(service["build"])
    repository = service["image"].rsplit(":", 1)[0]
    assert repository in UPSTREAM_USERS, f"{repository}: add its upstream USER to UPSTREAM_USERS"
    return UPSTREAM_USERS[repository]


def is_root(user: str | None) -> bool:
    return user is None or user.split(":")[0] in ROOT_USERS


def test_every_service_runs_as_a_non_root_user(services: dict[str, dict[str, Any]]) -> None:
    users = {name: effective_user(service) for name, service in services.items()}
    assert {"api", "otel-collector", "grafana-secret", "replay"} <= users.keys()
    assert [name for name, user in users.items() if is_root(user)] == [], users


def test_an_image_without_user_counts_as_root() -> None:
    """The control: the webhook's python image would run as root without its `user:`."""
    assert is_root(effective_user({"image": "python:3.11-slim"}))
    assert not is_root(effective_user({"image": "python:3.11-slim", "user": "65534"}))
    assert is_root(effective_user({"image": "busybox:1.37.0", "user": "0:0"}))


def config_files() -> list[Path]:
    files = [REPO / "docker-compose.yml", REPO / "charts" / "monitoring-ml-api" / "values.yaml"]
    for folder in ("otel", "observability"):
        files += sorted(
            path for path in (REPO / folder).rglob("*") if path.suffix in {".yml", ".yaml", ".json"}
        )
    return files


def literal_secrets(node: Any, where: str = "") -> list[str]:
    """Paths of secret-named keys (mapping keys or KEY=value items) that hold a literal value."""
    if isinstance(node, dict):
        items = [(str(key), value) for key, value in node.items()]
    elif isinstance(node, list):
        items = [(f"[{i}]", value) for i, value in enumerate(node)]
        items += [
            tuple(value.split("=", 1))
            for value in node
            if isinstance(value, str) and re.fullmatch(r"\w+=.*", value, re.DOTALL)
        ]
    else:
        return []
    found = []
    for key, value in items:
        if isinstance(value, dict | list):
            found += literal_secrets(value, f"{where}/{key}")
        elif SECRET_KEY.search(key) and not FILE_KEY.search(key):
            text = "" if value is None else str(value)
            if text and not ENV_REFERENCE.fullmatch(text):
                found.append(f"{where}/{key}")
    return found


def load(path: Path) -> Any:
    text = path.read_text()
    return json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)


@pytest.mark.parametrize("path", config_files(), ids=lambda path: str(path.relative_to(REPO)))
def test_config_files_hold_no_literal_secret(path: Path) -> None:
    assert literal_secrets(load(path)) == []


def test_the_versions_file_holds_no_secret() -> None:
    entries = re.findall(r"^(\w+)=(.*)$", (REPO / ".env").read_text(), re.MULTILINE)
    assert len(entries) > 5
    assert [key for key, value in entries if SECRET_KEY.search(key) and value.strip()] == []


def test_the_secret_check_flags_literals_and_accepts_references() -> None:
    """The control for the checks above."""
    config = {
        "services": {
            "grafana": {
                "environment": {
                    "GF_SECURITY_ADMIN_PASSWORD": "admin",
                    "GF_SECURITY_ADMIN_PASSWORD__FILE": "/var/lib/grafana/admin-password",
                    "MLAPI_FEEDBACK_KEY": "${MLAPI_FEEDBACK_KEY:-}",
                    "MLAPI_AUTH_TOKENS": "${MLAPI_AUTH_TOKENS:-changeme}",
                }
            },
            "api": {"environment": ["API_TOKEN=abc123", "OTEL_SERVICE_NAME=mlapi"]},
        },
        "receivers": [{"slack_configs": [{"api_url_file": "/run/secrets/x", "api_key": "k"}]}],
    }
    assert literal_secrets(config) == [
        "/services/grafana/environment/GF_SECURITY_ADMIN_PASSWORD",
        "/services/grafana/environment/MLAPI_AUTH_TOKENS",
        "/services/api/environment/API_TOKEN",
        "/receivers/[0]/slack_configs/[0]/api_key",
    ]
