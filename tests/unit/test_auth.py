"""Optional bearer auth: configuration, the constant-time check, 401 shapes, open endpoints,
OpenAPI security, and a token never reaching config errors, logs, spans, metrics or replay."""

from __future__ import annotations

import json
import logging
import os

import pytest
from openapi_spec_validator import validate as validate_openapi
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from replay.cli import build_parser, config_from_args, with_env_token
from replay.sender import Sender, parse_header
from service import credentials
from service.api.app import create_app
from service.api.auth import check_authorization
from service.credentials import (
    MIN_TOKEN_CHARS,
    TOKENS_ENV,
    TOKENS_FILE_ENV,
    AuthTokens,
    tokens_from_env,
)
from service.model.store import LoadedModel
from service.settings import ConfigError, Settings
from service.telemetry.http_server import SANITIZE_FIELDS_ENV, redact_authorization
from service.telemetry.setup import init_telemetry

GOOD = "tok-ALPHA.0123456789_abcdef"
OTHER = "tok-BRAVO+0123456789/xyz=="
WRONG = "tok-WRONG-0123456789-nope"
CHALLENGE = 'Bearer realm="mlapi"'
INVALID_TOKEN_CHALLENGE = 'Bearer realm="mlapi", error="invalid_token"'


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, no_otel_env: None) -> None:
    """No inherited OTEL_*/auth variables; registered so monkeypatch restores what the server's
    start-up (redact_authorization) writes into os.environ."""
    for name in list(os.environ):
        if name.startswith(("MLAPI_AUTH_", "REPLAY_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv(SANITIZE_FIELDS_ENV, "")


def secured_settings(**changes) -> Settings:
    return Settings(auth_tokens=AuthTokens((GOOD, OTHER)), **changes)


@pytest.fixture
def client(model):
    return create_app(secured_settings(), model).test_client()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_unauthorized(response, challenge: str, problem: str) -> None:
    assert response.status_code == 401, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    assert response.headers["WWW-Authenticate"] == challenge
    error = response.get_json()["error"]
    assert error["code"] == "unauthorized"
    assert error["details"] == [{"field": "Authorization", "problem": problem}]


# --- configuration ---------------------------------------------------------------------------


def test_auth_is_off_by_default():
    assert not Settings.from_env({}).auth_tokens
    assert not tokens_from_env({TOKENS_ENV: "  ", TOKENS_FILE_ENV: ""})


def test_inline_tokens_are_comma_separated_and_trimmed():
    tokens = tokens_from_env({TOKENS_ENV: f" {GOOD} , {OTHER},"})
    assert tokens.values == (GOOD, OTHER)


def test_token_file_skips_blank_lines_and_comments(tmp_path):
    secret = tmp_path / "tokens"
    secret.write_text(f"# rotated 2026-11\n\n  {GOOD}  \n#{WRONG}\n{OTHER}\n")
    assert Settings.from_env({TOKENS_FILE_ENV: str(secret)}).auth_tokens.values == (GOOD, OTHER)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({TOKENS_ENV: GOOD, TOKENS_FILE_ENV: "/run/secrets/t"}, "both set"),
        ({TOKENS_FILE_ENV: "/nonexistent/tokens"}, "cannot read: No such file or directory"),
        ({TOKENS_ENV: " , ,"}, f"{TOKENS_ENV}: set but holds no token"),
        ({TOKENS_ENV: f"{GOOD},{WRONG[: MIN_TOKEN_CHARS - 1]}"}, "token 2 of 2 must be >= 16"),
        ({TOKENS_ENV: f"{GOOD} {WRONG}"}, "token 1 of 1 must be"),  # whitespace inside
        ({TOKENS_ENV: f"{WRONG}#secret"}, "token 1 of 1 must be"),
    ],
)
def test_bad_token_configuration_names_the_variable_not_the_value(env, expected):
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({**env, "MLAPI_PORT": "http"})
    message = str(caught.value)
    assert expected in message
    assert "MLAPI_PORT='http'" in message  # still one error listing every bad variable
    for token in (GOOD, WRONG, WRONG[: MIN_TOKEN_CHARS - 1]):
        assert token not in message


def test_token_file_encoding(tmp_path):
    secret = tmp_path / "tokens"
    secret.write_bytes(b"\xef\xbb\xbf" + f"{GOOD}\r\n".encode())  # BOM, CRLF
    assert tokens_from_env({TOKENS_FILE_ENV: str(secret)}).values == (GOOD,)
    secret.write_bytes(b"\xff" + GOOD.encode())
    with pytest.raises(ValueError) as caught:
        tokens_from_env({TOKENS_FILE_ENV: str(secret)})
    assert str(caught.value) == f"{TOKENS_FILE_ENV}={str(secret)!r}: not UTF-8 text"
    with pytest.raises(ValueError, match="cannot read: Is a directory"):
        tokens_from_env({TOKENS_FILE_ENV: str(tmp_path)})


