"""A minimal Alertmanager webhook receiver for docker compose: prints each notification's alerts as
JSON lines (`docker compose logs -f alert-webhook`). Replace it with a real receiver (Slack, e-mail,
an incident tool) as alertmanager.yml describes. Standard library only, so it runs on a bare image.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_BODY_BYTES = 1 << 20


class AlertHandler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if self.path != "/alerts" or not 0 < length <= MAX_BODY_BYTES:
            self.send_error(400 if self.path == "/alerts" else 404)
            return
        try:
            notification = json.loads(self.rfile.read(length))
            alerts = notification["alerts"]
        except (ValueError, KeyError, TypeError):
            self.send_error(400)
            return
        for alert in alerts:
            line = {
                "status": alert.get("status"),
                "labels": alert.get("labels", {}),
                "summary": alert.get("annotations", {}).get("summary"),
                "startsAt": alert.get("startsAt"),
            }
            print(json.dumps(line, sort_keys=True), flush=True)
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        """Alerts are the output; per-request access lines would only bury them."""


def main() -> None:
    port = int(os.environ.get("WEBHOOK_PORT", "5001"))
    server = ThreadingHTTPServer(("0.0.0.0", port), AlertHandler)
    # As a container's PID 1 the process gets no default action for SIGTERM: without a handler
    # `docker compose stop` waits out its timeout and kills it.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    print(f"alert-webhook listening on :{port}/alerts", file=sys.stderr, flush=True)
    with server:
        server.serve_forever()


if __name__ == "__main__":
    main()
