"""A connection's outgoing side on the server: a bounded, counted outbox and
its writer.

Both kinds of connection the server serves (``session.Session`` for the
native and web protocols, ``trio_chat.irc.client.IrcClient`` for IRC) queue
what the rules tell them here: each round's text frames collect in the outbox
(and in channel broadcasts it holds, broadcast.py) and go out with one write
at the end of the round (``OutletHost.want_flush``), straight to the socket
when it takes them, else through the writer task. The slow-consumer policy
(docs/security.md, "Limits and the slow-consumer policy") is carried out
here: past its high-water mark an outbox is congested and the readers that
filled it wait (``wait_for_congested_outboxes``); past its hard limit the
peer is not reading and is dropped (``abort``).
"""

from __future__ import annotations

import enum
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

import trio

from .. import wire
from .broadcast import Broadcast
from .logs import WARNING
from .outbox import OVER_LIMIT, Backpressure, Outbox, OutboxLimits, WriterItem

if TYPE_CHECKING:
    from .counts import ServerCounts
    from .logs import Log

# Frames written in one send_all when the outbox has a backlog.
WRITE_BATCH = 64
# Frames at least this big are written on their own rather than copied into a batch.
COALESCE_BELOW = 16 * 1024


class SessionState(enum.IntEnum):
    """Where a session is in its life; it only ever moves down this list.

    Whether it said hello stays known after it closes (``Session.greeted``);
    whether its AFK timer waits for the rules is apart from its state (it
    may, in any state with a member).
    """

    # Connected; its first frame must be a HELLO, within the hello timeout.
    AWAITING_HELLO = 0
    # Said hello; the rules have not answered yet (in a cluster, until the log
    # has its join). With flood control on, its lines wait for the answer.
    JOINING = 1
    # In a channel or its waiting queue: its lines go to the rules, the rules'
    # frames go to it, and its AFK timer runs.
    MEMBER = 2
    # Held back by flood control for longer than its patience: nothing more
    # of its input is passed on; the disconnect is on its way from the rules
    # (in a cluster, through the log). Frames for it still go out.
    FLOODED = 3
    # The rules are done with it (``finish``): what was queued, then a BYE,
    # then a half-close; nothing more is queued, input is discarded until the
    # peer hangs up or the close grace runs out.
    FINISHING = 4
    # Over: dropped at once (``abort``: nothing more is sent), or its tasks
    # have ended.
    CLOSED = 5


AWAITING_HELLO = SessionState.AWAITING_HELLO
JOINING = SessionState.JOINING
MEMBER = SessionState.MEMBER
FLOODED = SessionState.FLOODED
FINISHING = SessionState.FINISHING
CLOSED = SessionState.CLOSED


def coalesce(items: Sequence[WriterItem]) -> list[wire.Payload]:
    """Join runs of small items into one write; leave large ones (file chunks) alone."""
    if len(items) == 1:
        return [items[0][0]]
    writes: list[wire.Payload] = []
    small: list[wire.Payload] = []
    for data, _ in items:
        if len(data) < COALESCE_BELOW:
            small.append(data)
            continue
        if small:
            writes.append(b"".join(small))
            small = []
        writes.append(data)
    if small:
        writes.append(b"".join(small))
    return writes


# Seconds a connection may take to write its last lines when the server stops.
STOP_GRACE = 1.0


class OutletLimits(OutboxLimits, Protocol):
    @property
    def close_grace(self) -> float: ...


class OutletHost(Protocol):
    """What an outlet uses of the server (core.ChatServer)."""

    @property
    def log(self) -> Log: ...
    @property
    def counts(self) -> ServerCounts: ...  # what --metrics reports
    @property
    def congested(self) -> set[Outlet]: ...  # outboxes past their high-water mark

    def want_flush(self, outlet: Outlet) -> None:
        """``outlet`` has text pending: call its ``flush`` when this round ends."""


