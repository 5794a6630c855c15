"""HTTP sending for replay: one urllib3 keep-alive pool, a client span per attempt, bounded
retries, and an Outcome per logical request (the final attempt's status, or the transport
failure that ended it).

urllib3 directly, not `requests`: a request through requests and its OpenTelemetry
instrumentation cost 0.88 ms of client CPU on loopback, through urllib3 with the span made here
0.34 ms (measured, bench/README.md) — the difference between one process holding 1,000 req/s or
not. The environment (proxy variables, REQUESTS_CA_BUNDLE, ~/.netrc) is still read as
`requests` reads it, once per run.
"""

from __future__ import annotations

import email.utils
import json
import random
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
import urllib3
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, StatusCode, Tracer
from requests.utils import DEFAULT_CA_BUNDLE_PATH, get_auth_from_url, get_netrc_auth, select_proxy
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    NewConnectionError,
    ProtocolError,
    ProxyError,
    ReadTimeoutError,
    SSLError,
)

from replay.tracing import BAGGAGE_RUN_ID

RUN_ID_HEADER = "X-Replay-Run-Id"
REQUEST_ID_HEADER = "X-Request-ID"
# Retry-After values above this are not waited for: the failure is reported instead.
MAX_RETRY_AFTER_S = 5.0
CONNECT_BACKOFF_S = 0.05


@dataclass(slots=True)
class Outcome:
    """How one logical request ended. `status` is None when no response arrived; `error` then
    names the failure: connect, timeout, tls or connection (dropped mid-request)."""

    status: int | None
    error: str | None = None
    detail: str = ""
    retries: int = 0
    trace_id: str | None = None
    # Whether the server's response trace_id equals our span's (it joined our traceparent);
    # None when the server reports no trace id.
    trace_joined: bool | None = None
    body: Any = None
    # From an error response in the API's shape ({"error": {"code", "message"}}), else None.
    error_code: str | None = None
    error_message: str | None = None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def parse_header(text: str) -> tuple[str, str]:
    """`'K: V'` → (K, V); raises ValueError without echoing the text, which may be a secret
    (`Authorization Bearer ...` with the colon forgotten, or a token pasted alone)."""
    name, sep, value = text.partition(":")
    if not sep or not name.strip():
        raise ValueError("--header: expected 'Name: value' (the text given is not shown)")
    return name.strip(), value.strip()


def sets_authorization(headers: Mapping[str, str]) -> bool:
    """Whether `headers` set Authorization (header names are case-insensitive)."""
    return any(name.lower() == "authorization" for name in headers)


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date), None if absent or
    unparseable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    now = time.time() if now is None else now
    return max(0.0, when.timestamp() - now)


def _classify(err: HTTPError) -> str:
    """Only `connect` means the request provably never reached the server (safe to retry a POST)."""
    if isinstance(err, SSLError):
        return "tls"
    if isinstance(err, ConnectTimeoutError):  # NewConnectionError too: refused, unreachable
        return "connect"
    if isinstance(err, ReadTimeoutError):
        return "timeout"
    if isinstance(err, ProtocolError | ProxyError):
        return "connection"
    return "request"


def _short_reason(err: BaseException) -> str:
    """The readable reason (e.g. '[Errno 111] Connection refused'), not urllib3's repr of the
    connection object in front of it."""
    text = str(err)
    marker = "Failed to establish a new connection: "
    return (
        text.split(marker, 1)[1] if isinstance(err, NewConnectionError) and marker in text else text
    )


