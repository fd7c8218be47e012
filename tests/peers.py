"""Peers that speak the wire protocol to a spawned server, shared by the
end-to-end tests: a raw TCP client (``RawPeer``) and a web page's WebSocket
without a browser (``WebMember``, docs/protocol.md, "In a browser")."""

from __future__ import annotations

import re
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio
from trio_websocket import WebSocketConnection, open_websocket_url

from trio_chat import wire
from trio_chat.wire import FrameType

from .processes import DEADLINE, is_stamp


class RawPeer:
    """A client speaking the wire protocol from the test, frame by frame."""

    def __init__(
        self, port: int, name: str, host: str = "127.0.0.1", source: str | None = None
    ) -> None:
        """``source``: the address to connect from (the kernel's choice if None)."""
        bind = None if source is None else (source, 0)
        self.sock = socket.create_connection((host, port), timeout=DEADLINE, source_address=bind)
        self.sock.sendall(wire.encode_hello(name))
        self.decoder = wire.FrameDecoder()
        self.pending: list[tuple[int, bytes]] = []

    def next_frame(self, wanted: int) -> bytes:
        """The payload of the next frame of type ``wanted`` (others are skipped)."""
        while True:
            while self.pending:
                frame_type, payload = self.pending.pop(0)
                if frame_type == wanted:
                    return payload
            data = self.sock.recv(1 << 20)
            assert data, "the server closed the connection"
            self.pending += [(t, bytes(p)) for t, p, _ in self.decoder.feed(data)]

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def close(self) -> None:
        self.sock.close()


def origin(port: int) -> list[tuple[bytes, bytes]]:
    return [(b"Origin", f"http://127.0.0.1:{port}".encode())]


class WebMember:
    def __init__(self, socket: WebSocketConnection) -> None:
        self.socket = socket
        self.decoder = wire.FrameDecoder()
        self.events: list[dict[str, object]] = []
        self.bye: bytes | None = None  # the BYE's payload (status, reason), once one came

    async def next_event(self) -> dict[str, object]:
        """The next EVENT the page would render (a browser gets no LINE frames)."""
        with trio.fail_after(DEADLINE):
            while not self.events:
                message = await self.socket.get_message()
                assert isinstance(message, bytes), message
                for frame_type, payload, _ in self.decoder.feed(message):
                    assert frame_type != FrameType.LINE, "a browser was sent a terminal's line"
                    if frame_type == FrameType.EVENT:
                        self.events.append(wire.decode_json(payload))
                    elif frame_type == FrameType.BYE:
                        self.bye = bytes(payload)
        return self.events.pop(0)

    async def expect(self, event: str, **fields: object) -> None:
        """The next event is ``event`` with these fields (and a stamp; a chat
        line's id, history.msgid, unless ``fields`` names it)."""
        got = await self.next_event()
        assert got.pop("event") == event, got
        assert is_stamp(str(got.pop("stamp"))), got
        if event == "chat" and "id" not in fields:
            assert re.fullmatch(r"[0-9]+-[0-9]+", str(got.pop("id"))), got
        assert got == fields, got


@asynccontextmanager
async def calm_member(port: int) -> AsyncIterator[WebMember]:
    """A web member named calm, in the general channel for the whole block."""
    url = f"ws://127.0.0.1:{port}/ws/general"
    async with open_websocket_url(url, extra_headers=origin(port)) as socket:
        member = WebMember(socket)
        await socket.send_message(wire.encode_hello("calm"))
        await member.expect("welcome", channel="general", user="calm")
        await member.expect("joined", user="calm")
        yield member


async def still_fine(member: WebMember) -> None:
    await member.socket.send_message(wire.encode_input("still here"))
    await member.expect("chat", sender="calm", message="still here")
