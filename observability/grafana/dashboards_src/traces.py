"""Traces dashboard (uid mlapi-traces): the service's slowest traces from Jaeger, its failing
spans with a link to each failing trace, and RED metrics per span name from the collector's
span_metrics connector (with exemplars).

Failing traces are reached through span-metric exemplars, not a Jaeger `error=true` search: the
pinned Jaeger's memory storage finds no OTLP span with status ERROR by that tag (measured with
Jaeger 2.13; upstream jaegertracing/jaeger#8553), while span metrics label every span by its
status and keep the trace id of recent ones."""

from __future__ import annotations

from observability.grafana.dashboards_src import grafana as g
from observability.grafana.dashboards_src import metrics as m
from observability.grafana.dashboards_src.promql import (
    error_ratio,
    quantile,
    rate,
    selector,
    sum_by,
)

UID = "mlapi-traces"
TRACES_SHOWN = 20

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


def failing_spans() -> g.Json:
    return g.timeseries(
        "Failing spans by span name",
        f"Spans of {m.SERVICE} with status ERROR per second (5xx, exceptions); 4xx are client "
        "mistakes and not errors. Exemplars are on: a dot opens a failing trace in Jaeger.",
        [
            g.prometheus_target(
                sum_by(BY_SPAN, rate(FAILED_CALLS)), g.label(m.SPAN_NAME), exemplar=True
            )
        ],
        unit=g.PER_SECOND,
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
        f"The {m.SERVICE} service's slowest traces (Jaeger), its failing spans with links to their "
        "traces, and rate, errors and duration per span name (span metrics).",
        [
            g.row("Traces: slowest (Jaeger), failing (span metrics, with exemplars)"),
            slowest_traces(),
            failing_spans(),
            g.row("Span metrics: rate, errors, duration"),
            span_rate(),
            span_error_ratio(),
            span_duration(),
        ],
    )
