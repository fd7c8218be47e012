"""SIGINT, SIGTERM and SIGHUP before trio watches them, and after it stops.

Until the server's signal watcher runs (trio is still being imported) and once
it has stopped (shutdown is under way), a signal only records that a stop (or
a reload) was asked for: raising from a signal handler inside trio's event
loop could crash it, a second signal during shutdown must not turn a clean
exit into a traceback, and SIGHUP's default would kill the server. The
watcher checks the record as soon as it starts: a reload asked for meanwhile
is done then (the config may have changed since the start read it).
"""

from __future__ import annotations

import signal
from types import FrameType

_requested: list[int] = []
_reloads: list[int] = []


def _remember(signum: int, frame: FrameType | None) -> None:
    _requested.append(signum)


def _remember_reload(signum: int, frame: FrameType | None) -> None:
    _reloads.append(signum)


def install() -> None:
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _remember)
    signal.signal(signal.SIGHUP, _remember_reload)


def reload_requested() -> bool:
    """Whether a SIGHUP arrived while nobody watched (once: it is forgotten)."""
    asked = bool(_reloads)
    _reloads.clear()
    return asked


def requested() -> int | None:
    """The first stop signal that arrived while nobody watched, if any."""
    return _requested[0] if _requested else None
