"""Service settings: every ``MLAPI_*`` environment variable, read once, here and nowhere else.

Every bad variable is reported (one line each) in a single :class:`ConfigError`, so an operator
fixes a broken deployment in one round trip instead of one variable at a time.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from service.credentials import (
    AuthTokens,
    FeedbackKeys,
    feedback_keys_from_env,
    tokens_from_env,
)

ENV_PREFIX = "MLAPI_"
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
# The deepest body the API accepts is {"records": [{...}]} or {"columns": [...], "data": [[...]]}.
MIN_JSON_DEPTH = 3


class ConfigError(ValueError):
    """One or more environment variables are invalid; ``problems`` holds one line per variable."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Settings:
    # None means "the built-in default model" (trained and cached on first start).
    model_path: Path | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    # Threads per worker: 1 is gunicorn's sync worker, more a gthread worker. The GIL serialises
    # the Python and model work, so threads only overlap socket I/O, and they cost: on 2 cores the
    # bench's layout sweep measured 2 sync workers at 1.8x the req/s of 2 x 4 threads with
    # telemetry on (1,029 vs 571) and 3.0x off, p99 34 vs 85 ms. A gthread worker also keeps
    # connections alive, so a few long-lived client connections can all land on one worker.
    # Scale with MLAPI_WORKERS; run behind a buffering proxy (README, Limits) against slow clients.
    threads: int = 1
    max_body_bytes: int = 8 * 1024 * 1024
    max_rows: int = 10_000
    log_level: str = "info"
    max_json_depth: int = 16
    # Feature names are short; a longer key can only be a mistake or an attack.
    max_key_length: int = 256
    # Feedback on a prediction id older than this is refused as `expired`. Ids are not single-use,
    # so this bounds how long a leaked id can skew the accuracy metrics; 7 days is the top of the
    # feedback delay histogram.
    feedback_max_age_s: int = 7 * 24 * 3600
    # A request body must have arrived this many seconds after the app starts reading it, else
    # 408 request_timeout: a stalled or trickling upload cannot hold a worker thread. gunicorn's
    # worker timeout is derived from it (service/server/gunicorn.conf.py).
    request_timeout_s: int = 30
    # Spans kept per process while the collector is down (service/telemetry/outage_buffer.py):
    # about 2.8 KiB each, so the defaults hold at most ~22 MiB (a bound by estimated memory too).
    # At 50 req/s over 2 workers (3 spans a request) that is 110 s of outage before a span drops.
    trace_buffer_spans: int = 8192
    trace_buffer_bytes: int = 32 * 1024 * 1024
    # Where the built-in default model is trained and cached on first start.
    cache_dir: Path = dataclasses.field(default_factory=lambda: Path.home() / ".cache" / "mlapi")
    # MLAPI_SPAN_FEATURES=true: single-row feature values become span attributes (off: they may
    # be personal data, and traces are often kept longer and seen wider than the API).
    span_features: bool = False
    # Secrets (service/credentials.py), never echoed: the generic parsing and messages below skip
    # them. Bearer tokens from MLAPI_AUTH_TOKENS or MLAPI_AUTH_TOKENS_FILE (empty: auth off);
    # MLAPI_FEEDBACK_KEY and MLAPI_FEEDBACK_KEY_PREVIOUS, which sign and verify prediction ids.
    auth_tokens: AuthTokens = dataclasses.field(default_factory=AuthTokens)
    feedback_keys: FeedbackKeys = dataclasses.field(default_factory=FeedbackKeys)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Settings from ``environ`` (default ``os.environ``); unset or empty means the default."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        problems: list[str] = []
        for field in dataclasses.fields(cls):
            raw = env.get(env_name(field.name), "").strip()
            if not raw or field.name not in _PARSERS:
                continue
            try:
                values[field.name] = _PARSERS[field.name](raw)
            except ValueError as exc:
                problems.append(f"{env_name(field.name)}={raw!r}: {exc}")
        for name, read in (
            ("auth_tokens", tokens_from_env),
            ("feedback_keys", feedback_keys_from_env),
        ):
            try:
                values[name] = read(env)
            except ValueError as exc:
                problems.append(str(exc))
        settings = cls(**values)
        problems += [
            f"{env_name(name)}={env[env_name(name)].strip()!r}: {problem}"
            for name, problem in settings.problems()
        ]
        if problems:
            raise ConfigError(problems)
        return settings

    def replace(self, labels: Mapping[str, str] | None = None, **changes: Any) -> Settings:
        """A copy with ``changes`` applied (used for CLI flag overrides), validated; a problem
        names a field as ``labels`` say (e.g. ``--workers 0``), else as ``name=value``."""
        settings = dataclasses.replace(self, **changes)
        labels = labels or {}
        problems = [
            f"{labels.get(name) or f'{name}={getattr(settings, name)!r}'}: {problem}"
            for name, problem in settings.problems()
        ]
        if problems:
            raise ConfigError(problems)
        return settings

    def problems(self) -> list[tuple[str, str]]:
        """(field name, problem) for every field whose value is out of its allowed range."""
        return [
            (name, problem)
            for name, check in _CHECKS.items()
            if (problem := check(getattr(self, name))) is not None
        ]

    def to_env(self) -> dict[str, str]:
        """The ``MLAPI_*`` variables that reproduce these settings in a child process."""
        return {
            **{
                env_name(field.name): "" if value is None else str(value)
                for field in dataclasses.fields(self)
                if field.name in _PARSERS
                for value in [getattr(self, field.name)]
            },
            **self.auth_tokens.to_env(),
            **self.feedback_keys.to_env(),
        }


