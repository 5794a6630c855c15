"""The OTLP exporters this process uses, with a short export timeout: an absent collector costs
one failed attempt per batch (spans are then kept by service/telemetry/outage_buffer.py)."""

from __future__ import annotations

import os
from typing import Any

# Short, so an absent collector costs one failed attempt per batch instead of the SDK's 10 s.
DEFAULT_EXPORT_TIMEOUT_S = 2.0
# gRPC waits up to 120 s between reconnection attempts once a collector has been gone a while:
# capped at the outage buffer's retry pause, telemetry resumes within seconds of its return.
GRPC_OPTIONS = (("grpc.max_reconnect_backoff_ms", 5000),)


def otlp_timeout_s(signal: str) -> float | None:
    """Our short default unless the user set one (the exporters then read it themselves)."""
    if os.environ.get(f"OTEL_EXPORTER_OTLP_{signal}_TIMEOUT") or os.environ.get(
        "OTEL_EXPORTER_OTLP_TIMEOUT"
    ):
        return None
    return DEFAULT_EXPORT_TIMEOUT_S


def span_exporter(protocol: str) -> Any:
    # Imported here: only the chosen protocol's stack (grpc is heavy) gets loaded.
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter(timeout=otlp_timeout_s("TRACES"), channel_options=GRPC_OPTIONS)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter(timeout=otlp_timeout_s("TRACES"))


def metric_exporter(protocol: str, timeout_s: float | None) -> Any:
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter

        return OTLPMetricExporter(timeout=timeout_s, channel_options=GRPC_OPTIONS)
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

    return OTLPMetricExporter(timeout=timeout_s)
