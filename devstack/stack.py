"""Run the real observability stack (collector, Prometheus, Alertmanager, Jaeger) on loopback.

The programs run with the config files the repo ships. The collector and Jaeger configs take their
listen/target addresses from `${env:...}` variables, so they run unmodified; Prometheus and
Alertmanager configs cannot read the environment, so a copy is rendered with only their
`host:port` targets (and, for a fast test, their intervals) replaced.

Binaries: `MLAPI_STACK_BIN_<NAME>` (e.g. MLAPI_STACK_BIN_OTELCOL) if set, else `.ci/stack-bin`.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Protocol, TypeVar

from devstack.ports import HOST, free_ports

REPO_ROOT = Path(__file__).resolve().parents[1]
COLLECTOR_CONFIG = REPO_ROOT / "otel" / "collector-config.yaml"
PROMETHEUS_CONFIG = REPO_ROOT / "observability" / "prometheus" / "prometheus.yml"
ALERTMANAGER_CONFIG = REPO_ROOT / "observability" / "alertmanager" / "alertmanager.yml"
JAEGER_CONFIG = REPO_ROOT / "observability" / "jaeger" / "config.yaml"
BINARY_NAMES = ("otelcol", "prometheus", "promtool", "alertmanager", "amtool", "jaeger")

# Test-only timings: scrape/evaluate often so a test waits seconds, not minutes.
TEST_SCRAPE_INTERVAL = "1s"
TEST_ALERT_GROUP_WAIT = "1s"
TEST_ALERT_GROUP_INTERVAL = "1s"
READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0
LOG_TAIL_LINES = 60
# Above any test's traffic, below Jaeger's memory bound (max_traces in its config).
JAEGER_SEARCH_LIMIT = 20_000

T = TypeVar("T")


class Startable(Protocol):
    def start(self) -> None: ...

    def stop(self) -> None: ...


S = TypeVar("S", bound=Startable)


@contextmanager
def running(stack: S) -> Iterator[S]:
    """`stack` started for the block and stopped however the block ends."""
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()


class StackError(RuntimeError):
    """A stack program could not be built, started or reached."""


def locate_binaries(names: Iterable[str] = BINARY_NAMES) -> dict[str, Path]:
    """Paths of the pinned binaries: from MLAPI_STACK_BIN_<NAME>, else built/cached by stack-bin."""
    found: dict[str, Path] = {}
    missing = []
    for name in names:
        override = os.environ.get(f"MLAPI_STACK_BIN_{name.upper()}")
        if override:
            found[name] = Path(override)
        else:
            missing.append(name)
    if missing:
        # No timeout: a cold build takes many minutes and prints its progress on stderr.
        result = subprocess.run(
            [str(REPO_ROOT / ".ci" / "stack-bin"), *missing],
            check=False,
            stdout=subprocess.PIPE,
            text=True,
        )
        if result.returncode != 0:
            raise StackError(f".ci/stack-bin {' '.join(missing)} failed (exit {result.returncode})")
        for line in result.stdout.splitlines():
            name, _, path = line.partition("=")
            if name in missing:
                found[name] = Path(path)
    for name in names:
        if name not in found or not os.access(found[name], os.X_OK):
            raise StackError(f"no executable for {name!r} (got {found.get(name)})")
    return found


def render(source: Path, replacements: Mapping[str, str], target: Path) -> Path:
    """Copy `source` to `target` with each exact string replaced; every one must occur."""
    text = source.read_text()
    for old, new in replacements.items():
        if old not in text:
            raise StackError(f"{source.name}: expected {old!r} to render, not found")
        text = text.replace(old, new)
    target.write_text(text)
    return target


def http_get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    """GET returning (status, body); HTTP error statuses are returned, not raised."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def http_get_json(url: str, timeout: float = 5.0) -> Any:
    status, body = http_get(url, timeout)
    if status != 200:
        raise StackError(f"GET {url} -> {status}: {body[:300]!r}")
    return json.loads(body)


