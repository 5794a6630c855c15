"""The private-API workarounds of service/telemetry/otel_patches.py, pinned to the versions they
were written against: a dependency bump fails here first, and each patch is shown to work."""

from __future__ import annotations

import socket
import time
from importlib import metadata

import numpy as np
import pytest
from opentelemetry.instrumentation._semconv import (
    _OpenTelemetrySemanticConventionStability,
    _OpenTelemetryStabilitySignalType,
    _StabilityMode,
)
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from service.telemetry.exporters import span_exporter
from service.telemetry.otel_patches import (
    record_many,
    shutdown_span_processor,
    use_stable_http_semconv,
)

PINNED = {"opentelemetry-sdk": "1.45.1", "opentelemetry-instrumentation": "0.66b1"}


def test_the_patched_packages_are_the_versions_the_patches_were_written_for() -> None:
    """Re-read otel_patches.py against the new version, then move this pin."""
    assert {name: metadata.version(name) for name in PINNED} == PINNED


def test_stable_http_conventions_are_chosen_without_the_environment(monkeypatch) -> None:
    monkeypatch.delenv("OTEL_SEMCONV_STABILITY_OPT_IN", raising=False)
    stability = _OpenTelemetrySemanticConventionStability
    monkeypatch.setattr(stability, "_initialized", False)
    monkeypatch.setattr(stability, "_OTEL_SEMCONV_STABILITY_SIGNAL_MAPPING", {})
    use_stable_http_semconv()
    http = _OpenTelemetryStabilitySignalType.HTTP
    assert stability._get_opentelemetry_stability_opt_in_mode(http) is _StabilityMode.HTTP


def test_a_span_processor_stops_within_its_deadline_with_the_collector_absent(monkeypatch) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    endpoint = f"http://127.0.0.1:{closed_port}/v1/traces"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", endpoint)
    processor = BatchSpanProcessor(span_exporter("http/protobuf"))
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(processor)
    for _ in range(100):
        provider.get_tracer("t").start_span("s").end()
    started = time.monotonic()
    shutdown_span_processor(processor, timeout_millis=500)
    # Well inside the SDK's own 30 s; the bound, not a performance figure.
    assert time.monotonic() - started < 10


def histogram_points(values_per_call: list[list[float]], bulk: bool) -> HistogramDataPoint:
    """The exported points of one histogram fed `values_per_call`, in bulk or one by one."""
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
    histogram = provider.get_meter("t").create_histogram(
        "h", explicit_bucket_boundaries_advisory=(1.0, 2.0, 5.0, 10.0)
    )
    tracer = TracerProvider(shutdown_on_exit=False).get_tracer("t")
    with tracer.start_as_current_span("request"):
        for values in values_per_call:
            if bulk:
                record_many(histogram, np.array(values), {"k": "v"})
            else:
                for value in values:
                    histogram.record(value, {"k": "v"})
    (point,) = (
        reader.get_metrics_data().resource_metrics[0].scope_metrics[0].metrics[0].data.data_points
    )
    return point


@pytest.mark.parametrize(
    "calls",
    [
        [[0.5, 1.0, 1.5, 3.0, 3.0, 7.0, 12.0, 12.0, 100.0]],
        [[4.0], [0.1, 0.2, 0.3], [], [2.0, 2.0, 11.0, 5.0]],
        [list(np.random.default_rng(7).gamma(2.0, 3.0, 1000))],
        [[1.0, float("nan"), -3.0, 2.0]],  # what record() ignores, record_many ignores
    ],
)
def test_record_many_exports_what_one_record_per_value_exports(calls: list[list[float]]) -> None:
    one_by_one, bulk = histogram_points(calls, bulk=False), histogram_points(calls, bulk=True)
    assert list(bulk.bucket_counts) == list(one_by_one.bucket_counts)
    assert (bulk.count, bulk.min, bulk.max) == (one_by_one.count, one_by_one.min, one_by_one.max)
    assert bulk.sum == pytest.approx(one_by_one.sum)

    # Every bucket this request touched has its exemplar, as with one record per value.
    def buckets(point: HistogramDataPoint) -> set[int]:
        return {sum(e.value > bound for bound in point.explicit_bounds) for e in point.exemplars}

    assert buckets(bulk) == buckets(one_by_one) and buckets(bulk)
