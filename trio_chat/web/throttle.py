"""At most one log line a while for refused web requests, and for the
errors hypercorn reports.

Anyone can send the web port a stream of bad requests, and one stderr line
each would let them flood the log: the first refusal is logged at once, later
ones at most once per interval, with how many were not logged in between.
hypercorn's own error log (a traceback for each failed request, as when the
process is out of file descriptors) goes through one as well, a line each.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import trio

# Seconds between two log lines about refused web requests.
LOG_INTERVAL = 10.0


class Throttle:
    def __init__(
        self, log: Callable[[str], None], interval: float = LOG_INTERVAL, what: str = "refused"
    ) -> None:
        self._log = log
        self._what = what
        self._interval = interval
        self._last = -interval
        self._unlogged = 0

    def __call__(self, text: str) -> None:
        now = trio.current_time()
        if now - self._last < self._interval:
            self._unlogged += 1
            return
        if self._unlogged:
            text += f" (and {self._unlogged} more {self._what} since the last such line)"
        self._log(text)
        self._last = now
        self._unlogged = 0


class ThrottledLog(logging.Handler):
    """hypercorn's error log as one line a record (its message and the
    exception's, no traceback), through a Throttle."""

    def __init__(self, throttle: Throttle) -> None:
        super().__init__()
        self.throttle = throttle

    def emit(self, record: logging.LogRecord) -> None:
        text = f"hypercorn: {record.getMessage()}"
        error = record.exc_info[1] if record.exc_info else None
        if error is not None:
            text += f": {type(error).__name__}: {error}"
        self.throttle(text)


def throttled_logger(log: Callable[[str], None]) -> logging.Logger:
    """A logger for hypercorn's ``errorlog`` whose records reach ``log`` a line
    each, at most one per interval."""
    logger = logging.getLogger("trio_chat.web.hypercorn")
    logger.handlers = [ThrottledLog(Throttle(log, what="errors"))]
    logger.propagate = False
    logger.setLevel(logging.WARNING)
    return logger
