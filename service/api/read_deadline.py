"""A total deadline for reading a request body from a blocking socket.

A socket timeout cannot give one: it bounds each recv() and restarts with every byte, so a client
trickling one byte per interval holds the thread as long as it likes. Instead one watcher thread
per process shuts the read side of a socket whose body read outlives its deadline: the blocked
read returns end-of-file at once, and the caller answers 408. Every deadline is "now + the same
timeout", so the pending reads form a FIFO and the watcher only ever looks at the oldest.
"""

from __future__ import annotations

import socket
import threading
import time
from collections import deque
from types import TracebackType


class ReadDeadline:
    """Watches body reads on this process's client sockets; the thread starts on first use, so
    under gunicorn it belongs to the worker (created after fork), never to the master."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self._pending: deque[BodyRead] = deque()
        # Guards _pending and every read's done/expired, so a read that finished is never shut
        # afterwards (its kept-alive connection may already carry the next request).
        self._lock = threading.Condition(threading.Lock())
        self._watcher: threading.Thread | None = None

    def watch(self, sock: socket.socket | None) -> BodyRead:
        """A context manager bounding the reads inside it to ``timeout_s``. Without a socket (a
        test client, a server that does not expose it) nothing is watched."""
        return BodyRead(self, sock)

    def _start(self, read: BodyRead) -> None:
        with self._lock:
            if self._watcher is None:
                self._watcher = threading.Thread(
                    target=self._watch_forever, name="mlapi-read-deadline", daemon=True
                )
                self._watcher.start()
            # No wake-up needed: the watcher never sleeps past now + timeout_s, which is no
            # later than this deadline.
            self._pending.append(read)

    def _finish(self, read: BodyRead) -> None:
        with self._lock:
            read.done = True
            self._drop_finished()

    def _watch_forever(self) -> None:
        with self._lock:
            while True:
                self._drop_finished()
                if not self._pending:
                    self._lock.wait(self.timeout_s)
                    continue
                oldest = self._pending[0]
                left = oldest.deadline - time.monotonic()
                if left > 0:
                    self._lock.wait(left)
                    continue
                self._pending.popleft()
                oldest.expired = True
                _shut_read_side(oldest.sock)

    def _drop_finished(self) -> None:
        pending = self._pending
        while pending and pending[0].done:
            pending.popleft()


class BodyRead:
    """One watched read. ``expired`` is set (before the socket is shut) when its deadline passed."""

    __slots__ = ("_owner", "deadline", "done", "expired", "sock")

    def __init__(self, owner: ReadDeadline, sock: socket.socket | None) -> None:
        self._owner = owner
        self.sock = sock
        self.deadline = time.monotonic() + owner.timeout_s
        self.done = False
        self.expired = False

    def __enter__(self) -> BodyRead:
        if self.sock is not None:
            self._owner._start(self)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.sock is not None:
            self._owner._finish(self)


def _shut_read_side(sock: socket.socket | None) -> None:
    try:
        if sock is not None:
            sock.shutdown(socket.SHUT_RD)
    except OSError:  # the client already closed it
        pass