def env_name(field_name: str) -> str:
    return ENV_PREFIX + field_name.upper()


def _parse_int(raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise ValueError("must be an integer") from None


def _parse_path(raw: str) -> Path:
    return Path(raw).expanduser()


def _parse_log_level(raw: str) -> str:
    return raw.lower()


def _parse_true(raw: str) -> bool:
    return raw.lower() == "true"


def _at_least(minimum: int) -> Callable[[int], str | None]:
    return lambda value: None if value >= minimum else f"must be >= {minimum}"


def _port(value: int) -> str | None:
    return None if 1 <= value <= 65535 else "must be between 1 and 65535"


def _host(value: str) -> str | None:
    return None if value and not any(c.isspace() for c in value) else "must be a host name or IP"


def _log_level(value: str) -> str | None:
    return None if value in LOG_LEVELS else f"must be one of {', '.join(LOG_LEVELS)}"


_PARSERS: dict[str, Callable[[str], Any]] = {
    "model_path": _parse_path,
    "host": str,
    "port": _parse_int,
    "workers": _parse_int,
    "threads": _parse_int,
    "max_body_bytes": _parse_int,
    "max_rows": _parse_int,
    "log_level": _parse_log_level,
    "max_json_depth": _parse_int,
    "max_key_length": _parse_int,
    "feedback_max_age_s": _parse_int,
    "request_timeout_s": _parse_int,
    "cache_dir": _parse_path,
    "trace_buffer_spans": _parse_int,
    "trace_buffer_bytes": _parse_int,
    "span_features": _parse_true,
}

_CHECKS: dict[str, Callable[[Any], str | None]] = {
    "host": _host,
    "port": _port,
    "workers": _at_least(1),
    "threads": _at_least(1),
    "max_body_bytes": _at_least(1024),
    "max_rows": _at_least(1),
    "log_level": _log_level,
    "max_json_depth": _at_least(MIN_JSON_DEPTH),
    "max_key_length": _at_least(16),
    "feedback_max_age_s": _at_least(1),
    "request_timeout_s": _at_least(1),
    "trace_buffer_spans": _at_least(0),
    "trace_buffer_bytes": _at_least(0),
}
