"""A WebSocket seen as a byte stream, so a web connection is an ordinary Session.

It speaks the ASGI WebSocket messages directly (no framework in between: this
is the path of every line to every web member). Frames may be split over
messages or several may share one, exactly as on TCP. Text messages are not
part of the protocol: one ends the connection.
"""

from __future__ import annotations

import contextlib

import trio
from starlette.types import Receive, Send


class WebSocketStream(trio.abc.Stream):
    def __init__(self, receive: Receive, send: Send) -> None:
        self._receive = receive
        self._send = send
        self._closed = False

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if self._closed:
            raise trio.ClosedResourceError
        try:
            message = await self._receive()
        except Exception as error:
            raise trio.BrokenResourceError(str(error)) from None
        if message["type"] == "websocket.disconnect":
            self._closed = True
            return b""
        data = message.get("bytes")
        if data is None:
            raise trio.BrokenResourceError("a text message: not part of the protocol")
        return bytes(data)

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        if self._closed:
            raise trio.ClosedResourceError
        try:
            await self._send({"type": "websocket.send", "bytes": bytes(data)})
        except Exception as error:
            raise trio.BrokenResourceError(str(error)) from None

    async def wait_send_all_might_not_block(self) -> None:
        await trio.lowlevel.checkpoint()

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            with contextlib.suppress(Exception):  # already closed by the browser
                await self._send({"type": "websocket.close", "code": 1000})
        await trio.lowlevel.checkpoint()
