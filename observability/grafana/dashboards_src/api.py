"""Model API dashboard (uid mlapi-api): is the service up, fast and error-free, per route and
worker, and is the telemetry pipeline (collector, scrapes) itself healthy."""

from __future__ import annotations

from observability.grafana.dashboards_src import grafana as g
from observability.grafana.dashboards_src import metrics as m
from observability.grafana.dashboards_src import variables
from observability.grafana.dashboards_src.promql import (
    error_ratio,
    or_zero_where,
    quantile,
    rate,
    ratio,
    selector,
    sum_by,
)

UID = "mlapi-api"
QUANTILES = (0.5, 0.95, 0.99)

REQUESTS = selector(m.HTTP_REQUESTS, m.BY_INSTANCE)
SERVER_ERRORS = selector(m.HTTP_REQUESTS, m.SERVER_ERROR, m.BY_INSTANCE)
CLIENT_ERRORS = selector(m.HTTP_REQUESTS, m.CLIENT_ERROR, m.BY_INSTANCE)
LATENCY_BUCKETS = selector(m.HTTP_DURATION_BUCKET, m.BY_INSTANCE)
INFERENCE_BUCKETS = selector(m.INFERENCE_BUCKET, m.BY_MODEL_VERSION, m.BY_INSTANCE)
ERROR_RATIO_STEPS = ((None, "green"), (0.01, "orange"), (0.05, "red"))


def _percentile_label(q: float) -> str:
    return f"p{q * 100:g}"


def request_rate() -> g.Json:
    return g.stat(
        "Request rate",
        "HTTP requests per second to the API, all routes and instances (health probes and "
        "/metrics are not instrumented).",
        [g.prometheus_target(sum_by([], rate(REQUESTS)), "requests/s")],
        unit=g.REQUESTS_PER_SECOND,
    )


def server_error_ratio() -> g.Json:
    return g.stat(
        "Server errors (5xx)",
        "Share of requests answered with a 5xx: the service's own failures. The availability alert "
        "fires above 5 % over 5 minutes.",
        [g.prometheus_target(error_ratio(SERVER_ERRORS, REQUESTS), "5xx")],
        unit=g.RATIO,
        thresholds=ERROR_RATIO_STEPS,
    )


def client_error_ratio() -> g.Json:
    return g.stat(
        "Client errors (4xx)",
        "Share of requests refused as client mistakes (invalid JSON, missing or out-of-type "
        "features...). High values point at a caller, not at the service; see Model quality for "
        "the reasons.",
        [g.prometheus_target(error_ratio(CLIENT_ERRORS, REQUESTS), "4xx")],
        unit=g.RATIO,
        thresholds=((None, "green"), (0.05, "orange"), (0.25, "red")),
    )


def p95_latency() -> g.Json:
    return g.stat(
        "p95 latency",
        "95th percentile of server-side request duration, all routes. The latency alert fires "
        "above 0.5 s per route over 10 minutes.",
        [g.prometheus_target(quantile(0.95, LATENCY_BUCKETS), "p95")],
        unit=g.SECONDS,
        thresholds=((None, "green"), (0.25, "orange"), (0.5, "red")),
    )


def requests_by_route() -> g.Json:
    return g.timeseries(
        "Requests by route and status",
        "Request rate per Flask route template and HTTP status code.",
        [
            g.prometheus_target(
                sum_by([m.ROUTE, m.STATUS_CODE], rate(REQUESTS)),
                f"{g.label(m.ROUTE)} {g.label(m.STATUS_CODE)}",
            )
        ],
        unit=g.REQUESTS_PER_SECOND,
    )


def error_ratio_by_route() -> g.Json:
    by = [m.ROUTE]
    return g.timeseries(
        "Error ratio by route",
        "Share of each route's requests answered with a 5xx (service failure) or a 4xx (client "
        "mistake).",
        [
            g.prometheus_target(
                error_ratio(SERVER_ERRORS, REQUESTS, by), f"5xx {g.label(m.ROUTE)}"
            ),
            g.prometheus_target(
                error_ratio(CLIENT_ERRORS, REQUESTS, by), f"4xx {g.label(m.ROUTE)}"
            ),
        ],
        unit=g.RATIO,
    )


def latency_quantiles() -> g.Json:
    return g.timeseries(
        "Request latency p50 / p95 / p99",
        "Server-side request duration percentiles over all routes. Exemplars are on: each dot is a "
        "real request; click it to open its trace in Jaeger.",
        [
            g.prometheus_target(quantile(q, LATENCY_BUCKETS), _percentile_label(q), exemplar=True)
            for q in QUANTILES
        ],
        unit=g.SECONDS,
    )


def latency_by_route() -> g.Json:
    return g.timeseries(
        "p95 latency by route",
        "95th percentile of request duration per route; exemplar dots open the trace of a request "
        "of that route.",
        [
            g.prometheus_target(
                quantile(0.95, LATENCY_BUCKETS, [m.ROUTE]), g.label(m.ROUTE), exemplar=True
            )
        ],
        unit=g.SECONDS,
    )


