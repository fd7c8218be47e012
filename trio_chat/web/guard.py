"""What hypercorn may read of one connection to the web port.

hypercorn reads whatever a peer sends and decides afterwards: it buffers a
WebSocket message before it compares its size with the limit, and after
refusing one (close 1009) it goes on reading and buffering, so one socket
could fill the server's memory. ``GuardedStream`` sits between the socket and
hypercorn's connection handler and lets through only what the web page needs:

- request heads, one at a time (h11 parses each, as hypercorn does, and no
  more than hypercorn's head limit is read of one; hypercorn answers a bad
  one, 400 or 431, and nothing more is read);
- of a plain HTTP request, the head alone: no route takes a body, so a
  declared body is never read (the app answers 413, and nothing more is read);
  the next request of a kept-alive connection is read once hypercorn asks;
- of a WebSocket, the head without ``Sec-WebSocket-Extensions`` (so frames are
  never compressed and a frame's declared length is what the server would
  hold), then every frame whose header ``FrameLimits`` accepts. At the first
  one it refuses, the connection is closed at once (with a close frame that
  says why, if the handshake is done): nothing more is read or held;
- nothing else: an upgrade to anything but a WebSocket (HTTP/2's ``h2c``) and
  HTTP/2's preface are dropped, since they would bypass these checks.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from enum import Enum, auto

import h11
import trio

from .frames import FrameLimits, Refused

RECEIVE = 64 * 1024  # what hypercorn itself reads at a time
# How long a refused WebSocket's close frame may take to go out before the
# connection is closed anyway (a peer that does not read must not hold it).
CLOSE_FRAME_GRACE = 1.0
# How long one of hypercorn's writes may wait for a peer that does not read
# (hypercorn shields its writes from cancellation, so nothing else would end
# them): then the connection is closed. A 64 KiB piece of a page in 30 s is
# 2 KiB/s, slower than any reader a person uses.
SEND_TIMEOUT = 30.0


class Phase(Enum):
    HEAD = auto()  # reading the request head
    WEBSOCKET = auto()  # frames, each header checked
    DONE = auto()  # nothing more is read


class GuardedStream(trio.abc.HalfCloseableStream):
    def __init__(
        self,
        stream: trio.SocketStream,
        max_message: int,
        max_head: int,
        complain: Callable[[str], None],
    ) -> None:
        self._stream = stream
        self._max_head = max_head
        self._frames = FrameLimits(max_message)
        self._complain = complain  # a refused peer, for the (rate-limited) log
        self._phase = Phase.HEAD
        self._eof = False
        self._pending = b""  # read past the last request head (pipelined)
        self._upgraded: bool | None = None  # the handshake's answer was a 101
        self._sending = False  # hypercorn is writing
        self._write_done = trio.Event()  # set (and replaced) when a write ends
        self._refusing = False  # a refusal is closing the connection
        self._closed = trio.Event()
        # Frames that came with the handshake: hypercorn gets them once it
        # has written its answer (see receive_some).
        self._early = b""
        self._answered = trio.Event()

    @property
    def socket(self) -> trio.socket.SocketType:
        """hypercorn asks the socket for both ends' addresses."""
        return self._stream.socket

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if self._eof:
            return b""
        if self._phase is Phase.HEAD:
            return await self._receive_head()
        if self._phase is Phase.WEBSOCKET:
            # Frames before the handshake's answer wait (in the kernel, or in
            # _early): fed earlier, hypercorn's HTTP parser fails on them, and
            # with it the whole connection handler.
            await self._answered.wait()
            if not self._upgraded:
                # Refused (403): the end of the stream for hypercorn, which
                # then closes the connection; nothing more is read.
                self._phase = Phase.DONE
                self._eof = True
                return b""
            if self._early:
                data, self._early = self._early, b""
                return data
            data = await self._stream.receive_some(max_bytes)
            try:
                self._frames.feed(data)
            except Refused as refusal:
                await self._refuse(refusal)
                raise trio.BrokenResourceError(refusal.reason) from None
            return data
        # Nothing more is read: hypercorn's read waits until the connection closes.
        await self._closed.wait()
        raise trio.ClosedResourceError

    async def _receive_head(self) -> bytes:
        """The next request head, once it is whole, and what may follow it."""
        parser = h11.Connection(h11.SERVER, max_incomplete_event_size=self._max_head)
        held = bytearray(self._pending)
        if held:  # (h11 takes b"" for the end of the stream)
            parser.receive_data(self._pending)
        while True:
            try:
                event = parser.next_event()
            except h11.RemoteProtocolError:
                # hypercorn parses the same bytes the same way and answers.
                self._phase = Phase.DONE
                return bytes(held)
            if isinstance(event, h11.Request):
                break
            # Never more than one byte past the head limit: h11 refuses then.
            data = await self._stream.receive_some(min(RECEIVE, self._max_head + 1 - len(held)))
            if not data:
                self._eof = True
                return bytes(held)
            held += data
            parser.receive_data(data)
        after = parser.trailing_data[0]
        head = bytes(held[: len(held) - len(after)])
        upgrade = [value.strip().lower() for name, value in event.headers if name == b"upgrade"]
        if event.http_version not in (b"1.0", b"1.1") or any(v != b"websocket" for v in upgrade):
            self._complain(f"dropping a request from {self._peer()} for HTTP/2 or another upgrade")
            await self.aclose()
            raise trio.BrokenResourceError("not HTTP/1 or a WebSocket")
        if not is_websocket(event):
            if declares_body(event.headers):
                self._phase = Phase.DONE  # the body is never read (the app answers 413)
            else:
                # The next request (keep-alive) is read when hypercorn asks,
                # once it has answered this one.
                self._pending = after
            return head
        self._phase = Phase.WEBSOCKET
        try:
            self._frames.feed(after)
        except Refused as refusal:
            await self._refuse(refusal)
            raise trio.BrokenResourceError(refusal.reason) from None
        self._early = after
        return without_extensions(event)

    async def _refuse(self, refusal: Refused) -> None:
        self._phase = Phase.DONE
        self._complain(f"closing a WebSocket from {self._peer()} that sent {refusal.reason}")
        self._refusing = True  # hypercorn's writes from now on find it closed
        if self._upgraded:
            with (
                trio.move_on_after(CLOSE_FRAME_GRACE),
                contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError),
            ):
                # After the write under way, if one is: between two whole frames.
                while self._sending:
                    await self._write_done.wait()
                await self._stream.send_all(close_frame(refusal.code))
        await self.aclose()

    def _peer(self) -> str:
        try:
            address = self._stream.socket.getpeername()
        except OSError:  # already gone
            return "?"
        return str(address[0]) if isinstance(address, tuple) else "?"

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        if self._phase is Phase.WEBSOCKET and self._upgraded is None:
            # hypercorn writes each response head, and each WebSocket frame,
            # with one call: the first write after the request is its answer.
            self._upgraded = bytes(data[:13]) == b"HTTP/1.1 101 "
            self._answered.set()
        if self._refusing:
            raise trio.ClosedResourceError("refused")
        # No lock (it would cost every write a scheduling round): hypercorn
        # never writes twice at once, and a refusal writes only between its writes.
        self._sending = True
        try:
            with trio.move_on_after(SEND_TIMEOUT) as waited:
                await self._stream.send_all(data)
        finally:
            self._sending = False
            self._write_done.set()
            self._write_done = trio.Event()
        if waited.cancelled_caught:
            self._complain(f"closing a web connection from {self._peer()} that does not read")
            self.close_now()
            raise trio.BrokenResourceError("the peer does not read")

    async def wait_send_all_might_not_block(self) -> None:
        await self._stream.wait_send_all_might_not_block()

    async def send_eof(self) -> None:
        await self._stream.send_eof()

    async def aclose(self) -> None:
        self._closed.set()
        self._answered.set()
        await self._stream.aclose()

    def close_now(self) -> None:
        """Close the socket at once: a write or read of hypercorn's waiting on
        it fails (ClosedResourceError), even one shielded from cancellation."""
        self._closed.set()
        self._answered.set()
        self._stream.socket.close()