class Sender:
    """Sends JSON to `<target><path>` through a keep-alive pool sized to the concurrency; each
    attempt runs in a client span of `tracer` whose traceparent (and the thread's baggage) goes
    with the request."""

    def __init__(
        self,
        target: str,
        *,
        run_id: str,
        pool_size: int,
        timeout: float,
        headers: Mapping[str, str] | None = None,
        verify: bool | str = True,
        max_retries: int = 2,
        stop: threading.Event | None = None,
        tracer: Tracer | None = None,
    ) -> None:
        self.target = target.rstrip("/")
        self.max_retries = max_retries
        self._timeout = urllib3.Timeout(total=timeout)
        self._stop = stop or threading.Event()
        self._tracer = tracer or trace.get_tracer("replay")
        self._pool = _pool_for(self.target, verify, pool_size)
        self._request_ids = random.Random()  # seeded from os.urandom; ids need uniqueness only
        self._run_id = run_id
        parts = urlsplit(self.target)
        self._server = {
            "server.address": parts.hostname or "",
            "server.port": parts.port or (443 if parts.scheme == "https" else 80),
        }
        if verify is False:
            # The user asked for --insecure; one warning per request would drown the progress line.
            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
        self._base_headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            RUN_ID_HEADER: run_id,
            **_netrc_authorization(self.target, headers or {}),
            **(headers or {}),
        }

    def close(self) -> None:
        self._pool.clear()

    def url(self, path: str) -> str:
        return self.target + path

    def post_json(self, path: str, payload: Any) -> Outcome:
        """POST once, retrying only connect failures and 429/503 carrying Retry-After."""
        return self._request("POST", path, json.dumps(payload, separators=(",", ":")).encode())

    def get_json(self, path: str) -> Outcome:
        """GET with the same retries; the JSON body of a 2xx is in `body`."""
        return self._request("GET", path, None)

    def _request(self, method: str, path: str, body: bytes | None) -> Outcome:
        headers = {
            **self._base_headers,
            REQUEST_ID_HEADER: f"{self._request_ids.getrandbits(128):032x}",
        }
        url = self.url(path)
        retries = 0
        while True:
            outcome, wait = self._attempt(method, url, body, dict(headers))
            outcome.retries = retries
            if wait is None or retries >= self.max_retries or self._stop.wait(wait):
                return outcome
            retries += 1

    def _attempt(
        self, method: str, url: str, body: bytes | None, headers: dict[str, str]
    ) -> tuple[Outcome, float | None]:
        """One try; the second value is how long to wait before a retry, None for no retry."""
        attributes = {
            "http.request.method": method,
            "url.full": url,
            **self._server,
            BAGGAGE_RUN_ID: self._run_id,
        }
        with self._tracer.start_as_current_span(
            method, kind=SpanKind.CLIENT, attributes=attributes, record_exception=False
        ) as span:
            trace_id = _trace_id(span)
            propagate.inject(headers)
            try:
                response = self._pool.urlopen(
                    method, url, body=body, headers=headers, timeout=self._timeout,
                    retries=False, redirect=False,
                )  # fmt: skip
            except HTTPError as err:
                kind = _classify(err)
                span.set_attribute("error.type", type(err).__qualname__)
                span.set_status(StatusCode.ERROR, kind)
                outcome = Outcome(None, kind, _short_reason(err), trace_id=trace_id)
                return outcome, CONNECT_BACKOFF_S if kind == "connect" else None
            span.set_attribute("http.response.status_code", response.status)
            if response.status >= 400:
                span.set_attribute("error.type", str(response.status))
                span.set_status(StatusCode.ERROR)
        return _outcome(response, trace_id)


def _outcome(
    response: urllib3.BaseHTTPResponse, trace_id: str | None
) -> tuple[Outcome, float | None]:
    outcome = Outcome(response.status, trace_id=trace_id)
    if outcome.ok:
        outcome.body = _json_or_none(response.data)
        server_trace = outcome.body.get("trace_id") if isinstance(outcome.body, dict) else None
        if isinstance(server_trace, str) and len(server_trace) == 32:
            outcome.trace_joined = server_trace == trace_id
            outcome.trace_id = server_trace
        return outcome, None
    outcome.error_code, outcome.error_message = api_error(response.data)
    wait = None
    if response.status in (429, 503):
        wait = retry_after_seconds(response.headers.get("Retry-After"))
        if wait is not None and wait > MAX_RETRY_AFTER_S:
            wait = None
    return outcome, wait


def _trace_id(span: trace.Span) -> str | None:
    context = span.get_span_context()
    return f"{context.trace_id:032x}" if context.is_valid else None


def _pool_for(target: str, verify: bool | str, pool_size: int) -> urllib3.PoolManager:
    """A pool manager for the target as `requests` would reach it: through the proxy its
    environment names (HTTP(S)_PROXY, NO_PROXY), verifying TLS with --ca-cert, else
    REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE, else certifi's bundle; nothing with --insecure."""
    with requests.Session() as session:
        settings = session.merge_environment_settings(target, {}, None, verify, None)
    if verify is False:
        tls: dict[str, Any] = {"cert_reqs": "CERT_NONE", "assert_hostname": False}
    else:
        bundle = (
            settings["verify"] if isinstance(settings["verify"], str) else DEFAULT_CA_BUNDLE_PATH
        )
        where = "ca_cert_dir" if Path(bundle).is_dir() else "ca_certs"
        tls = {"cert_reqs": "CERT_REQUIRED", where: bundle}
    # One target, so one pool; block=False: a burst beyond the pool opens (and drops) more.
    pool: dict[str, Any] = {"num_pools": 1, "maxsize": pool_size, "block": False, **tls}
    proxy = select_proxy(target, settings["proxies"])
    if not proxy:
        return urllib3.PoolManager(**pool)
    user, password = get_auth_from_url(proxy)
    proxy_headers = urllib3.make_headers(proxy_basic_auth=f"{user}:{password}") if user else None
    return urllib3.ProxyManager(proxy, proxy_headers=proxy_headers, **pool)


def _netrc_authorization(target: str, headers: Mapping[str, str]) -> dict[str, str]:
    """`Authorization: Basic` from ~/.netrc for the target, as requests sends it, unless the
    caller sets its own Authorization."""
    if sets_authorization(headers):
        return {}
    credentials = get_netrc_auth(target)
    if not credentials:
        return {}
    return urllib3.make_headers(basic_auth=f"{credentials[0]}:{credentials[1]}")


def api_error(content: bytes) -> tuple[str | None, str | None]:
    """(code, message) of an error body in the API's shape; (None, None) for anything else
    (an HTML page from a proxy, an empty body)."""
    document = _json_or_none(content)
    error = document.get("error") if isinstance(document, dict) else None
    if not isinstance(error, dict):
        return None, None
    code, message = error.get("code"), error.get("message")
    return (
        code if isinstance(code, str) else None,
        message if isinstance(message, str) else None,
    )


def _json_or_none(content: bytes) -> Any:
    try:
        return json.loads(content)
    except ValueError:
        return None
