"""The server's stdout and stderr, written by threads so the chat never waits.

A pipe nobody reads fills up, and a write to it blocks. Written from the event
loop, that would stop every conversation, every join and even the response to
SIGTERM. So a line is written directly only when the write cannot block (a
regular file, /dev/null, or a pipe or terminal that has room, with nothing
queued before it); otherwise it goes to a writer thread through a bounded
queue. Either way each line is written the moment it can be, in order. When the
queue is full the line is dropped and counted, the chat carries on, and stderr
says how many stdout lines were lost. (The thread is only the fallback: handing
every line to a thread costs the event loop about an eighth of its throughput.)
"""

from __future__ import annotations

import os
import queue
import select
import stat
import threading
import time
from collections.abc import Callable

from ..sanitize import clean

# Lines waiting for a stalled stream before new ones are dropped.
QUEUE_LINES = 10_000
# At most one "lines dropped" note per this many seconds.
NOTE_INTERVAL = 10.0
# A pipe with room takes a write this small whole, without blocking.
ATOMIC_WRITE = 4096
DEV_NULL = os.makedev(1, 3)


def _never_blocks(fd: int) -> bool:
    try:
        status = os.fstat(fd)
    except OSError:
        return False
    return stat.S_ISREG(status.st_mode) or (
        stat.S_ISCHR(status.st_mode) and status.st_rdev == DEV_NULL
    )


class LineWriter:
    """Write lines to a file descriptor from a thread of its own."""

    def __init__(self, fd: int, name: str, on_drop: Callable[[str], None] | None = None) -> None:
        self.fd = fd
        self.name = name
        self._on_drop = on_drop  # the log that says lines were dropped
        self._queue: queue.Queue[bytes | None] = queue.Queue(QUEUE_LINES)
        self._dropped = 0
        self._last_note = -NOTE_INTERVAL
        self._broken = False
        self._never_blocks = _never_blocks(fd)
        self._poll = select.poll()
        self._poll.register(fd, select.POLLOUT)
        self._thread: threading.Thread | None = None

    def write(self, line: str) -> None:
        """Write or queue one line (cleaned, newline added); never blocks."""
        data = clean(line).encode("utf-8", "replace") + b"\n"
        if self._queue.unfinished_tasks == 0 and (
            self._never_blocks or (len(data) <= ATOMIC_WRITE and self._has_room())
        ):
            self._write(data)
            return
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"{self.name} writer")
            self._thread.daemon = True
            self._thread.start()
        try:
            self._queue.put_nowait(data)
        except queue.Full:
            self._dropped += 1
            now = time.monotonic()
            if self._on_drop is not None and now - self._last_note >= NOTE_INTERVAL:
                self._last_note = now
                self._on_drop(
                    f"{self._dropped} {self.name} line(s) dropped so far: "
                    f"{self.name} is not being read"
                )

    def _has_room(self) -> bool:
        try:
            return bool(self._poll.poll(0))
        except OSError:
            return False

    def _run(self) -> None:
        while True:
            data = self._queue.get()
            if data is None:
                self._queue.task_done()
                return
            # Take what else is waiting too: one write, still at once.
            pieces = [data]
            while len(pieces) < 256:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._write(b"".join(pieces))
                    for _ in range(len(pieces) + 1):
                        self._queue.task_done()
                    return
                pieces.append(more)
            self._write(b"".join(pieces))
            for _ in pieces:
                self._queue.task_done()

    def _write(self, data: bytes) -> None:
        if self._broken:
            return
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self.fd, view) :]
        except OSError:
            self._broken = True  # nobody reads it any more (EPIPE, closed): carry on

    def close(self, timeout: float) -> None:
        """Write what is queued, waiting at most ``timeout`` seconds for a stalled reader."""
        if self._thread is None:
            return
        try:
            self._queue.put(None, timeout=timeout)
        except queue.Full:
            return
        self._thread.join(timeout)
