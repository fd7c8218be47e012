"""One client connection on the server: a reader, a writer and a bounded outbox.

The reader turns frames into events for the rules (through the server's
gateway); the writer drains the outbox onto the socket. The whole session
lives in one cancel scope, so the server ends it (slow consumer, protocol
error, shutdown) by cancelling rather than by poking the socket from outside.
A client the rules disconnect (kick, /quit, AFK, empty) is "finished": it
gets what was already queued for it plus a BYE, then a half-close, and the
session waits briefly for the peer to hang up.

Who waits and who is dropped when someone talks fast (docs/security.md, "Limits and the
slow-consumer policy"): every frame a member sends may put lines into many
outboxes. When an outbox passes its high-water mark, the reader that filled it
stops reading its own socket until that outbox drains below the low-water mark,
so TCP pushes back on the fast sender and the readers keep up. It does not wait
for an outbox whose writer has been stuck on its socket for longer than the
writer grace: that member is not reading, and it alone is dropped once its
outbox reaches the hard limit. Lines for a whole channel are counted when
their broadcast closes (broadcast.py), at most a low-water mark late.
"""

from __future__ import annotations

import enum
import math
import os
from collections.abc import Callable, Sequence
from typing import Protocol

import trio

from .. import events, wire
from ..hub import Member
from ..sanitize import clean
from ..state import Cause, ClientProtocol
from ..wire import FrameType, ProtocolError
from .admission import address_key, budget_keys
from .broadcast import Broadcast
from .flood import LineLedger, TokenBucket, take_line
from .gateway import Gateway
from .outbox import OVER_LIMIT, Backpressure, Outbox, OutboxLimits, WriterItem

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
# The frames that count as lines for flood control: what a person types.
LINE_FRAMES = frozenset({FrameType.INPUT, FrameType.SEND_OFFER})
# A reader handles at most this many frames of one read before it lets the
# other tasks (the writers above all) run.
FRAMES_BETWEEN_YIELDS = 64


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


class SessionLimits(OutboxLimits, Protocol):
    """The server's limits a session goes by (core.Limits has the defaults)."""

    @property
    def hello_timeout(self) -> float: ...
    @property
    def close_grace(self) -> float: ...
    @property
    def flood_rate(self) -> float: ...
    @property
    def flood_patience(self) -> float: ...


class SessionTransfers(Protocol):
    """What a session tells the file relay (transfers.TransferRelay)."""

    def handle(self, session: Session, frame: wire.Frame) -> None: ...
    def delivered(self, session: Session, frame: wire.Payload) -> None: ...
    def connection_closed(self, session: Session) -> None: ...
    def offer_decided(self, session: Session, ref: int, target: Member | None) -> None: ...


class SessionHost(Protocol):
    """What a session uses of the server that runs it (core.ChatServer)."""

    @property
    def limits(self) -> SessionLimits: ...
    @property
    def log(self) -> Callable[[str], None]: ...
    @property
    def gateway(self) -> Gateway: ...
    @property
    def transfers(self) -> SessionTransfers: ...
    @property
    def line_budgets(self) -> LineLedger | None: ...  # None: flood control is off
    @property
    def congested(self) -> set[Session]: ...  # outboxes past their high-water mark
    @property
    def sessions(self) -> set[Session]: ...  # every open session
    @property
    def channel_names_frame(self) -> bytes: ...  # for clients' tab completion

    def want_flush(self, session: Session) -> None:
        """``session`` has text pending: call its ``flush`` when this round ends."""


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


