"""Late ground truth: `--feedback-delay` seconds after a prediction, POST its actual value to
`/feedback` as `{"items": [{"id": <prediction id>, "actual": <target>}, ...]}`.

Pending items wait in a bounded queue (overflow is dropped and counted, never blocks sending);
one thread posts every item that has come due, batched. A server without the endpoint answers
404: that (like any feedback failure) is counted and said once on stderr, and the run goes on.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from replay.report import RunStats
from replay.sender import Outcome

FEEDBACK_PATH = "/feedback"
MAX_PENDING_ITEMS = 100_000
MAX_ITEMS_PER_POST = 500


def feedback_items(ids: Any, actuals: Sequence[Any]) -> list[dict[str, Any]]:
    """Pair the response's prediction ids with the rows' actual values; rows without a numeric
    actual (or a response without matching ids) give no feedback."""
    if not isinstance(ids, list) or len(ids) != len(actuals):
        return []
    return [
        {"id": pid, "actual": actual}
        for pid, actual in zip(ids, actuals, strict=True)
        if pid is not None and isinstance(actual, int | float) and not isinstance(actual, bool)
    ]


class FeedbackPoster:
    """Posts due feedback from a background thread; `offer` never blocks the sending workers."""

    def __init__(
        self,
        post: Callable[[str, Any], Outcome],
        *,
        delay: float,
        stats: RunStats,
        url: str,
        max_pending: int = MAX_PENDING_ITEMS,
        clock: Callable[[], float] = time.monotonic,
        warn: Callable[[str], None] | None = None,
    ) -> None:
        self._post = post
        self._delay = delay
        self._stats = stats
        self._url = url
        self._max_pending = max_pending
        self._clock = clock
        self._warn = warn or (lambda message: print(message, file=sys.stderr))
        self._pending: deque[tuple[float, dict[str, Any]]] = deque()
        self._cond = threading.Condition()
        self._closing = False
        self._abandon = False
        self._warned: set[int | str | None] = set()
        self._thread = threading.Thread(target=self._run, name="replay-feedback", daemon=True)

    def start(self, thread_init: Callable[[], None] | None = None) -> None:
        self._thread_init = thread_init
        self._thread.start()

    def offer(self, items: list[dict[str, Any]]) -> None:
        if not items:
            return
        due = self._clock() + self._delay
        with self._cond:
            room = self._max_pending - len(self._pending)
            accepted = items[: max(room, 0)]
            self._pending.extend((due, item) for item in accepted)
            self._cond.notify()
        if len(accepted) < len(items):
            self._stats.record_feedback_dropped(len(items) - len(accepted))

    def close(self, abandon: bool = False) -> None:
        """Deliver what is pending (waiting out the delay) then stop; `abandon` drops it instead."""
        with self._cond:
            if self._pending and not abandon and self._delay >= 1:
                self._warn(
                    f"replay: delivering {len(self._pending)} pending feedback items "
                    f"(up to {self._delay:g} s)"
                )
            self._closing = True
            self._abandon = abandon
            self._cond.notify()
        self._thread.join()

    def _take_due(self) -> list[dict[str, Any]] | None:
        """Block until items are due (or closing); None means stop."""
        with self._cond:
            while True:
                if self._abandon:
                    dropped = len(self._pending)
                    self._pending.clear()
                    if dropped:
                        self._stats.record_feedback_dropped(dropped)
                    return None
                if self._pending:
                    wait = self._pending[0][0] - self._clock()
                    if wait <= 0:
                        batch = []
                        while (
                            self._pending
                            and len(batch) < MAX_ITEMS_PER_POST
                            and self._pending[0][0] <= self._clock()
                        ):
                            batch.append(self._pending.popleft()[1])
                        return batch
                    self._cond.wait(wait)
                elif self._closing:
                    return None
                else:
                    self._cond.wait()

    def _run(self) -> None:
        if self._thread_init is not None:
            self._thread_init()
        while (items := self._take_due()) is not None:
            outcome = self._post(FEEDBACK_PATH, {"items": items})
            self._stats.record_feedback(outcome, len(items))
            if not outcome.ok:
                self._warn_once(outcome)

    def _warn_once(self, outcome: Outcome) -> None:
        """One stderr line per kind of failure; the counts are in the summary."""
        kind = outcome.status or outcome.error
        if kind in self._warned:
            return
        self._warned.add(kind)
        if outcome.status == 404:
            reason = "404: the server has no feedback endpoint"
        elif outcome.status is not None:
            reason = f"HTTP {outcome.status}"
        else:
            reason = f"{outcome.error}: {outcome.detail}"
        self._warn(f"replay: feedback to {self._url} failed ({reason}); counted, run continues")
