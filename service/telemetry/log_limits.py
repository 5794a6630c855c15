"""One log line per message template per interval from the SDK's and exporters' loggers, with a
count of what was held back: an absent collector cannot flood the logs ("Queue full", retries)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

LOG_RATE_LIMIT_INTERVAL_S = 60.0


class RateLimitFilter(logging.Filter):
    """Lets one record per (logger, message template) through per interval, then reports the
    number it swallowed, so an absent collector cannot flood the logs ("Queue full", retries)."""

    def __init__(self, interval_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self._interval_s = interval_s
        self._clock = clock
        self._lock = threading.Lock()
        # key -> [time last let through, records suppressed since]; keys are code-defined templates.
        self._state: dict[tuple[str, object], list[float]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, record.msg)
        now = self._clock()
        with self._lock:
            state = self._state.get(key)
            if state is not None and now - state[0] < self._interval_s:
                state[1] += 1
                return False
            suppressed = int(state[1]) if state is not None else 0
            self._state[key] = [now, 0]
        if suppressed:
            record.msg = (
                f"{record.getMessage()} "
                f"[{suppressed} similar messages suppressed in the last {self._interval_s:g} s]"
            )
            record.args = None
        return True


def rate_limit_sdk_logs() -> None:
    """One fresh RateLimitFilter on every SDK and exporter logger that exists once the exporters
    are built. It stays after shutdown: export threads may still complain while they wind down."""
    log_filter = RateLimitFilter(LOG_RATE_LIMIT_INTERVAL_S)
    for name, sdk_logger in list(logging.Logger.manager.loggerDict.items()):
        if isinstance(sdk_logger, logging.Logger) and name.startswith(
            ("opentelemetry.sdk", "opentelemetry.exporter")
        ):
            for old in [f for f in sdk_logger.filters if isinstance(f, RateLimitFilter)]:
                sdk_logger.removeFilter(old)
            sdk_logger.addFilter(log_filter)
