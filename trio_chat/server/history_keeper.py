"""A lone server's history file (--history-file): the trio side.

The rules tell the server of every entry kept and every /empty
(``fx.Recorded``, ``fx.Forgotten``); the keeper queues them without ever
blocking the event loop, and one task writes them in batches from a worker
thread, each made durable with fsync: a batch an interval after the last
one, sooner when it is big, and everything at shutdown. What to write, and
when the file is rewritten whole instead, is history_file.py's to decide.

A write that fails (a full disk, a file made read-only) is reported once and
the server goes on with its history in memory only (docs/behaviour.md, "The
history file"); an /empty still tries to rewrite the file, since the lines
it forgot must not come back at the next start.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from functools import partial
from typing import BinaryIO, TypeVar

import trio

from .. import history_file
from ..history import Entry
from ..hub import Hub
from .core import ChatServer

# At most one write in this many seconds, unless a batch is this many lines.
BATCH_INTERVAL = 1.0
BIG_BATCH = 256
# Lines queued while a write is slow, beyond which the queue goes and the
# next write rewrites the file from the history itself: memory stays bounded.
QUEUE_LIMIT = 65536

T = TypeVar("T")
RunSync = Callable[[Callable[[], T]], Awaitable[T]]
Record = tuple[str, Entry | float]  # a channel, and an entry or the time of its /empty


class FileWriter:
    """The file's writes, each meant for a worker thread: appended lines
    and rewrites, both on disk (fsync) when they return."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: int | None = None

    def append(self, events: Sequence[Record]) -> None:
        data = "".join(f"{history_file.event_line(c, e)}\n" for c, e in events).encode()
        if self._fd is None:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view) :]
        os.fsync(self._fd)

    def rewrite(self, histories: Iterable[tuple[str, Sequence[Entry]]]) -> None:
        """The whole file anew, replacing the old one at once: a crash
        leaves the one or the other, never a mix."""
        self.close()
        temporary = f"{self.path}.tmp"
        try:
            with open(temporary, "w", encoding="utf-8") as file:
                for line in history_file.compacted_lines(histories):
                    file.write(f"{line}\n")
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, self.path)
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(temporary)  # (a full disk gets its room back)
            raise
        directory = os.open(os.path.dirname(os.path.abspath(self.path)), os.O_RDONLY)
        try:
            os.fsync(directory)  # the rename itself survives a crash
        finally:
            os.close(directory)

    def close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)


