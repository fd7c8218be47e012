"""In-process test harness: a ChatServer on memory streams and wire-speaking peers.

Nothing here touches a socket or the wall clock: stamps are a fixed string and
time is trio's (a MockClock when the test asks for one), so tests settle with
``wait_all_tasks_blocked`` or wait for a line, never sleep-and-hope.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import trio
import trio.testing

from trio_chat import wire
from trio_chat.client.session import ClientConnection
from trio_chat.config import ChannelConfig
from trio_chat.hub import Hub
from trio_chat.server.core import ChatServer, Limits
from trio_chat.state import ClientProtocol
from trio_chat.wire import FrameType, LineKind

STAMP = "12:34:56"

CHANNELS = [
    ChannelConfig("general", 41001, 5),
    ChannelConfig("random", 41002, 5),
    ChannelConfig("help", 41003, 5),
]


def srv(body: str) -> str:
    """A server message line with the harness's fixed stamp."""
    return f"[Server message ({STAMP})] {body}"


def chat(user: str, message: str) -> str:
    return f"[{user} ({STAMP})] {message}"


class Peer:
    """A client speaking the wire protocol to the server over a memory stream."""

    def __init__(self, name: str, stream: trio.abc.HalfCloseableStream) -> None:
        self.name = name
        self.stream = stream
        self.lines: list[str] = []
        self.kinds: list[int] = []
        self.notices: list[str] = []
        self.bye: tuple[int, str] | None = None
        self.other_frames: list[tuple[int, bytes]] = []  # file transfer frames
        self.closed = False
        self._cursor = 0
        self._changed = trio.Event()

    async def read_loop(self) -> None:
        decoder = wire.FrameDecoder()
        try:
            while True:
                data = await self.stream.receive_some(65536)
                if not data:
                    break
                for frame_type, view, _ in decoder.feed(data):
                    payload = bytes(view)
                    if frame_type == FrameType.LINE:
                        kind, _, line = wire.decode_line(payload)
                        self.kinds.append(kind)
                        self.lines.append(line)
                    elif frame_type == FrameType.NOTICE:
                        self.notices.append(payload.decode())
                    elif frame_type == FrameType.BYE:
                        self.bye = (payload[0], payload[1:].decode())
                    else:
                        self.other_frames.append((frame_type, payload))
                    self._wake()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        self.closed = True
        self._wake()
        await self.stream.aclose()  # hang up, as the real client does

    def _wake(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def say(self, line: str) -> None:
        await self.stream.send_all(wire.encode_input(line))

    async def send_raw(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def hang_up(self) -> None:
        await self.stream.aclose()

    def take(self) -> list[str]:
        """The lines that arrived since the last take() or next_line()."""
        fresh = self.lines[self._cursor :]
        self._cursor = len(self.lines)
        return fresh

    async def next_line(self) -> str:
        """Wait for the next line (time may autojump meanwhile)."""
        while self._cursor >= len(self.lines):
            if self.closed:
                raise AssertionError(f"{self.name}: connection closed while waiting for a line")
            await self._changed.wait()
        line = self.lines[self._cursor]
        self._cursor += 1
        return line

    async def wait_closed(self) -> None:
        while not self.closed:
            await self._changed.wait()


class Harness:
    def __init__(self, server: ChatServer, nursery: trio.Nursery) -> None:
        self.server = server
        self.nursery = nursery
        self.printed: list[str] = []
        self._printed_cursor = 0

    async def connect(
        self,
        name: str,
        channel: str = "general",
        address: str | None = None,
        protocol: ClientProtocol = ClientProtocol.TERMINAL,
    ) -> Peer:
        """A peer on a memory stream; ``address`` is the IP address the server
        is told it comes from, as for a browser's WebSocket (None: none);
        ``protocol`` BROWSER: a web page's WebSocket, past its handshake (as
        web/app.py hands it on)."""
        client_stream, server_stream = trio.testing.memory_stream_pair()
        self.nursery.start_soon(
            self.server.handle_connection, server_stream, channel, address, protocol
        )
        peer = Peer(name, client_stream)
        self.nursery.start_soon(peer.read_loop)
        with contextlib.suppress(trio.BrokenResourceError):  # the server may refuse us
            await client_stream.send_all(wire.encode_hello(name))
        return peer

    async def join(
        self,
        name: str,
        channel: str = "general",
        address: str | None = None,
        protocol: ClientProtocol = ClientProtocol.TERMINAL,
    ) -> Peer:
        """Connect and settle, so joins happen in call order."""
        peer = await self.connect(name, channel, address, protocol)
        await settle()
        return peer

    def printed_lines(self) -> list[str]:
        """Server stdout lines since the last call."""
        fresh = self.printed[self._printed_cursor :]
        self._printed_cursor = len(self.printed)
        return fresh

    def forget_printed(self) -> None:
        self.printed.clear()
        self._printed_cursor = 0

    def console(self, line: str) -> None:
        self.server.console_line(line)


async def eventually(condition: Callable[[], bool], within: float = 60.0) -> None:
    """Wait until ``condition()`` holds, checking as trio's clock moves (a
    MockClock jumps to the next timer as soon as every task is blocked)."""
    with trio.fail_after(within):
        while not condition():
            await trio.sleep(0.01)


async def settle() -> None:
    """Let every task run until all are blocked: every effect has been delivered."""
    await trio.testing.wait_all_tasks_blocked()


@asynccontextmanager
async def running_server(
    channels: list[ChannelConfig] | None = None,
    afk_timeout: float = 100.0,
    limits: Limits | None = None,
) -> AsyncIterator[Harness]:
    hub = Hub(channels or CHANNELS, afk_timeout=afk_timeout)
    async with trio.open_nursery() as nursery:
        printed: list[str] = []
        server = ChatServer(
            hub, limits or Limits(), out=printed.append, log=lambda text: None, stamp=lambda: STAMP
        )
        harness = Harness(server, nursery)
        harness.printed = printed
        nursery.start_soon(server.transfers.expire_idle)
        yield harness
        nursery.cancel_scope.cancel()


class RealClient:
    """The real client connection logic, typed into through a memory channel."""

    def __init__(self, name: str, download_dir: str, stream: trio.abc.Stream) -> None:
        self.name = name
        self.printed: list[str] = []
        self.notes: list[str] = []  # what the client would write on its stderr
        self._typed, typed = trio.open_memory_channel[str](1000)
        self._cursor = 0
        self._changed = trio.Event()
        self.connection = ClientConnection(
            stream, download_dir, lines=typed, out=self._print, note=self.notes.append
        )
        self.status: int | None = None

    def _print(self, line: str, kind: LineKind, subject: str) -> None:
        self.printed.append(line)
        self._changed.set()
        self._changed = trio.Event()

    async def run(self) -> None:
        self.status = await self.connection.run()
        self._changed.set()

    async def type(self, *lines: str) -> None:
        for line in lines:
            await self._typed.send(line)

    async def expect(self, wanted: str) -> None:
        """The next printed line is ``wanted`` (waits up to 10 s of real time)."""
        with trio.fail_after(10):
            while self._cursor >= len(self.printed):
                if self.status is not None:
                    raise AssertionError(f"{self.name} ended; printed {self.printed!r}")
                await self._changed.wait()
        line = self.printed[self._cursor]
        self._cursor += 1
        assert line == wanted, f"{self.name}: expected {wanted!r}, got {line!r}"

    def take(self) -> list[str]:
        fresh = self.printed[self._cursor :]
        self._cursor = len(self.printed)
        return fresh


async def real_client(
    harness: Harness, name: str, download_dir: str, channel: str = "general"
) -> RealClient:
    client_stream, server_stream = trio.testing.memory_stream_pair()
    harness.nursery.start_soon(harness.server.handle_connection, server_stream, channel)
    with contextlib.suppress(trio.BrokenResourceError):  # the server may refuse us
        await client_stream.send_all(wire.encode_hello(name))
    client = RealClient(name, download_dir, client_stream)
    harness.nursery.start_soon(client.run)
    await settle()
    client.take()
    harness.printed_lines()
    return client
