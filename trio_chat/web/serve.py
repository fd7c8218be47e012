"""Serve the web page and WebSocket on a socket ``cli`` already bound, inside
the server's root nursery (hypercorn's trio worker)."""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING

from hypercorn.config import Config
from hypercorn.trio import serve

from .. import wire
from .app import build_app

if TYPE_CHECKING:
    from ..server.core import ChatServer

# A WebSocket message may carry a whole frame (a file chunk) and then some.
MAX_MESSAGE = wire.MAX_PAYLOAD + 64 * 1024


async def serve_web(server: ChatServer, sock: socket.socket) -> None:
    config = Config()
    config.bind = [f"fd://{sock.fileno()}"]
    config.accesslog = None  # stdout carries chat lines only
    config.errorlog = "-"  # stderr
    config.websocket_max_message_size = MAX_MESSAGE
    config.graceful_timeout = 0.5
    config.loglevel = "WARNING"  # no start-up banner; problems still reach stderr
    await serve(build_app(server), config, mode="asgi")  # type: ignore[arg-type]
