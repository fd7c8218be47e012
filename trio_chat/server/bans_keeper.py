"""A lone server's bans file (--state-dir): the trio side.

The rules say when a ban was made or lifted (``fx.BansChanged``); the keeper
writes the whole table anew from a worker thread, so the event loop never
waits for the disk, and once more at shutdown if a change is still unwritten.
A write that fails (a full disk, a directory made read-only) is reported and
tried again at the next change; the bans stay in force in memory meanwhile.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator

import trio

from .. import bans
from .core import ChatServer
from .logs import INFO, WARNING
from .state_dir import StateDir, write_bans


class BansKeeper:
    def __init__(self, server: ChatServer, path: str) -> None:
        self.server = server
        self.path = path
        self._due = trio.Event()  # set when keep() has a write to start
        self._unwritten = False  # a change not on disk yet (its write failed, or is to come)
        self._failing = False  # the last write failed (said once, and again when it works)
        self._writing = False
        self._wrote = trio.Event()  # set (and replaced) after each write tried

    def changed(self) -> None:
        """(ChatServer.apply, for ``fx.BansChanged``: never blocks.)"""
        self._unwritten = True
        self._due.set()

    async def keep(self) -> None:
        while True:
            await self._due.wait()
            self._due = trio.Event()
            await self.write()

    async def quiet(self) -> None:
        """Until every change so far has been written, or its write failed."""
        while self._due.is_set() or self._writing:
            await self._wrote.wait()

    async def write(self, anyway: bool = False) -> None:
        """Write the table as it is now, if a change is not on disk yet
        (``anyway``: at shutdown, over whatever the file became meanwhile)."""
        if not (self._unwritten or anyway):
            return
        self._unwritten = False
        self._writing = True
        try:
            written = await self._write()
        except BaseException:
            self._unwritten = True  # (cancelled: the shutdown's write does it)
            raise
        finally:
            self._writing = False
            self._wrote.set()
            self._wrote = trio.Event()
        if not written:
            self._unwritten = True

    async def _write(self) -> bool:
        rows = bans.to_rows(self.server.hub.bans, trio.current_time())
        try:
            await trio.to_thread.run_sync(write_bans, self.path, rows, time.time())
        except OSError as error:
            if not self._failing:
                self._failing = True
                self.server.log(
                    f"cannot write the bans file {self.path}: {error.strerror or error}; "
                    "the bans stay in force, and the next change tries again",
                    event="state_write_failed",
                    level=WARNING,
                    path=self.path,
                )
            return False
        if self._failing:
            self._failing = False
            self.server.log(
                f"the bans file {self.path} is written again",
                event="state_written",
                level=INFO,
                path=self.path,
            )
        return True


@contextlib.asynccontextmanager
async def keeping_bans(server: ChatServer, state: StateDir) -> AsyncIterator[None]:
    """The bans ``state`` holds in force, kept in its file while the server runs."""
    now = trio.current_time()
    # Their seconds left ran down while the server was not running.
    server.hub.bans = bans.from_rows(state.bans, now - state.elapsed)
    keeper = BansKeeper(server, state.bans_path)
    server.bans_keeper = keeper
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(keeper.keep)
            try:
                yield
            finally:
                nursery.cancel_scope.cancel()
    finally:
        server.bans_keeper = None
        with trio.CancelScope(shield=True):
            await keeper.write(anyway=True)