def declares_body(headers: Iterable[tuple[bytes, bytes]]) -> bool:
    """A request with a body (header names in lower case, as h11 and ASGI give them)."""
    return any(
        name == b"transfer-encoding" or (name == b"content-length" and value.strip() != b"0")
        for name, value in headers
    )


def is_websocket(request: h11.Request) -> bool:
    """A WebSocket handshake, by the test hypercorn applies (the last
    ``Connection`` and ``Upgrade`` headers count), so both agree."""
    last = {name: value.strip().lower() for name, value in request.headers}
    tokens = last.get(b"connection", b"").split(b",")
    return (
        request.method.upper() == b"GET"
        and any(token.strip() == b"upgrade" for token in tokens)
        and last.get(b"upgrade") == b"websocket"
    )


def without_extensions(request: h11.Request) -> bytes:
    """``request``'s head again, less any ``Sec-WebSocket-Extensions``: the
    server agrees to no extension (no compression), so frames are sent as they
    are and their lengths mean what they say."""
    lines = [b"%s %s HTTP/%s" % (request.method, request.target, request.http_version)]
    for name, value in request.headers.raw_items():
        if name.lower() != b"sec-websocket-extensions":
            lines.append(name + b": " + value)
    return b"\r\n".join(lines) + b"\r\n\r\n"


def close_frame(code: int) -> bytes:
    """A server's close frame (unmasked) with ``code`` and no reason."""
    return bytes([0x88, 2]) + code.to_bytes(2, "big")
