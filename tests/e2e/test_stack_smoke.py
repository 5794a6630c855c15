"""The shipped stack configs work with the real programs, without our service in the loop.

Telemetry is sent from this test process with the OpenTelemetry SDK, as two "instances" (like two
gunicorn workers), and followed through collector -> Prometheus (with exemplars) and -> Jaeger.
Each run sends under a service name of its own, so a long-running (compose) stack's earlier runs
are not counted.
"""

from __future__ import annotations

import re
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, format_trace_id

from devstack.stack import ALERTMANAGER_CONFIG, COLLECTOR_CONFIG, PROMETHEUS_CONFIG, Stack

pytestmark = pytest.mark.e2e

SPAN_NAME = "smoke-request"
# Names as the collector's prometheus exporter translates them (unit and _total suffixes added).
REQUESTS_METRIC = "smoke_requests_total"
DURATION_METRIC = "smoke_request_duration_milliseconds"
# What each fake instance records: requests counted and their durations (ms).
INSTANCES = {"smoke-instance-1": [12.0, 30.0, 70.0], "smoke-instance-2": [8.0, 140.0]}
WAIT_S = 60.0
DEPRECATION = re.compile(r"deprecat", re.IGNORECASE)


@dataclass(frozen=True)
class SentTelemetry:
    service: str
    trace_ids: frozenset[str]
    spans: int


def send_as_instance(
    stack: Stack, service: str, instance_id: str, durations_ms: list[float]
) -> set[str]:
    """Export spans and metrics as one service instance; returns the trace ids (hex)."""
    resource = Resource.create({"service.name": service, "service.instance.id": instance_id})
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(
        BatchSpanProcessor(OTLPSpanExporter(endpoint=stack.otlp_grpc_endpoint, insecure=True))
    )
    reader = PeriodicExportingMetricReader(
        OTLPMetricExporter(endpoint=stack.otlp_grpc_endpoint, insecure=True),
        export_interval_millis=3_600_000,  # exported once, at shutdown
    )
    meter_provider = MeterProvider(resource=resource, metric_readers=[reader])
    tracer = tracer_provider.get_tracer("e2e.smoke")
    meter = meter_provider.get_meter("e2e.smoke")
    requests = meter.create_counter("smoke.requests", unit="{request}")
    duration = meter.create_histogram(
        "smoke.request.duration",
        unit="ms",
        explicit_bucket_boundaries_advisory=[5.0, 10.0, 25.0, 50.0, 100.0, 250.0],
    )
    trace_ids = set()
    for value in durations_ms:
        # Recorded inside a sampled span, so the SDK attaches the span's trace id as an exemplar.
        with tracer.start_as_current_span(SPAN_NAME, kind=SpanKind.SERVER) as span:
            requests.add(1, {"route": "/smoke"})
            duration.record(value, {"route": "/smoke"})
            trace_ids.add(format_trace_id(span.get_span_context().trace_id))
    tracer_provider.shutdown()
    meter_provider.shutdown()
    return trace_ids


@pytest.fixture(scope="module")
def sent(stack: Stack) -> Iterator[SentTelemetry]:
    service = f"e2e-smoke-{uuid.uuid4().hex[:8]}"
    trace_ids: set[str] = set()
    for instance_id, durations in INSTANCES.items():
        trace_ids |= send_as_instance(stack, service, instance_id, durations)
    yield SentTelemetry(service, frozenset(trace_ids), sum(len(d) for d in INSTANCES.values()))


