"""Refusals before gunicorn starts: settings that cannot work together and an address that
cannot be bound. Each is one line naming what was given (the flag when a flag was used); they
come before gunicorn's first log line and before the generated-feedback-key warning, so an
operator sees the reason alone.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Mapping

from service.settings import Settings
from service.telemetry.plan import export_plan

_OTHER_PORT = "choose another port (--port or MLAPI_PORT)"


def settings_problems(
    settings: Settings, environ: Mapping[str, str], flags: Mapping[str, str]
) -> list[str]:
    """One line per problem; `flags` maps a Settings field to how a flag gave it (`--workers
    2`), for the fields that came from the command line."""
    problems = []
    try:
        plan = export_plan(environ)
    except ValueError as exc:
        problems.append(str(exc))
    else:
        if plan.embedded_metrics and settings.workers > 1:
            given, fix = (
                (flags["workers"], "--workers 1")
                if "workers" in flags
                else (f"MLAPI_WORKERS={settings.workers}", "MLAPI_WORKERS=1")
            )
            # Each scrape would reach one worker and serve its numbers as the service's.
            problems.append(
                f"{given} with embedded /metrics would serve one worker's numbers per scrape; "
                f"set OTEL_EXPORTER_OTLP_ENDPOINT (metrics over OTLP) or {fix}"
            )
    return problems


def bind_problem(host: str, port: int) -> str | None:
    """Why (host, port) cannot be listened on, or None. Checked here because gunicorn retries a
    busy address for 5 s, logging 10 ERROR lines, then exits 1. SO_REUSEADDR as gunicorn sets
    it: a port left in TIME_WAIT by a previous server is not busy."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        return f"cannot listen on {host}:{port}: unknown host ({exc.strerror})"
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            reason = f"cannot listen on {host}:{port}: {exc.strerror or exc}"
            if exc.errno == errno.EADDRINUSE:
                return f"{reason}: another process listens there; stop it or {_OTHER_PORT}"
            if exc.errno == errno.EACCES:
                return f"{reason}: ports below 1024 need privileges; {_OTHER_PORT}"
            return reason
    return None
