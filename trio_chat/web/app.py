"""The web routes: the page, its files, its icon, the channel list and the WebSocket.

Security: every response forbids inline script and any source but this
server (Content-Security-Policy; hypercorn adds ``SECURITY_HEADERS`` to every
response, serve.py), a request is answered only if its ``Host`` is a name the
server knows it is reached by, and the WebSocket handshake is refused unless
the page that opens it came from one of those names (origins.py).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote

import trio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..state import ClientProtocol
from .guard import declares_body
from .stream import WebSocketStream

if TYPE_CHECKING:
    from ..server.core import ChatServer
    from .origins import KnownOrigins

STATIC = Path(__file__).parent / "static"
SECURITY_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
        b"connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
]


async def answer(send: Send, status: int, text: str) -> None:
    """A short plain-text answer (a refusal) that closes the connection."""
    body = text.encode() + b"\n"
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def build_app(
    server: ChatServer,
    origins: KnownOrigins,
    complain: Callable[[str], None],
    metrics: Callable[[], bytes] | None = None,
) -> ASGIApp:
    """``complain`` logs a refused request (rate-limited: anyone can send many);
    ``metrics`` makes the text of ``/metrics`` (``--metrics web``), if asked for."""

    async def index(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", media_type="text/html; charset=utf-8")

    async def favicon(request: Request) -> Response:
        # Browsers ask for /favicon.ico whatever the page links: the SVG, not a 404.
        return FileResponse(STATIC / "favicon.svg", media_type="image/svg+xml")

    async def channels(request: Request) -> Response:
        return JSONResponse(
            [
                {
                    "name": channel.name,
                    "members": len(channel.members),
                    "capacity": channel.config.capacity,
                    "queue": len(channel.queue),
                }
                for channel in server.hub.channels.values()
            ]
        )

    async def chat(scope: Scope, receive: Receive, send: Send) -> None:
        """``/ws/CHANNEL``: plain ASGI, since every line to a web member goes this way."""
        channel = unquote(scope["path"].removeprefix("/ws/"))
        headers = dict(scope.get("headers", []))
        connect = await receive()
        if connect["type"] != "websocket.connect":
            return
        if not origins.origin_allowed(scope) or channel not in server.hub.channels:
            complain(
                f"refusing a WebSocket for {channel[:100]!r} from origin "
                f"{headers.get(b'origin', b'')[:100]!r}"
            )
            # Before the handshake is accepted, hypercorn answers this with 403.
            await send({"type": "websocket.close", "code": 1008})
            return
        await send({"type": "websocket.accept"})
        client = scope.get("client")
        await server.handle_connection(
            WebSocketStream(receive, send),
            channel,
            address=client[0] if client else "?",
            protocol=ClientProtocol.BROWSER,
        )

    app = Starlette(
        routes=[
            Route("/", index),
            Route("/channels", channels),
            Route("/favicon.ico", favicon),
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
        ]
    )

    async def routes(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            return  # no lifespan: serve.py runs the connections itself
        if not origins.host_known(scope):
            host = dict(scope.get("headers", [])).get(b"host", b"")
            complain(f"refusing a request for an unknown host {host[:100]!r}")
            if scope["type"] == "websocket":
                await receive()  # websocket.connect
                await send({"type": "websocket.close", "code": 1008})  # 403
            else:
                await answer(send, 421, "This server does not answer for that host name.")
        elif scope["type"] == "websocket":
            if scope["path"].startswith("/ws/"):
                await chat(scope, receive, send)
            else:
                await receive()
                await send({"type": "websocket.close", "code": 1008})
        elif declares_body(scope.get("headers", [])):
            await answer(send, 413, "No page here takes a request body.")
        elif metrics is not None and scope["path"] == "/metrics":
            await metrics_answer(scope, send, metrics)
        else:
            await app(scope, receive, shielded(send))

    return routes


async def metrics_answer(scope: Scope, send: Send, metrics: Callable[[], bytes]) -> None:
    """``GET /metrics`` with ``--metrics web`` (server/metrics.py makes the text)."""
    if scope["method"] != "GET":
        await answer(send, 405, "Only GET /metrics.")
        return
    from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

    body = metrics()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", CONTENT_TYPE_PLAIN_0_0_4.encode()),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def shielded(send: Send) -> Send:
    """``send`` that a cancel cannot interrupt. Starlette's FileResponse
    cancels its sending task once it hears the disconnect that hypercorn
    reports while it finishes the response; a cancel there would stop
    hypercorn half-way through closing the connection (``Connection: close``,
    HTTP/1.0), which then stayed open. hypercorn's own socket writes are
    shielded already, so this adds no wait that was not there."""

    async def send_shielded(message: Message) -> None:
        with trio.CancelScope(shield=True):
            await send(message)

    return send_shielded