def test_a_file_without_tokens_is_an_error_not_an_open_api(tmp_path):
    secret = tmp_path / "tokens"
    secret.write_text("# nothing yet\n\n")
    with pytest.raises(ConfigError, match=f"{TOKENS_FILE_ENV}: set but holds no token"):
        Settings.from_env({TOKENS_FILE_ENV: str(secret)})


def test_settings_repr_and_str_hide_tokens():
    settings = secured_settings()
    for text in (repr(settings), str(settings), repr(settings.auth_tokens), f"{settings}"):
        assert GOOD not in text and OTHER not in text
    assert "AuthTokens(<2 tokens>)" in repr(settings)


def test_to_env_passes_file_tokens_inline_so_the_file_is_read_once(tmp_path):
    secret = tmp_path / "tokens"
    secret.write_text(f"{GOOD}\n{OTHER}\n")
    settings = Settings.from_env({TOKENS_FILE_ENV: str(secret)})
    env = settings.to_env()
    assert (env[TOKENS_ENV], env[TOKENS_FILE_ENV]) == (f"{GOOD},{OTHER}", "")
    secret.unlink()
    assert Settings.from_env(env) == settings
    assert Settings.from_env(Settings().to_env()) == Settings()


# --- the check -------------------------------------------------------------------------------


@pytest.mark.parametrize("presented", [GOOD, OTHER, WRONG, "", "x" * 10_000])
def test_every_token_is_compared_in_constant_time_without_early_exit(monkeypatch, presented):
    calls: list[tuple[bytes, bytes]] = []
    compare = credentials.hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return compare(a, b)

    monkeypatch.setattr(credentials.hmac, "compare_digest", spy)
    tokens = AuthTokens((GOOD, OTHER, "tok-CHARLIE-0123456789"))
    assert tokens.accepts(presented) is (presented in (GOOD, OTHER))
    # One comparison per configured token, whichever matched; fixed-length digests, so neither
    # the matching token nor any token's length shows in the timing.
    assert len(calls) == 3
    assert {(len(a), len(b)) for a, b in calls} == {(32, 32)}


@pytest.mark.parametrize(
    ("header", "problem", "token_sent"),
    [
        (None, "missing; send 'Authorization: Bearer <token>'", False),
        ("   ", "missing; send 'Authorization: Bearer <token>'", False),
        (f"Basic {GOOD}", "not of the form 'Bearer <token>'", False),
        ("Bearer", "not of the form 'Bearer <token>'", False),
        ("Bearer   ", "not of the form 'Bearer <token>'", False),
        (f"Bearer {WRONG}", "the bearer token is not valid", True),
        (f"Bearer {GOOD}x", "the bearer token is not valid", True),
        (f"Bearer {GOOD} {GOOD}", "the bearer token is not valid", True),
    ],
)
def test_refusals(header, problem, token_sent):
    refusal = check_authorization(header, AuthTokens((GOOD,)))
    assert refusal is not None
    assert (refusal.problem, refusal.token_sent) == (problem, token_sent)


@pytest.mark.parametrize("header", [f"Bearer {GOOD}", f"bearer {GOOD}", f"  BEARER   {OTHER} "])
def test_accepted_headers(header):
    assert check_authorization(header, AuthTokens((GOOD, OTHER))) is None


# --- the app ---------------------------------------------------------------------------------


def test_protected_routes_answer_401_in_the_error_shape(client, row):
    missing = "missing; send 'Authorization: Bearer <token>'"
    assert_unauthorized(client.post("/predict", json=row), CHALLENGE, missing)
    assert_unauthorized(client.post("/feedback", json={"id": "x", "actual": 1}), CHALLENGE, missing)
    assert_unauthorized(client.get("/model"), CHALLENGE, missing)
    assert_unauthorized(
        client.get("/model", headers={"Authorization": f"Basic {GOOD}"}),
        CHALLENGE,
        "not of the form 'Bearer <token>'",
    )
    wrong = client.post("/predict", json=row, headers=bearer(WRONG))
    assert_unauthorized(wrong, INVALID_TOKEN_CHALLENGE, "the bearer token is not valid")
    assert WRONG not in wrong.get_data(as_text=True)


