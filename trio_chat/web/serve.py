"""Serve the web page and WebSocket on a socket ``cli`` already bound, inside
the server's root nursery.

The server accepts the connections itself and runs hypercorn's connection
handler (its trio ``TCPServer``, as ``hypercorn.trio.serve`` does) on each,
through ``GuardedStream``: hypercorn reads whatever a peer sends and judges it
afterwards, and the guard lets through only what the page needs, checking
every declared length before a byte of payload is read (guard.py).
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, cast

import trio
from hypercorn.config import Config
from hypercorn.trio.tcp_server import TCPServer
from hypercorn.trio.worker_context import WorkerContext
from hypercorn.typing import ConnectionState
from hypercorn.utils import wrap_app

from .. import wire
from ..server.admission import AddressGate
from ..server.core import peer_address
from ..server.counts import REFUSED_PER_ADDRESS
from ..server.logs import WARNING
from ..server.outlet import STOP_GRACE
from .app import SECURITY_HEADERS, build_app
from .guard import GuardedStream
from .throttle import Throttle, throttled_logger

if TYPE_CHECKING:
    from ..server.core import ChatServer
    from .origins import KnownOrigins

# A WebSocket message may carry a whole frame (a file chunk) and then some.
MAX_MESSAGE = wire.MAX_PAYLOAD + 64 * 1024


class WebConfig(Config):
    def response_headers(self, protocol: str) -> list[tuple[bytes, bytes]]:
        """Every response hypercorn sends goes through here, its own answers
        too (400, 431, the 403 that refuses a WebSocket), so every one carries
        the security headers (docs/web.md)."""
        return super().response_headers(protocol) + SECURITY_HEADERS


def web_config() -> WebConfig:
    config = WebConfig()
    config.accesslog = None  # stdout carries chat lines only
    config.errorlog = "-"  # stderr (serve_web sends it through a Throttle)
    config.loglevel = "WARNING"  # problems still reach stderr
    config.websocket_max_message_size = MAX_MESSAGE  # the guard refuses first
    return config


async def serve_web(
    server: ChatServer,
    sock: socket.socket,
    origins: KnownOrigins,
    metrics: Callable[[], bytes] | None = None,
) -> None:
    """``metrics``: the text of ``/metrics``, with ``--metrics web``."""
    config = web_config()
    complain = Throttle(server.log)
    config.errorlog = throttled_logger(server.log)
    routes = build_app(server, origins, complain, metrics)
    app = wrap_app(routes, config.wsgi_max_body_size, "asgi")  # type: ignore[arg-type]
    context = WorkerContext(None)
    # The port's connections from one address at once, WebSocket or not (a
    # WebSocket's session is also counted as the channel ports' are).
    gate = AddressGate(server.limits.max_per_address, rate_limited=False)
    guarded_streams: set[GuardedStream] = set()

    async def connection(stream: trio.SocketStream) -> None:
        address = peer_address(stream)
        admitted, complaint = gate.admit(address, trio.current_time())
        if not admitted:
            server.counts.refuse(REFUSED_PER_ADDRESS)
        if complaint is not None:
            server.log(
                complaint,
                event="connection_refused",
                level=WARNING,
                reason=REFUSED_PER_ADDRESS,
                address=address,
            )
        if not admitted:
            await trio.aclose_forcefully(stream)
            return
        guarded = GuardedStream(stream, MAX_MESSAGE, config.h11_max_incomplete_size, complain)
        guarded_streams.add(guarded)
        try:
            # TCPServer is annotated for the SSL stream hypercorn's own loop gives it;
            # it uses a plain stream's methods and its .socket, as GuardedStream has.
            await TCPServer(
                app,
                config,
                context,
                ConnectionState({}),
                cast(trio.SSLStream[trio.SocketStream], guarded),
            ).run()
        except Exception as error:
            # hypercorn can fail on a state some peer's bytes lead it into (an
            # h11 LocalProtocolError, say): that connection ends, nothing else.
            complain(f"dropping a web connection from {address}: {error!r}")
        finally:
            guarded_streams.discard(guarded)
            gate.release(address)
            guarded.close_now()

    listener = trio.SocketListener(trio.socket.from_stdlib_socket(sock))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.serve_listeners, connection, [listener])
        try:
            await trio.sleep_forever()
        finally:
            # After a /shutdown the pages' goodbyes go out first (Session.shut_down).
            with trio.CancelScope(shield=True), trio.move_on_after(STOP_GRACE):
                for ended in server.goodbyes:
                    await ended.wait()
            # Shutting down: hypercorn's writes are shielded from cancellation,
            # so one to a peer that does not read would hold the server open.
            for guarded in list(guarded_streams):
                guarded.close_now()
