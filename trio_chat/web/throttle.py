"""At most one log line a while for refused web requests.

Anyone can send the web port a stream of bad requests, and one stderr line
each would let them flood the log: the first refusal is logged at once, later
ones at most once per interval, with how many were not logged in between.
"""

from __future__ import annotations

from collections.abc import Callable

import trio

# Seconds between two log lines about refused web requests.
LOG_INTERVAL = 10.0


class Throttle:
    def __init__(self, log: Callable[[str], None], interval: float = LOG_INTERVAL) -> None:
        self._log = log
        self._interval = interval
        self._last = -interval
        self._unlogged = 0

    def __call__(self, text: str) -> None:
        now = trio.current_time()
        if now - self._last < self._interval:
            self._unlogged += 1
            return
        if self._unlogged:
            text += f" (and {self._unlogged} more refused since the last such line)"
        self._log(text)
        self._last = now
        self._unlogged = 0
