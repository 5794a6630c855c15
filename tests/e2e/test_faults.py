"""Faults under load: parts of the stack die while replay drives the service at a steady rate.

This module runs its own stack (a fault here must not disturb other modules' data) and its own
deployment (2 gunicorn workers over OTLP, job `mlapi-faults`). Each test runs replay at RATE
req/s, breaks one program mid-run, brings it back (same binary, config, ports and data dir) and
checks what the service's users saw (replay's report) and what the telemetry kept.

What is proven, per fault:
- collector SIGKILLed for OUTAGE_S: every request served in time; counters catch up exactly
  (OTLP counters are cumulative); traces resume; the traces lost are those of requests served
  in a window around the outage, measured and recorded (`record_property`).
- Jaeger SIGKILLed for OUTAGE_S: the service does not notice; the collector's bounded queue
  holds the traces and delivers them to the restarted Jaeger.
- Prometheus stopped and started on its data dir: the service does not notice; the series go on.
- the service SIGTERMed under load: exits 0 within EXIT_BUDGET_S, a request in flight is
  answered in full, so is every request it read, connections after its exit are refused, and
  its counters reach Prometheus (see the test for the drain-window gap).
"""

from __future__ import annotations

import csv
import http.client
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest

from devstack.ports import HOST
from devstack.server import ServerProcess
from devstack.stack import Stack, running, stop_process
from tests.e2e.deployment import REPLAY_TIMEOUT_S, deploy, replay_command

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.binaries_only(reason="kills and restarts programs of its own stack"),
]

JOB = "mlapi-faults"
RATE = 50
REPLAY_S = 24
OUTAGE_S = 8.0
PROMETHEUS_DOWN_S = 3.0
# No request may take this long (replay measures from each request's due time). The SDK's export
# timeout is 2 s: a request that waited on an export to a dead collector would take at least
# that. A correctness bound, far above the ~10-50 ms requests take on a busy host.
LATENCY_BUDGET_MS = 2000.0
# A count reaches Prometheus within export interval (1 s) + collector batch (1 s) + scrape (1 s).
SETTLE_S = 5.0
PIPELINE_TIMEOUT_S = 60.0
# Spans of requests served this long before a SIGKILL may still sit in the service's batch
# (200 ms), the collector's batch (1 s) or Jaeger's: lost with the process, by design.
IN_FLIGHT_S = 2.0
# The long outage: the whole run, against a buffer far smaller than its spans (per worker).
LONG_OUTAGE_S = 60
SMALL_BUFFER_SPANS = 1500
# Spans per request the service traces: an answered /predict has `validate` and `model.predict`
# under its server span; probes and scrapes have none; any other request one.
PREDICT_SPANS = 3
UNTRACED_PATHS = {"/healthz", "/readyz", "/metrics"}
EXIT_BUDGET_S = 5.0
REQUESTS = f'http_server_request_duration_seconds_count{{job="{JOB}", http_route="/predict"}}'


