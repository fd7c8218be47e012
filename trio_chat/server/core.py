"""The server's trio shell: serve every channel, apply the hub's effects.

A root nursery holds one child nursery per channel (``trio.serve_listeners``),
the console reader and the signal watcher. Cancelling the root scope is the
shutdown: every session is inside it.
"""

from __future__ import annotations

import signal
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import trio

from .. import wire
from ..hub import (
    Console,
    Deliver,
    Disconnect,
    Effect,
    Hub,
    Member,
    Notice,
    Print,
    Reschedule,
    Roster,
    StopServer,
)
from ..terminal_io import print_error, print_line, read_lines
from . import early_signals
from .admission import AddressGate
from .broadcast import Broadcast
from .flood import LineLedger
from .listener import Backlog
from .rules import LocalRules, Rules
from .session import Session
from .transfers import TransferRelay

MAX_INCOMING_TRANSFERS = 16
# Rounds a flush may wait for listeners to hand over connections that arrived
# together (one listener's batch).
FLUSH_PATIENCE = 64


if TYPE_CHECKING:
    import ssl


def peer_address(stream: trio.abc.Stream) -> str | None:
    """The IP address of the peer of a TCP stream; None for other streams."""
    if not isinstance(stream, trio.SocketStream):
        return None
    try:
        peer = stream.socket.getpeername()
    except OSError:
        return None
    return str(peer[0]) if isinstance(peer, tuple) else None


@dataclass(frozen=True)
class Limits:
    # A client with this many frames, or bytes (file chunks aside), waiting
    # to be written counts as not reading and is dropped.
    outbox_frames: int = 4096
    outbox_bytes: int = 1024 * 1024
    # Seconds a new connection has to say hello.
    hello_timeout: float = 10.0
    # Seconds a finished client has to take its last lines and hang up.
    close_grace: float = 5.0
    # Largest file /send relays.
    max_file_size: int = 4 * 1024**3
    # Connections held at once (members, queued and not yet said hello);
    # past this, new connections are closed at once.
    max_connections: int = 20000
    # File chunks waiting in one outbox: the windows of a receiver's
    # transfers; more means it acknowledged data it never had.
    outbox_file_bytes: int = MAX_INCOMING_TRANSFERS * wire.SEND_WINDOW + wire.MAX_PAYLOAD
    # A reader that filled an outbox waits for it to drain unless that
    # outbox's writer has been stuck on its socket this long (not reading).
    writer_grace: float = 0.25
    # Files one member may receive, and send, at once, and send to one member.
    max_incoming_transfers: int = MAX_INCOMING_TRANSFERS
    max_outgoing_transfers: int = 8
    max_transfers_between_two: int = 4
    # A transfer that moves no byte for this long is called off.
    transfer_idle_timeout: float = 60.0
    # Flood control: a burst of lines, then this many a second (either at 0:
    # off); a member held back for this long without a break is disconnected.
    flood_burst: int = 10
    flood_rate: float = 5.0
    flood_patience: float = 30.0
    # The members from one address share, on top of their own budgets, a
    # budget of this many members (people behind one NAT): however many
    # connections an address opens, its lines together get no more.
    flood_address_share: int = 4
    # Connections at once from one address, and a connect rate (0: off).
    max_per_address: int = 50

    # An outbox past its high-water mark makes the reader that filled it wait
    # until it drains to the low-water mark (session.py); a round's broadcast
    # closes at the low-water mark (broadcast.py).
    @property
    def low_water_frames(self) -> int:
        return self.outbox_frames // 16

    @property
    def low_water_bytes(self) -> int:
        return self.outbox_bytes // 16


def log_to_stderr(text: str) -> None:
    print_error("trio-chat-server", text)


