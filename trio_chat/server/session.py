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

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

import trio

from .. import events, wire
from ..hub import EXIT_OK, Member
from ..sanitize import clean
from ..state import Cause, ClientProtocol
from ..wire import FrameType, ProtocolError
from .flood import LineLedger

if TYPE_CHECKING:
    from .counts import ServerCounts
    from .logs import Log
from .gateway import Gateway, wait_for_log_room
from .line_budget import LineBudget, flood_reason
from .outlet import (
    AWAITING_HELLO,
    CLOSED,
    FINISHING,
    FLOODED,
    JOINING,
    MEMBER,
    STOP_GRACE,
    Outlet,
    OutletLimits,
    SessionState,
)

__all__ = ["AWAITING_HELLO", "CLOSED", "FINISHING", "FLOODED", "JOINING", "MEMBER"]
__all__ += ["Session", "SessionHost", "SessionState"]

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
# The frames that count as lines for flood control: what a person types.
LINE_FRAMES = frozenset({FrameType.INPUT, FrameType.SEND_OFFER})
# A reader handles at most this many frames of one read before it lets the
# other tasks (the writers above all) run.
FRAMES_BETWEEN_YIELDS = 64


class SessionLimits(OutletLimits, Protocol):
    """The server's limits a session goes by (core.Limits has the defaults)."""

    @property
    def hello_timeout(self) -> float: ...
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
    def log(self) -> Log: ...
    @property
    def counts(self) -> ServerCounts: ...  # what --metrics reports
    @property
    def gateway(self) -> Gateway: ...
    @property
    def transfers(self) -> SessionTransfers: ...
    @property
    def line_budgets(self) -> LineLedger | None: ...  # None: flood control is off
    @property
    def congested(self) -> set[Outlet]: ...  # outboxes past their high-water mark
    @property
    def sessions(self) -> set[Session]: ...  # every open session
    @property
    def channel_names_frame(self) -> bytes: ...  # for clients' tab completion

    def want_flush(self, outlet: Outlet) -> None:
        """``outlet`` has text pending: call its ``flush`` when this round ends."""