def wait_for(
    predicate: Callable[[], T], timeout: float, interval: float = 0.5, what: str = "condition"
) -> T:
    """Poll `predicate` until it returns a truthy value (returned) or `timeout` seconds pass.

    Connection errors count as "not yet" (a server may still be starting); the last one is reported
    if time runs out. Any other exception (a bad query, an exited process) fails at once.
    """
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except OSError as error:
            last_error = error
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_error!r})" if last_error else ""
            raise StackError(f"timed out after {timeout:.0f}s waiting for {what}{detail}")
        time.sleep(interval)


def stop_process(
    popen: subprocess.Popen, signum: int = signal.SIGTERM, timeout: float = STOP_TIMEOUT_S
) -> None:
    """Signal a still-running process, wait for it, and kill it if it outlives `timeout`."""
    if popen.poll() is not None:
        return
    popen.send_signal(signum)
    try:
        popen.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        popen.kill()
        popen.wait(timeout=timeout)


@dataclass
class ManagedProcess:
    """One program of the stack, logging to its own file."""

    name: str
    argv: list[str]
    log_path: Path
    ready_url: str
    env: dict[str, str] = field(default_factory=dict)
    popen: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = READY_TIMEOUT_S) -> None:
        with self.log_path.open("ab") as log:
            log.write(f"--- start: {' '.join(self.argv)}\n".encode())
            log.flush()
            self.popen = subprocess.Popen(
                self.argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **self.env},
                # Own session: a Ctrl-C in the terminal reaches pytest, which stops us in order.
                start_new_session=True,
            )
        try:
            wait_for(self._ready, timeout, what=f"{self.name} at {self.ready_url}")
        except StackError as error:
            raise StackError(f"{error}\n--- {self.name} log tail:\n{self.log_tail()}") from None

    def _ready(self) -> bool:
        if self.popen is not None and self.popen.poll() is not None:
            raise StackError(f"{self.name} exited with {self.popen.returncode}")
        try:
            status, _ = http_get(self.ready_url, timeout=2.0)
        except OSError:
            return False
        return status == 200

    def stop(self) -> None:
        if self.popen is not None:
            stop_process(self.popen)

    def kill(self) -> None:
        """SIGKILL, as a crash or an OOM kill would: nothing is flushed or closed cleanly."""
        if self.popen is not None:
            stop_process(self.popen, signal.SIGKILL)

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        if not self.log_path.exists():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


