"""Optional bearer-token auth (off by default): the accepted tokens and the per-request check.

Configuration: ``MLAPI_AUTH_TOKENS`` (comma-separated) or ``MLAPI_AUTH_TOKENS_FILE`` (one token per
line; blank lines and ``#`` comments ignored: a Docker or Kubernetes secret), never both. With
tokens set, every route except ``OPEN_PATHS`` needs ``Authorization: Bearer <token>``.

A token never leaves this module in text: problems name the variable and the token's position,
``repr``/``str`` show only the count, and the server span's captured headers always redact
``Authorization`` (see ``redact_authorization_in_spans``).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path

from flask import Flask, Response, request

from service.errors import ApiError, Detail, error_response

logger = logging.getLogger(__name__)

TOKENS_ENV = "MLAPI_AUTH_TOKENS"
TOKENS_FILE_ENV = "MLAPI_AUTH_TOKENS_FILE"
MIN_TOKEN_CHARS = 16
REALM = "mlapi"
# Probes, the scrape target and the API's own description: callers that hold no token.
OPEN_PATHS = frozenset({"/healthz", "/readyz", "/metrics", "/openapi.json"})
# RFC 6750 b64token: what a Bearer header can carry. It also excludes whitespace, the comma that
# separates MLAPI_AUTH_TOKENS and the `#` that starts a comment in the file.
_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
# The OTel variable the HTTP instrumentations read (per request on the server, at instrument()
# time in clients) to replace captured header values with "[REDACTED]"; entries are regexes.
SANITIZE_FIELDS_ENV = "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS"
# A regex search: also matches Proxy-Authorization.
AUTHORIZATION_FIELD = "authorization"


@dataclass(frozen=True)
class AuthTokens:
    """The accepted bearer tokens; empty means auth is off. Construction validates every token."""

    values: tuple[str, ...] = ()
    # SHA-256 of each token: comparing fixed-length digests leaks no token's length.
    _digests: tuple[bytes, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for position, token in enumerate(self.values, start=1):
            if len(token) < MIN_TOKEN_CHARS or not _B64TOKEN.fullmatch(token):
                raise ValueError(
                    f"token {position} of {len(self.values)} must be >= {MIN_TOKEN_CHARS} "
                    "characters of A-Z a-z 0-9 - . _ ~ + / (then optional = padding); "
                    "value not shown"
                )
        object.__setattr__(self, "_digests", tuple(_digest(token) for token in self.values))

    def __repr__(self) -> str:
        return f"AuthTokens(<{len(self.values)} tokens>)"

    __str__ = __repr__

    def __bool__(self) -> bool:
        return bool(self.values)

    def accepts(self, presented: str) -> bool:
        """Whether ``presented`` is one of the tokens. Compares against every token without an
        early exit, in constant time per comparison, so timing reveals neither which one matched
        nor how much of one did."""
        candidate = _digest(presented)
        matched = False
        for digest in self._digests:
            matched |= hmac.compare_digest(candidate, digest)
        return matched

    def to_env(self) -> dict[str, str]:
        """The variables that reproduce these tokens in a child process: inline, so a secret file
        is read once, by the process that started the server."""
        return {TOKENS_ENV: ",".join(self.values), TOKENS_FILE_ENV: ""}


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def tokens_from_env(env: Mapping[str, str]) -> AuthTokens:
    """The tokens the two variables configure (unset or empty: none). Raises ValueError with one
    line that names the variable and never holds a token."""
    inline = env.get(TOKENS_ENV, "").strip()
    path = env.get(TOKENS_FILE_ENV, "").strip()
    if inline and path:
        raise ValueError(f"{TOKENS_ENV} and {TOKENS_FILE_ENV} are both set; set one")
    if path:
        return _tokens(TOKENS_FILE_ENV, _read_token_file(Path(path).expanduser()))
    if inline:
        parts = (part.strip() for part in inline.split(","))
        return _tokens(TOKENS_ENV, [part for part in parts if part])
    return AuthTokens()


def _read_token_file(path: Path) -> list[str]:
    where = f"{TOKENS_FILE_ENV}={str(path)!r}"
    try:
        # utf-8-sig: a byte-order mark from a Windows editor is not part of the first token.
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        # Its message would quote the file's bytes.
        raise ValueError(f"{where}: not UTF-8 text") from None
    except OSError as exc:
        raise ValueError(f"{where}: cannot read: {exc.strerror or type(exc).__name__}") from None
    lines = (line.strip() for line in text.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def _tokens(variable: str, values: list[str]) -> AuthTokens:
    # A set variable that yields no token must not quietly leave the API open.
    if not values:
        raise ValueError(f"{variable}: set but holds no token")
    try:
        return AuthTokens(tuple(values))
    except ValueError as exc:
        raise ValueError(f"{variable}: {exc}") from None


@dataclass(frozen=True)
class Refusal:
    """Why a request is not authenticated. ``token_sent``: a bearer token was presented but is
    not accepted (RFC 6750 ``error="invalid_token"``); otherwise no usable credentials came."""

    problem: str
    token_sent: bool

    def challenge(self) -> str:
        challenge = f'Bearer realm="{REALM}"'
        return challenge + ', error="invalid_token"' if self.token_sent else challenge


def check_authorization(header: str | None, tokens: AuthTokens) -> Refusal | None:
    """None when ``header`` (the Authorization value) carries an accepted bearer token."""
    if header is None or not header.strip():
        return Refusal("missing; send 'Authorization: Bearer <token>'", token_sent=False)
    scheme, _, credentials = header.strip().partition(" ")
    credentials = credentials.strip()
    # The scheme name is case-insensitive (RFC 9110 11.1).
    if scheme.lower() != "bearer" or not credentials:
        return Refusal("not of the form 'Bearer <token>'", token_sent=False)
    if not tokens.accepts(credentials):
        return Refusal("the bearer token is not valid", token_sent=True)
    return None


def unauthorized_response(refusal: Refusal) -> tuple[Response, int]:
    error = ApiError(
        "unauthorized",
        "authentication required",
        (Detail("Authorization", refusal.problem, "unauthorized"),),
    )
    response, status = error_response(error)
    response.headers["WWW-Authenticate"] = refusal.challenge()
    return response, status


def install(app: Flask, tokens: AuthTokens) -> None:
    """With tokens, refuse every matched route outside OPEN_PATHS without an accepted token.

    A before_request hook: it runs before any view, so before readiness is checked and before a
    body is read (an unauthenticated caller costs no parsing and learns nothing about the model).
    Install it after telemetry so that 401s are traced and counted like any other status.
    Unmatched paths keep their 404/405: routes are public in /openapi.json anyway."""
    if not tokens:
        logger.info("bearer auth off (%s and %s unset)", TOKENS_ENV, TOKENS_FILE_ENV)
        return
    logger.info(
        "bearer auth on: %d tokens; open without a token: %s",
        len(tokens.values),
        ", ".join(sorted(OPEN_PATHS)),
    )
    app.before_request(_authenticator(tokens))


def _authenticator(tokens: AuthTokens) -> Callable[[], tuple[Response, int] | None]:
    def authenticate() -> tuple[Response, int] | None:
        rule = request.url_rule
        if rule is None or rule.rule in OPEN_PATHS:
            return None
        refusal = check_authorization(request.headers.get("Authorization"), tokens)
        return None if refusal is None else unauthorized_response(refusal)

    return authenticate


def redact_authorization_in_spans(environ: MutableMapping[str, str]) -> None:
    """Add Authorization to the OTel header-sanitize list in ``environ`` (keeping the user's
    entries), so capturing request headers (OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_
    REQUEST) can never put a token into a span. Idempotent."""
    current = [entry.strip() for entry in environ.get(SANITIZE_FIELDS_ENV, "").split(",")]
    entries = [entry for entry in current if entry]
    if AUTHORIZATION_FIELD not in (entry.lower() for entry in entries):
        environ[SANITIZE_FIELDS_ENV] = ",".join([*entries, AUTHORIZATION_FIELD])