class Session(Outlet):
    """A connection of the native protocol (wire.py): a terminal client, or a
    web page's WebSocket."""

    server: SessionHost

    def __init__(
        self,
        server: SessionHost,
        stream: trio.abc.Stream,
        channel: str,
        address: str | None = None,
        protocol: ClientProtocol = ClientProtocol.TERMINAL,
    ):
        super().__init__(server, stream, server.limits, channel)
        self.protocol = protocol  # which renderer its lines come from (render/)
        # Its client knows HISTORY frames (wire.PROTOCOL; a /2 client does not).
        self.reads_history = True
        self.channel = channel
        self.address = address  # the peer's IP address, where it has one
        # The name it said hello with; None until then (and for good if it never did).
        self.username: str | None = None
        self.member: Member | None = None
        self.conn_ref: str | None = None  # "NODE.NUMBER" in a cluster
        # The AFK timer fired and the rules have not answered yet (a cluster's
        # log takes a while): the timer waits for reschedule() or the finish.
        self._afk_reported = False
        self.timer: trio.CancelScope | None = None
        self.hello_deadline = math.inf
        # The line budget, from the hello on (None: flood control is off).
        self._budget: LineBudget | None = None
        # Set once the rules have answered the hello (joined or refused): in
        # a cluster the budget the log knows of comes with the answer, so no
        # line is let through before it.
        self._answered = trio.Event()
        self.ended = trio.Event()  # set once it is closed

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

    # ----- called by ChatServer.apply and the file relay, never awaits -----

    def push_chunk(self, frame: wire.Payload) -> None:
        """Queue one file chunk (FILE_DATA): after the round's text so far,
        straight to the writer."""
        if self.state >= FINISHING:
            return
        outbox = self.outbox
        if outbox.add_chunk(len(frame)):
            self.drop_slow(outbox.overflow)
            return
        self._hand_round_to_writer()
        if self.state < FINISHING:
            self._to_writer((frame, True))

    def finish(self, status: int, reason: str, cause: Cause = Cause.LEFT) -> None:
        """Send what is queued, then a BYE, then close; the rules are done with it
        (the BYE says why in words: ``cause`` is for protocols that show it otherwise)."""
        if self.state >= FINISHING:
            return
        self._close_line_budget()
        if not self._finish_with(wire.encode_bye(status, reason)):
            return
        self.server.transfers.connection_closed(self)
        if self.timer is not None:
            self.timer.deadline = math.inf

    def shut_down(self, reason: str) -> None:
        """The operator shut the server down: the page is told so in a BYE,
        so that it does not come back by itself as it does when the server
        just goes (a restart); the connection has ``STOP_GRACE`` to write it,
        out of the stop's reach (web/serve.py waits for ``ended``)."""
        if self.state >= FINISHING:
            return
        self.finish(EXIT_OK, reason)
        self.scope.shield = True
        self.scope.deadline = min(self.scope.deadline, trio.current_time() + STOP_GRACE)

    def reschedule(self) -> None:
        self._afk_reported = False
        if self.timer is not None and self.member is not None and self.state < FINISHING:
            self.timer.deadline = self.server.gateway.local_deadline(self.member.afk_deadline)

    def joined(self, member: Member) -> None:
        """The rules took this connection in (a channel or its queue)."""
        if self.member is not None:
            return  # welcomed again: it switched channels
        if self.state is CLOSED:
            # (A cluster's log answered after it went: member.conn is this
            # session, and member <-> session would be a cycle, see run.)
            return
        self.member = member
        self._become(MEMBER)
        self._answered.set()
        self.push_line(self.server.channel_names_frame)

    def offer_decided(self, offer: int, target: Member | None) -> None:
        self.server.transfers.offer_decided(self, offer, target)

    def nick_decided(self, nick: str, accepted: bool, banned: str = "") -> None:
        """(Only IRC connections claim nicks.)"""

    def notice(self, text: str) -> None:
        self.push_line(wire.encode_notice(text))

    def roster(self, names: Sequence[str]) -> None:
        self.push_line(wire.encode_json(FrameType.ROSTER, {"names": list(names)}))

    def _release_waiters(self) -> None:
        super()._release_waiters()
        self._answered.set()

    def _chunk_written(self, data: wire.Payload) -> None:
        self.server.transfers.delivered(self, data)

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
            self.ended.set()
            # Member.conn is this session: so that a departed connection is
            # freed at once, not by the cyclic collector's full pass that
            # stops the server.
            self.member = None
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
                    self.server.log(
                        f"no hello within the time limit on {self.channel}",
                        event="hello_timeout",
                        channel=self.channel,
                    )
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
            if gateway.log_room() is not None:  # (no coroutine per frame otherwise)
                await wait_for_log_room(gateway)
            if self._budget is not None and frame.type in LINE_FRAMES and self.greeted:
                if not self._answered.is_set():
                    await self._answered.wait()
                    if self.state >= FINISHING or self._budget is None:
                        return
                await self._take_line_token()
                if self.state >= FLOODED:
                    return
            self._handle(frame)
            if self.state >= FINISHING:
                return
            if congested:
                await self.wait_for_congested_outboxes()
            elif index % FRAMES_BETWEEN_YIELDS == 0:
                await trio.lowlevel.checkpoint()
            if self.state >= FINISHING:
                return

    def _start_line_budget(self, username: str) -> None:
        """The budget this member starts with (line_budget.py)."""
        budgets = self.server.line_budgets
        if budgets is not None:
            now = trio.current_time()
            patience = self.server.limits.flood_patience
            self._budget = LineBudget(budgets, username, self.address, now, patience)

    def lower_line_budget(self, tokens: float) -> None:
        """The cluster's ledger knows of a lower budget for this member's
        address or name (spent through another node)."""
        if self._budget is not None:
            self._budget.lower(tokens, trio.current_time())

    def _close_line_budget(self) -> None:
        """File what is left of the budget: at the finish, before the BYE goes
        out (a client that reconnects at once must find it), or at the end."""
        if self._budget is not None:
            self._budget.close(trio.current_time())
            self._budget = None

    async def _take_line_token(self) -> None:
        """Wait until the member's line budget allows one more line; disconnect
        it when it has been held back for ``flood_patience`` without a break."""
        budget = self._budget  # (set to None if the member finishes meanwhile)
        assert budget is not None
        wait = budget.next_line(trio.current_time())
        if wait is None:
            reason = flood_reason(self.server.limits)
            self.server.gateway.submit(events.Flooded(self._ref, reason))
            # In a cluster the disconnect comes back through the log: until
            # then nothing more of this member's is passed on.
            self._become(FLOODED)
            return
        # Not reading meanwhile: TCP holds the flooder back, nothing piles up here.
        while wait:
            await trio.sleep(wait)
            wait = budget.retry(trio.current_time())

    def _handle(self, frame: wire.Frame) -> None:
        server = self.server
        frame_type, payload, _ = frame
        if self.state is AWAITING_HELLO:
            if frame_type != FrameType.HELLO:
                raise ProtocolError(f"expected HELLO, got frame type {frame_type}")
            username, self.reads_history = wire.parse_hello_protocol(payload)
            self.username = username
            self._become(JOINING)
            self._start_line_budget(username)
            self.conn_ref = server.gateway.connect(self)
            # (For the console's /who: how it speaks.)
            speaks = events.WEB if self.protocol is ClientProtocol.BROWSER else events.NATIVE
            server.gateway.submit(
                events.Join(self.conn_ref, self.channel, username, self.address, protocol=speaks)
            )
            return
        if frame_type == FrameType.INPUT:
            if len(payload) > wire.MAX_LINE_BYTES:
                raise ProtocolError(f"input line of {len(payload)} bytes is over the limit")
            server.gateway.submit(events.Input(self._ref, clean(wire.decode_text(payload))))
            return
        if frame_type not in TRANSFER_FRAMES:
            raise ProtocolError(f"unexpected frame type {frame_type}")
        server.transfers.handle(self, frame)
