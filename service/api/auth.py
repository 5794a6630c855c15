"""Optional bearer-token auth (off by default): the per-request check.

The accepted tokens come from MLAPI_AUTH_TOKENS or MLAPI_AUTH_TOKENS_FILE (service/credentials.py).
With tokens set, every route except ``OPEN_PATHS`` needs ``Authorization: Bearer <token>``. A token
is never echoed; the server span's captured headers always redact ``Authorization``
(service/telemetry/http_server.py: ``redact_authorization``, set by the server at start).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from flask import Flask, Response, request

from service.api.errors import ApiError, Detail, error_response
from service.credentials import TOKENS_ENV, TOKENS_FILE_ENV, AuthTokens

logger = logging.getLogger(__name__)

REALM = "mlapi"
# Probes, the scrape target and the API's own description: callers that hold no token.
OPEN_PATHS = frozenset({"/healthz", "/readyz", "/metrics", "/openapi.json"})


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
