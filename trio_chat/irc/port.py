"""The IRC port's accept loop: each connection admitted as a native one is
(the connection limit, the per-address limit), wrapped in TLS when the
server has a certificate, and served by an ``IrcClient``."""

from __future__ import annotations

import socket
from collections.abc import Sequence
from typing import TYPE_CHECKING

import trio

from ..server.core import peer_address
from ..state import ClientProtocol
from .client import IrcClient, IrcSettings
from .render import IrcRenderer

if TYPE_CHECKING:
    from ..server.core import ChatServer


def open_irc(server: ChatServer, settings: IrcSettings) -> IrcRenderer:
    """Teach the server to speak IRC: its renderer joins the others."""
    renderer = IrcRenderer(settings.server_name, server.hub.channels)
    # (It picks its recipients itself: only IRC members, each as it asked.)
    server.renderers.append((renderer.frames, ClientProtocol.IRC, True))
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
) -> None:
    address = peer_address(stream)
    if not server.admit(address):
        await trio.aclose_forcefully(stream)
        return
    server.opened(ClientProtocol.IRC)
    try:
        if server.ssl_context is not None:
            # The handshake happens on the first read, within the registration
            # timeout; a peer that fails it is dropped.
            stream = trio.SSLStream(stream, server.ssl_context, server_side=True)
        client = IrcClient(server, stream, address, settings, renderer)
        server.irc_clients.add(client)
        try:
            await client.run()
        finally:
            server.irc_clients.discard(client)
    finally:
        server.closed(ClientProtocol.IRC)
        server.addresses.release(address)
