"""The web routes: the page, its files, the channel list and the WebSocket.

Security: every response forbids inline script and any source but this
server (Content-Security-Policy), and the WebSocket handshake is refused
unless the page that opens it came from this server (Origin).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .stream import WebSocketStream

if TYPE_CHECKING:
    from ..server.core import ChatServer

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


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", [])) + SECURITY_HEADERS
            await send(message)

        await self.app(scope, receive, with_headers)


def same_origin(headers: dict[bytes, bytes]) -> bool:
    """The page that opens the socket came from this server (a cross-site page
    could otherwise chat in a visitor's name)."""
    origin = headers.get(b"origin")
    host = headers.get(b"host")
    return (
        origin is not None
        and host is not None
        and origin in (b"http://" + host, b"https://" + host)
    )


def build_app(server: ChatServer) -> ASGIApp:
    async def index(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", media_type="text/html; charset=utf-8")

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
        if not same_origin(headers) or channel not in server.hub.channels:
            server.log(
                f"refusing a WebSocket for {channel!r} from origin {headers.get(b'origin')!r}"
            )
            await send({"type": "websocket.close", "code": 1008})
            return
        await send({"type": "websocket.accept"})
        client = scope.get("client")
        await server.handle_connection(
            WebSocketStream(receive, send), channel, address=client[0] if client else "?"
        )

    app = Starlette(
        routes=[
            Route("/", index),
            Route("/channels", channels),
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
        ]
    )
    pages = SecurityHeaders(app)

    async def routes(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and scope["path"].startswith("/ws/"):
            await chat(scope, receive, send)
        else:
            await pages(scope, receive, send)

    return routes
