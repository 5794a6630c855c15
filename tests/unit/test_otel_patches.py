"""The private-API workarounds of service/telemetry/otel_patches.py, pinned to the versions they
were written against: a dependency bump fails here first, and each patch is shown to work."""

from __future__ import annotations

import socket
import time
from importlib import metadata

from opentelemetry.instrumentation._semconv import (
    _OpenTelemetrySemanticConventionStability,
    _OpenTelemetryStabilitySignalType,
    _StabilityMode,
)
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from service.telemetry.exporters import span_exporter
from service.telemetry.otel_patches import shutdown_span_processor, use_stable_http_semconv

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
