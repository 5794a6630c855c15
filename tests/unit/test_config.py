"""Settings from MLAPI_* variables: defaults, parsing, one error line per bad variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.credentials import AuthTokens, FeedbackKeys
from service.settings import ConfigError, Settings


def test_defaults_without_any_variable():
    settings = Settings.from_env({})
    assert settings == Settings()
    assert settings.model_path is None
    assert (settings.host, settings.port, settings.workers) == ("127.0.0.1", 8000, 1)
    assert settings.max_body_bytes == 8 * 1024 * 1024
    assert settings.max_rows == 10_000
    assert settings.log_level == "info"


def test_every_variable_is_read():
    env = {
        "MLAPI_MODEL_PATH": "/models/house.skops",
        "MLAPI_HOST": "0.0.0.0",
        "MLAPI_PORT": "9001",
        "MLAPI_WORKERS": "2",
        "MLAPI_THREADS": "8",
        "MLAPI_MAX_BODY_BYTES": "65536",
        "MLAPI_MAX_ROWS": "50",
        "MLAPI_LOG_LEVEL": "DEBUG",
        "MLAPI_MAX_JSON_DEPTH": "8",
        "MLAPI_MAX_KEY_LENGTH": "128",
        "MLAPI_FEEDBACK_MAX_AGE_S": "3600",
        "MLAPI_REQUEST_TIMEOUT_S": "5",
        "MLAPI_CACHE_DIR": "/var/cache/mlapi",
        "MLAPI_TRACE_BUFFER_SPANS": "100",
        "MLAPI_TRACE_BUFFER_BYTES": "1048576",
        "MLAPI_SPAN_FEATURES": "TRUE",
        "MLAPI_AUTH_TOKENS": "tok-ALPHA.0123456789",
        "MLAPI_FEEDBACK_KEY": "c" * 32,
        "MLAPI_FEEDBACK_KEY_PREVIOUS": "p" * 40,
    }
    # Every variable the settings know (the token file is the other spelling of the tokens).
    assert set(env) == set(Settings().to_env()) - {"MLAPI_AUTH_TOKENS_FILE"}
    assert Settings.from_env(env) == Settings(
        model_path=Path("/models/house.skops"),
        host="0.0.0.0",
        port=9001,
        workers=2,
        threads=8,
        max_body_bytes=65536,
        max_rows=50,
        log_level="debug",
        max_json_depth=8,
        max_key_length=128,
        feedback_max_age_s=3600,
        request_timeout_s=5,
        cache_dir=Path("/var/cache/mlapi"),
        trace_buffer_spans=100,
        trace_buffer_bytes=1048576,
        span_features=True,
        auth_tokens=AuthTokens(("tok-ALPHA.0123456789",)),
        feedback_keys=FeedbackKeys(b"c" * 32, b"p" * 40),
    )


def test_a_short_feedback_key_is_refused_without_showing_it():
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"MLAPI_FEEDBACK_KEY": "short"})
    assert caught.value.problems == ["MLAPI_FEEDBACK_KEY must be at least 32 bytes long"]


def test_empty_values_mean_default():
    assert Settings.from_env({"MLAPI_MODEL_PATH": "", "MLAPI_PORT": "  "}) == Settings()


def test_every_bad_variable_is_reported_once():
    env = {
        "MLAPI_PORT": "http",
        "MLAPI_WORKERS": "0",
        "MLAPI_THREADS": "1.5",
        "MLAPI_LOG_LEVEL": "loud",
        "MLAPI_MAX_JSON_DEPTH": "2",
    }
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(env)
    problems = caught.value.problems
    assert sorted(p.split("=")[0] for p in problems) == sorted(env)
    assert "MLAPI_PORT='http': must be an integer" in problems
    assert "MLAPI_WORKERS='0': must be >= 1" in problems


def test_port_range_is_checked():
    with pytest.raises(ConfigError, match="MLAPI_PORT='70000': must be between 1 and 65535"):
        Settings.from_env({"MLAPI_PORT": "70000"})


def test_replace_validates_overrides():
    assert Settings().replace(port=9000, threads=2).port == 9000
    with pytest.raises(ConfigError, match="workers=0: must be >= 1"):
        Settings().replace(workers=0)
    # The command line names its flags.
    with pytest.raises(ConfigError, match=r"^--workers 0: must be >= 1$"):
        Settings().replace(labels={"workers": "--workers 0"}, workers=0)


def test_to_env_round_trips():
    settings = Settings(
        model_path=Path("/m/model.skops"),
        port=9100,
        threads=2,
        span_features=True,
        feedback_keys=FeedbackKeys(b"k" * 32),
    )
    assert Settings.from_env(settings.to_env()) == settings
    assert Settings.from_env(Settings().to_env()) == Settings()
