"""Traces dashboard (uid mlapi-traces): the service's slowest and failing traces from Jaeger, and
RED metrics per span name from the collector's span_metrics connector (with exemplars)."""

from __future__ import annotations

from dashboards_src import grafana as g
from dashboards_src import metrics as m
from dashboards_src.promql import error_ratio, quantile, rate, selector, sum_by

UID = "mlapi-traces"
TRACES_SHOWN = 20
# OTLP spans with status ERROR reach Jaeger tagged error=true.
ERROR_TAG = "error=true"

CALLS = selector(m.SPAN_CALLS, m.OF_SERVICE)
FAILED_CALLS = selector(m.SPAN_CALLS, m.OF_SERVICE, m.SPAN_ERROR)
DURATION_BUCKETS = selector(m.SPAN_DURATION_BUCKET, m.OF_SERVICE)
BY_SPAN = [m.SPAN_NAME]


def slowest_traces() -> g.Json:
    return g.trace_table(
        "Slowest recent traces",
        f"The {TRACES_SHOWN} most recent traces of the {m.SERVICE} service in the time range, "
        "longest first. Click a trace id to open the trace.",
        g.jaeger_search_target(m.SERVICE, limit=TRACES_SHOWN),
    )


def failing_traces() -> g.Json:
    return g.trace_table(
        "Failing traces",
        f"Recent traces of {m.SERVICE} with a span in error (5xx, exceptions), longest first. "
        "4xx are client mistakes and are not errors in a trace.",
        g.jaeger_search_target(m.SERVICE, limit=TRACES_SHOWN, tags=ERROR_TAG),
    )


def span_rate() -> g.Json:
    return g.timeseries(
        "Span rate by span name",
        "Spans per second per operation (server spans are one per request), from span metrics.",
        [g.prometheus_target(sum_by(BY_SPAN, rate(CALLS)), g.label(m.SPAN_NAME))],
        unit=g.PER_SECOND,
    )


def span_error_ratio() -> g.Json:
    return g.timeseries(
        "Span error ratio by span name",
        "Share of each operation's spans with status ERROR.",
        [g.prometheus_target(error_ratio(FAILED_CALLS, CALLS, BY_SPAN), g.label(m.SPAN_NAME))],
        unit=g.RATIO,
    )


def span_duration() -> g.Json:
    return g.timeseries(
        "Span duration p95 by span name",
        "95th percentile of span duration per operation. Exemplars are on: a dot opens the trace "
        "that was recorded in that latency bucket.",
        [
            g.prometheus_target(
                quantile(0.95, DURATION_BUCKETS, BY_SPAN), g.label(m.SPAN_NAME), exemplar=True
            )
        ],
        unit=g.MILLISECONDS,
    )


def dashboard() -> g.Json:
    return g.dashboard(
        UID,
        "Traces",
        f"The {m.SERVICE} service's slowest and failing traces (Jaeger) and rate, errors and "
        "duration per span name (span metrics).",
        [
            g.row("Traces (Jaeger)"),
            slowest_traces(),
            failing_traces(),
            g.row("Span metrics: rate, errors, duration"),
            span_rate(),
            span_error_ratio(),
            span_duration(),
        ],
    )