class ChatServer:
    def __init__(
        self,
        hub: Hub,
        limits: Limits = Limits(),
        out: Callable[[str], None] = print_line,
        log: Callable[[str], None] = log_to_stderr,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.hub = hub
        # The cluster replaces this with its gateway to the shared log.
        self.rules: Rules = LocalRules(self, hub)
        self.limits = limits
        self.out = out
        self.log = log
        self.ssl_context = ssl_context
        self.addresses = AddressGate(limits.max_per_address)
        # Either number at 0 turns flood control off.
        self.line_budgets = (
            LineLedger(limits.flood_burst, limits.flood_rate, limits.flood_address_share)
            if limits.flood_rate > 0 and limits.flood_burst > 0
            else None
        )
        self.sessions: set[Session] = set()
        # Sessions whose outbox is above its high-water mark (session.py).
        self.congested: set[Session] = set()
        # Sessions with text frames collected since the last flush.
        self._dirty: list[Session] = []
        # This round's open broadcast for each channel (broadcast.py), and the
        # size at which one closes: the outboxes' low-water mark.
        self._broadcasts: dict[object, Broadcast] = {}
        self._broadcast_frames = limits.low_water_frames
        self._broadcast_bytes = limits.low_water_bytes
        self._flush_due: trio.Event | None = None
        self.transfers = TransferRelay(
            self,
            limits.max_file_size,
            max_incoming=limits.max_incoming_transfers,
            max_outgoing=limits.max_outgoing_transfers,
            max_between_two=limits.max_transfers_between_two,
            idle_timeout=limits.transfer_idle_timeout,
        )
        # For clients' tab completion; the same frame for everyone.
        self.channel_names_frame = wire.encode_json(
            wire.FrameType.CHANNELS, {"channels": list(hub.channels)}
        )
        self._root: trio.CancelScope | None = None
        # What the channels' listeners have taken and not handed over yet.
        self.backlog = Backlog()
        self.stopped = trio.Event()
        self._refused = 0

    def apply(self, effects: Iterable[Effect], speaking: bool = True) -> None:
        """Carry out the hub's decisions, in order. Never awaits.

        In a cluster every node applies every decision to its own connections
        (another node's members have stand-ins that ignore them), and only the
        node where the event began (``speaking``) prints its lines.
        """
        for effect in effects:
            if isinstance(effect, Deliver):
                self._deliver(effect.recipients, wire.encode_line(effect.kind, effect.line))
            elif isinstance(effect, Print):
                if speaking:
                    self.out(effect.line)
            elif isinstance(effect, Reschedule):
                effect.member.conn.reschedule()
            elif isinstance(effect, Disconnect):
                effect.member.conn.finish(effect.status, effect.reason)
            elif isinstance(effect, Notice):
                effect.member.conn.push_line(wire.encode_notice(effect.text))
            elif isinstance(effect, Roster):
                effect.member.conn.push_line(
                    wire.encode_json(wire.FrameType.ROSTER, {"names": list(effect.names)})
                )
            elif isinstance(effect, Console):
                if speaking:
                    self.log(effect.text)
            elif isinstance(effect, StopServer):
                self.stop()

    def _deliver(self, recipients: Sequence[Member], frame: bytes) -> None:
        if len(recipients) < 2:
            for member in recipients:
                member.conn.push_line(frame)
            return
        key = recipients[0].channel
        broadcast = self._broadcasts.get(key)
        if broadcast is not None and broadcast.open and broadcast.recipients == recipients:
            broadcast.add(frame)  # every recipient holds it already
        else:
            if broadcast is not None:
                broadcast.close()
            broadcast = Broadcast(recipients, frame)
            self._broadcasts[key] = broadcast
            for member in recipients:
                member.conn.hold(broadcast)
        if (
            len(broadcast.frames) >= self._broadcast_frames
            or broadcast.size >= self._broadcast_bytes
        ):
            broadcast.close()

    def want_flush(self, session: Session) -> None:
        """``session`` collected text frames: write them when this task yields.

        One flush per scheduling round writes every such session's frames with
        one write each, instead of waking one writer task per line per member.
        """
        self._dirty.append(session)
        if self._flush_due is None:
            self._flush_due = trio.Event()
            trio.lowlevel.spawn_system_task(self._flush_loop, name="trio-chat flush")
        self._flush_due.set()

    async def _flush_loop(self) -> None:
        while True:
            assert self._flush_due is not None
            await self._flush_due.wait()
            # One more scheduling round first: readers woken meanwhile add their
            # lines to this flush, so a busy channel takes fewer, larger writes
            # (a round costs microseconds, so a lone line is not held back).
            await trio.lowlevel.checkpoint()
            # And while listeners hand over connections that arrived together,
            # one a round: their joins share this flush (listener.py).
            waited = 0
            while waited < FLUSH_PATIENCE and self.backlog.waiting:
                await trio.lowlevel.checkpoint()
                waited += 1
            if waited:
                # The last one handed over reads its hello in the next rounds.
                await trio.lowlevel.checkpoint()
                await trio.lowlevel.checkpoint()
            self._flush_due = trio.Event()
            self._flush_now()

    def _flush_now(self) -> None:
        for broadcast in self._broadcasts.values():
            broadcast.close()
        self._broadcasts.clear()
        dirty, self._dirty = self._dirty, []
        for session in dirty:
            session.flush()

    def stop(self) -> None:
        """Shut down: close every connection, release every port."""
        self.hub.shutdown()
        self.stopped.set()
        # What the rules handed out this round goes out first: a cluster's node
        # may apply a chat line and the /shutdown behind it in one batch, and
        # the flush at the end of the round would find every session closed.
        self._flush_now()
        if self._root is not None:
            self._root.cancel()

    async def handle_connection(
        self, stream: trio.abc.Stream, channel: str, address: str | None = None
    ) -> None:
        """One connection to ``channel``'s port, or a web page's WebSocket
        (already past its own handshake: ``address`` is the browser's)."""
        if len(self.sessions) >= self.limits.max_connections:
            self._refused += 1
            if self._refused == 1 or self._refused % 1000 == 0:
                self.log(
                    f"refusing connections: {len(self.sessions)} open, the limit is "
                    f"{self.limits.max_connections} ({self._refused} refused so far)"
                )
            await stream.aclose()
            return
        web = address is not None
        if not web:
            address = peer_address(stream)
        admitted, complaint = self.addresses.admit(
            address, trio.current_time(), self.rules.connected_elsewhere
        )
        if complaint is not None:
            self.log(complaint)
        if not admitted:
            await stream.aclose()
            return
        try:
            if self.ssl_context is not None and not web:
                # The handshake happens on the session's first read, within the
                # hello timeout; a peer that fails it is dropped silently.
                stream = trio.SSLStream(stream, self.ssl_context, server_side=True)
            session = Session(self, stream, channel, address)
            self.sessions.add(session)
            await session.run()
        finally:
            self.addresses.release(address)

    def console_line(self, line: str) -> None:
        self.rules.console(line)

    async def serve(
        self,
        listeners: Mapping[str, Sequence[trio.abc.Listener[trio.SocketStream]]],
        console_fd: int | None = 0,
        handle_signals: bool = True,
        services: Sequence[Callable[[], Awaitable[None]]] = (),
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Serve until stop(); ``listeners`` maps each channel name to its listeners."""
        with trio.CancelScope() as root:
            self._root = root
            if self.hub.closed:
                root.cancel()
            async with trio.open_nursery() as nursery:
                if handle_signals:
                    await nursery.start(self._watch_signals)
                for channel, channel_listeners in listeners.items():
                    nursery.start_soon(self._serve_channel, channel, channel_listeners)
                if console_fd is not None:
                    nursery.start_soon(self._read_console, console_fd)
                nursery.start_soon(self.transfers.expire_idle)
                for service in services:  # the web page, when asked for
                    nursery.start_soon(service)
                task_status.started()

    async def _serve_channel(
        self, channel: str, listeners: Sequence[trio.abc.Listener[trio.SocketStream]]
    ) -> None:
        async def handler(stream: trio.SocketStream) -> None:
            await self.handle_connection(stream, channel)

        # serve_listeners opens this channel's own nursery for its connections.
        await trio.serve_listeners(handler, list(listeners))

    async def _read_console(self, fd: int) -> None:
        async for line in read_lines(fd, self.log):
            self.console_line(line)
        # EOF on the console (a closed pipe, /dev/null) never stops the server.

    async def _watch_signals(self, task_status: trio.TaskStatus[None]) -> None:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            task_status.started()
            early = early_signals.requested()
            if early is not None:
                self._stop_on(early)
            async for signum in signals:
                self._stop_on(signum)

    def _stop_on(self, signum: int) -> None:
        self.log(f"{signal.Signals(signum).name} received: shutting down")
        self.stop()
