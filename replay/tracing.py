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

from service.telemetry.exporters import span_exporter
from service.telemetry.plan import OTLP_PROTOCOLS, exporter_kind, otlp_protocol

BAGGAGE_RUN_ID = "replay.run_id"
# Bound how long a run's exit can wait on an absent collector.
FLUSH_TIMEOUT_MS = 3_000


class TracingConfigError(ValueError):
    """OTEL_ settings this client cannot honour."""


def _exporter_from_env(env: Mapping[str, str]) -> SpanExporter | None:
    """The exporter the standard variables select, read as the service reads them
    (service/telemetry/plan.py); `console` is this client's addition."""
    choice = exporter_kind(env, "TRACES", "none").lower()
    if choice == "none":
        return None
    if choice == "console":
        return ConsoleSpanExporter()
    if choice != "otlp":
        raise TracingConfigError(f"OTEL_TRACES_EXPORTER={choice!r}: use otlp, console or none")
    protocol = otlp_protocol(env, "TRACES")
    if protocol not in OTLP_PROTOCOLS:
        raise TracingConfigError(f"OTLP protocol {protocol!r}: use grpc or http/protobuf")
    return span_exporter(protocol)


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
