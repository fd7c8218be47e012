"""One client connection on the server: a reader, a writer and a bounded outbox.

The reader turns frames into hub calls; the writer drains the outbox onto the
socket. The whole session lives in one cancel scope, so the server ends it
(slow consumer, protocol error, shutdown) by cancelling rather than by poking
the socket from outside. A client the rules disconnect (kick, /quit, AFK, empty)
is "finished": it gets what was already queued for it plus a BYE, then a
half-close, and the session waits briefly for the peer to hang up.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import trio

from .. import wire
from ..commands import parse_client_line
from ..hub import Member
from ..sanitize import clean
from ..wire import FrameType, ProtocolError

if TYPE_CHECKING:
    from .core import ChatServer

RECEIVE_SIZE = 256 * 1024
TRANSFER_FRAMES = frozenset(
    {
        FrameType.SEND_OFFER,
        FrameType.FILE_DATA,
        FrameType.FILE_END,
        FrameType.FILE_ABORT,
        FrameType.FILE_ACK,
        FrameType.FILE_RESULT,
    }
)
# Frames written in one send_all when the outbox has a backlog.
WRITE_BATCH = 64
# Frames at least this big are written on their own rather than copied into a batch.
COALESCE_BELOW = 16 * 1024


def coalesce(frames: list[wire.Payload]) -> list[wire.Payload]:
    """Join runs of small frames into one write; leave large ones (file chunks) alone."""
    if len(frames) == 1:
        return frames
    writes: list[wire.Payload] = []
    small: list[wire.Payload] = []
    for frame in frames:
        if len(frame) < COALESCE_BELOW:
            small.append(frame)
            continue
        if small:
            writes.append(b"".join(small))
            small = []
        writes.append(frame)
    if small:
        writes.append(b"".join(small))
    return writes


class Session:
    def __init__(self, server: ChatServer, stream: trio.abc.HalfCloseableStream, channel: str):
        self.server = server
        self.stream = stream
        self.channel = channel
        self.member: Member | None = None
        self.closing = False
        self.scope = trio.CancelScope()
        self.timer: trio.CancelScope | None = None
        self.hello_deadline = math.inf
        self.queued_bytes = 0  # in the outbox or being written, file chunks aside
        self._outbox, self._outbox_out = trio.open_memory_channel[wire.Payload](
            server.limits.outbox_frames
        )

    @property
    def name(self) -> str:
        return self.member.name if self.member is not None else "?"

    # ----- called by ChatServer.apply, never awaits -----

    def push(self, frame: wire.Payload) -> None:
        if self.closing:
            return
        # File chunks are bounded by the transfer window the relay enforces;
        # everything else counts against the outbox's byte limit.
        if frame[4] != FrameType.FILE_DATA:
            self.queued_bytes += len(frame)
            if self.queued_bytes > self.server.limits.outbox_bytes:
                self.abort(f"{self.queued_bytes} bytes waiting: the client is not reading")
                return
        try:
            self._outbox.send_nowait(frame)
        except trio.WouldBlock:
            # The peer is not reading: drop it rather than slow anyone else.
            self.abort("outbox full: the client is not reading")

    def finish(self, status: int, reason: str) -> None:
        """Send what is queued, then a BYE, then close; the rules are done with it."""
        if self.closing:
            return
        try:
            self._outbox.send_nowait(wire.encode_bye(status, reason))
        except trio.WouldBlock:
            self.abort("outbox full at disconnect")
            return
        self.closing = True
        self._outbox.close()
        self.server.transfers.connection_closed(self)
        self.scope.deadline = trio.current_time() + self.server.limits.close_grace
        if self.timer is not None:
            self.timer.deadline = math.inf

    def abort(self, why: str) -> None:
        """End the session now, sending nothing more."""
        self.server.log(f"dropping connection on {self.channel}: {why}")
        self.closing = True
        self.scope.cancel()

    def reschedule(self) -> None:
        if self.timer is not None and self.member is not None and not self.closing:
            self.timer.deadline = self.member.afk_deadline

    # ----- the connection's tasks -----

    async def run(self) -> None:
        try:
            with self.scope:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._write_loop)
                    await self._read_loop()
                    nursery.cancel_scope.cancel()
        finally:
            member = self.member
            if member is not None and member.channel is not None:
                self.server.apply(self.server.hub.drop(member, trio.current_time()))
            self.closing = True
            self.server.transfers.connection_closed(self)
            self.server.sessions.discard(self)
            await self.stream.aclose()

    def _deadline(self) -> float:
        if self.closing:
            return math.inf
        if self.member is None:
            return self.hello_deadline
        return self.member.afk_deadline

    async def _read_loop(self) -> None:
        decoder = wire.FrameDecoder()
        self.hello_deadline = trio.current_time() + self.server.limits.hello_timeout
        while True:
            with trio.CancelScope(deadline=self._deadline()) as timer:
                self.timer = timer
                try:
                    data = await self.stream.receive_some(RECEIVE_SIZE)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    return
            self.timer = None
            if timer.cancelled_caught:
                if self.member is None:
                    self.server.log(f"no hello within the time limit on {self.channel}")
                    return
                self.server.apply(self.server.hub.afk_due(self.member, trio.current_time()))
                continue
            if not data:
                return
            if self.closing:
                continue  # finished: discard input until the peer hangs up
            try:
                for frame in decoder.feed(data):
                    self._handle(frame)
                    if self.closing:
                        break
            except ProtocolError as error:
                self.server.log(f"protocol error on {self.channel}: {error}")
                return

    def _handle(self, frame: wire.Frame) -> None:
        server = self.server
        frame_type, payload, _ = frame
        now = trio.current_time()
        if self.member is None:
            if frame_type != FrameType.HELLO:
                raise ProtocolError(f"expected HELLO, got frame type {frame_type}")
            username = wire.parse_hello(payload)
            member, effects = server.hub.join(self.channel, username, now, conn=self)
            self.member = member
            if member is not None:
                self.push(server.channel_names_frame)
            server.apply(effects)
            return
        if frame_type == FrameType.INPUT:
            if len(payload) > wire.MAX_LINE_BYTES:
                raise ProtocolError(f"input line of {len(payload)} bytes is over the limit")
            command = parse_client_line(clean(wire.decode_text(payload)))
            if command is not None:
                server.apply(server.hub.input(self.member, command, now))
            return
        if frame_type not in TRANSFER_FRAMES:
            raise ProtocolError(f"unexpected frame type {frame_type}")
        server.transfers.handle(self, frame)

    async def _write_loop(self) -> None:
        outbox = self._outbox_out
        try:
            async for frame in outbox:
                batch = [frame]
                while len(batch) < WRITE_BATCH:
                    try:
                        batch.append(outbox.receive_nowait())
                    except (trio.WouldBlock, trio.EndOfChannel):
                        break
                for data in coalesce(batch):
                    await self.stream.send_all(data)
                self.queued_bytes -= sum(len(f) for f in batch if f[4] != FrameType.FILE_DATA)
            await self.stream.send_eof()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self.scope.cancel()