def run_tool(argv: list[str | Path]) -> str:
    result = subprocess.run(
        [str(arg) for arg in argv], capture_output=True, text=True, timeout=60, check=False
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    return output


@pytest.mark.binaries_only(reason="checks the shipped config file with the pinned binary")
def test_collector_config_validates_without_deprecations(stack_binaries: dict[str, Path]) -> None:
    output = run_tool([stack_binaries["otelcol"], "validate", f"--config={COLLECTOR_CONFIG}"])
    assert not DEPRECATION.search(output), output


@pytest.mark.binaries_only(reason="checks the shipped config file with the pinned binary")
def test_prometheus_config_checks_without_warnings(stack_binaries: dict[str, Path]) -> None:
    output = run_tool([stack_binaries["promtool"], "check", "config", PROMETHEUS_CONFIG])
    assert "SUCCESS" in output
    assert "WARNING" not in output and not DEPRECATION.search(output), output


@pytest.mark.binaries_only(reason="checks the shipped config file with the pinned binary")
def test_alertmanager_config_checks(stack_binaries: dict[str, Path]) -> None:
    output = run_tool([stack_binaries["amtool"], "check-config", ALERTMANAGER_CONFIG])
    assert "SUCCESS" in output and not DEPRECATION.search(output), output


def test_counters_of_each_instance_are_separate_series(stack: Stack, sent: SentTelemetry) -> None:
    query = f'{REQUESTS_METRIC}{{service_name="{sent.service}"}}'
    expected = {instance: float(len(values)) for instance, values in INSTANCES.items()}

    def per_instance() -> dict[str, float] | None:
        counts = {
            r["metric"]["service_instance_id"]: float(r["value"][1])
            for r in stack.prom_query(query)
        }
        return counts if counts == expected else None

    assert stack.wait_for(per_instance, WAIT_S, what=f"{query} == {expected}") == expected


def test_latency_exemplars_resolve_to_traces_in_jaeger(stack: Stack, sent: SentTelemetry) -> None:
    query = f'{DURATION_METRIC}_bucket{{service_name="{sent.service}"}}'

    def exemplar_trace_ids() -> set[str]:
        return {
            exemplar["labels"]["trace_id"]
            for series in stack.prom_exemplars(query)
            for exemplar in series["exemplars"]
        }

    trace_ids = stack.wait_for(exemplar_trace_ids, WAIT_S, what=f"exemplars of {query}")
    assert trace_ids <= sent.trace_ids
    trace_id = sorted(trace_ids)[0]
    trace = stack.wait_for(
        lambda: stack.jaeger_trace(trace_id), WAIT_S, what=f"trace {trace_id} in Jaeger"
    )
    assert [span["operationName"] for span in trace["spans"]] == [SPAN_NAME]


def test_span_metrics_count_every_span_with_exemplars(stack: Stack, sent: SentTelemetry) -> None:
    selector = f'{{service_name="{sent.service}", span_name="{SPAN_NAME}"}}'
    stack.wait_for_total(f"traces_span_metrics_calls_total{selector}", sent.spans, WAIT_S)
    exemplars = stack.wait_for(
        lambda: stack.prom_exemplars(f"traces_span_metrics_duration_milliseconds_bucket{selector}"),
        WAIT_S,
        what="span metrics exemplars",
    )
    assert {e["labels"]["trace_id"] for s in exemplars for e in s["exemplars"]} <= sent.trace_ids


def test_all_prometheus_targets_are_up(stack: Stack) -> None:
    def target_health() -> dict[str, str] | None:
        targets = stack.prom_api("targets", state="active")["activeTargets"]
        health = {t["labels"]["job"]: t["health"] for t in targets}
        return health if set(health.values()) == {"up"} else None

    health = stack.wait_for(target_health, WAIT_S, what="every Prometheus target up")
    assert set(health) == {
        "otel-collector",
        "otel-collector-internal",
        "jaeger",
        "alertmanager",
        "prometheus",
    }


# What the collector reports about its own pipeline, as (failure counter, its success sibling,
# matchers). A receiver creates its refused/failed counters together with its accepted one, so
# they must exist and be 0; an exporter creates its failure counters only at its first failure,
# so there "absent" means 0, but only once the sibling shows that this exporter did send.
RECEIVER = 'receiver="otlp"'
JAEGER_EXPORTER = 'exporter="otlp_grpc/jaeger"'
PROMETHEUS_EXPORTER = 'exporter="prometheus"'
CREATED_WITH_SUCCESS = (
    ("otelcol_receiver_refused_spans_total", "otelcol_receiver_accepted_spans_total", RECEIVER),
    ("otelcol_receiver_failed_spans_total", "otelcol_receiver_accepted_spans_total", RECEIVER),
    (
        "otelcol_receiver_refused_metric_points_total",
        "otelcol_receiver_accepted_metric_points_total",
        RECEIVER,
    ),
    (
        "otelcol_receiver_failed_metric_points_total",
        "otelcol_receiver_accepted_metric_points_total",
        RECEIVER,
    ),
)
CREATED_AT_FIRST_FAILURE = (
    (
        "otelcol_exporter_send_failed_spans_total",
        "otelcol_exporter_sent_spans_total",
        JAEGER_EXPORTER,
    ),
    (
        "otelcol_exporter_enqueue_failed_spans_total",
        "otelcol_exporter_sent_spans_total",
        JAEGER_EXPORTER,
    ),
    (
        "otelcol_exporter_send_failed_metric_points_total",
        "otelcol_exporter_sent_metric_points_total",
        PROMETHEUS_EXPORTER,
    ),
)


def test_collector_reports_no_failed_sends(stack: Stack, sent: SentTelemetry) -> None:
    sent_spans = f"sum(otelcol_exporter_sent_spans_total{{{JAEGER_EXPORTER}}})"
    stack.wait_for(
        lambda: stack.prom_query(f"{sent_spans} >= {sent.spans}"), WAIT_S, what=sent_spans
    )
    sent_points = f"sum(otelcol_exporter_sent_metric_points_total{{{PROMETHEUS_EXPORTER}}})"
    stack.wait_for(lambda: stack.prom_query(f"{sent_points} > 0"), WAIT_S, what=sent_points)
    for failures, successes, matchers in CREATED_WITH_SUCCESS:
        assert (stack.prom_total(f"{successes}{{{matchers}}}") or 0) > 0, successes
        assert stack.prom_total(f"{failures}{{{matchers}}}") == 0, failures
    for failures, successes, matchers in CREATED_AT_FIRST_FAILURE:
        # `or 0 * sibling`: 0 when the failure counter is absent, no result when the sibling is.
        expr = f"{failures}{{{matchers}}} or 0 * {successes}{{{matchers}}}"
        assert stack.prom_total(expr) == 0, expr


@pytest.mark.binaries_only(reason="reads the log files of the programs this suite starts")
def test_running_programs_log_no_deprecations(stack: Stack, sent: SentTelemetry) -> None:
    for name in ("otelcol", "jaeger", "prometheus", "alertmanager"):
        log = stack.processes[name].log_path.read_text(errors="replace")
        assert log, f"{name} logged nothing: wrong log file?"
        assert not DEPRECATION.search(log), f"{name}: {DEPRECATION.search(log)}"
