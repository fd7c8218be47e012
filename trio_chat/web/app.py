"""The web routes: the page, its files, the channel list and the WebSocket.

Security: every response forbids inline script and any source but this
server (Content-Security-Policy), and the WebSocket handshake is refused
unless the page that opens it came from this server (Origin).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocket

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


def same_origin(websocket: WebSocket) -> bool:
    """The page that opens the socket came from this server (a cross-site page
    could otherwise chat in a visitor's name)."""
    origin = websocket.headers.get("origin")
    host = websocket.headers.get("host")
    return (
        origin is not None
        and host is not None
        and origin
        in (
            f"http://{host}",
            f"https://{host}",
        )
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

    async def chat(websocket: WebSocket) -> None:
        channel = websocket.path_params["channel"]
        if not same_origin(websocket) or channel not in server.hub.channels:
            server.log(
                f"refusing a WebSocket for {channel!r} from origin "
                f"{websocket.headers.get('origin')!r}"
            )
            await websocket.close(code=1008)
            return
        await websocket.accept()
        client = websocket.client
        await server.handle_connection(
            WebSocketStream(websocket), channel, address=client.host if client else None
        )

    app = Starlette(
        routes=[
            Route("/", index),
            Route("/channels", channels),
            WebSocketRoute("/ws/{channel}", chat),
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
        ]
    )
    return SecurityHeaders(app)