class Session:
    def __init__(
        self,
        server: SessionHost,
        stream: trio.abc.Stream,
        channel: str,
        address: str | None = None,
        protocol: ClientProtocol = ClientProtocol.TERMINAL,
    ):
        self.server = server
        self.protocol = protocol  # which renderer its lines come from (render/)
        self.stream = stream
        self.channel = channel
        self.address = address  # the peer's IP address, where it has one
        self.state = AWAITING_HELLO
        # The name it said hello with; None until then (and for good if it never did).
        self.username: str | None = None
        self.member: Member | None = None
        self.conn_ref: str | None = None  # "NODE.NUMBER" in a cluster
        # The AFK timer fired and the rules have not answered yet (a cluster's
        # log takes a while): the timer waits for reschedule() or the finish.
        self._afk_reported = False
        self.scope = trio.CancelScope()
        self.timer: trio.CancelScope | None = None
        self.hello_deadline = math.inf
        limits = server.limits
        # What waits to be written, counted; this round's text frames.
        self.outbox = Outbox(limits)
        self.drained = trio.Event()  # set (and replaced) when the backlog falls low
        self._writer_in, self._writer_out = trio.open_memory_channel[WriterItem](
            limits.outbox_frames
        )
        # The line budget, from the hello on (None: flood control is off), and
        # what it is filed under in the server's ledger when the member goes.
        self._lines: TokenBucket | None = None
        self._budget_keys: tuple[str, ...] = ()
        # The budget its address's members share, and that address's key.
        self._address_lines: TokenBucket | None = None
        self._budget_address = ""
        # Set once the rules have answered the hello (joined or refused): in
        # a cluster the budget the log knows of comes with the answer, so no
        # line is let through before it.
        self._answered = trio.Event()
        self._held_back_since: float | None = None
        # A round's text frames wait in the outbox until the end of the round
        # (SessionHost.want_flush). Plain TCP then writes them all with one
        # write, without waking the writer task, which takes over whenever the
        # socket is full; other streams (TLS, WebSocket) hand them, joined, to
        # the writer: one write, or one WebSocket message, for the round.
        self._fd = stream.socket.fileno() if isinstance(stream, trio.SocketStream) else -1

    @property
    def _ref(self) -> str:
        assert self.conn_ref is not None, "only a connection past its hello causes events"
        return self.conn_ref

    @property
    def name(self) -> str:
        return self.member.name if self.member is not None else "?"

    @property
    def greeted(self) -> bool:
        """It said hello (whatever happened since)."""
        return self.username is not None

    @property
    def closing(self) -> bool:
        """Finishing or closed: nothing more is queued for it."""
        return self.state >= FINISHING

    def _become(self, state: SessionState) -> None:
        # Only ever onwards: a later stage is never undone by an earlier one
        # (flood control reporting a member the rules finished meanwhile).
        if state > self.state:
            self.state = state

    # ----- called by ChatServer.apply and the file relay, never awaits -----

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

    def push_chunk(self, frame: wire.Payload) -> None:
        """Queue one file chunk (FILE_DATA): after the round's text so far,
        straight to the writer."""
        if self.state >= FINISHING:
            return
        outbox = self.outbox
        if outbox.add_chunk(len(frame)):
            self.abort(outbox.overflow)
            return
        self._hand_round_to_writer()
        if self.state < FINISHING:
            self._to_writer((frame, True))

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
            self.abort(self.outbox.overflow)
        else:
            self.server.congested.add(self)

    def _to_writer(self, item: WriterItem) -> None:
        try:
            self._writer_in.send_nowait(item)
        except trio.WouldBlock:
            # The peer is not reading: drop it rather than slow anyone else.
            self.abort("outbox full: the client is not reading")
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

    def finish(self, status: int, reason: str, cause: Cause = Cause.LEFT) -> None:
        """Send what is queued, then a BYE, then close; the rules are done with it
        (the BYE says why in words: ``cause`` is for protocols that show it otherwise)."""
        if self.state >= FINISHING:
            return
        self._close_line_budget()
        bye = wire.encode_bye(status, reason)
        self._hand_round_to_writer()
        if self.state >= FINISHING:
            return
        try:
            self._writer_in.send_nowait((bye, False))
        except trio.WouldBlock:
            self.abort("outbox full at disconnect")
            return
        self.outbox.handed_to_writer()
        self.outbox.add_last(len(bye))
        self._become(FINISHING)
        self._writer_in.close()
        self._release_waiters()
        self.server.transfers.connection_closed(self)
        self.scope.deadline = trio.current_time() + self.server.limits.close_grace
        if self.timer is not None:
            self.timer.deadline = math.inf

    def abort(self, why: str) -> None:
        """End the session now, sending nothing more."""
        self.server.log(f"dropping connection on {self.channel}: {why}")
        self._become(CLOSED)
        self._release_waiters()
        self.scope.cancel()

    def reschedule(self) -> None:
        self._afk_reported = False
        if self.timer is not None and self.member is not None and self.state < FINISHING:
            self.timer.deadline = self.server.gateway.local_deadline(self.member.afk_deadline)

    def joined(self, member: Member) -> None:
        """The rules took this connection in (a channel or its queue)."""
        if self.member is not None:
            return  # welcomed again: it switched channels
        self.member = member
        self._become(MEMBER)
        self._answered.set()
        self.push_line(self.server.channel_names_frame)

    def offer_decided(self, offer: int, target: Member | None) -> None:
        self.server.transfers.offer_decided(self, offer, target)

    def nick_decided(self, nick: str, accepted: bool) -> None:
        """(Only IRC connections claim nicks.)"""

    def _release_waiters(self) -> None:
        self.server.congested.discard(self)
        self.drained.set()
        self._answered.set()

    def _drained_now(self) -> None:
        self.server.congested.discard(self)
        self.drained.set()
        self.drained = trio.Event()

    # ----- backpressure -----

    def keeping_up(self, now: float) -> bool:
        """Whether readers should wait for this outbox to drain: its writer is
        not stuck on a peer that stopped reading."""
        return self.state < FINISHING and self.outbox.keeping_up(now)

    async def _wait_for_congested_outboxes(self) -> None:
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

    # ----- the connection's tasks -----

    async def run(self) -> None:
        try:
            with self.scope:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._write_loop)
                    await self._read_loop()
                    nursery.cancel_scope.cancel()
        finally:
            self._close_line_budget()
            if self.conn_ref is not None:
                self.server.gateway.release(self.conn_ref)
            self._become(CLOSED)
            self._release_waiters()
            self.server.transfers.connection_closed(self)
            self.server.sessions.discard(self)
            # A TLS close says goodbye first; a peer that never reads again
            # must not hold the session open for it.
            with trio.move_on_after(self.server.limits.close_grace) as goodbye:
                await self.stream.aclose()
            if goodbye.cancelled_caught:
                await trio.aclose_forcefully(self.stream)

    def _deadline(self) -> float:
        state = self.state
        if state >= FINISHING or self._afk_reported:
            return math.inf
        if state is AWAITING_HELLO:
            return self.hello_deadline
        if self.member is None:
            return math.inf  # said hello; the cluster's log has not answered yet
        return self.server.gateway.local_deadline(self.member.afk_deadline)

    async def _read_loop(self) -> None:
        decoder = wire.FrameDecoder(max_control=wire.MAX_CONTROL_PAYLOAD)
        # On a plain socket, the rest of a file chunk is received in place.
        sock = self.stream.socket if isinstance(self.stream, trio.SocketStream) else None
        self.hello_deadline = trio.current_time() + self.server.limits.hello_timeout
        while True:
            try:
                space = None if sock is None else decoder.frame_space()
            except ProtocolError as error:
                self.server.log(f"protocol error on {self.channel}: {error}")
                return
            with trio.CancelScope(deadline=self._deadline()) as timer:
                self.timer = timer
                try:
                    if space is None:
                        data = await self.stream.receive_some(RECEIVE_SIZE)
                        received = len(data)
                    else:
                        assert sock is not None
                        received = await sock.recv_into(space)
                except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                    return
            self.timer = None
            if timer.cancelled_caught:
                if self.state is AWAITING_HELLO:
                    self.server.log(f"no hello within the time limit on {self.channel}")
                    return
                self._afk_reported = True  # until the rules reschedule or disconnect
                self.server.gateway.submit(events.AfkDue(self._ref))
                continue
            if not received:
                return
            if self.state >= FINISHING:
                continue  # finished: discard input until the peer hangs up
            try:
                frames = decoder.feed(data) if space is None else decoder.filled(received)
                await self._handle_all(frames)
            except ProtocolError as error:
                self.server.log(f"protocol error on {self.channel}: {error}")
                return

    async def _handle_all(self, frames: list[wire.Frame]) -> None:
        """Handle one read's frames, letting the writers keep up between them."""
        congested = self.server.congested
        gateway = self.server.gateway
        for index, frame in enumerate(frames, start=1):
            if self.state >= FLOODED:
                return  # nothing more of a flooder's is passed on
            room = gateway.log_room()
            while room is not None:
                await room.wait()
                room = gateway.log_room()
            if self._lines is not None and frame.type in LINE_FRAMES and self.greeted:
                if not self._answered.is_set():
                    await self._answered.wait()
                    if self.state >= FINISHING or self._lines is None:
                        return
                await self._take_line_token()
                if self.state >= FLOODED:
                    return
            self._handle(frame)
            if self.state >= FINISHING:
                return
            if congested:
                await self._wait_for_congested_outboxes()
            elif index % FRAMES_BETWEEN_YIELDS == 0:
                await trio.lowlevel.checkpoint()
            if self.state >= FINISHING:
                return

    def _start_line_budget(self, username: str) -> None:
        """The budget this member starts with: a full burst, unless its address
        or its name left a spent one a moment ago (flood.LineLedger)."""
        budgets = self.server.line_budgets
        if budgets is None:
            return
        now = trio.current_time()
        self._budget_keys = budget_keys(username, self.address)
        self._lines = budgets.open(self._budget_keys, now)
        if self.address is not None:
            self._budget_address = address_key(self.address)
            self._address_lines = budgets.share(self._budget_address, now)

    def lower_line_budget(self, tokens: float) -> None:
        """The cluster's ledger knows of a lower budget for this member's
        address or name (spent through another node)."""
        if self._lines is not None:
            now = trio.current_time()
            self._lines.tokens = min(self._lines.level(now), tokens)
            self._lines.stamp = now

    def _close_line_budget(self) -> None:
        """File what is left of the budget: at the finish, before the BYE goes
        out (a client that reconnects at once must find it), or at the end."""
        budgets = self.server.line_budgets
        if self._lines is not None and budgets is not None:
            budgets.close(self._budget_keys, self._lines, trio.current_time())
            self._lines = None
            if self._address_lines is not None:
                budgets.unshare(self._budget_address)
                self._address_lines = None

    async def _take_line_token(self) -> None:
        """Wait until the member's line budget allows one more line; disconnect
        it when it has been held back for ``flood_patience`` without a break."""
        lines = self._lines  # (set to None if the member finishes meanwhile)
        shared = self._address_lines
        assert lines is not None
        now = trio.current_time()
        wait = take_line(lines, shared, now)
        if not wait:
            self._held_back_since = None
            return
        if self._held_back_since is None:
            self._held_back_since = now
        limits = self.server.limits
        if now + wait - self._held_back_since > limits.flood_patience:
            reason = (
                f"excess flood: more than {limits.flood_rate:g} lines a second "
                f"for {limits.flood_patience:g} s"
            )
            self.server.gateway.submit(events.Flooded(self._ref, reason))
            # In a cluster the disconnect comes back through the log: until
            # then nothing more of this member's is passed on.
            self._become(FLOODED)
            return
        # Not reading meanwhile: TCP holds the flooder back, nothing piles up here.
        while wait:
            await trio.sleep(wait)
            wait = take_line(lines, shared, trio.current_time())

    def _handle(self, frame: wire.Frame) -> None:
        server = self.server
        frame_type, payload, _ = frame
        if self.state is AWAITING_HELLO:
            if frame_type != FrameType.HELLO:
                raise ProtocolError(f"expected HELLO, got frame type {frame_type}")
            username = wire.parse_hello(payload)
            self.username = username
            self._become(JOINING)
            self._start_line_budget(username)
            self.conn_ref = server.gateway.connect(self)
            server.gateway.submit(events.Join(self.conn_ref, self.channel, username, self.address))
            return
        if frame_type == FrameType.INPUT:
            if len(payload) > wire.MAX_LINE_BYTES:
                raise ProtocolError(f"input line of {len(payload)} bytes is over the limit")
            server.gateway.submit(events.Input(self._ref, clean(wire.decode_text(payload))))
            return
        if frame_type not in TRANSFER_FRAMES:
            raise ProtocolError(f"unexpected frame type {frame_type}")
        server.transfers.handle(self, frame)

    async def _write_loop(self) -> None:
        items = self._writer_out
        outbox = self.outbox
        transfers = self.server.transfers
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
                        transfers.delivered(self, data)
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
