"""Refusals before gunicorn starts: settings that cannot work together, named as given (flag or
variable), and an address that cannot be listened on (tests/integration/test_server.py runs them
through the real `mlapi serve`)."""

from __future__ import annotations

import socket

from service.server.preflight import bind_problem, settings_problems
from service.settings import Settings

EMBEDDED = "with embedded /metrics would serve one worker's numbers per scrape"


def test_several_workers_with_embedded_metrics_name_the_flag_when_a_flag_was_used():
    settings = Settings(workers=2)
    (flag,) = settings_problems(settings, {}, {"workers": "--workers 2"})
    assert flag == (
        f"--workers 2 {EMBEDDED}; set OTEL_EXPORTER_OTLP_ENDPOINT (metrics over OTLP) or "
        "--workers 1"
    )
    (variable,) = settings_problems(settings, {}, {})
    assert variable.startswith(f"MLAPI_WORKERS=2 {EMBEDDED}")
    assert variable.endswith("or MLAPI_WORKERS=1")


def test_several_workers_are_fine_over_otlp_and_an_unknown_exporter_is_named():
    otlp = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317"}
    assert settings_problems(Settings(workers=2), otlp, {}) == []
    problems = settings_problems(Settings(workers=2), {"OTEL_TRACES_EXPORTER": "zipkin"}, {})
    assert problems == ["OTEL_TRACES_EXPORTER='zipkin': supported are otlp, none"]


def test_a_busy_port_is_named_with_what_to_do():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert bind_problem("127.0.0.1", port) == (
            f"cannot listen on 127.0.0.1:{port}: Address already in use: another process "
            "listens there; stop it or choose another port (--port or MLAPI_PORT)"
        )
    assert bind_problem("127.0.0.1", port) is None  # free again


def test_an_unknown_host_is_named():
    problem = bind_problem("no-such-host.invalid", 8000)
    assert problem is not None
    assert problem.startswith("cannot listen on no-such-host.invalid:8000: unknown host")