def test_any_configured_token_gets_through(client, row, model):
    predicted = client.post("/predict", json=row, headers=bearer(GOOD))
    assert predicted.status_code == 200, predicted.get_json()
    prediction_id = predicted.get_json()["ids"][0]
    feedback = client.post(
        "/feedback", json={"id": prediction_id, "actual": 21.0}, headers=bearer(OTHER)
    )
    assert feedback.get_json() == {"accepted": 1}
    card = client.get("/model", headers=bearer(GOOD))
    assert card.get_json()["version"] == model.card.version


def test_probes_metrics_and_the_document_stay_open(client):
    for path in ("/healthz", "/readyz", "/openapi.json", "/metrics"):
        assert client.get(path).status_code == 200, path
    # Unmatched paths and methods keep their own errors: no route, nothing to protect.
    assert client.get("/nope").status_code == 404
    assert client.get("/predict").status_code == 405


def test_auth_comes_before_the_body_is_read(model):
    client = create_app(secured_settings(max_body_bytes=1024), model).test_client()
    oversized = b"[" * 4096
    response = client.post("/predict", data=oversized, content_type="application/json")
    assert response.status_code == 401  # not 413: the body was never looked at
    response = client.post("/predict", data=b"{", content_type="text/plain")
    assert response.status_code == 401  # not 415
    with_token = client.post(
        "/predict", data=oversized, content_type="application/json", headers=bearer(GOOD)
    )
    assert with_token.status_code == 413


def test_auth_comes_before_readiness(model, row):
    class Exploding:
        def predict(self, features):
            raise ValueError("broken estimator")

    client = create_app(secured_settings(), LoadedModel(model.card, Exploding())).test_client()
    assert client.post("/predict", json=row).status_code == 401
    assert client.post("/predict", json=row, headers=bearer(GOOD)).status_code == 503
    assert client.get("/readyz").status_code == 503  # open, and honest


def test_without_tokens_nothing_is_protected(model, row):
    client = create_app(Settings(), model).test_client()
    assert client.post("/predict", json=row).status_code == 200
    assert client.get("/model").status_code == 200


def test_startup_log_says_whether_auth_is_on_without_tokens(model, caplog):
    caplog.set_level(logging.INFO, logger="service.api.auth")
    create_app(secured_settings(), model)
    create_app(Settings(), model)
    messages = [record.getMessage() for record in caplog.records]
    assert any(m.startswith("bearer auth on: 2 tokens") for m in messages), messages
    assert any(m.startswith("bearer auth off") for m in messages), messages
    assert not any(GOOD in m or OTHER in m for m in messages)


# --- OpenAPI ---------------------------------------------------------------------------------


def test_openapi_declares_bearer_security_only_when_on(model):
    off = create_app(Settings(), model).test_client().get("/openapi.json").get_json()
    on = create_app(secured_settings(), model).test_client().get("/openapi.json").get_json()
    validate_openapi(off)
    validate_openapi(on)
    assert "securitySchemes" not in off["components"]
    assert not any("security" in op for ops in off["paths"].values() for op in ops.values())
    scheme = on["components"]["securitySchemes"]["bearerAuth"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    secured = {
        (path, method): op
        for path, ops in on["paths"].items()
        for method, op in ops.items()
        if "security" in op
    }
    assert set(secured) == {("/predict", "post"), ("/feedback", "post"), ("/model", "get")}
    for op in secured.values():
        assert op["security"] == [{"bearerAuth": []}]
        assert op["responses"]["401"] == {"$ref": "#/components/responses/401"}
    unauthorized = on["components"]["responses"]["401"]
    assert unauthorized["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Error"
    }
    assert "WWW-Authenticate" in unauthorized["headers"]
    assert GOOD not in json.dumps(on)


# --- telemetry: spans, metrics, logs ---------------------------------------------------------


@pytest.fixture
def observed_client(monkeypatch, model):
    """The app with embedded /metrics, every span recorded in memory, and the Authorization
    request header asked for as a span attribute (the sanitize list must override that)."""
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "parentbased_always_on")
    monkeypatch.setenv("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST", "Authorization")
    monkeypatch.setenv(SANITIZE_FIELDS_ENV, "x-session-.*")
    redact_authorization(os.environ)  # as the server does at start (gunicorn.conf.py)
    reader = InMemoryMetricReader()
    telemetry = init_telemetry(service_version="1", extra_metric_readers=[reader])
    spans = InMemorySpanExporter()
    assert telemetry.tracer_provider is not None
    telemetry.tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    app = create_app(secured_settings(), model, telemetry)
    yield app.test_client(), reader, spans
    telemetry.shutdown(1.0)


