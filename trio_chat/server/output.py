"""The server's stdout and stderr, written by threads so the chat never waits.

A pipe nobody reads fills up, and a write to it blocks. Written from the event
loop, that would stop every conversation, every join and even the response to
SIGTERM. So each stream has a writer thread fed through a bounded queue: the
event loop only enqueues. Each line is still written and flushed the moment
the thread gets it, in order. When a queue is full the line is dropped and
counted, the chat carries on, and stderr says how many stdout lines were lost.
"""

from __future__ import annotations

import os
import queue
import threading
import time

from ..sanitize import clean

# Lines waiting for a stalled stream before new ones are dropped.
QUEUE_LINES = 10_000
# At most one "lines dropped" note per this many seconds.
NOTE_INTERVAL = 10.0


class LineWriter:
    """Write lines to a file descriptor from a thread of its own."""

    def __init__(self, fd: int, name: str, on_drop: LineWriter | None = None) -> None:
        self.fd = fd
        self.name = name
        self._on_drop = on_drop  # where to say that lines were dropped
        self._queue: queue.Queue[bytes | None] = queue.Queue(QUEUE_LINES)
        self._dropped = 0
        self._last_note = -NOTE_INTERVAL
        self._broken = False
        self._thread = threading.Thread(target=self._run, name=f"{name} writer", daemon=True)
        self._thread.start()

    def write(self, line: str) -> None:
        """Queue one line (cleaned, newline added); never blocks."""
        try:
            self._queue.put_nowait(clean(line).encode("utf-8", "replace") + b"\n")
        except queue.Full:
            self._dropped += 1
            now = time.monotonic()
            if self._on_drop is not None and now - self._last_note >= NOTE_INTERVAL:
                self._last_note = now
                self._on_drop.write(
                    f"trio-chat-server: {self._dropped} {self.name} line(s) dropped so far: "
                    f"{self.name} is not being read"
                )

    def _run(self) -> None:
        while True:
            data = self._queue.get()
            if data is None:
                return
            # Take what else is waiting too: one write, still flushed at once.
            pieces = [data]
            while len(pieces) < 256:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._write(b"".join(pieces))
                    return
                pieces.append(more)
            self._write(b"".join(pieces))

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
        try:
            self._queue.put(None, timeout=timeout)
        except queue.Full:
            return
        self._thread.join(timeout)
