"""gunicorn's access log as one JSON object per line (the only place the format is defined).

The app's telemetry adds per-request fields (trace_id, span_id) as a dict under
``ACCESS_LOG_FIELDS_KEY`` in the WSGI environ (service/telemetry/http_server.py): gunicorn logs
after the response, when the request context and its span are already gone, but the environ is
still at hand.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from typing import Any

from gunicorn import glogging

from service.telemetry.http_server import ACCESS_LOG_FIELDS_KEY


def access_record(
    environ: dict[str, Any], status: int | None, sent: int | None, duration: timedelta
) -> dict[str, Any]:
    """The fields of one access-log line. The query string is left out: it may carry secrets."""
    record = {
        "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "remote_addr": environ.get("REMOTE_ADDR"),
        "method": environ.get("REQUEST_METHOD"),
        "path": environ.get("PATH_INFO"),
        "status": status,
        "bytes": sent,
        "duration_ms": round(duration.total_seconds() * 1000, 3),
        "user_agent": environ.get("HTTP_USER_AGENT"),
        "pid": os.getpid(),
    }
    record.update(environ.get(ACCESS_LOG_FIELDS_KEY, {}))
    return record


class JsonAccessLogger(glogging.Logger):
    def access(self, resp: Any, req: Any, environ: dict[str, Any], request_time: timedelta) -> None:
        if not self.access_log_enabled:
            return
        record = access_record(environ, resp.status_code, resp.sent, request_time)
        self.access_log.info(json.dumps(record, separators=(",", ":")))
