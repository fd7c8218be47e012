"""SIGINT and SIGTERM before trio watches them, and after it stops watching.

Until the server's signal watcher runs (trio is still being imported) and once
it has stopped (shutdown is under way), a signal only records that a stop was
asked for: raising from a signal handler inside trio's event loop could crash
it, and a second signal during shutdown must not turn a clean exit into a
traceback. The watcher checks the record as soon as it starts.
"""

from __future__ import annotations

import signal
from types import FrameType

_requested: list[int] = []


def _remember(signum: int, frame: FrameType | None) -> None:
    _requested.append(signum)


def install() -> None:
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _remember)


def requested() -> int | None:
    """The first stop signal that arrived while nobody watched, if any."""
    return _requested[0] if _requested else None
