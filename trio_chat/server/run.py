"""Start trio on sockets that ``cli`` already bound and serve until shutdown."""

from __future__ import annotations

import argparse
import socket
from collections.abc import Mapping, Sequence

import trio

from ..config import ChannelConfig
from ..hub import Hub
from .core import ChatServer, Limits


def run_server(
    channels: Sequence[ChannelConfig],
    sockets: Mapping[str, Sequence[socket.socket]],
    arguments: argparse.Namespace,
) -> None:
    hub = Hub(channels, afk_timeout=arguments.afk_timeout)
    server = ChatServer(
        hub,
        Limits(
            hello_timeout=arguments.hello_timeout,
            max_file_size=arguments.max_file_size,
            max_connections=arguments.max_connections,
        ),
    )

    async def serve() -> None:
        listeners = {
            name: [trio.SocketListener(trio.socket.from_stdlib_socket(sock)) for sock in socks]
            for name, socks in sockets.items()
        }
        await server.serve(listeners)

    trio.run(serve)
