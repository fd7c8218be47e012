"""A WebSocket seen as a byte stream, so a web connection is an ordinary Session.

Frames may be split over messages or several may share one, exactly as on TCP.
Text messages are not part of the protocol: one ends the connection.
"""

from __future__ import annotations

import contextlib
from typing import Any

import trio


class WebSocketStream(trio.abc.Stream):
    def __init__(self, websocket: Any) -> None:
        self.websocket = websocket  # a Starlette WebSocket, accepted

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        try:
            message = await self.websocket.receive()
        except Exception as error:
            raise trio.BrokenResourceError(str(error)) from None
        if message["type"] == "websocket.disconnect":
            return b""
        data = message.get("bytes")
        if data is None:
            raise trio.BrokenResourceError("a text message: not part of the protocol")
        return bytes(data)

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        try:
            await self.websocket.send_bytes(bytes(data))
        except Exception as error:
            raise trio.BrokenResourceError(str(error)) from None

    async def wait_send_all_might_not_block(self) -> None:
        await trio.lowlevel.checkpoint()

    async def aclose(self) -> None:
        with contextlib.suppress(Exception):  # already closed by the browser
            await self.websocket.close()
        await trio.lowlevel.checkpoint()
