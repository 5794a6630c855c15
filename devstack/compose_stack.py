"""The e2e suite's second mode: the same assertions against a running `docker compose up`.

Selected with MLAPI_E2E_STACK=compose (default: binaries, i.e. `stack.Stack`); `make compose-e2e`
brings the stack up (`.ci/compose-stack up`), runs this mode and takes the stack down again. The
stack is not started here, only checked to be ready. Endpoints are the ports docker-compose.yml
publishes on 127.0.0.1; the deployed service is the compose `api` (job `mlapi`). Compose is
MLAPI_COMPOSE (e.g. a compose binary) or `docker compose`, with the image variables
`.ci/compose-stack up` chose (stand-ins where no registry is reachable), so that a container
recreated by a test comes from the same image.

Not offered, so tests needing them are deselected in this mode (marker `binaries_only`): the
programs' log files and binaries (`processes`, `binaries`, `add_process`), the loopback webhook sink
(`webhook`; compose's Alertmanager notifies the `alert-webhook` container), and rendered configs
with test-speed intervals (compose runs the shipped 5-15 s scrape/evaluation intervals). Tests of
the containers themselves (marker `compose_only`) run only in this mode.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from devstack.ports import HOST
from devstack.stack import (
    LOG_TAIL_LINES,
    READY_TIMEOUT_S,
    REPO_ROOT,
    StackError,
    StackQueries,
    http_get,
)

STACK_MODE_ENV = "MLAPI_E2E_STACK"
BINARIES_MODE = "binaries"
COMPOSE_MODE = "compose"
COMPOSE_TIMEOUT_S = 300.0
COMPOSE_ENV = "MLAPI_COMPOSE"
COMPOSE_STACK_SCRIPT = REPO_ROOT / ".ci" / "compose-stack"

# Where each endpoint lives: (compose service, container port), published on the same host port.
# tests/unit/test_compose_stack.py checks these against `docker compose config`.
ENDPOINTS = {
    "api": ("api", 8000),
    "otlp_grpc": ("otel-collector", 4317),
    "otlp_http": ("otel-collector", 4318),
    "collector_health": ("otel-collector", 13133),
    "collector_exporter": ("otel-collector", 8889),
    "collector_metrics": ("otel-collector", 8888),
    "prometheus": ("prometheus", 9090),
    "alertmanager": ("alertmanager", 9093),
    "jaeger_query": ("jaeger", 16686),
}
COLLECTOR_SERVICE = "otel-collector"
LOGGED_SERVICES = ("api", "otel-collector", "prometheus", "alertmanager", "jaeger")


def stack_mode() -> str:
    """`binaries` or `compose`, from MLAPI_E2E_STACK; anything else is a usage error."""
    mode = os.environ.get(STACK_MODE_ENV, BINARIES_MODE)
    if mode not in (BINARIES_MODE, COMPOSE_MODE):
        raise StackError(f"{STACK_MODE_ENV}={mode!r}: expected {BINARIES_MODE} or {COMPOSE_MODE}")
    return mode


def compose_command() -> tuple[str, ...]:
    """The compose CLI: MLAPI_COMPOSE (split like a shell would) if set and not empty, else
    `docker compose`."""
    return tuple(shlex.split(os.environ.get(COMPOSE_ENV) or "docker compose"))


def image_variables() -> dict[str, str]:
    """The image variables of the last `.ci/compose-stack up` (none before the first)."""
    result = subprocess.run(
        [str(COMPOSE_STACK_SCRIPT), "env"], capture_output=True, text=True, check=True, timeout=30
    )
    return dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)


@dataclass(frozen=True)
class ComposeService:
    """The compose `api` container, in place of the `mlapi serve` the binaries mode starts."""

    url: str = f"http://{HOST}:{ENDPOINTS['api'][1]}"
    # OTEL_SERVICE_NAME in docker-compose.yml: the `job` label of its metrics.
    job: str = "mlapi"


class ComposeStack(StackQueries):
    """A running `docker compose up` of this repository, reached on its published ports."""

    # A count reaches Prometheus within the api's export interval (10 s in docker-compose.yml) +
    # the collector's batch timeout (1 s) + Prometheus' scrape interval of the exporter (5 s).
    settle_s = 20.0

    def __init__(
        self,
        compose: Sequence[str] | None = None,
        project_dir: Path = REPO_ROOT,
        images: dict[str, str] | None = None,
    ) -> None:
        self.compose = tuple(compose) if compose is not None else compose_command()
        self.project_dir = project_dir
        self.env = {**os.environ, **(image_variables() if images is None else images)}
        self.service = ComposeService()
        self._reach(**{name: port for name, (_, port) in ENDPOINTS.items() if name != "api"})
        self._collector_stopped = False

    def ready_urls(self) -> dict[str, str]:
        return {
            "api": f"{self.service.url}/readyz",
            "otel-collector": self.collector_health_url,
            "prometheus": f"{self.prometheus_url}/-/ready",
            "alertmanager": f"{self.alertmanager_url}/-/ready",
            "jaeger": f"{self.jaeger_query_url}/api/services",
        }

    def compose_argv(self, *args: str) -> list[str]:
        return [*self.compose, "--project-directory", str(self.project_dir), *args]

    def run_compose(self, *args: str) -> str:
        """`docker compose ARGS` for this project; its stdout (raises on a non-zero exit)."""
        argv = self.compose_argv(*args)
        result = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=COMPOSE_TIMEOUT_S,
            check=False,
            env=self.env,
        )
        if result.returncode != 0:
            raise StackError(f"{' '.join(argv)} -> exit {result.returncode}: {result.stderr}")
        return result.stdout

    def _wait_ready(self, name: str, url: str) -> None:
        def ready() -> bool:
            return http_get(url, timeout=2.0)[0] == 200

        try:
            self.wait_for(ready, READY_TIMEOUT_S, what=f"{name} at {url}")
        except StackError as error:
            raise StackError(f"{error}; is `docker compose up -d` running?") from None

    def start(self) -> None:
        """Check that every service the tests reach answers (the stack is started by the user)."""
        for name, url in self.ready_urls().items():
            self._wait_ready(name, url)

    def stop(self) -> None:
        """Leave the stack as found: restart the collector if a failed test left it stopped."""
        if self._collector_stopped:
            self.start_collector()

    def stop_collector(self) -> None:
        self._collector_stopped = True
        self.run_compose("stop", COLLECTOR_SERVICE)

    def start_collector(self) -> None:
        self.run_compose("start", COLLECTOR_SERVICE)
        self._collector_stopped = False
        self._wait_ready(COLLECTOR_SERVICE, self.collector_health_url)

    def log_report(self) -> str:
        """The tail of each service's compose log, for a failed test's report (never raises)."""
        parts = []
        for name in LOGGED_SERVICES:
            parts.append(f"===== docker compose logs {name} =====")
            try:
                parts.append(
                    self.run_compose("logs", "--no-color", f"--tail={LOG_TAIL_LINES}", name)
                )
            except (OSError, subprocess.SubprocessError, StackError) as error:
                parts.append(f"(no log: {error})")
        return "\n".join(parts)
