"""One client connection on the server: a reader, a writer and a bounded outbox.

The reader turns frames into hub calls; the writer drains the outbox onto the
socket. The whole session lives in one cancel scope, so the server ends it
(slow consumer, protocol error, shutdown) by cancelling rather than by poking
the socket from outside. A client the rules disconnect (kick, /quit, AFK, empty)
is "finished": it gets what was already queued for it plus a BYE, then a
half-close, and the session waits briefly for the peer to hang up.

Who waits and who is dropped when someone talks fast (README, "Limits and the
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

import math
import os
from typing import TYPE_CHECKING

import trio

from .. import events, wire
from ..hub import Member
from ..sanitize import clean
from ..state import ClientProtocol
from ..wire import FrameType, ProtocolError
from .admission import address_key, budget_keys
from .broadcast import Broadcast
from .flood import TokenBucket, take_line

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
FILE_DATA = int(FrameType.FILE_DATA)
# Frames written in one send_all when the outbox has a backlog.
WRITE_BATCH = 64
# Frames at least this big are written on their own rather than copied into a batch.
COALESCE_BELOW = 16 * 1024
# The frames that count as lines for flood control: what a person types.
LINE_FRAMES = frozenset({FrameType.INPUT, FrameType.SEND_OFFER})
# A reader handles at most this many frames of one read before it lets the
# other tasks (the writers above all) run.
FRAMES_BETWEEN_YIELDS = 64


class Unsent(bytes):
    """Text frames joined, or the tail of them that a socket took only in part:
    never a file chunk, whatever its fifth byte happens to be."""


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
    def __init__(
        self,
        server: ChatServer,
        stream: trio.abc.Stream,
        channel: str,
        address: str | None = None,
        protocol: ClientProtocol = ClientProtocol.TERMINAL,
    ):
        self.server = server
        self.protocol = protocol
        self.stream = stream
        self.channel = channel
        self.address = address  # the peer's IP address, where it has one
        self.member: Member | None = None
        # Said hello; in a cluster its member exists once the log has the join.
        self.greeted = False
        self.conn_ref: str | None = None  # from its gateway at the hello
        # The AFK timer fired and the rules have not answered yet (cluster).
        self.timer_paused = False
        self.flooded = False  # disconnected for flooding, or about to be
        self.closing = False
        self.scope = trio.CancelScope()
        self.timer: trio.CancelScope | None = None
        self.hello_deadline = math.inf
        # What waits in the outbox or is being written.
        self.queued_frames = 0
        self.queued_bytes = 0  # file chunks aside
        self.queued_file_bytes = 0
        # When the writer's current send_all began; None while it is not writing.
        self.writing_since: float | None = None
        self.drained = trio.Event()  # set (and replaced) when the backlog falls low
        limits = server.limits
        self._max_frames = limits.outbox_frames
        self._max_bytes = limits.outbox_bytes
        self._high_frames = limits.outbox_frames // 4
        self._high_bytes = limits.outbox_bytes // 4
        self._low_frames = limits.low_water_frames
        self._low_bytes = limits.low_water_bytes
        self._outbox, self._outbox_out = trio.open_memory_channel[wire.Payload](
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
        # Text frames collect here until the end of the scheduling round
        # (ChatServer.want_flush). Plain TCP then writes them all with one
        # write, without waking the writer task, which takes over whenever the
        # socket is full; other streams (TLS, WebSocket) hand them, joined, to
        # the writer: one write, or one WebSocket message, for the round.
        self._fd = stream.socket.fileno() if isinstance(stream, trio.SocketStream) else -1
        # Frames of its own, and channel broadcasts (broadcast.py) it holds.
        self._pending: list[wire.Payload | Broadcast] = []
        self._pending_frames = 0  # frames in _pending, counting a broadcast's
        # Items in the outbox channel or being written; 0 means the writer is idle.
        self._in_outbox = 0

    @property
    def _ref(self) -> str:
        assert self.conn_ref is not None, "only a connection past its hello causes events"
        return self.conn_ref

    @property
    def name(self) -> str:
        return self.member.name if self.member is not None else "?"

    # ----- called by ChatServer.apply, never awaits -----

    def push(self, frame: wire.Payload) -> None:
        # On every delivery of every line: kept lean (ints, not enum lookups).
        if self.closing:
            return
        if frame[4] == FILE_DATA:
            self._push_file_chunk(frame)
            return
        self._append(frame)
        self.count_held(1, len(frame))


    def hold(self, broadcast: Broadcast) -> None:
        """Take the lines of a channel broadcast, now and as long as it stays open."""
        if self.closing:
            return
        self._append(broadcast)
        broadcast.holders.append(self)

    def _append(self, item: wire.Payload | Broadcast) -> None:
        pending = self._pending
        if pending:
            tail = pending[-1]
            if isinstance(tail, Broadcast) and tail.open:
                tail.close()  # this session's lines must not grow past the item
        else:
            self.server.want_flush(self)
        pending.append(item)

    def count_held(self, frames: int, size: int) -> None:
        """Frames that joined the pending ones count against the outbox limits."""
        if self.closing:
            return
        self._pending_frames += frames
        self.queued_frames += frames
        self.queued_bytes += size
        if self.queued_bytes > self._max_bytes or self.queued_frames > self._max_frames:
            self.abort(
                f"{self.queued_frames} frames, {self.queued_bytes} bytes waiting: "
                "the client is not reading"
            )
            return
        if self.queued_frames > self._high_frames or self.queued_bytes > self._high_bytes:
            self.server.congested.add(self)

    def _push_file_chunk(self, frame: wire.Payload) -> None:
        # Bounded by the transfer windows; a receiver past this has
        # acknowledged data it cannot have had.
        self.queued_file_bytes += len(frame)
        self.queued_frames += 1
        if self.queued_file_bytes > self.server.limits.outbox_file_bytes:
            self.abort(f"{self.queued_file_bytes} bytes of files waiting: not reading")
            return
        if self.queued_frames > self._max_frames:
            self.abort("outbox full: the client is not reading")
            return
        self._hand_pending_to_writer()
        if not self.closing:
            self._to_writer(frame)

    def _to_writer(self, item: wire.Payload) -> None:
        try:
            self._outbox.send_nowait(item)
        except trio.WouldBlock:
            # The peer is not reading: drop it rather than slow anyone else.
            self.abort("outbox full: the client is not reading")
            return
        self._in_outbox += 1

    def _take_pending(self) -> tuple[wire.Payload, int]:
        """The collected text frames as one piece, and how many frames it holds."""
        pending = self._pending
        tail = pending[-1]
        if isinstance(tail, Broadcast):
            tail.close()  # counts its lines here too, before they are taken
        frames = self._pending_frames
        self._pending = []
        self._pending_frames = 0
        if len(pending) == 1:
            return (tail.joined() if isinstance(tail, Broadcast) else tail), frames
        pieces = [item.joined() if isinstance(item, Broadcast) else item for item in pending]
        return b"".join(pieces), frames

    def _hand_pending_to_writer(self) -> None:
        """Put the collected text frames, joined, in the outbox (order kept)."""
        if not self._pending:
            return
        data, frames = self._take_pending()
        if self.closing:
            return  # (closing the broadcast found the outbox over its limit)
        self.queued_frames -= frames - 1  # one outbox item now
        self._to_writer(Unsent(data))

    def flush(self) -> None:
        """Write the collected text frames: at once if the writer is idle and
        the socket takes them, else through the writer. Never blocks."""
        if not self._pending or self.closing:
            self._pending = []
            return
        if self._in_outbox or self._fd < 0:
            # The writer owns the socket until it is done; and TLS and WebSocket
            # streams are always written by it (one write for the round's lines).
            self._hand_pending_to_writer()
            return
        data, frames = self._take_pending()
        if self.closing:
            return
        try:
            written = os.write(self._fd, data)
        except OSError:
            written = 0  # full (or broken: the writer will find out)
        self.queued_bytes -= written
        if written == len(data):
            self.queued_frames -= frames
            self._after_write()
            return
        self.queued_frames -= frames - 1
        self._to_writer(Unsent(data[written:]))

    def finish(self, status: int, reason: str) -> None:
        """Send what is queued, then a BYE, then close; the rules are done with it."""
        if self.closing:
            return
        self._close_line_budget()
        bye = wire.encode_bye(status, reason)
        self._hand_pending_to_writer()
        if self.closing:
            return
        try:
            self._outbox.send_nowait(bye)
        except trio.WouldBlock:
            self.abort("outbox full at disconnect")
            return
        self._in_outbox += 1
        self.queued_frames += 1
        self.queued_bytes += len(bye)
        self.closing = True
        self._outbox.close()
        self._release_waiters()
        self.server.transfers.connection_closed(self)
        self.scope.deadline = trio.current_time() + self.server.limits.close_grace
        if self.timer is not None:
            self.timer.deadline = math.inf

    def abort(self, why: str) -> None:
        """End the session now, sending nothing more."""
        self.server.log(f"dropping connection on {self.channel}: {why}")
        self.closing = True
        self._release_waiters()
        self.scope.cancel()

    def reschedule(self) -> None:
        self.timer_paused = False
        if self.timer is not None and self.member is not None and not self.closing:
            self.timer.deadline = self.server.gateway.local_deadline(self.member.afk_deadline)

    def joined(self, member: Member) -> None:
        """The rules took this connection in (a channel or its queue)."""
        self.member = member
        self._answered.set()
        self.push(self.server.channel_names_frame)

    def offer_decided(self, offer: int, target: Member | None) -> None:
        self.server.transfers.offer_decided(self, offer, target)

    # (Until the outbox split lands: one push for both.)
    def push_line(self, frame: wire.Payload) -> None:
        self.push(frame)

    def push_chunk(self, frame: wire.Payload) -> None:
        self.push(frame)

    def _release_waiters(self) -> None:
        self.server.congested.discard(self)
        self.drained.set()
        self._answered.set()

    # ----- backpressure -----

    def keeping_up(self, now: float) -> bool:
        """Whether readers should wait for this outbox to drain: its writer is
        not stuck on a peer that stopped reading."""
        if self.closing:
            return False
        since = self.writing_since
        return since is None or now - since < self.server.limits.writer_grace

    async def _wait_for_room(self) -> None:
        """Wait while an outbox this server filled is above its high-water mark
        and its writer is keeping up; the peers that stopped reading are not
        waited for (they are dropped at their outbox's hard limit)."""
        congested = self.server.congested
        grace = self.server.limits.writer_grace
        while congested:
            now = trio.current_time()
            waiting_for = next((s for s in congested if s.keeping_up(now)), None)
            if waiting_for is None:
                return
            since = waiting_for.writing_since
            patience = grace if since is None else grace - (now - since)
            with trio.move_on_after(max(patience, 0.0)):
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
            self.closing = True
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
        if self.closing or self.timer_paused:
            return math.inf
        if not self.greeted:
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
                if not self.greeted:
                    self.server.log(f"no hello within the time limit on {self.channel}")
                    return
                self.timer_paused = True  # until the rules reschedule or disconnect
                self.server.gateway.submit(events.AfkDue(self._ref))
                continue
            if not received:
                return
            if self.closing:
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
            if self.flooded:
                return
            if gateway.log_backlogged:
                await gateway.wait_for_log_room()
            if self._lines is not None and frame.type in LINE_FRAMES and self.greeted:
                if not self._answered.is_set():
                    await self._answered.wait()
                    if self.closing or self._lines is None:
                        return
                await self._take_line_token()
                if self.closing or self.flooded:
                    return
            self._handle(frame)
            if self.closing:
                return
            if congested:
                await self._wait_for_room()
            elif index % FRAMES_BETWEEN_YIELDS == 0:
                await trio.lowlevel.checkpoint()
            if self.closing:
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
            self.flooded = True
            return
        # Not reading meanwhile: TCP holds the flooder back, nothing piles up here.
        while wait:
            await trio.sleep(wait)
            wait = take_line(lines, shared, trio.current_time())

    def _handle(self, frame: wire.Frame) -> None:
        server = self.server
        frame_type, payload, _ = frame
        if not self.greeted:
            if frame_type != FrameType.HELLO:
                raise ProtocolError(f"expected HELLO, got frame type {frame_type}")
            username = wire.parse_hello(payload)
            self.greeted = True
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
        outbox = self._outbox_out
        transfers = self.server.transfers
        try:
            async for frame in outbox:
                if self._fd < 0 and not self.closing:
                    # TLS and WebSocket pay per write (a record, a message):
                    # let one more round's lines join this one.
                    await trio.lowlevel.checkpoint()
                batch = [frame]
                while len(batch) < WRITE_BATCH:
                    try:
                        batch.append(outbox.receive_nowait())
                    except (trio.WouldBlock, trio.EndOfChannel):
                        break
                # File chunks count as delivered once handed to the socket: the
                # receiver's acknowledgement may come back before send_all returns.
                for sent in batch:
                    if not isinstance(sent, Unsent) and sent[4] == FILE_DATA:
                        transfers.delivered(self, sent)
                self.writing_since = trio.current_time()
                for data in coalesce(batch):
                    await self.stream.send_all(data)
                self.writing_since = None
                self._written(batch)
            if isinstance(self.stream, trio.abc.HalfCloseableStream):
                await self.stream.send_eof()
            # (TLS has no half-close: the client hangs up when it reads the BYE.)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self.scope.cancel()

    def _written(self, batch: list[wire.Payload]) -> None:
        self.queued_frames -= len(batch)
        self._in_outbox -= len(batch)
        for sent in batch:
            if not isinstance(sent, Unsent) and sent[4] == FILE_DATA:
                self.queued_file_bytes -= len(sent)
            else:
                self.queued_bytes -= len(sent)
        self._after_write()

    def _after_write(self) -> None:
        if (
            self in self.server.congested
            and self.queued_frames <= self._low_frames
            and self.queued_bytes <= self._low_bytes
        ):
            self.server.congested.discard(self)
            self.drained.set()
            self.drained = trio.Event()
