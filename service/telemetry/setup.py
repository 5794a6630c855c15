"""OpenTelemetry for one process: resource, providers, export path (service/telemetry/plan.py),
Flask instrumentation (http_server.py), bounded shutdown.

Everything happens in `init_telemetry()`, called once per process (under gunicorn: once per worker,
after fork). Nothing happens at import, and the process environment is only read.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import flask
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import AlwaysOffExemplarFilter, ExemplarFilter, MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View
from opentelemetry.sdk.resources import OTELResourceDetector, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, Sampler

from service.settings import Settings
from service.telemetry import http_server
from service.telemetry.exporters import metric_exporter, otlp_timeout_s, span_exporter
from service.telemetry.http_server import WsgiApp
from service.telemetry.log_limits import rate_limit_sdk_logs
from service.telemetry.otel_patches import shutdown_span_processor, use_stable_http_semconv
from service.telemetry.outage_buffer import BufferLimits, OutageBuffer
from service.telemetry.plan import ExportPlan, export_plan
from service.version import package_version

logger = logging.getLogger(__name__)

DEFAULT_SERVICE_NAME = "mlapi"
DEFAULT_ENVIRONMENT = "development"
# Semconv's advisory buckets start at 5 ms, where this API's whole latency lives.
HTTP_DURATION_BUCKETS_S = (
    0.0005, 0.001, 0.0025, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.075,
    0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
)  # fmt: skip
SCOPE_NAME = "mlapi"


def _sampler(plan: ExportPlan) -> Sampler | None:
    """Without a trace exporter, spans are not recorded unless OTEL_TRACES_SAMPLER asks: the ids
    (response trace_id, access log, traceparent) still exist, the cost of recording does not.
    Otherwise None: the SDK reads OTEL_TRACES_SAMPLER/_ARG (default parentbased_always_on)."""
    if plan.traces == "none" and not os.environ.get("OTEL_TRACES_SAMPLER"):
        return ALWAYS_OFF
    return None


def _exemplar_filter(plan: ExportPlan) -> ExemplarFilter | None:
    """Off when the only metric export is the Prometheus pull exporter, which drops exemplars
    anyway (each one costs the request path a reservoir offer); else OTEL_METRICS_EXEMPLAR_FILTER
    (default trace_based), read by the SDK."""
    if plan.metrics == "prometheus" and not os.environ.get("OTEL_METRICS_EXEMPLAR_FILTER"):
        return AlwaysOffExemplarFilter()
    return None


def build_resource(service_version: str, environment: str) -> Resource:
    """Our defaults < OTEL_RESOURCE_ATTRIBUTES < OTEL_SERVICE_NAME; the instance id is always
    fresh, so every process (gunicorn worker) is its own series."""
    from_env = OTELResourceDetector().detect().attributes
    attributes: dict[str, Any] = {
        "service.name": DEFAULT_SERVICE_NAME,
        "service.version": service_version,
        "deployment.environment.name": environment,
        **from_env,
        "service.instance.id": str(uuid.uuid4()),
    }
    return Resource.create(attributes)


@dataclass
class Telemetry:
    """The process's telemetry handles. With the SDK disabled, the tracer and the meter are
    no-ops."""

    plan: ExportPlan
    tracer: trace.Tracer
    meter: metrics.Meter
    tracer_provider: TracerProvider | None = None
    meter_provider: MeterProvider | None = None
    # WSGI app serving the embedded Prometheus exposition; None unless metrics are embedded.
    metrics_app: WsgiApp | None = None
    _span_processor: BatchSpanProcessor | None = None
    _shutdown_lock: threading.Lock = field(default_factory=threading.Lock)
    _is_shut_down: bool = False

    @property
    def enabled(self) -> bool:
        return not self.plan.disabled

    def attach(self, app: flask.Flask) -> None:
        """Wire this process's telemetry into `app` (service/telemetry/http_server.py); with the
        SDK disabled, nothing."""
        if self.enabled:
            http_server.instrument(app, self.tracer_provider, self.meter_provider, self.metrics_app)

    def shutdown(self, deadline_s: float = 3.0) -> None:
        """Flush and stop within `deadline_s` even when the collector is absent. Idempotent."""
        with self._shutdown_lock:
            if self._is_shut_down:
                return
            self._is_shut_down = True
        end = time.monotonic() + deadline_s

        def remaining_ms(share: float = 1.0) -> float:
            return max(0.0, (end - time.monotonic()) * share * 1000)

        if self._span_processor is not None:
            shutdown_span_processor(self._span_processor, remaining_ms(0.5))
        if self.meter_provider is not None:
            try:
                self.meter_provider.shutdown(timeout_millis=remaining_ms())
            except Exception:  # the SDK raises when a reader missed the deadline
                logger.warning("metrics not fully flushed before the %.1f s deadline", deadline_s)


def _disabled(plan: ExportPlan) -> Telemetry:
    return Telemetry(
        plan=plan,
        tracer=trace.NoOpTracer(),
        meter=metrics.NoOpMeter(SCOPE_NAME),
    )


def init_telemetry(
    *,
    service_version: str | None = None,
    environment: str = DEFAULT_ENVIRONMENT,
    extra_metric_readers: Sequence[MetricReader] = (),
    trace_buffer: BufferLimits | None = None,
) -> Telemetry:
    """Build this process's providers from the OTEL_* environment.

    `extra_metric_readers` join the chosen export path (tests read metrics in memory this way);
    `trace_buffer` bounds the spans kept through a collector outage (default: the settings').
    """
    plan = export_plan()
    if plan.disabled:
        return _disabled(plan)
    use_stable_http_semconv()
    resource = build_resource(service_version or package_version(), environment)
    meter_provider, metrics_app = _meter_provider(plan, resource, extra_metric_readers)
    meter = meter_provider.get_meter(SCOPE_NAME)

    tracer_provider = TracerProvider(
        resource=resource, sampler=_sampler(plan), shutdown_on_exit=False
    )
    span_processor = None
    if plan.traces == "otlp":
        dropped = meter.create_counter(
            "mlapi.telemetry.spans_dropped",
            unit="{span}",
            description="Spans dropped because the outage buffer was full (collector down).",
        )
        dropped.add(0)
        limits = trace_buffer or BufferLimits(
            Settings().trace_buffer_spans, Settings().trace_buffer_bytes
        )
        # Queue and batch sizes from OTEL_BSP_* (bounded by default: 2048); on_end only enqueues,
        # so a request never waits on export.
        span_processor = BatchSpanProcessor(
            OutageBuffer(span_exporter(plan.traces_protocol), limits, on_drop=dropped.add)
        )
        tracer_provider.add_span_processor(span_processor)
    rate_limit_sdk_logs()
    return Telemetry(
        plan=plan,
        tracer=tracer_provider.get_tracer(SCOPE_NAME),
        meter=meter,
        tracer_provider=tracer_provider,
        meter_provider=meter_provider,
        metrics_app=metrics_app,
        _span_processor=span_processor,
    )


def _meter_provider(
    plan: ExportPlan, resource: Resource, extra_readers: Sequence[MetricReader]
) -> tuple[MeterProvider, WsgiApp | None]:
    """The meter provider of the plan's metric path, and the /metrics app when it is embedded."""
    readers: list[MetricReader] = list(extra_readers)
    metrics_app = None
    if plan.metrics == "otlp":
        timeout_s = otlp_timeout_s("METRICS")
        readers.append(
            PeriodicExportingMetricReader(
                metric_exporter(plan.metrics_protocol, timeout_s),
                export_timeout_millis=None if timeout_s is None else timeout_s * 1000,
            )
        )
    elif plan.metrics == "prometheus":
        from opentelemetry.exporter.prometheus import PrometheusMetricReader
        from prometheus_client import CollectorRegistry, make_wsgi_app

        # A private registry: only our OTel metrics, and re-initialising never duplicates them.
        registry = CollectorRegistry(auto_describe=False)
        readers.append(PrometheusMetricReader(registry=registry))
        metrics_app = make_wsgi_app(registry=registry)
    meter_provider = MeterProvider(
        resource=resource,
        metric_readers=readers,
        exemplar_filter=_exemplar_filter(plan),
        views=[
            View(
                instrument_name="http.server.request.duration",
                aggregation=ExplicitBucketHistogramAggregation(HTTP_DURATION_BUCKETS_S),
            )
        ],
        shutdown_on_exit=False,
    )
    return meter_provider, metrics_app
