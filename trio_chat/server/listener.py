"""A channel's listening socket that takes every waiting connection at once.

``trio.SocketListener.accept`` takes one connection per wakeup. When many
clients connect together (a restart, a reconnect storm) each of them then joins
in a round of its own, and each of those rounds flushes a "has joined" line to
every member already there: every socket is written once per newcomer. This
listener takes the whole backlog when the socket wakes (up to a batch) and
hands it over one connection per scheduling round, in the order they arrived
(so joins keep their first-come order), while the server holds its flush until
the batch is handed over (``Backlog``), so those joins share one write per
member.
"""

from __future__ import annotations

import errno
import socket
from collections import deque

import trio

# Connections taken in one go before others get a turn.
BATCH = 64
# What accept(2) may report about one connection that died in the backlog:
# skip it and take the next (the same set trio's own listener ignores).
GONE_BEFORE_ACCEPT = frozenset({errno.ECONNABORTED, errno.EPERM, errno.EPROTO})


class Backlog:
    """Connections a server's listeners have taken and not yet handed over:
    one count for all of them, so the flush need not ask each listener."""

    def __init__(self) -> None:
        self.waiting = 0


class BacklogListener(trio.abc.Listener[trio.SocketStream]):
    def __init__(self, sock: socket.socket, backlog: Backlog | None = None) -> None:
        self._listener = trio.SocketListener(trio.socket.from_stdlib_socket(sock))
        self._sock = sock  # the same socket, non-blocking since trio took it
        self._waiting: deque[trio.SocketStream] = deque()
        self._backlog = backlog if backlog is not None else Backlog()

    @property
    def socket(self) -> trio.socket.SocketType:
        return self._listener.socket

    @property
    def waiting(self) -> int:
        """Connections accepted and not yet handed over."""
        return len(self._waiting)

    async def accept(self) -> trio.SocketStream:
        if self._waiting:
            # A round each, as trio's own listener takes: the session started
            # for the previous one reads its hello first.
            await trio.lowlevel.checkpoint()
        else:
            self._waiting.append(await self._listener.accept())
            self._backlog.waiting += 1
            self._take_backlog()
        self._backlog.waiting -= 1
        return self._waiting.popleft()

    def _take_backlog(self) -> None:
        while len(self._waiting) < BATCH:
            try:
                connection, _ = self._sock.accept()
            except OSError as error:
                if error.errno in GONE_BEFORE_ACCEPT:
                    continue
                # Nothing more waiting (EAGAIN), or out of descriptors: the
                # next awaited accept meets it, and serve_listeners copes.
                return
            self._waiting.append(trio.SocketStream(trio.socket.from_stdlib_socket(connection)))
            self._backlog.waiting += 1

    async def aclose(self) -> None:
        while self._waiting:
            self._backlog.waiting -= 1
            await trio.aclose_forcefully(self._waiting.popleft())
        await self._listener.aclose()
