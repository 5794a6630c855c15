"""OpenTelemetry for one process: resource, providers, export path, Flask instrumentation, shutdown.

Everything happens in `init_telemetry()`, called once per process (under gunicorn: once per worker,
after fork). Nothing happens at import.

Export paths, chosen from the standard variables:
- OTLP (push) for traces and/or metrics when `OTEL_{TRACES,METRICS}_EXPORTER=otlp`, or when they are
  unset and `OTEL_EXPORTER_OTLP[_{TRACES,METRICS}]_ENDPOINT` is set. Protocol from
  `OTEL_EXPORTER_OTLP[_{SIGNAL}]_PROTOCOL` (`grpc`, the Python SDK's default, or `http/protobuf`);
  endpoint and headers are read by the exporters themselves.
- Embedded (pull, the default without a collector): metrics through the OTel Prometheus reader into
  a private registry that the app serves as `/metrics`; traces are not exported, so spans are not
  recorded (ids still propagate) and exemplars are off, unless OTEL_TRACES_SAMPLER /
  OTEL_METRICS_EXEMPLAR_FILTER say otherwise.
- `OTEL_SDK_DISABLED=true`: no providers, no instrumentation, no-op tracer and meter; there is no
  `/metrics` route (it answers the API's JSON 404, as it does in OTLP mode).
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import flask
from opentelemetry import metrics, trace
from opentelemetry.instrumentation import wsgi as otel_wsgi
from opentelemetry.instrumentation._semconv import (
    _OpenTelemetrySemanticConventionStability,
    _OpenTelemetryStabilitySignalType,
    _StabilityMode,
)
from opentelemetry.sdk.metrics import AlwaysOffExemplarFilter, ExemplarFilter, MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View
from opentelemetry.sdk.resources import OTELResourceDetector, Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, Sampler

from service.access_log import ENVIRON_FIELDS_KEY as ACCESS_LOG_FIELDS_KEY
from service.instruments import ModelCardLike, ModelInstruments
from service.version import package_version

logger = logging.getLogger(__name__)

DEFAULT_SERVICE_NAME = "mlapi"
DEFAULT_ENVIRONMENT = "development"
# Short, so an absent collector costs one failed attempt per batch instead of the SDK's 10 s.
DEFAULT_EXPORT_TIMEOUT_S = 2.0
# After a failed trace export, batches are dropped unencoded for this long: a down collector then
# costs the process no CPU (encoding spans that cannot be sent competes with requests for the GIL).
TRACE_EXPORT_PAUSE_S = 5.0
# One line per message template per interval from the SDK/exporter loggers, with a count.
LOG_RATE_LIMIT_INTERVAL_S = 60.0
# Regexes matched against the full URL; probes and scrapes are not traffic.
EXCLUDED_URLS = (r"/healthz(\?|$)", r"/readyz(\?|$)", r"/metrics(\?|$)")
# Semconv's advisory buckets start at 5 ms, where this API's whole latency lives.
HTTP_DURATION_BUCKETS_S = (
    0.0005, 0.001, 0.0025, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.075,
    0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
)  # fmt: skip
SCOPE_NAME = "mlapi"
EXTENSION_KEY = "mlapi.telemetry"
SPAN_FEATURES_ENV = "MLAPI_SPAN_FEATURES"

ExporterKind = Literal["otlp", "prometheus", "none"]
WsgiApp = Callable[..., Any]


@dataclass(frozen=True)
class ExportPlan:
    """Where traces and metrics go, decided from the environment alone (usable before fork)."""

    disabled: bool
    traces: ExporterKind
    metrics: ExporterKind
    traces_protocol: str
    metrics_protocol: str

    @property
    def embedded_metrics(self) -> bool:
        return not self.disabled and self.metrics == "prometheus"


def _env(environ: Mapping[str, str], name: str) -> str:
    return environ.get(name, "").strip()


def _exporter_kind(environ: Mapping[str, str], signal: str, pull_default: ExporterKind) -> str:
    explicit = _env(environ, f"OTEL_{signal}_EXPORTER").lower()
    if explicit:
        # A list is allowed by the spec; the first entry decides here (one exporter per signal).
        return explicit.split(",")[0].strip()
    if _env(environ, "OTEL_EXPORTER_OTLP_ENDPOINT") or _env(
        environ, f"OTEL_EXPORTER_OTLP_{signal}_ENDPOINT"
    ):
        return "otlp"
    return pull_default


def _protocol(environ: Mapping[str, str], signal: str) -> str:
    return (
        _env(environ, f"OTEL_EXPORTER_OTLP_{signal}_PROTOCOL")
        or _env(environ, "OTEL_EXPORTER_OTLP_PROTOCOL")
        or "grpc"
    )


def export_plan(environ: Mapping[str, str] | None = None) -> ExportPlan:
    """Read the standard OTEL_* variables and decide the export path; raises on unknown values."""
    env = os.environ if environ is None else environ
    plan = ExportPlan(
        disabled=_env(env, "OTEL_SDK_DISABLED").lower() == "true",
        traces=_exporter_kind(env, "TRACES", "none"),  # type: ignore[arg-type]
        metrics=_exporter_kind(env, "METRICS", "prometheus"),  # type: ignore[arg-type]
        traces_protocol=_protocol(env, "TRACES"),
        metrics_protocol=_protocol(env, "METRICS"),
    )
    if plan.traces not in ("otlp", "none"):
        raise ValueError(f"OTEL_TRACES_EXPORTER={plan.traces!r}: supported are otlp, none")
    if plan.metrics not in ("otlp", "prometheus", "none"):
        raise ValueError(
            f"OTEL_METRICS_EXPORTER={plan.metrics!r}: supported are otlp, prometheus, none"
        )
    for protocol in {plan.traces_protocol, plan.metrics_protocol}:
        if protocol not in ("grpc", "http/protobuf"):
            raise ValueError(f"OTLP protocol {protocol!r}: supported are grpc, http/protobuf")
    return plan


class RateLimitFilter(logging.Filter):
    """Lets one record per (logger, message template) through per interval, then reports the
    number it swallowed, so an absent collector cannot flood the logs ("Queue full", retries)."""

    def __init__(self, interval_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self._interval_s = interval_s
        self._clock = clock
        self._lock = threading.Lock()
        # key -> [time last let through, records suppressed since]; keys are code-defined templates.
        self._state: dict[tuple[str, object], list[float]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, record.msg)
        now = self._clock()
        with self._lock:
            state = self._state.get(key)
            if state is not None and now - state[0] < self._interval_s:
                state[1] += 1
                return False
            suppressed = int(state[1]) if state is not None else 0
            self._state[key] = [now, 0]
        if suppressed:
            record.msg = (
                f"{record.getMessage()} "
                f"[{suppressed} similar messages suppressed in the last {self._interval_s:g} s]"
            )
            record.args = None
        return True


class PauseWhenDownExporter(SpanExporter):
    """Wraps the OTLP span exporter: after a failed export, drops batches without encoding or
    sending them for `pause_s`, then tries again. The inner exporter logs the failure."""

    def __init__(
        self, inner: SpanExporter, pause_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._inner = inner
        self._pause_s = pause_s
        self._clock = clock
        self._resume_at = 0.0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._clock() < self._resume_at:
            return SpanExportResult.FAILURE
        result = self._inner.export(spans)
        if result is not SpanExportResult.SUCCESS:
            self._resume_at = self._clock() + self._pause_s
        return result

    def shutdown(self) -> None:
        # Neither OTLP exporter waits in shutdown(): it only closes the channel or session.
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self._inner.force_flush(timeout_millis)


def _rate_limit_sdk_logs() -> None:
    """One fresh RateLimitFilter on every SDK and exporter logger that exists once the exporters
    are built. It stays after shutdown: export threads may still complain while they wind down."""
    log_filter = RateLimitFilter(LOG_RATE_LIMIT_INTERVAL_S)
    for name, sdk_logger in list(logging.Logger.manager.loggerDict.items()):
        if isinstance(sdk_logger, logging.Logger) and name.startswith(
            ("opentelemetry.sdk", "opentelemetry.exporter")
        ):
            for old in [f for f in sdk_logger.filters if isinstance(f, RateLimitFilter)]:
                sdk_logger.removeFilter(old)
            sdk_logger.addFilter(log_filter)


def _semconv_http_stable(environ: os._Environ[str]) -> None:
    """Opt in to stable HTTP conventions only (`http`, not `http/dup`), keeping other opt-ins."""
    current = [s.strip() for s in environ.get("OTEL_SEMCONV_STABILITY_OPT_IN", "").split(",")]
    kept = [s for s in current if s and not s.startswith("http")]
    environ["OTEL_SEMCONV_STABILITY_OPT_IN"] = ",".join([*kept, "http"])
    # The instrumentation library reads the variable once per process; make it read it again in
    # case another instrumentation (e.g. requests) got there first. Instrumentors read the mode
    # when they instrument, so ones already set up keep theirs.
    stability = _OpenTelemetrySemanticConventionStability
    with stability._lock:
        stability._initialized = False
    stability._initialize()
    mode = stability._get_opentelemetry_stability_opt_in_mode(
        _OpenTelemetryStabilitySignalType.HTTP
    )
    if mode is not _StabilityMode.HTTP:
        raise RuntimeError(f"HTTP semantic conventions stayed in mode {mode.value!r}")


def _otlp_timeout_s(signal: str) -> float | None:
    """Our short default unless the user set one (the exporters then read it themselves)."""
    if os.environ.get(f"OTEL_EXPORTER_OTLP_{signal}_TIMEOUT") or os.environ.get(
        "OTEL_EXPORTER_OTLP_TIMEOUT"
    ):
        return None
    return DEFAULT_EXPORT_TIMEOUT_S


def _span_exporter(protocol: str) -> Any:
    # Imported here: only the chosen protocol's stack (grpc is heavy) gets loaded.
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    return OTLPSpanExporter(timeout=_otlp_timeout_s("TRACES"))


def _metric_exporter(protocol: str, timeout_s: float | None) -> Any:
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
    else:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    return OTLPMetricExporter(timeout=timeout_s)


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
    """The process's telemetry handles. With the SDK disabled, the tracer and the instruments'
    meter are no-ops."""

    plan: ExportPlan
    tracer: trace.Tracer
    instruments: ModelInstruments
    tracer_provider: TracerProvider | None = None
    meter_provider: MeterProvider | None = None
    # WSGI app serving the embedded Prometheus exposition; None unless metrics are embedded.
    metrics_app: WsgiApp | None = None
    # MLAPI_SPAN_FEATURES=true: single-row feature values become span attributes.
    span_features: bool = False
    _span_processor: BatchSpanProcessor | None = None
    _shutdown_lock: threading.Lock = field(default_factory=threading.Lock)
    _is_shut_down: bool = False

    @property
    def enabled(self) -> bool:
        return not self.plan.disabled

    def attach(self, app: flask.Flask) -> None:
        """Wire this process's telemetry into `app`: server spans and `http.server.request.duration`
        (probes and /metrics excluded), trace/span ids for the access log, and `/metrics` when
        metrics are embedded. With the SDK disabled only the handle is stored."""
        app.extensions[EXTENSION_KEY] = self
        if not self.enabled:
            return
        from opentelemetry.instrumentation.flask import FlaskInstrumentor

        user_excluded = os.environ.get("OTEL_PYTHON_FLASK_EXCLUDED_URLS", "")
        excluded = ",".join(p for p in (*EXCLUDED_URLS, user_excluded) if p)
        FlaskInstrumentor.instrument_app(
            app,
            tracer_provider=self.tracer_provider,
            meter_provider=self.meter_provider,
            excluded_urls=excluded,
            enable_commenter=False,
        )
        app.after_request(_add_trace_ids_to_access_log)
        app.after_request(_name_unrouted_span)
        if self.metrics_app is not None:
            metrics_app = self.metrics_app
            app.add_url_rule(
                "/metrics",
                endpoint="metrics",
                view_func=lambda: flask.Response.from_app(metrics_app, flask.request.environ),
                methods=["GET"],
            )

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
            # BatchSpanProcessor.shutdown() takes no timeout and waits up to 30 s; its inner
            # batch processor (SDK 1.45) takes one. A unit test pins this to the SDK version.
            self._span_processor._batch_processor.shutdown(timeout_millis=remaining_ms(0.5))
        if self.meter_provider is not None:
            try:
                self.meter_provider.shutdown(timeout_millis=remaining_ms())
            except Exception:  # the SDK raises when a reader missed the deadline
                logger.warning("metrics not fully flushed before the %.1f s deadline", deadline_s)


def current_telemetry() -> Telemetry:
    """The telemetry of the app serving the current request."""
    telemetry: Telemetry = flask.current_app.extensions[EXTENSION_KEY]
    return telemetry


def _add_trace_ids_to_access_log(response: flask.Response) -> flask.Response:
    """gunicorn writes the access line after the span has ended; hand it the ids now."""
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        flask.request.environ[ACCESS_LOG_FIELDS_KEY] = {
            "trace_id": format(context.trace_id, "032x"),
            "span_id": format(context.span_id, "016x"),
        }
    return response


def _name_unrouted_span(response: flask.Response) -> flask.Response:
    """A request no route matched (404, 405) names its span by its method alone, as the HTTP
    semantic conventions ask. The instrumentation falls back to `METHOD /raw/path`, so every
    random path a client sends would become a span name, and span names are labels of the
    collector's span metrics (measured: 3,000 random requests added 11,000 series)."""
    if flask.request.url_rule is None:
        method = {"REQUEST_METHOD": flask.request.environ.get("REQUEST_METHOD", "")}
        trace.get_current_span().update_name(otel_wsgi.get_default_span_name(method))
    return response