class HistoryFileKeeper:
    """ChatServer.history_keeper for a file: ``recorded`` and ``forgotten``
    queue, ``write_batches`` writes, ``close`` writes the rest."""

    def __init__(
        self,
        hub: Hub,
        writer: FileWriter,
        ledger: history_file.Ledger,
        log: Callable[[str], None],
        run_sync: RunSync[None] = trio.to_thread.run_sync,
    ) -> None:
        self._hub = hub
        self._writer = writer
        self._ledger = ledger
        self._log = log
        self._run_sync = run_sync
        self._queue: list[Record] = []
        self._wanted = trio.Event()  # something to write
        self._urgent = trio.Event()  # and not to wait for the interval
        self._last_write = -math.inf
        self._failed = False  # history in memory only, after a write failed
        self._retry = False  # but an /empty since: try rewriting the file
        if ledger.due(self._kept()):
            # A new file, a bad tail, an /empty not yet compacted: at once.
            self._want(urgent=True)

    # ----- HistoryKeeper (server/core.py): never blocks -----

    def recorded(self, channel: str, entry: Entry) -> None:
        self._queue_event((channel, entry))

    def forgotten(self, channel: str, at: float) -> None:
        if self._failed:
            self._retry = True
            self._want()
            return
        # The next write rewrites the file without the channel's lines.
        self._ledger.stale = True
        self._queue_event((channel, at))

    def _queue_event(self, event: Record) -> None:
        if self._failed:
            return
        queue = self._queue
        queue.append(event)
        if len(queue) >= QUEUE_LIMIT:
            queue.clear()
            self._ledger.stale = True
        self._want(urgent=len(queue) >= BIG_BATCH)

    def _want(self, urgent: bool = False) -> None:
        self._wanted.set()
        if urgent:
            self._urgent.set()

    # ----- the writing -----

    async def write_batches(self) -> None:
        """Write what is queued, a batch at a time, until cancelled."""
        while True:
            await self._wanted.wait()
            with trio.move_on_at(self._last_write + BATCH_INTERVAL):
                await self._urgent.wait()
            await self.write()

    async def write(self) -> None:
        """Write what is queued now: append it, or rewrite the file."""
        self._wanted = trio.Event()
        self._urgent = trio.Event()
        queue, self._queue = self._queue, []
        if self._failed and not self._retry:
            return
        ledger = self._ledger
        ledger.appended(len(queue))
        kept = self._kept()
        rewrite = self._retry or ledger.due(kept)
        if rewrite:
            # A copy of every channel's entries, taken here: the thread
            # encodes and writes while the rules go on adding.
            histories = [
                (name, tuple(channel.history.entries))
                for name, channel in self._hub.channels.items()
            ]
            work = partial(self._writer.rewrite, histories)
        elif queue:
            work = partial(self._writer.append, queue)
        else:
            return
        try:
            await self._run_sync(work)
        except OSError as error:
            self._fail(error)
            return
        finally:
            self._last_write = trio.current_time()
        if rewrite:
            ledger.rewritten(kept)
            if self._failed:
                self._failed = self._retry = False
                self._log(f"the history file {self._writer.path} is written again")

    async def close(self) -> None:
        """Write everything still queued (at shutdown)."""
        if self._wanted.is_set():
            await self.write()
        try:
            self._writer.close()
        except OSError as error:
            self._fail(error)

    def _fail(self, error: OSError) -> None:
        self._queue.clear()
        self._retry = False
        if not self._failed:
            self._failed = True
            self._log(
                f"cannot write the history file {self._writer.path}: "
                f"{error.strerror or error}; the history is kept in memory only"
            )
        with contextlib.suppress(OSError):  # (reported already)
            self._writer.close()

    def _kept(self) -> int:
        return sum(len(channel.history) for channel in self._hub.channels.values())


def _read_lines(source: BinaryIO, failures: list[OSError]) -> Iterator[bytes]:
    """The rest of the file's lines, until one cannot be read."""
    try:
        yield from source
    except OSError as error:
        failures.append(error)


def load(hub: Hub, path: str, source: BinaryIO | None) -> history_file.Replayed:
    """Replay the file (``source``, read past its header, or None when
    there is none yet) for ``hub``'s channels; sync, for a worker thread."""
    if source is None:
        return history_file.Replayed({})
    failures: list[OSError] = []
    with source:
        replayed = history_file.replay(
            _read_lines(source, failures), path, hub.channels, hub.history
        )
    if failures:
        error = failures[0]
        replayed.problems.append(
            f"cannot read the rest of {path}: {error.strerror or error}; "
            "keeping what was read before it"
        )
        replayed.ledger.stale = True
    return replayed


def restore(hub: Hub, replayed: history_file.Replayed) -> None:
    """Give ``hub`` what the file held."""
    # Line numbers go on from the file's: a msgid is never given twice.
    hub.said = max(hub.said, replayed.said)
    for name, history in replayed.histories.items():
        hub.channels[name].history.extend(history.entries)


@contextlib.asynccontextmanager
async def keeping_history(
    server: ChatServer, path: str, source: BinaryIO | None
) -> AsyncIterator[HistoryFileKeeper]:
    """The server's history replayed from the file ``path`` (``source``,
    read past its header) and kept there while the block runs; everything
    is written when it ends."""
    replayed = await trio.to_thread.run_sync(load, server.hub, path, source)
    restore(server.hub, replayed)
    for problem in replayed.problems:
        server.log(problem)
    keeper = HistoryFileKeeper(server.hub, FileWriter(path), replayed.ledger, server.log)
    server.history_keeper = keeper
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(keeper.write_batches)
            try:
                yield keeper
            finally:
                nursery.cancel_scope.cancel()
    finally:
        with trio.CancelScope(shield=True):
            await keeper.close()
