"""Start trio on sockets that ``cli`` already bound and serve until shutdown."""

from __future__ import annotations

import argparse
import socket
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from functools import partial
from typing import TYPE_CHECKING

import trio

from ..config import ChannelConfig
from ..hub import Hub
from . import accept_log
from .core import ChatServer, Limits
from .listener import Backlog, BacklogListener
from .output import LineWriter

if TYPE_CHECKING:
    import ssl


def open_output() -> tuple[LineWriter, LineWriter]:
    """stdout and stderr writers that never block the event loop; trio's
    reports of failed accepts go to stderr through it, summarized."""
    sys.stdout.flush()
    sys.stderr.flush()
    errors = LineWriter(sys.stderr.fileno(), "stderr")
    output = LineWriter(sys.stdout.fileno(), "stdout", on_drop=errors)
    accept_log.install(log_to(errors))
    return output, errors


def close_output(output: LineWriter, errors: LineWriter) -> None:
    accept_log.remove()
    # Every line printed so far goes out, unless nobody reads the stream.
    output.close(timeout=2.0)
    errors.close(timeout=1.0)


def log_to(errors: LineWriter) -> Callable[[str], None]:
    """The server's log: a line on stderr, named."""
    return lambda text: errors.write(f"trio-chat-server: {text}")


def make_server(
    hub: Hub,
    arguments: argparse.Namespace,
    ssl_context: ssl.SSLContext | None,
    output: LineWriter,
    errors: LineWriter,
) -> ChatServer:
    return ChatServer(
        hub,
        Limits(
            hello_timeout=arguments.hello_timeout,
            max_file_size=arguments.max_file_size,
            max_connections=arguments.max_connections,
            flood_burst=arguments.flood_burst,
            flood_rate=arguments.flood_rate,
            max_per_address=arguments.max_per_address,
        ),
        ssl_context=ssl_context,
        out=output.write,
        log=log_to(errors),
    )


def web_services(
    server: ChatServer, web: socket.socket | None, arguments: argparse.Namespace
) -> list[Callable[[], Awaitable[None]]]:
    """The browser client's server, when --web asked for it (imported only then)."""
    if web is None:
        return []
    from ..web.origins import KnownOrigins
    from ..web.serve import serve_web

    return [partial(serve_web, server, web, KnownOrigins(arguments.web, arguments.web_origin))]


def socket_listeners(
    sockets: Mapping[str, Sequence[socket.socket]], backlog: Backlog
) -> dict[str, list[BacklogListener]]:
    """trio listeners on the sockets ``cli`` bound, channel by channel, counting
    what they have taken and not handed over in ``backlog`` (the server's)."""
    return {
        name: [BacklogListener(sock, backlog) for sock in socks] for name, socks in sockets.items()
    }


def run_server(
    channels: Sequence[ChannelConfig],
    sockets: Mapping[str, Sequence[socket.socket]],
    arguments: argparse.Namespace,
    ssl_context: ssl.SSLContext | None = None,
    web: socket.socket | None = None,
) -> None:
    hub = Hub(channels, afk_timeout=arguments.afk_timeout)
    output, errors = open_output()
    server = make_server(hub, arguments, ssl_context, output, errors)
    services = web_services(server, web, arguments)

    async def serve() -> None:
        await server.serve(socket_listeners(sockets, server.backlog), services=services)

    try:
        trio.run(serve)
    finally:
        close_output(output, errors)