def current_trace_id() -> str | None:
    """The current trace id as 32 hex digits, or None without a valid span (SDK disabled)."""
    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else None


def _disabled(plan: ExportPlan, card: ModelCardLike) -> Telemetry:
    return Telemetry(
        plan=plan,
        tracer=trace.NoOpTracer(),
        instruments=ModelInstruments(metrics.NoOpMeter(SCOPE_NAME), card),
    )


def init_telemetry(
    card: ModelCardLike,
    *,
    service_version: str | None = None,
    environment: str = DEFAULT_ENVIRONMENT,
    extra_metric_readers: Sequence[MetricReader] = (),
) -> Telemetry:
    """Build this process's providers and instruments from the OTEL_* environment.

    `extra_metric_readers` join the chosen export path (tests read metrics in memory this way).
    """
    plan = export_plan()
    if plan.disabled:
        return _disabled(plan, card)
    _semconv_http_stable(os.environ)
    resource = build_resource(service_version or package_version(), environment)

    tracer_provider = TracerProvider(
        resource=resource, sampler=_sampler(plan), shutdown_on_exit=False
    )
    span_processor = None
    if plan.traces == "otlp":
        # Queue and batch sizes from OTEL_BSP_* (bounded by default: 2048); on_end only enqueues,
        # so a request never waits on export.
        span_processor = BatchSpanProcessor(
            PauseWhenDownExporter(_span_exporter(plan.traces_protocol), TRACE_EXPORT_PAUSE_S)
        )
        tracer_provider.add_span_processor(span_processor)

    readers: list[MetricReader] = list(extra_metric_readers)
    metrics_app = None
    if plan.metrics == "otlp":
        timeout_s = _otlp_timeout_s("METRICS")
        readers.append(
            PeriodicExportingMetricReader(
                _metric_exporter(plan.metrics_protocol, timeout_s),
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
    _rate_limit_sdk_logs()
    return Telemetry(
        plan=plan,
        tracer=tracer_provider.get_tracer(SCOPE_NAME),
        instruments=ModelInstruments(meter_provider.get_meter(SCOPE_NAME), card),
        span_features=os.environ.get(SPAN_FEATURES_ENV, "").strip().lower() == "true",
        tracer_provider=tracer_provider,
        meter_provider=meter_provider,
        metrics_app=metrics_app,
        _span_processor=span_processor,
    )
