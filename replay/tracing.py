"""Client-side tracing for replay: every request runs in a client span (replay/sender.py)
whose W3C traceparent (and `replay.run_id` baggage) goes to the server, so a slow request can be
opened in Jaeger. The spans carry the method, URL, server and status, never a request header, so
a token sent with --header cannot reach a trace backend.

Spans are exported over OTLP only when the standard OTEL_ variables ask for it; otherwise the
SDK provider still makes valid, sampled trace ids but has no processor, so nothing leaves the
process and nothing is buffered.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from opentelemetry import baggage, context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SpanExporter,
)

BAGGAGE_RUN_ID = "replay.run_id"
# Bound how long a run's exit can wait on an absent collector.
FLUSH_TIMEOUT_MS = 3_000


class TracingConfigError(ValueError):
    """OTEL_ settings this client cannot honour."""


def _exporter_from_env(env: Mapping[str, str]) -> SpanExporter | None:
    """The exporter the standard variables select: OTEL_TRACES_EXPORTER wins; otherwise an
    OTLP endpoint variable alone switches OTLP on; with neither, no export."""
    choice = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if not choice:
        has_endpoint = env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get(
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
        )
        choice = "otlp" if has_endpoint else "none"
    if choice == "none":
        return None
    if choice == "console":
        return ConsoleSpanExporter()
    if choice != "otlp":
        raise TracingConfigError(f"OTEL_TRACES_EXPORTER={choice!r}: use otlp, console or none")
    protocol = env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env.get(
        "OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"
    )
    # Imported on demand: grpc is slow to import and unused in the default (no export) case.
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    elif protocol == "http/protobuf":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    else:
        raise TracingConfigError(f"OTLP protocol {protocol!r}: use grpc or http/protobuf")
    return OTLPSpanExporter()


def start_tracing(env: Mapping[str, str] | None = None) -> TracerProvider:
    """This run's tracer provider (its spans: `provider.get_tracer(...)`, passed to the Sender)."""
    env = os.environ if env is None else env
    exporter = _exporter_from_env(env)
    # "replay" unless OTEL_SERVICE_NAME says otherwise (explicit attributes would override it).
    service_name = env.get("OTEL_SERVICE_NAME", "").strip() or "replay"
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    if exporter is not None:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def stop_tracing(provider: TracerProvider) -> None:
    """Flush what is queued (bounded)."""
    provider.force_flush(timeout_millis=FLUSH_TIMEOUT_MS)
    provider.shutdown()


def attach_run_baggage(run_id: str) -> None:
    """Put `replay.run_id` into the calling thread's context; the baggage propagator sends it
    with every request the thread makes. Call once at the top of each sending thread."""
    context.attach(baggage.set_baggage(BAGGAGE_RUN_ID, run_id))