class Outlet:
    """The outgoing side of one connection; ``state`` says where it is in its life."""

    address: str | None = None  # the peer's IP address, where it has one

    def __init__(
        self, server: OutletHost, stream: trio.abc.Stream, limits: OutletLimits, label: str
    ) -> None:
        self.server = server
        self.stream = stream
        self.label = label  # where it is connected, for the server's log
        self.state = AWAITING_HELLO
        # Everything the connection does runs in this scope: cancelling it ends it.
        self.scope = trio.CancelScope()
        self.close_grace = limits.close_grace
        # What waits to be written, counted; this round's text frames.
        self.outbox = Outbox(limits)
        self.drained = trio.Event()  # set (and replaced) when the backlog falls low
        self._writer_in, self._writer_out = trio.open_memory_channel[WriterItem](
            limits.outbox_frames
        )
        # A round's text frames wait in the outbox until the end of the round
        # (OutletHost.want_flush). Plain TCP then writes them all with one
        # write, without waking the writer task, which takes over whenever the
        # socket is full; other streams (TLS, WebSocket) hand them, joined, to
        # the writer: one write, or one WebSocket message, for the round.
        self._fd = stream.socket.fileno() if isinstance(stream, trio.SocketStream) else -1

    @property
    def closing(self) -> bool:
        """Finishing or closed: nothing more is queued for it."""
        return self.state >= FINISHING

    def _become(self, state: SessionState) -> None:
        # Only ever onwards: a later stage is never undone by an earlier one
        # (flood control reporting a member the rules finished meanwhile).
        if state > self.state:
            self.state = state

    def push_line(self, frame: wire.Payload) -> None:
        """Queue one frame that is not a file chunk: a line, a notice, JSON,
        a file control frame. It goes out with the round's other text."""
        # On every delivery of a line to one member: kept lean.
        if self.state >= FINISHING:
            return
        outbox = self.outbox
        if not outbox.pending:
            self.server.want_flush(self)
        pressure = outbox.add_line(frame)
        if pressure:
            self._under_pressure(pressure)

    def hold(self, broadcast: Broadcast) -> None:
        """Take the lines of a channel broadcast, now and as long as it stays open."""
        if self.state >= FINISHING:
            return
        outbox = self.outbox
        if not outbox.pending:
            self.server.want_flush(self)
        outbox.hold(broadcast)
        broadcast.holders.append(self)

    def count_held(self, frames: int, size: int) -> None:
        """A broadcast it holds closed: its frames count against the outbox limits."""
        if self.state >= FINISHING:
            return
        pressure = self.outbox.count_held(frames, size)
        if pressure:
            self._under_pressure(pressure)

    def _under_pressure(self, pressure: Backpressure) -> None:
        if self.state >= FINISHING:
            return  # (it was dropped while the outbox counted)
        if pressure is OVER_LIMIT:
            self.drop_slow(self.outbox.overflow)
        else:
            self.server.congested.add(self)

    def _to_writer(self, item: WriterItem) -> None:
        try:
            self._writer_in.send_nowait(item)
        except trio.WouldBlock:
            # The peer is not reading: drop it rather than slow anyone else.
            self.drop_slow("outbox full: the client is not reading")
            return
        self.outbox.handed_to_writer()

    def _hand_round_to_writer(self) -> None:
        """Put the round's text frames, joined, in the writer's channel (order kept)."""
        outbox = self.outbox
        if not outbox.pending:
            return
        data = outbox.take_round()
        if self.state >= FINISHING:
            return  # (closing a broadcast found the outbox over its limit)
        self._to_writer((data, False))

    def flush(self) -> None:
        """Write the round's text frames: at once if the writer is idle and
        the socket takes them, else through the writer. Never blocks."""
        outbox = self.outbox
        if not outbox.pending or self.state >= FINISHING:
            outbox.drop_round()
            return
        if outbox.in_writer or self._fd < 0:
            # The writer owns the socket until it is done; and TLS and WebSocket
            # streams are always written by it (one write for the round's lines).
            self._hand_round_to_writer()
            return
        data = outbox.take_round()
        if self.state >= FINISHING:
            return
        try:
            written = os.write(self._fd, data)
        except OSError:
            written = 0  # full (or broken: the writer will find out)
        if written == len(data):
            if outbox.wrote_round(written):
                self._drained_now()
            return
        outbox.wrote_part(written)
        self._to_writer((data[written:], False))

    def _finish_with(self, last: wire.Payload) -> bool:
        """Send what is queued, then ``last``, then close (a half-close where
        the stream has one); whether it is finishing now (not dropped)."""
        self._hand_round_to_writer()
        if self.state >= FINISHING:
            return False
        try:
            self._writer_in.send_nowait((last, False))
        except trio.WouldBlock:
            self.drop_slow("outbox full at disconnect")
            return False
        self.outbox.handed_to_writer()
        self.outbox.add_last(len(last))
        self._become(FINISHING)
        self._writer_in.close()
        self._release_waiters()
        self.scope.deadline = trio.current_time() + self.close_grace
        return True

    def _chunk_written(self, data: wire.Payload) -> None:
        """A file chunk was handed to the socket (only sessions send them)."""

    def stopping(self) -> None:
        """The server stops (``ChatServer.stop``): a protocol that says
        goodbye queues it here; the native one just closes."""

    def banned(self, why: str) -> None:
        """A new ban covers its address (``effects.AddressBanned``). The rules
        have finished its members already, which ends a native connection;
        one that outlives its members (IRC) closes itself."""

    def drop_slow(self, why: str) -> None:
        """Drop a peer that does not read what it is sent (a slow consumer)."""
        if self.state < CLOSED:
            self.server.counts.slow_consumers_dropped += 1
        self.abort(why)

    def abort(self, why: str) -> None:
        """End the session now, sending nothing more (once: a connection with
        several references, an IRC one, may be told more than once)."""
        if self.state >= CLOSED:
            return
        self.server.log(
            f"dropping connection on {self.label}: {why}",
            event="connection_dropped",
            level=WARNING,
            on=self.label,
            reason=why,
        )
        self._become(CLOSED)
        self._release_waiters()
        self.scope.cancel()

    def _release_waiters(self) -> None:
        self.server.congested.discard(self)
        self.drained.set()

    def _drained_now(self) -> None:
        self.server.congested.discard(self)
        self.drained.set()
        self.drained = trio.Event()

    def keeping_up(self, now: float) -> bool:
        """Whether readers should wait for this outbox to drain: its writer is
        not stuck on a peer that stopped reading."""
        return self.state < FINISHING and self.outbox.keeping_up(now)

    async def wait_for_congested_outboxes(self) -> None:
        """Wait while an outbox this server filled is above its high-water mark
        and its writer is keeping up; the peers that stopped reading are not
        waited for (they are dropped at their outbox's hard limit)."""
        congested = self.server.congested
        while congested:
            now = trio.current_time()
            waiting_for = next((s for s in congested if s.keeping_up(now)), None)
            if waiting_for is None:
                return
            with trio.move_on_after(waiting_for.outbox.patience(now)):
                await waiting_for.drained.wait()

    async def _write_loop(self) -> None:
        items = self._writer_out
        outbox = self.outbox
        try:
            async for item in items:
                if self._fd < 0 and self.state < FINISHING:
                    # TLS and WebSocket pay per write (a record, a message):
                    # let one more round's lines join this one.
                    await trio.lowlevel.checkpoint()
                batch = [item]
                while len(batch) < WRITE_BATCH:
                    try:
                        batch.append(items.receive_nowait())
                    except (trio.WouldBlock, trio.EndOfChannel):
                        break
                # File chunks count as delivered once handed to the socket: the
                # receiver's acknowledgement may come back before send_all returns.
                for data, chunk in batch:
                    if chunk:
                        self._chunk_written(data)
                outbox.writing_since = trio.current_time()
                for data in coalesce(batch):
                    await self.stream.send_all(data)
                outbox.writing_since = None
                if outbox.written(batch):
                    self._drained_now()
            if isinstance(self.stream, trio.abc.HalfCloseableStream):
                await self.stream.send_eof()
            # (TLS has no half-close: the client hangs up when it reads the BYE.)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self.scope.cancel()
