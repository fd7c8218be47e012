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
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from functools import partial
from typing import BinaryIO, TypeVar

import trio

from .. import history_file
from ..history import Entry
from ..hub import Hub
from .core import ChatServer
from .logs import WARNING

# At most one write in this many seconds, unless a batch is this many lines.
BATCH_INTERVAL = 1.0
BIG_BATCH = 256
# Lines queued while a write is slow, beyond which the queue goes and the
# next write rewrites the file from the history itself: memory stays bounded.
QUEUE_LIMIT = 65536

T = TypeVar("T")
RunSync = Callable[[Callable[[], T]], Awaitable[T]]
Record = tuple[str, Entry | float]  # a channel, and an entry or the time of its /empty


class FileShrank(Exception):
    """The history file is shorter than what was written to it: someone cut it."""


class FileWriter:
    """The file's writes, each meant for a worker thread: appended lines
    and rewrites, both on disk (fsync) when they return."""

    def __init__(self, path: str) -> None:
        self.path = path  # as the operator named it, for messages
        # The file itself, wherever a link leads: rewritten beside it, so a
        # rewrite never replaces the link and leaves the old lines behind.
        self._file = os.path.realpath(path)
        self._fd: int | None = None
        self._size: int | None = None  # what it holds, as far as we wrote it

    def append(self, events: Sequence[Record]) -> None:
        """Raises FileShrank, touching nothing, if someone cut the file
        short since: appended to, it would no longer begin with its header."""
        data = "".join(f"{history_file.event_line(c, e)}\n" for c, e in events).encode()
        if self._fd is None:
            self._fd = os.open(self._file, os.O_WRONLY | os.O_APPEND)
        size = os.fstat(self._fd).st_size
        if self._size is not None and size < self._size:
            self.close()
            raise FileShrank(self.path)
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view) :]
        os.fsync(self._fd)
        self._size = size + len(data)

    def rewrite(self, histories: Iterable[tuple[str, Sequence[Entry]]], said: int = 0) -> None:
        """The whole file anew, replacing the old one at once: a crash
        leaves the one or the other, never a mix. It keeps the old file's
        permissions (a new one is the owner's alone: it holds what people said)."""
        self.close()
        temporary = f"{self._file}.tmp"
        try:
            mode = os.stat(self._file).st_mode & 0o777
        except FileNotFoundError:
            mode = 0o600
        try:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)  # (one a crash left, perhaps with another mode)
            descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
            with open(descriptor, "w", encoding="utf-8") as file:
                for line in history_file.compacted_lines(histories, said):
                    file.write(f"{line}\n")
                file.flush()
                os.fsync(file.fileno())
            self._size = os.stat(temporary).st_size
            os.replace(temporary, self._file)
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(temporary)  # (a full disk gets its room back)
            raise
        directory = os.open(os.path.dirname(self._file), os.O_RDONLY)
        try:
            os.fsync(directory)  # the rename itself survives a crash
        finally:
            os.close(directory)

    def remove(self) -> None:
        """The file goes (when it cannot be rewritten without lines it must lose)."""
        self.close()
        os.unlink(self._file)

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
        # An /empty no rewrite has carried to disk yet: the file still holds
        # what it forgot, and must lose it (or go) however writes fail.
        self._forget_pending = False
        if ledger.due(self._hub.lines_kept()):
            # A new file, a bad tail, an /empty not yet compacted: at once.
            self._want(urgent=True)

    # ----- HistoryKeeper (server/core.py): never blocks -----

    def recorded(self, channel: str, entry: Entry) -> None:
        self._queue_event((channel, entry))

    def forgotten(self, channel: str, at: float) -> None:
        # The next write rewrites the file without the channel's lines, at once.
        self._forget_pending = True
        if self._failed:
            self._retry = True
            self._want(urgent=True)
            return
        self._ledger.stale = True
        self._queue_event((channel, at))
        self._want(urgent=True)

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
        kept = self._hub.lines_kept()
        rewrite = self._retry or ledger.due(kept)
        forgets = False  # whether this write carries an /empty to disk
        if rewrite:
            # A copy of every channel's entries, taken here: the thread
            # encodes and writes while the rules go on adding. What makes
            # the file stale from now on calls for another rewrite.
            histories = [
                (name, tuple(channel.history.entries))
                for name, channel in self._hub.channels.items()
            ]
            ledger.stale = False
            forgets, self._forget_pending = self._forget_pending, False
            work = partial(self._writer.rewrite, histories, self._hub.said)
        elif queue:
            work = partial(self._writer.append, queue)
        else:
            return
        try:
            await self._run_sync(work)
        except FileShrank:
            # Rewritten whole instead, at once (what was queued is in the history).
            self._log(f"the history file {self._writer.path} was cut short: rewriting it")
            ledger.stale = True
            self._want(urgent=True)
            return
        except OSError as error:
            if rewrite:
                ledger.stale = True
                self._forget_pending = self._forget_pending or forgets
            self._fail(error)
            if forgets:
                await self._remove_file()
            return
        finally:
            self._last_write = trio.current_time()
        if rewrite:
            ledger.rewritten(kept)
            if self._failed:
                self._failed = self._retry = False
                self._log(f"the history file {self._writer.path} is written again")

    async def _remove_file(self) -> None:
        """An /empty cannot be rewritten into the file: the file goes, so
        that what it forgot is never read back (behaviour.md, "The history
        file"). The history is then kept in memory only."""
        try:
            await self._run_sync(self._writer.remove)
        except FileNotFoundError:
            pass
        except OSError as error:
            self._log(
                f"cannot remove the history file {self._writer.path} either: "
                f"{error.strerror or error}; it still holds lines said before an /empty"
            )
            return
        else:
            self._log(
                f"removed the history file {self._writer.path}: it could not be "
                "rewritten without the lines an /empty forgot"
            )
        self._forget_pending = self._retry = False
        self._ledger.stale = True  # (a later rewrite creates it anew)

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
        self._retry = self._forget_pending
        if not self._failed:
            self._failed = True
            self._log(
                f"cannot write the history file {self._writer.path}: "
                f"{error.strerror or error}; the history is kept in memory only"
            )
        with contextlib.suppress(OSError):  # (reported already)
            self._writer.close()


def _read_lines(source: BinaryIO, failures: list[OSError]) -> Iterator[bytes]:
    """The rest of the file's lines, until one cannot be read; a line longer
    than any of ours comes cut at that length (it reads as corrupt), so a
    file of one endless line is never held whole."""
    try:
        while line := source.readline(history_file.MAX_FILE_LINE + 1):
            yield line
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
    if replayed.damaged:
        replayed.problems.append(keep_damaged(path))
    return replayed


def keep_damaged(path: str) -> str:
    """The damaged file as it is, under FILE.corrupt, before the first rewrite
    replaces it with its good beginning: nothing of it is lost for good."""
    kept = f"{path}.corrupt"
    try:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(kept)
        try:
            os.link(path, kept)  # (the same bytes under a second name: no copy)
        except OSError:
            shutil.copyfile(path, kept)
    except OSError as error:
        return f"cannot keep the damaged {path} as {kept}: {error.strerror or error}"
    return f"the damaged {path} is kept as it was in {kept}"


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

    def history_file_problem(text: str) -> None:
        server.log(text, event="history_file", level=WARNING, path=path)

    for problem in replayed.problems:
        history_file_problem(problem)
    keeper = HistoryFileKeeper(server.hub, FileWriter(path), replayed.ledger, history_file_problem)
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