def test_tokens_never_reach_spans_metrics_or_logs(observed_client, row, caplog):
    client, reader, spans = observed_client
    caplog.set_level(logging.DEBUG)
    assert client.post("/predict", json=row, headers=bearer(GOOD)).status_code == 200
    assert client.post("/predict", json=row, headers=bearer(WRONG)).status_code == 401
    assert client.get("/model", headers=bearer(OTHER)).status_code == 200
    assert client.get("/model").status_code == 401
    scrape = client.get("/metrics").get_data(as_text=True)

    server_spans = [s for s in spans.get_finished_spans() if s.kind.name == "SERVER"]
    assert len(server_spans) == 4
    headers = [s.attributes.get("http.request.header.authorization") for s in server_spans]
    # Captured as asked, but redacted; the request without the header has no attribute.
    assert headers == [("[REDACTED]",)] * 3 + [None]
    # The user's own sanitize entries are kept.
    assert os.environ[SANITIZE_FIELDS_ENV] == "x-session-.*,authorization"
    statuses = [s.attributes.get("http.response.status_code") for s in server_spans]
    assert statuses == [200, 401, 200, 401]

    exported = "\n".join(span.to_json() for span in spans.get_finished_spans())
    data = reader.get_metrics_data()
    assert data is not None
    metrics = data.to_json()
    logs = "\n".join(f"{r.getMessage()} {r.args!r}" for r in caplog.records)
    assert 'http_response_status_code="401"' in scrape  # 401s are counted, by status only
    for text in (exported, metrics, scrape, logs):
        for token in (GOOD, OTHER, WRONG):
            assert token not in text


def test_redacting_authorization_is_idempotent_and_keeps_user_entries():
    environ = {SANITIZE_FIELDS_ENV: " set-cookie , .*session.* "}
    redact_authorization(environ)
    redact_authorization(environ)
    assert environ[SANITIZE_FIELDS_ENV] == "set-cookie,.*session.*,authorization"
    environ = {SANITIZE_FIELDS_ENV: "Authorization"}
    redact_authorization(environ)
    assert environ[SANITIZE_FIELDS_ENV] == "Authorization"


# --- replay ----------------------------------------------------------------------------------


def test_replay_header_errors_do_not_echo_the_value():
    for text in (f"Authorization Bearer {GOOD}", GOOD, f": Bearer {GOOD}"):
        with pytest.raises(ValueError) as caught:
            parse_header(text)
        assert GOOD not in str(caught.value)


def test_replay_bad_header_exits_2_without_echo(capsys):
    parser = build_parser()
    args = parser.parse_args(["a.csv", "--target", "http://h", "--header", f"Bearer {GOOD}"])
    with pytest.raises(SystemExit) as exc:
        config_from_args(parser, args)
    assert exc.value.code == 2
    assert GOOD not in capsys.readouterr().err


def test_replay_token_from_the_environment(monkeypatch):
    assert with_env_token({}, {}) == {}
    assert with_env_token({"X-A": "1"}, {"REPLAY_AUTH_TOKEN": f" {GOOD} "}) == {
        "X-A": "1",
        "Authorization": f"Bearer {GOOD}",
    }
    explicit = {"authorization": f"Bearer {OTHER}"}
    assert with_env_token(explicit, {"REPLAY_AUTH_TOKEN": GOOD}) == explicit
    monkeypatch.setenv("REPLAY_AUTH_TOKEN", GOOD)
    parser = build_parser()
    config = config_from_args(parser, parser.parse_args(["a.csv", "--target", "http://h"]))
    assert config.headers == {"Authorization": f"Bearer {GOOD}"}


def authorizations(headers: dict[str, str]) -> list[str]:
    return [value for name, value in headers.items() if name.lower() == "authorization"]


def test_replay_explicit_authorization_is_not_replaced_by_netrc(tmp_path, monkeypatch):
    netrc = tmp_path / ".netrc"
    netrc.write_text("machine 127.0.0.1 login user password pass\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    plain = Sender("http://127.0.0.1:1", run_id="r", pool_size=1, timeout=1)
    explicit = Sender(
        "http://127.0.0.1:1", run_id="r", pool_size=1, timeout=1, headers=bearer(GOOD)
    )
    try:
        # netrc still honoured without a header (Basic user:pass), never over an explicit one.
        assert authorizations(plain._base_headers) == ["Basic dXNlcjpwYXNz"]
        assert authorizations(explicit._base_headers) == [f"Bearer {GOOD}"]
    finally:
        plain.close()
        explicit.close()
