"""accept(2) failing for want of descriptors: a line when it starts, one per
interval with a count while it lasts, one when it is over.

When the process runs out of file descriptors (EMFILE: ``ulimit -n``), the
system does (ENFILE) or the kernel lacks socket memory (ENOBUFS, ENOMEM),
every accept fails until a connection closes or the limit is raised.
``trio.serve_listeners``, which runs every listening port (each channel's,
TLS or not, and hypercorn's for ``--web``), copes: it logs the error to the
standard logger ``trio.serve_listeners``, with its traceback, and tries that
port again 0.1 s later. Meanwhile the connections the server has are served as
usual and new ones wait in the kernel's backlog, so the server recovers by
itself; it only said so in twenty lines of traceback ten times a second.

``install`` takes that logger's records (trio's documented hook) into one
``AcceptFailures`` per server, whose lines go to the server's stderr writer
(output.py: never blocking the event loop). Failures are over once none has
come for ``QUIET`` seconds: a port that still fails is retried, and fails
again, every 0.1 s.
"""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Callable

import trio

from .admission import LOG_INTERVAL

# trio's logger for the accept errors it retries (trio/_highlevel_serve_listeners.py).
TRIO_LOGGER = "trio.serve_listeners"
# Seconds without a failed accept after which they are over: several of
# trio's retries (0.1 s apart) that did not fail.
QUIET = 1.0


def describe(code: int) -> str:
    return f"{errno.errorcode.get(code, str(code))}: {os.strerror(code)}"


class AcceptFailures:
    """Sans-I/O: what to log about failed accepts, given the time."""

    def __init__(self, interval: float = LOG_INTERVAL) -> None:
        self.interval = interval
        self.failing = False
        self.last_failure = 0.0
        self._since = 0.0  # when the failures began
        self._failed = 0  # since they began
        self._unlogged = 0  # since the last line
        self._logged = 0.0

    def failed(self, reason: str, now: float) -> str | None:
        self.last_failure = now
        if not self.failing:
            self.failing = True
            self._since = self._logged = now
            self._failed, self._unlogged = 1, 0
            return (
                f"cannot accept new connections ({reason}): the open ones are served, "
                "new ones wait and are accepted once descriptors are free"
            )
        self._failed += 1
        self._unlogged += 1
        if now - self._logged < self.interval:
            return None
        line = (
            f"still cannot accept new connections ({reason}): {self._unlogged} more "
            f"failed accepts in the last {now - self._logged:.0f} s"
        )
        self._logged = now
        self._unlogged = 0
        return line

    def over(self) -> str:
        """Once no accept has failed for a while."""
        self.failing = False
        return (
            f"accepting new connections again, after {self._failed} failed accepts "
            f"in {self.last_failure - self._since:.1f} s"
        )


class AcceptLog(logging.Handler):
    """The records of trio's accept loops, summarized."""

    def __init__(self, write: Callable[[str], None]) -> None:
        super().__init__()
        self.write = write
        self.failures = AcceptFailures()

    def emit(self, record: logging.LogRecord) -> None:
        error = record.exc_info[1] if record.exc_info else None
        if not isinstance(error, OSError) or error.errno is None:
            self.write(record.getMessage())  # not a record trio is known to send
            return
        began = not self.failures.failing
        line = self.failures.failed(describe(error.errno), trio.current_time())
        if line is not None:
            self.write(line)
        if began:
            trio.lowlevel.spawn_system_task(self._wait_until_over, name="accept failures")

    async def _wait_until_over(self) -> None:
        while (quiet := self.failures.last_failure + QUIET) > trio.current_time():
            await trio.sleep_until(quiet)
        self.write(self.failures.over())


def install(write: Callable[[str], None]) -> None:
    """Route trio's accept records to ``write`` until ``remove``."""
    logger = logging.getLogger(TRIO_LOGGER)
    logger.addHandler(AcceptLog(write))
    logger.propagate = False  # no traceback from logging's last resort


def remove() -> None:
    logger = logging.getLogger(TRIO_LOGGER)
    for handler in [h for h in logger.handlers if isinstance(h, AcceptLog)]:
        logger.removeHandler(handler)
    logger.propagate = not logger.handlers