class WebhookSink:
    """A loopback HTTP endpoint that records the JSON bodies Alertmanager POSTs to it."""

    def __init__(self, port: int) -> None:
        self.payloads: list[dict[str, Any]] = []
        payloads = self.payloads

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                payloads.append(json.loads(self.rfile.read(length)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                """Silence per-request logging on stderr."""

        self._server = ThreadingHTTPServer((HOST, port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        if self._thread.is_alive():  # shutdown() would wait forever for a loop never started
            self._server.shutdown()
        self._server.server_close()

    def alerts(self) -> list[dict[str, Any]]:
        """Every alert of every notification received so far."""
        return [alert for payload in list(self.payloads) for alert in payload.get("alerts", [])]


class StackQueries:
    """What the tests reach on a running stack, whoever started it: its endpoints on HOST (set
    once by `_reach`, so both kinds of stack spell every URL the same) and the Prometheus and
    Jaeger queries over them."""

    otlp_grpc_endpoint: str
    otlp_http_endpoint: str
    collector_health_url: str
    collector_exporter_url: str
    collector_metrics_url: str
    prometheus_url: str
    alertmanager_url: str
    jaeger_query_url: str

    def _reach(
        self,
        *,
        otlp_grpc: int,
        otlp_http: int,
        collector_health: int,
        collector_exporter: int,
        collector_metrics: int,
        prometheus: int,
        alertmanager: int,
        jaeger_query: int,
    ) -> None:
        """Set every endpoint from its port on HOST."""
        self.otlp_grpc_endpoint = f"{HOST}:{otlp_grpc}"
        self.otlp_http_endpoint = f"http://{HOST}:{otlp_http}"
        self.collector_health_url = f"http://{HOST}:{collector_health}/"
        self.collector_exporter_url = f"http://{HOST}:{collector_exporter}/metrics"
        self.collector_metrics_url = f"http://{HOST}:{collector_metrics}/metrics"
        self.prometheus_url = f"http://{HOST}:{prometheus}"
        self.alertmanager_url = f"http://{HOST}:{alertmanager}"
        self.jaeger_query_url = f"http://{HOST}:{jaeger_query}"

    def prom_api(self, path: str, **params: str) -> Any:
        """GET a Prometheus HTTP API path; returns its `data` (raises unless status is success)."""
        query = urllib.parse.urlencode(params)
        body = http_get_json(f"{self.prometheus_url}/api/v1/{path}?{query}")
        if body.get("status") != "success":
            raise StackError(f"Prometheus {path} {params}: {body}")
        return body["data"]

    def prom_query(self, expr: str) -> list[dict[str, Any]]:
        """Instant query: the result vector (list of {metric: {...}, value: [ts, "v"]})."""
        return self.prom_api("query", query=expr)["result"]

    def prom_total(self, selector: str) -> float | None:
        """The sum over every series of `selector`; None while none is in Prometheus."""
        result = self.prom_query(f"sum({selector})")
        return float(result[0]["value"][1]) if result else None

    def settled_total(self, selector: str, settle_s: float, timeout: float = 60.0) -> float:
        """The total (0 without series) once unchanged for `settle_s`: requests answered
        earlier may still be on their way through the pipeline, and a baseline read too early
        counts them as lost."""
        last: float | None = None
        changed_at = time.monotonic()

        def settled() -> bool:
            nonlocal last, changed_at
            value = self.prom_total(selector) or 0.0
            if value != last:
                last, changed_at = value, time.monotonic()
            return time.monotonic() - changed_at >= settle_s

        wait_for(settled, timeout, what=f"sum({selector}) to settle")
        assert last is not None
        return last

    def wait_for_total(self, selector: str, expected: float, timeout: float = 60.0) -> None:
        """Wait until sum(`selector`) == `expected`; the error names the last value seen."""
        try:
            wait_for(
                lambda: self.prom_total(selector) == expected,
                timeout,
                what=f"sum({selector}) == {expected}",
            )
        except StackError as error:
            # Read at the deadline, not when the wait began: totals keep catching up during it.
            raise StackError(
                f"{error}; last: {self.prom_total(selector)}, "
                f"per instance: {self.prom_per_instance(selector)}"
            ) from None

    def prom_per_instance(self, selector: str) -> dict[str, float]:
        """The sum per exporting process (`instance` is its service.instance.id)."""
        result = self.prom_query(f"sum by (instance) ({selector})")
        return {
            series["metric"].get("instance", ""): float(series["value"][1]) for series in result
        }

    def prom_exemplars(self, expr: str, window_s: float = 600.0) -> list[dict[str, Any]]:
        """Exemplars of the series selected by `expr` over the last `window_s` seconds."""
        now = time.time()
        return self.prom_api(
            "query_exemplars", query=expr, start=f"{now - window_s:.3f}", end=f"{now:.3f}"
        )

    def jaeger_trace(self, trace_id: str) -> dict[str, Any] | None:
        """The trace with this (hex) id from Jaeger's query API, or None if not stored."""
        status, body = http_get(f"{self.jaeger_query_url}/api/traces/{trace_id}")
        if status == 404:
            return None
        if status != 200:
            raise StackError(f"Jaeger /api/traces/{trace_id} -> {status}: {body[:300]!r}")
        data = json.loads(body).get("data") or []
        return data[0] if data else None

    def jaeger_traces(
        self, service: str, start_s: float, end_s: float, limit: int = JAEGER_SEARCH_LIMIT
    ) -> list[dict[str, Any]]:
        """`service`'s traces stored in Jaeger with spans between two Unix times."""
        query = urllib.parse.urlencode(
            {
                "service": service,
                "start": int(start_s * 1_000_000),
                "end": int(end_s * 1_000_000),
                "limit": limit,
            }
        )
        body = http_get_json(f"{self.jaeger_query_url}/api/traces?{query}", timeout=30.0)
        return body.get("data") or []

    def jaeger_trace_ids(self, service: str, start_s: float, end_s: float) -> set[str]:
        """Ids (32 hex) of `service`'s traces stored in Jaeger with spans between two Unix times."""
        # Jaeger's v1 API drops leading zeros of a trace id.
        return {t["traceID"].zfill(32) for t in self.jaeger_traces(service, start_s, end_s)}

    def jaeger_span_count(self, service: str, start_s: float, end_s: float) -> int:
        """Spans of `service`'s traces stored in Jaeger between two Unix times."""
        return sum(len(t["spans"]) for t in self.jaeger_traces(service, start_s, end_s))

    @staticmethod
    def wait_for(
        predicate: Callable[[], T], timeout: float, interval: float = 0.5, what: str = "condition"
    ) -> T:
        return wait_for(predicate, timeout, interval, what)


class Stack(StackQueries):
    """The collector, Prometheus, Alertmanager and Jaeger on free 127.0.0.1 ports.

    Endpoints are plain attributes; add another program (e.g. the service) with `add_process`.
    """

    def __init__(
        self, workdir: Path, binaries: Mapping[str, Path], rules_dir: Path | None = None
    ) -> None:
        """`rules_dir`: the Prometheus rule files to load (default: the repo's); a test may
        pass a rendering of them with shorter windows."""
        self.workdir = workdir
        self.binaries = dict(binaries)
        self.processes: dict[str, ManagedProcess] = {}
        (
            self.otlp_grpc_port,
            self.otlp_http_port,
            collector_exporter_port,
            collector_telemetry_port,
            collector_health_port,
            prometheus_port,
            alertmanager_port,
            jaeger_query_port,
            jaeger_query_grpc_port,
            jaeger_otlp_port,
            jaeger_health_port,
            jaeger_telemetry_port,
            webhook_port,
        ) = free_ports(13)
        self._reach(
            otlp_grpc=self.otlp_grpc_port,
            otlp_http=self.otlp_http_port,
            collector_health=collector_health_port,
            collector_exporter=collector_exporter_port,
            collector_metrics=collector_telemetry_port,
            prometheus=prometheus_port,
            alertmanager=alertmanager_port,
            jaeger_query=jaeger_query_port,
        )
        self.jaeger_otlp_endpoint = f"{HOST}:{jaeger_otlp_port}"
        self.webhook_url = f"http://{HOST}:{webhook_port}/alerts"
        self.webhook = WebhookSink(webhook_port)
        self.rendered_dir = workdir / "config"
        self.log_dir = workdir / "logs"
        self.rendered_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)

        self.collector_env = {
            "OTELCOL_OTLP_GRPC_ENDPOINT": self.otlp_grpc_endpoint,
            "OTELCOL_OTLP_HTTP_ENDPOINT": f"{HOST}:{self.otlp_http_port}",
            "OTELCOL_PROMETHEUS_ENDPOINT": f"{HOST}:{collector_exporter_port}",
            "OTELCOL_JAEGER_OTLP_ENDPOINT": self.jaeger_otlp_endpoint,
            "OTELCOL_HEALTH_ENDPOINT": f"{HOST}:{collector_health_port}",
            "OTELCOL_TELEMETRY_HOST": HOST,
            "OTELCOL_TELEMETRY_PORT": str(collector_telemetry_port),
            # 5 test scrape intervals: Prometheus drops exemplars of a series' first scrape.
            "OTELCOL_SPAN_METRICS_FLUSH_INTERVAL": "5s",
        }
        self.jaeger_env = {
            "JAEGER_QUERY_HTTP_ENDPOINT": f"{HOST}:{jaeger_query_port}",
            "JAEGER_QUERY_GRPC_ENDPOINT": f"{HOST}:{jaeger_query_grpc_port}",
            "JAEGER_OTLP_GRPC_ENDPOINT": self.jaeger_otlp_endpoint,
            "JAEGER_HEALTH_ENDPOINT": f"{HOST}:{jaeger_health_port}",
            "JAEGER_TELEMETRY_HOST": HOST,
            "JAEGER_TELEMETRY_PORT": str(jaeger_telemetry_port),
        }
        self.prometheus_config = render(
            PROMETHEUS_CONFIG,
            {
                "otel-collector:8889": f"{HOST}:{collector_exporter_port}",
                "otel-collector:8888": f"{HOST}:{collector_telemetry_port}",
                "jaeger:8888": f"{HOST}:{jaeger_telemetry_port}",
                "alertmanager:9093": f"{HOST}:{alertmanager_port}",
                "localhost:9090": f"{HOST}:{prometheus_port}",
                # The rendered copy lives elsewhere: point at the rules explicitly.
                "- rules/*.yml": f"- {rules_dir or PROMETHEUS_CONFIG.parent / 'rules'}/*.yml",
                "scrape_interval: 15s": f"scrape_interval: {TEST_SCRAPE_INTERVAL}",
                "scrape_interval: 5s": f"scrape_interval: {TEST_SCRAPE_INTERVAL}",
                "evaluation_interval: 15s": f"evaluation_interval: {TEST_SCRAPE_INTERVAL}",
            },
            self.rendered_dir / "prometheus.yml",
        )
        self.alertmanager_config = render(
            ALERTMANAGER_CONFIG,
            {
                "http://alert-webhook:5001/alerts": self.webhook_url,
                "group_wait: 30s": f"group_wait: {TEST_ALERT_GROUP_WAIT}",
                "group_interval: 5m": f"group_interval: {TEST_ALERT_GROUP_INTERVAL}",
            },
            self.rendered_dir / "alertmanager.yml",
        )

        self._define(
            "jaeger",
            [str(self.binaries["jaeger"]), f"--config={JAEGER_CONFIG}"],
            f"http://{HOST}:{jaeger_health_port}/status",
            self.jaeger_env,
        )
        self._define(
            "otelcol",
            [str(self.binaries["otelcol"]), f"--config={COLLECTOR_CONFIG}"],
            self.collector_health_url,
            self.collector_env,
        )
        self._define(
            "alertmanager",
            [
                str(self.binaries["alertmanager"]),
                f"--config.file={self.alertmanager_config}",
                f"--storage.path={workdir / 'alertmanager-data'}",
                f"--web.listen-address={HOST}:{alertmanager_port}",
                # Empty address: no gossip cluster (it would listen on 0.0.0.0:9094).
                "--cluster.listen-address=",
            ],
            f"{self.alertmanager_url}/-/ready",
        )
        self._define(
            "prometheus",
            [
                str(self.binaries["prometheus"]),
                f"--config.file={self.prometheus_config}",
                f"--storage.tsdb.path={workdir / 'prometheus-data'}",
                f"--web.listen-address={HOST}:{prometheus_port}",
                "--enable-feature=exemplar-storage",
            ],
            f"{self.prometheus_url}/-/ready",
        )

    def _define(
        self, name: str, argv: list[str], ready_url: str, env: Mapping[str, str] | None = None
    ) -> ManagedProcess:
        process = ManagedProcess(
            name, argv, self.log_dir / f"{name}.log", ready_url, dict(env or {})
        )
        self.processes[name] = process
        return process

    def add_process(
        self,
        name: str,
        argv: list[str],
        ready_url: str,
        env: Mapping[str, str] | None = None,
        timeout: float = READY_TIMEOUT_S,
    ) -> ManagedProcess:
        """Start one more program, stopped with the stack; returns once `ready_url` answers 200."""
        process = self._define(name, argv, ready_url, env)
        process.start(timeout)
        return process

    def start(self) -> None:
        """Start everything in dependency order (a consumer before its producers)."""
        self.webhook.start()
        for name in ("jaeger", "otelcol", "alertmanager", "prometheus"):
            self.processes[name].start()

    def stop(self) -> None:
        """Stop every program, last started first; never raises for one that already exited."""
        for process in reversed(list(self.processes.values())):
            process.stop()
        self.webhook.stop()

    def stop_collector(self) -> None:
        self.processes["otelcol"].stop()

    def start_collector(self) -> None:
        self.processes["otelcol"].start()

    def kill(self, name: str) -> None:
        """SIGKILL one program (`otelcol`, `jaeger`, ...); `restart` brings it back."""
        self.processes[name].kill()

    def restart(self, name: str) -> None:
        """Start a stopped or killed program again: same binary, config, ports and data dir;
        returns once it is ready. A program still running is stopped (SIGTERM) first."""
        process = self.processes[name]
        process.stop()
        process.start()

    def log_report(self) -> str:
        """The tail of every program's log, for a failed test's report."""
        parts = [f"stack logs in {self.log_dir}"]
        for process in self.processes.values():
            parts.append(f"===== {process.name} ({process.log_path.name}) =====")
            parts.append(process.log_tail())
        return "\n".join(parts)
