"""gunicorn settings for ``mlapi serve``; every value comes from the MLAPI_* variables (Settings).

Also usable directly: ``gunicorn -c service/server/gunicorn.conf.py`` (the app is then built per
worker from the same variables).
"""

import logging
import os
import sys

from service.api.prediction_ids import warn_generated_key
from service.api.state import AppState
from service.credentials import share_generated_key
from service.server.preflight import settings_problems
from service.settings import Settings
from service.telemetry.http_server import redact_authorization

_settings = Settings.from_env()

wsgi_app = "service.api.app:create_app()"
bind = [
    f"[{_settings.host}]:{_settings.port}" if ":" in _settings.host
    else f"{_settings.host}:{_settings.port}"
]  # fmt: skip
workers = _settings.workers
threads = _settings.threads
# One thread: gunicorn's sync worker, made to serve its listen backlog before a graceful exit.
worker_class = "gthread" if threads > 1 else "service.server.draining_worker.DrainingSyncWorker"
# The app (and telemetry, with its threads and exporters) is built in each worker after fork:
# create_app() is the post-fork initialisation, so no post_fork hook is needed. Keep it False.
preload_app = False
# Below the 5 s SIGTERM budget: in-flight requests get 4 s, the arbiter the rest to reap workers.
graceful_timeout = 4
# The arbiter restarts a worker silent for longer. A sync worker is silent for a whole request,
# so this bounds one stuck in a request (a client stalled mid-headers, a hung model); a gthread
# worker's main loop keeps beating, so there only the body read deadline (MLAPI_REQUEST_TIMEOUT_S,
# 408) applies. The margin lets a body read end in its 408 first, and covers a worker's boot
# (model load and warm-up), which the arbiter times too.
WORKER_TIMEOUT_MARGIN_S = 30
timeout = _settings.request_timeout_s + WORKER_TIMEOUT_MARGIN_S
keepalive = 5
# gunicorn >= 25.1 otherwise creates a control socket under $XDG_RUNTIME_DIR or ~/.gunicorn.
control_socket_disable = True
proc_name = "mlapi"
loglevel = _settings.log_level
errorlog = "-"
accesslog = "-"
logger_class = "service.server.access_log.JsonAccessLogger"
# Telemetry's share of the SIGTERM budget, after in-flight requests (graceful_timeout).
TELEMETRY_SHUTDOWN_DEADLINE_S = 2.0


def on_starting(server):
    """Refuse settings that cannot work together (service/server/preflight.py; `mlapi serve` has
    refused them before gunicorn started, this covers `gunicorn -c`). Then set what every worker
    inherits through fork: the app's log lines in gunicorn's error log, Authorization redacted
    from any captured request header, and a shared feedback key when MLAPI_FEEDBACK_KEY is unset
    (so that ids verify on every worker, also after a recycle)."""
    problems = settings_problems(_settings, os.environ, flags={})
    for problem in problems:
        print(f"mlapi: invalid configuration: {problem}", file=sys.stderr)
    if problems:
        sys.exit(2)
    _share_error_log(server, logging.getLogger("service"))
    redact_authorization(os.environ)
    if share_generated_key(os.environ):
        warn_generated_key("this server's workers")


def _share_error_log(server, app_logger):
    """The app's own lines (the start-up summary: thresholds, auth on or off) go where gunicorn's
    go, at its level; without this they reach only logging's last resort, warnings and above.
    Set in the master, so every worker inherits it through fork."""
    error_log = server.log.error_log
    for handler in error_log.handlers:
        app_logger.addHandler(handler)
    app_logger.setLevel(error_log.level)
    app_logger.propagate = False


def worker_exit(server, worker):
    """Flush telemetry within its deadline, so an absent collector never delays the exit."""
    app = getattr(worker, "wsgi", None)
    if app is not None:
        AppState.of(app).telemetry.shutdown(TELEMETRY_SHUTDOWN_DEADLINE_S)