@pytest.fixture(scope="module")
def stack(stack_binaries, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """This module's own stack: its programs get killed."""
    with running(Stack(tmp_path_factory.mktemp("faults-stack"), stack_binaries)) as stack:
        yield stack


@pytest.fixture(scope="module")
def service(stack: Stack, trained_model, tmp_path_factory) -> Iterator[ServerProcess]:
    log_path = tmp_path_factory.mktemp("faults-service") / "service.log"
    with deploy(stack, trained_model.artifact_path, JOB, log_path) as process:
        yield process


def access_records(log_text: str) -> list[dict[str, Any]]:
    """The JSON access-log lines of a service log."""
    return [json.loads(line) for line in log_text.splitlines() if line.startswith("{")]


def served_requests(log_text: str) -> dict[str, float]:
    """Trace id -> Unix time of each POST /predict answered 200, from the JSON access log."""
    return {
        record["trace_id"]: datetime.fromisoformat(record["time"]).timestamp()
        for record in access_records(log_text)
        if record.get("path") == "/predict" and record.get("status") == 200
    }


def traced_spans(record: dict[str, Any]) -> int:
    """The spans the service made for the request of one access-log line."""
    if record.get("path") in UNTRACED_PATHS:
        return 0
    return PREDICT_SPANS if record.get("path") == "/predict" and record["status"] == 200 else 1


class SteadyReplay:
    """The replay CLI at RATE req/s against `service` for `duration_s`, in the background.

    Entering returns once the service has answered the run's first request; leaving waits for
    the run to end. Replay exports no spans of its own (no OTEL_* variables): the traces counted
    are the service's.
    """

    def __init__(
        self, csv: Path, service: ServerProcess, report: Path, duration_s: int, *args: str
    ) -> None:
        self.argv = replay_command(
            csv,
            service.url,
            f"--rate={RATE}",
            f"--duration={duration_s}",
            "--concurrency=8",
            "--loop",
            f"--report={report}",
            *args,
        )
        self.service = service
        self.report_path = report
        self.log_offset = len(service.log_text())
        self.started_at = 0.0
        self.run: subprocess.Popen[str] | None = None
        self.stderr = ""

    def __enter__(self) -> SteadyReplay:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
        self.started_at = time.time()
        self.run = subprocess.Popen(
            self.argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        try:
            Stack.wait_for(self.served, PIPELINE_TIMEOUT_S, what="replay's first answer")
        except BaseException:
            stop_process(self.run, signal.SIGKILL)
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self.run is not None
        try:
            _, self.stderr = self.run.communicate(timeout=REPLAY_TIMEOUT_S)
        finally:
            stop_process(self.run, signal.SIGKILL)

    def served(self) -> dict[str, float]:
        """This run's requests the service answered 200 so far (trace id -> Unix time)."""
        return served_requests(self.service.log_text()[self.log_offset :])

    def report(self) -> dict[str, Any]:
        assert self.run is not None and self.run.returncode is not None
        assert self.report_path.exists(), f"replay exit {self.run.returncode}: {self.stderr}"
        return json.loads(self.report_path.read_text())


def assert_every_request_served(run: SteadyReplay) -> dict[str, Any]:
    """Replay saw only 200s, none slower than the budget; the access log agrees."""
    report = run.report()
    assert run.run is not None and run.run.returncode == 0, run.stderr[-2000:]
    assert report["failed"] == 0 and report["feedback_failed"] == 0, report
    assert report["status_counts"] == {"200": report["sent"]}, report
    assert report["latency_ms"]["max"] < LATENCY_BUDGET_MS, report["latency_ms"]
    assert len(run.served()) == report["sent"]
    return report


def collector_queue_peak(stack: Stack, start_s: float, end_s: float) -> float:
    """Highest queue size of the collector's exporter to Jaeger that Prometheus scraped."""
    result = stack.prom_query(
        f'max(max_over_time(otelcol_exporter_queue_size{{exporter="otlp_grpc/jaeger"}}'
        f"[{int(end_s - start_s) + 1}s] @ {end_s:.3f}))"
    )
    return float(result[0]["value"][1]) if result else 0.0


def stored_traces(stack: Stack, run: SteadyReplay) -> set[str]:
    return stack.jaeger_trace_ids(JOB, run.started_at - 5, time.time() + 5)


def test_collector_killed_then_restarted(
    stack: Stack, service: ServerProcess, trained_model, tmp_path: Path, record_property
) -> None:
    before = stack.settled_total(REQUESTS, SETTLE_S)
    with SteadyReplay(
        trained_model.holdout_path, service, tmp_path / "report.json", REPLAY_S
    ) as run:
        killed_at = time.time()
        stack.kill("otelcol")
        time.sleep(OUTAGE_S)
        stack.restart("otelcol")
        back_at = time.time()
    report = assert_every_request_served(run)
    # The SDK's counters are cumulative: the first export after the outage carries the total.
    stack.wait_for_total(REQUESTS, before + report["sent"], PIPELINE_TIMEOUT_S)

    served = run.served()
    last = max(served, key=served.__getitem__)
    stack.wait_for(
        lambda: last in stored_traces(stack, run),
        PIPELINE_TIMEOUT_S,
        what="the run's last trace in Jaeger",
    )
    stored = stored_traces(stack, run)
    lost = {trace: at for trace, at in served.items() if trace not in stored}
    outage = [at for at in served.values() if killed_at <= at <= back_at]
    record_property("collector_outage_s", round(back_at - killed_at, 1))
    record_property("collector_outage_requests", report["sent"])
    record_property("collector_outage_requests_during_outage", len(outage))
    record_property("collector_outage_traces_lost", len(lost))
    record_property("collector_outage_latency_ms", report["latency_ms"])
    # Every request answered from the kill on has its trace: the service kept the spans it
    # could not send and delivered them once the collector was back. Only spans the collector
    # had accepted just before its SIGKILL (its own 1 s batch) can be gone, with its process.
    assert len(outage) > OUTAGE_S * RATE / 2
    assert {trace: at for trace, at in lost.items() if at >= killed_at} == {}, (
        f"{len(lost)} traces lost, the last {max(lost.values()) - killed_at:+.1f} s from the kill"
    )
    assert all(killed_at - IN_FLIGHT_S <= at for at in lost.values())


def test_an_outage_longer_than_the_buffer_drops_exactly_what_it_counts(
    stack: Stack, trained_model, tmp_path: Path, record_property
) -> None:
    """A collector down for a whole run, with a buffer too small for it: every span of the run
    reaches Jaeger once the collector is back, or is counted as dropped, one or the other."""
    job = f"{JOB}-buffer"
    env = {"MLAPI_TRACE_BUFFER_SPANS": str(SMALL_BUFFER_SPANS)}
    log_path = tmp_path / "service.log"
    with deploy(stack, trained_model.artifact_path, job, log_path, env) as service:
        stack.kill("otelcol")
        started = time.time()
        try:
            with SteadyReplay(
                trained_model.holdout_path, service, tmp_path / "report.json", LONG_OUTAGE_S
            ) as run:
                pass
        finally:
            stack.restart("otelcol")
        report = assert_every_request_served(run)
        dropped = f'mlapi_telemetry_spans_dropped_total{{job="{job}"}}'
        stack.wait_for(
            lambda: (stack.prom_total(dropped) or 0) > 0,
            PIPELINE_TIMEOUT_S,
            what=f"{dropped} after the outage",
        )
        dropped_spans = stack.settled_total(dropped, SETTLE_S, PIPELINE_TIMEOUT_S)
        # From the access log: replay's /predict and /feedback requests, and its GET /model.
        expected_spans = sum(map(traced_spans, access_records(service.log_text())))

        def stored() -> int:
            return stack.jaeger_span_count(job, started - 5, time.time() + 5)

        stack.wait_for(
            lambda: stored() >= expected_spans - dropped_spans,
            PIPELINE_TIMEOUT_S,
            what="the buffered spans in Jaeger",
        )
        stored_spans = stored()
    record_property("long_outage_s", LONG_OUTAGE_S)
    record_property("long_outage_requests", report["sent"])
    record_property("long_outage_spans_sent", expected_spans)
    record_property("long_outage_spans_stored", stored_spans)
    record_property("long_outage_spans_dropped", dropped_spans)
    # The buffer was too small (else this test proves nothing), and the accounts balance.
    assert dropped_spans > 0
    assert stored_spans + dropped_spans == expected_spans


def test_jaeger_killed_then_restarted(
    stack: Stack, service: ServerProcess, trained_model, tmp_path: Path, record_property
) -> None:
    with SteadyReplay(
        trained_model.holdout_path, service, tmp_path / "report.json", REPLAY_S
    ) as run:
        killed_at = time.time()
        stack.kill("jaeger")
        time.sleep(OUTAGE_S)
        down_until = time.time()
        stack.restart("jaeger")
    assert_every_request_served(run)

    # Jaeger keeps traces in memory: the restarted one holds only what the collector's queue
    # delivered after it came back, i.e. every request answered after the kill.
    served = run.served()
    expected = {trace for trace, at in served.items() if at > killed_at + IN_FLIGHT_S}
    queued = {trace for trace, at in served.items() if killed_at + IN_FLIGHT_S < at < down_until}
    stack.wait_for(
        lambda: expected <= stored_traces(stack, run),
        PIPELINE_TIMEOUT_S,
        what=f"the {len(expected)} traces answered after the kill in the restarted Jaeger",
    )
    peak = collector_queue_peak(stack, killed_at, down_until)
    record_property("jaeger_outage_s", round(down_until - killed_at, 1))
    record_property("jaeger_outage_traces_queued", len(queued))
    record_property("jaeger_outage_collector_queue_peak_batches", peak)
    assert queued and peak > 0
    # Nothing was dropped: the queue had room (enqueue) and retries outlasted the outage (send).
    # Both series only appear once non-zero, so absent counts as 0 — but only next to a sent
    # counter of the same exporter, so a misspelt selector yields None and fails.
    exporter = '{exporter="otlp_grpc/jaeger"}'
    for dropped in ("enqueue_failed", "send_failed"):
        dropped_or_zero = (
            f"otelcol_exporter_{dropped}_spans_total{exporter} "
            f"or 0 * otelcol_exporter_sent_spans_total{exporter}"
        )
        assert stack.prom_total(dropped_or_zero) == 0, dropped


def test_prometheus_restarted(
    stack: Stack, service: ServerProcess, trained_model, tmp_path: Path
) -> None:
    before = stack.settled_total(REQUESTS, SETTLE_S)
    with SteadyReplay(
        trained_model.holdout_path, service, tmp_path / "report.json", REPLAY_S
    ) as run:
        stack.wait_for(
            lambda: (stack.prom_total(REQUESTS) or 0.0) > before,
            PIPELINE_TIMEOUT_S,
            what="the run's first requests in Prometheus",
        )
        stopped_at = time.time()
        stack.processes["prometheus"].stop()
        time.sleep(PROMETHEUS_DOWN_S)
        stack.restart("prometheus")
        back_at = time.time()
    report = assert_every_request_served(run)
    stack.wait_for_total(REQUESTS, before + report["sent"], PIPELINE_TIMEOUT_S)

    # Raw samples of each worker's series: kept from before the stop, appended after the start.
    window_s = int(time.time() - run.started_at) + 5
    series = stack.prom_query(f"{REQUESTS}[{window_s}s]")
    assert len(series) == 2, series  # one per gunicorn worker
    for one in series:
        times = [float(t) for t, _ in one["values"]]
        values = [float(v) for _, v in one["values"]]
        assert min(times) < stopped_at and max(times) > back_at, one["metric"]
        assert values == sorted(values), f"counter went down across the restart: {values}"


def refused(port: int) -> bool:
    """Whether a new connection to the port is refused (nothing listens there any more)."""
    try:
        with socket.create_connection((HOST, port), timeout=2.0):
            return False
    except ConnectionRefusedError:
        return True


class HeldRequest:
    """A POST /predict in flight on purpose: connected, headers and half of the body sent;
    `finish` sends the rest. Whether a worker has accepted it yet or it waits in the listen
    backlog (every sync worker busy), a graceful stop must answer it."""

    def __init__(self, port: int, record: dict[str, float]) -> None:
        self.body = json.dumps({"records": [record]}).encode()
        self.sock = socket.create_connection((HOST, port), timeout=10.0)
        self.sock.sendall(
            b"POST /predict HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % len(self.body) + self.body[:10]
        )

    def finish(self) -> tuple[int, dict[str, Any]]:
        with self.sock:
            self.sock.sendall(self.body[10:])
            response = http.client.HTTPResponse(self.sock)
            response.begin()
            return response.status, json.loads(response.read())


def first_record(csv_path: Path, features: tuple[str, ...]) -> dict[str, float]:
    with csv_path.open(newline="") as handle:
        row = next(csv.DictReader(handle))
    return {name: float(row[name]) for name in features}


def test_service_sigterm_under_load(
    stack: Stack, trained_model, tmp_path: Path, record_property
) -> None:
    """SIGTERM to the gunicorn master while replay sends 20-row requests at RATE req/s and one
    more request is held half-sent.

    Known gap (measured: 1-2 per run with the default sync workers, 8 with 2 x 4 gthread):
    until the last worker exits, the listening socket stays open in the workers, so the kernel
    still completes new connections; a worker that has finished draining its backlog accepts
    none, and they are reset when the workers exit. Replay counts them as `connection` errors.
    The accounting below proves the service never read those requests: nothing it answered was
    lost.
    """
    job = f"{JOB}-sigterm"
    requests = f'http_server_request_duration_seconds_count{{job="{job}", http_route="/predict"}}'
    record = first_record(trained_model.holdout_path, trained_model.card.feature_names)
    process = deploy(stack, trained_model.artifact_path, job, tmp_path / "service.log")
    with (
        process,
        SteadyReplay(
            trained_model.holdout_path,
            process,
            tmp_path / "report.json",
            12,
            "--batch-size=20",
            "--max-error-rate=1",
        ) as run,
    ):
        time.sleep(1.0)  # under load, not at the first request
        held = HeldRequest(process.port, record)
        signalled_at = time.monotonic()
        process.signal(signal.SIGTERM)
        time.sleep(0.5)  # the workers are draining when the held request's body completes
        held_status, held_payload = held.finish()
        exit_code = process.wait(timeout=EXIT_BUDGET_S)
        exit_s = time.monotonic() - signalled_at
        refused_after_exit = refused(process.port)
    report = run.report()
    record_property("sigterm_exit_s", round(exit_s, 2))
    record_property("sigterm_replay", {k: report[k] for k in ("status_counts", "error_counts")})
    assert held_status == 200 and len(held_payload["predictions"]) == 1, held_payload
    assert exit_code == 0, process.log_tail()
    assert refused_after_exit
    # Only 200s: no 5xx, no request cut by a timeout; connections refused once nothing listens
    # (`connect`), or reset unread during the drain (`connection`, see above).
    assert set(report["status_counts"]) == {"200"}, report
    assert set(report["error_counts"]) <= {"connect", "connection"}, report["error_counts"]
    # Every request the service answered reached its client as a complete 200 ...
    answered = report["status_counts"]["200"] + 1
    assert len(run.served()) == answered
    # ... and was counted: worker_exit flushed the last counts on the way out.
    stack.wait_for_total(requests, answered, PIPELINE_TIMEOUT_S)
