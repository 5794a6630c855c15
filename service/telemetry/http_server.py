"""The Flask instrumentation this service runs with: server spans and the stable
`http.server.request.duration` (probes and /metrics excluded), trace ids for the access log, span
names bounded for unrouted requests, and the embedded `/metrics` route.

Header capture (OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_*) is read by the instrumentation from
the process environment on every request; `redact_authorization` is the process-wide option the
server sets at start so that a bearer token can never reach a span.
"""

from __future__ import annotations

import os
from collections.abc import Callable, MutableMapping
from typing import Any

import flask
from opentelemetry import trace
from opentelemetry.instrumentation import wsgi as otel_wsgi
from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import TracerProvider

# Regexes matched against the full URL; probes and scrapes are not traffic.
EXCLUDED_URLS = (r"/healthz(\?|$)", r"/readyz(\?|$)", r"/metrics(\?|$)")
# Where the access log finds a request's trace and span ids (service/server/access_log.py): the
# line is written after the span has ended.
ACCESS_LOG_FIELDS_KEY = "mlapi.access_log_fields"
# The variable the HTTP instrumentations read (per request on the server) to replace captured
# header values with "[REDACTED]"; entries are regexes, searched: also matches Proxy-Authorization.
SANITIZE_FIELDS_ENV = "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS"
AUTHORIZATION_FIELD = "authorization"

WsgiApp = Callable[..., Any]


def instrument(
    app: flask.Flask,
    tracer_provider: TracerProvider | None,
    meter_provider: MeterProvider | None,
    metrics_app: WsgiApp | None,
) -> None:
    """Instrument `app` with these providers; serve `metrics_app` as /metrics when given."""
    from opentelemetry.instrumentation.flask import FlaskInstrumentor

    user_excluded = os.environ.get("OTEL_PYTHON_FLASK_EXCLUDED_URLS", "")
    excluded = ",".join(p for p in (*EXCLUDED_URLS, user_excluded) if p)
    FlaskInstrumentor.instrument_app(
        app,
        tracer_provider=tracer_provider,
        meter_provider=meter_provider,
        excluded_urls=excluded,
        enable_commenter=False,
    )
    app.after_request(_add_trace_ids_to_access_log)
    app.after_request(_name_unrouted_span)
    if metrics_app is not None:
        app.add_url_rule(
            "/metrics",
            endpoint="metrics",
            view_func=lambda: flask.Response.from_app(metrics_app, flask.request.environ),
            methods=["GET"],
        )


def redact_authorization(environ: MutableMapping[str, str]) -> None:
    """Add Authorization to the header-sanitize list in ``environ`` (keeping the user's entries),
    so capturing request headers (OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST) can
    never put a token into a span. Idempotent."""
    current = [entry.strip() for entry in environ.get(SANITIZE_FIELDS_ENV, "").split(",")]
    entries = [entry for entry in current if entry]
    if AUTHORIZATION_FIELD not in (entry.lower() for entry in entries):
        environ[SANITIZE_FIELDS_ENV] = ",".join([*entries, AUTHORIZATION_FIELD])


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
