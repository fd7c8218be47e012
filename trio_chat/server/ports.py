"""The channels' listening ports, started and stopped while the server runs.

Each port's accept loop runs in its own cancel scope, and the connections it
accepts run in the server's long-lived nursery (``trio.serve_listeners``'
``handler_nursery``): closing a port ends its accept loop only, so the members
of a channel that moved or was removed are the rules' to deal with, not the
port's. A port knows the channel it serves by name, looked up when a
connection arrives, so a reload that swaps two channels' ports just changes
the names. New ports are bound before a reload goes to the rules
(``bind_new``), with the start-up's own binding code (sockets.py); a port
nobody here holds yet when the rules change (another node's reload) is bound
then.
"""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable, Iterable, Sequence

import trio

from ..config import ChannelConfig
from .listener import Backlog, BacklogListener
from .sockets import listen_everywhere

# A connection accepted on a channel's port: serve it as that channel's.
Handler = Callable[[trio.SocketStream, str], Awaitable[None]]


class _Port:
    """One listening port: which channel it serves, its accept loop's scope."""

    __slots__ = ("channel", "listeners", "scope")

    def __init__(self, channel: str, listeners: Sequence[trio.abc.Listener[trio.SocketStream]]):
        self.channel = channel
        self.listeners = listeners
        self.scope = trio.CancelScope()


class ChannelPorts:
    def __init__(
        self,
        nursery: trio.Nursery,
        handler: Handler,
        backlog: Backlog,
        log: Callable[[str], None],
        host: str | None = None,
        reuse_port: bool = False,
    ) -> None:
        """``host`` and ``reuse_port``: how the start-up bound the ports
        (--host, and --reuse-port under --workers); None: this server binds
        no port of its own (then a reload may only keep the ports it has)."""
        self._nursery = nursery
        self._handler = handler
        self._backlog = backlog
        self._log = log
        self.host = host
        self.reuse_port = reuse_port
        self.serving: dict[int, _Port] = {}
        # Bound for a reload on its way to the rules, by port.
        self._prepared: dict[int, list[socket.socket]] = {}

    def start(
        self, port: int, channel: str, listeners: Sequence[trio.abc.Listener[trio.SocketStream]]
    ) -> None:
        serving = _Port(channel, listeners)
        self.serving[port] = serving
        self._nursery.start_soon(self._accept, port, serving, name=f"trio-chat port {port}")

    async def _accept(self, port: int, serving: _Port) -> None:
        async def handler(stream: trio.SocketStream) -> None:
            await self._handler(stream, serving.channel)

        try:
            with serving.scope:
                await trio.serve_listeners(
                    handler, list(serving.listeners), handler_nursery=self._nursery
                )
        finally:
            with trio.CancelScope(shield=True):
                for listener in serving.listeners:
                    await trio.aclose_forcefully(listener)

    def bind_new(self, channels: Iterable[ChannelConfig]) -> None:
        """Bind every port of ``channels`` this server does not listen on yet,
        for the ``apply`` to come; or none, and OSError with a readable reason."""
        if self.host is None:
            return
        self.discard_prepared()
        bound: dict[int, list[socket.socket]] = {}
        try:
            for channel in channels:
                if channel.port not in self.serving:
                    what = f"channel {channel.name}"
                    bound[channel.port] = listen_everywhere(
                        self.host, channel.port, self.reuse_port, what
                    )
        except OSError:
            _close(bound)
            raise
        self._prepared = bound

    def discard_prepared(self) -> None:
        _close(self._prepared)
        self._prepared = {}

    def apply(self, channels: Sequence[ChannelConfig]) -> None:
        """Listen on exactly ``channels``' ports, each for its channel: what a
        reload's rules decided (effects.Reconfigured). Never awaits."""
        wanted = {channel.port: channel.name for channel in channels}
        for port, serving in list(self.serving.items()):
            if port not in wanted:
                del self.serving[port]
                serving.scope.cancel()  # its connections stay: they are the server's
        for port, name in wanted.items():
            kept = self.serving.get(port)
            if kept is not None:
                kept.channel = name
                continue
            sockets = self._prepared.pop(port, None)
            if sockets is None:
                if self.host is None:
                    continue
                try:
                    sockets = listen_everywhere(self.host, port, self.reuse_port, f"channel {name}")
                except OSError as error:
                    # Another node's reload: this node cannot say no any more.
                    self._log(f"{error}; the channel is not served on this node")
                    continue
            self.start(port, name, [BacklogListener(sock, self._backlog) for sock in sockets])
        self.discard_prepared()


def _close(bound: dict[int, list[socket.socket]]) -> None:
    for sockets in bound.values():
        for sock in sockets:
            sock.close()