def inference_quantiles() -> g.Json:
    return g.timeseries(
        "Model call duration p50 / p95 / p99",
        "Duration of the model's predict call alone (no parsing, validation or I/O): the gap to "
        "the request latency is the API's own overhead. Exemplars open the request's trace.",
        [
            g.prometheus_target(quantile(q, INFERENCE_BUCKETS), _percentile_label(q), exemplar=True)
            for q in QUANTILES
        ],
        unit=g.SECONDS,
    )


def requests_by_instance() -> g.Json:
    return g.timeseries(
        "Requests by instance",
        "Request rate per serving process (gunicorn worker): an idle or missing worker shows here.",
        [g.prometheus_target(sum_by([m.INSTANCE], rate(REQUESTS)), g.label(m.INSTANCE))],
        unit=g.REQUESTS_PER_SECOND,
    )


def in_flight_by_instance() -> g.Json:
    return g.timeseries(
        "In-flight requests by instance",
        "Requests being served right now per worker (http.server.active_requests, sampled at "
        "each metric export). A worker stuck near its thread count is saturated.",
        [
            g.prometheus_target(
                sum_by([m.INSTANCE], selector(m.HTTP_ACTIVE, m.BY_INSTANCE)),
                g.label(m.INSTANCE),
            )
        ],
        unit=g.COUNT,
    )


def latency_by_instance() -> g.Json:
    return g.timeseries(
        "p95 latency by instance",
        "95th percentile of request duration per worker: one slow worker stands out here.",
        [g.prometheus_target(quantile(0.95, LATENCY_BUCKETS, [m.INSTANCE]), g.label(m.INSTANCE))],
        unit=g.SECONDS,
    )


def scrape_health() -> g.Json:
    return g.stat(
        "Scrape targets",
        "Prometheus' `up` per scrape job: the collector's exporter (service and span metrics), "
        "its own telemetry, Jaeger, Alertmanager and Prometheus itself. DOWN means blind.",
        [g.prometheus_target(m.UP, g.label("job"), instant=True)],
        unit=g.NO_UNIT,
        width=24,
        thresholds=((None, "red"), (1, "green")),
        mappings=[
            {
                "options": {
                    "0": {"color": "red", "index": 0, "text": "DOWN"},
                    "1": {"color": "green", "index": 1, "text": "UP"},
                },
                "type": "value",
            }
        ],
    )


def _collector(metric: str, signal: str) -> str:
    return selector(metric.format(signal=signal), m.COLLECTOR_JOB)


def collector_intake() -> g.Json:
    targets = []
    for signal in m.COLLECTOR_SIGNALS:
        for metric, verb in ((m.RECEIVER_ACCEPTED, "accepted"), (m.RECEIVER_REFUSED, "refused")):
            targets.append(
                g.prometheus_target(
                    sum_by(["receiver"], rate(_collector(metric, signal))),
                    f"{g.label('receiver')} {signal} {verb}",
                )
            )
    return g.timeseries(
        "Collector intake",
        "Spans and metric points the collector's receivers accepted or refused per second. "
        "Refusals mean the memory limiter is shedding load: the SDKs retry, then drop.",
        targets,
        unit=g.ITEMS_PER_SECOND,
    )


def collector_export_failures() -> g.Json:
    by = ["exporter"]
    return g.timeseries(
        "Collector export failures",
        "Items per second an exporter failed to send after its retries (Jaeger for spans, the "
        "Prometheus exporter for metrics). Zero while exports succeed.",
        [
            g.prometheus_target(
                or_zero_where(
                    sum_by(by, rate(_collector(m.EXPORTER_FAILED, signal))),
                    sum_by(by, rate(_collector(m.EXPORTER_SENT, signal))),
                ),
                f"{g.label('exporter')} {signal}",
            )
            for signal in m.COLLECTOR_SIGNALS
        ],
        unit=g.ITEMS_PER_SECOND,
    )


def collector_queue() -> g.Json:
    by = ["exporter"]
    return g.timeseries(
        "Collector export queue fill",
        "Sending-queue size over capacity per exporter. Near 100 % the backend (Jaeger) is slow or "
        "down and new batches are about to be dropped.",
        [
            g.prometheus_target(
                ratio(
                    sum_by(by, selector(m.EXPORTER_QUEUE_SIZE, m.COLLECTOR_JOB)),
                    sum_by(by, selector(m.EXPORTER_QUEUE_CAPACITY, m.COLLECTOR_JOB)),
                ),
                g.label("exporter"),
            )
        ],
        unit=g.RATIO,
    )


def dashboard() -> g.Json:
    return g.dashboard(
        UID,
        "Model API",
        "Is the model API up, fast and error-free, per route and per worker; and is the telemetry "
        "pipeline that feeds these panels healthy.",
        [
            g.row("Traffic and errors"),
            request_rate(),
            server_error_ratio(),
            client_error_ratio(),
            p95_latency(),
            requests_by_route(),
            error_ratio_by_route(),
            g.row("Latency (exemplars open traces)"),
            latency_quantiles(),
            latency_by_route(),
            inference_quantiles(),
            g.row("Instances"),
            requests_by_instance(),
            in_flight_by_instance(),
            latency_by_instance(),
            g.row("Telemetry pipeline"),
            scrape_health(),
            collector_intake(),
            collector_export_failures(),
            collector_queue(),
        ],
        variables.BOTH,
    )
