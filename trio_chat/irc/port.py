"""The IRC port's accept loop: each connection goes through what every
connection does (``ChatServer.serve_admitted``: the limits, TLS) and is
served by an ``IrcClient``."""

from __future__ import annotations

import socket
from collections.abc import Sequence
from typing import TYPE_CHECKING

import trio

from ..state import ClientProtocol
from .client import IrcClient, IrcSettings
from .render import IrcRenderer

if TYPE_CHECKING:
    from ..server.core import ChatServer


def open_irc(server: ChatServer, settings: IrcSettings) -> IrcRenderer:
    """Teach the server to speak IRC: its renderer joins the others."""
    # An automatic replay takes at most an outbox's high-water mark (a
    # quarter of its limits): the newcomer is never dropped for its history.
    limits = server.limits
    room = (limits.high_water_frames, limits.high_water_bytes)
    renderer = IrcRenderer(settings.server_name, server.hub.channels, room)
    # (It picks its recipients itself: only IRC members, each as it asked.)
    server.renderers.append((renderer.frames, ClientProtocol.IRC, True))
    # A reload's channels are the ones JOIN finds from then on.
    server.on_reconfigured.append(
        lambda channels, speaking: renderer.channels_changed(c.name for c in channels)
    )
    return renderer


async def serve_irc(
    server: ChatServer, sockets: Sequence[socket.socket], settings: IrcSettings
) -> None:
    """Serve IRC on the bound ``sockets`` until the server stops."""
    renderer = open_irc(server, settings)

    async def handler(stream: trio.SocketStream) -> None:
        await serve_connection(server, stream, settings, renderer)

    listeners = [trio.SocketListener(trio.socket.from_stdlib_socket(sock)) for sock in sockets]
    await trio.serve_listeners(handler, listeners)


async def serve_connection(
    server: ChatServer,
    stream: trio.abc.Stream,
    settings: IrcSettings,
    renderer: IrcRenderer,
    address: str | None = None,
) -> None:
    """One IRC connection; ``address``: its peer's, where ``stream`` has
    none of its own to tell (a test's memory stream)."""

    async def serve(stream: trio.abc.Stream, address: str | None) -> None:
        client = IrcClient(server, stream, address, settings, renderer)
        server.irc_clients.add(client)
        try:
            await client.run()
        finally:
            server.irc_clients.discard(client)

    await server.serve_admitted(stream, address, ClientProtocol.IRC, serve)
