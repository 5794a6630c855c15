"""HTTP sending for replay: one pooled `requests.Session`, bounded retries, and an Outcome per
logical request (the final attempt's status, or the transport failure that ended it)."""

from __future__ import annotations

import email.utils
import json
import random
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.exceptions import MaxRetryError, NewConnectionError

from replay.tracing import trace_id_from_traceparent

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


def _classify(err: requests.RequestException) -> str:
    """Only `connect` means the request provably never reached the server (safe to retry a POST)."""
    if isinstance(err, requests.exceptions.SSLError):
        return "tls"
    if isinstance(err, requests.exceptions.ConnectTimeout):
        return "connect"
    if isinstance(err, requests.exceptions.Timeout):
        return "timeout"
    if isinstance(err, requests.exceptions.ConnectionError):
        reason = err.args[0] if err.args else None
        if isinstance(reason, MaxRetryError) and isinstance(reason.reason, NewConnectionError):
            return "connect"
        return "connection"
    return "request"


def _short_reason(err: BaseException) -> str:
    """The innermost readable reason (e.g. 'Connection refused'), not urllib3's nested repr."""
    reason: Any = err
    for _ in range(10):  # exception chains are short; the bound only guards odd self-references
        inner = reason.args[0] if getattr(reason, "args", None) else None
        if isinstance(reason, MaxRetryError) and reason.reason is not None:
            inner = reason.reason
        if not isinstance(inner, BaseException):
            break
        reason = inner
    text = str(reason)
    # NewConnectionError reads "<conn object>: Failed to establish a new connection: [Errno..]".
    return text.split(": ", 1)[-1] if "object at 0x" in text else text


class Sender:
    """POSTs JSON to `<target><path>` through a keep-alive pool sized to the concurrency."""

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
    ) -> None:
        self.target = target.rstrip("/")
        self.timeout = timeout
        self.max_retries = max_retries
        self._stop = stop or threading.Event()
        netrc = not sets_authorization(headers or {})
        self._session = _session_for(self.target, verify, pool_size, netrc=netrc)
        self._request_ids = random.Random()  # seeded from os.urandom; ids need uniqueness only
        if verify is False:
            # The user asked for --insecure; one warning per request would drown the progress line.
            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
        self._base_headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            RUN_ID_HEADER: run_id,
            **(headers or {}),
        }

    def close(self) -> None:
        self._session.close()

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
            outcome, wait = self._attempt(method, url, body, headers)
            outcome.retries = retries
            if wait is None or retries >= self.max_retries or self._stop.wait(wait):
                return outcome
            retries += 1

    def _attempt(
        self, method: str, url: str, body: bytes | None, headers: dict[str, str]
    ) -> tuple[Outcome, float | None]:
        """One try; the second value is how long to wait before a retry, None for no retry."""
        try:
            response = self._session.request(
                method, url, data=body, headers=headers, timeout=self.timeout
            )
        except requests.RequestException as err:
            kind = _classify(err)
            sent = err.request.headers.get("traceparent") if err.request is not None else None
            trace_id = trace_id_from_traceparent(sent)
            outcome = Outcome(None, kind, _short_reason(err), trace_id=trace_id)
            return outcome, CONNECT_BACKOFF_S if kind == "connect" else None
        trace_id = trace_id_from_traceparent(response.request.headers.get("traceparent"))
        outcome = Outcome(response.status_code, trace_id=trace_id)
        if outcome.ok:
            outcome.body = _json_or_none(response.content)
            server_trace = outcome.body.get("trace_id") if isinstance(outcome.body, dict) else None
            if isinstance(server_trace, str) and len(server_trace) == 32:
                outcome.trace_joined = server_trace == trace_id
                outcome.trace_id = server_trace
            return outcome, None
        outcome.error_code, outcome.error_message = api_error(response.content)
        wait = None
        if response.status_code in (429, 503):
            wait = retry_after_seconds(response.headers.get("Retry-After"))
            if wait is not None and wait > MAX_RETRY_AFTER_S:
                wait = None
        return outcome, wait


def _session_for(
    target: str, verify: bool | str, pool_size: int, *, netrc: bool
) -> requests.Session:
    """A session whose environment settings (proxy variables, REQUESTS_CA_BUNDLE, ~/.netrc) are
    resolved once for the target instead of on every request: per request they cost about a
    third of the client's CPU (measured, ~200 us of ~650 us per request on loopback).
    ``netrc=False`` when the caller sends its own Authorization: requests would replace it."""
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=1, pool_maxsize=pool_size)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    settings = session.merge_environment_settings(target, {}, None, verify, None)
    session.proxies = settings["proxies"]
    # A CA path costs a stat() per request inside requests; plain http needs none.
    session.verify = settings["verify"] if target.startswith("https:") else verify
    session.auth = requests.utils.get_netrc_auth(target) if netrc else None
    session.trust_env = False
    return session


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
