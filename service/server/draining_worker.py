"""A gunicorn sync worker that, when told to stop, first serves the connections already waiting.

gunicorn's sync worker stops accepting the moment SIGTERM arrives. Connections the kernel has
already completed sit in the listen backlog — clients that connected, perhaps sent half a request —
and are reset when the last worker exits: under load, a graceful restart then fails the requests
that happened to be queued. This worker accepts from the backlog until nothing is waiting (or a
budget runs out), serves each of those requests, and only then exits.

A gthread worker needs none of this: it accepts every pending connection as it arrives and serves
the ones it accepted before it exits.
"""

from __future__ import annotations

import errno
import time

from gunicorn.workers.sync import SyncWorker

# Inside gunicorn's graceful_timeout (4 s, service/server/gunicorn.conf.py), which must also cover
# the request in flight at SIGTERM and the telemetry flush (2 s) that follows in worker_exit. The
# backlog of a loaded worker drains in a fraction of this; clients that keep connecting after
# the signal would otherwise keep the worker alive until the master kills it.
DRAIN_BUDGET_S = 1.0
_NOTHING_WAITING = (errno.EAGAIN, errno.EWOULDBLOCK)


class DrainingSyncWorker(SyncWorker):
    def run(self) -> None:
        super().run()
        if self.is_parent_alive():
            self.drain_backlog(time.monotonic() + DRAIN_BUDGET_S)

    def drain_backlog(self, deadline: float) -> None:
        """Serve connections waiting on the (non-blocking) listeners until none is or `deadline`."""
        for listener in self.sockets:
            while time.monotonic() < deadline:
                try:
                    self.accept(listener)
                except OSError as error:
                    if error.errno in _NOTHING_WAITING:
                        break
                    if error.errno != errno.ECONNABORTED:  # the client gave up meanwhile
                        raise
