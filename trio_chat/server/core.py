"""The server's trio shell: serve every channel, apply the hub's effects.

A root nursery holds every connection, each channel port's accept loop in a
cancel scope of its own (ports.py: a reload opens and closes ports), the
console reader and the signal watcher. Cancelling the root scope is the
shutdown: every session is inside it.
"""

from __future__ import annotations

import math
import signal
import typing
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

import trio

from .. import effects as fx
from .. import wire
from ..bans import covers
from ..commands import Reload, parse_console_line
from ..events import ConsoleLine
from ..hub import Hub, Member
from ..render import browser, log, terminal
from ..state import Cause, ClientProtocol
from ..terminal_io import print_error, print_line, read_lines
from ..text import Stamp, wall_clock_stamp
from . import early_signals
from .admission import LOG_INTERVAL, AddressGate
from .answers import Answer
from .broadcast import Broadcast
from .counts import REFUSED_BAN, REFUSED_LIMIT, REFUSED_PER_ADDRESS, ServerCounts
from .flood import LineLedger
from .gateway import Gateway, LocalGateway
from .limits import Limits as Limits  # re-exported: where callers have always found it
from .listener import Backlog
from .logs import INFO, WARNING, as_log
from .outlet import Outlet
from .ports import ChannelPorts
from .session import Session
from .transfers import TransferRelay

# What ChatServer.apply carries out itself; every other effect is rendered.
_CONTROL = frozenset(typing.get_args(fx.Control))
Renderer = Callable[[fx.Said], list[tuple[Sequence[Member], bytes]]]
# Rounds a flush may wait for listeners to hand over connections that arrived
# together (one listener's batch).
FLUSH_PATIENCE = 64
# What a web page is told at the operator's /shutdown (docs/web.md, "Coming back").
SHUT_DOWN = "the server was shut down by the operator"
# A ban's refusals are logged at most once an admission.LOG_INTERVAL, as an
# address's are; the table of when is forgotten past this many bans.
BAN_LOG_KEYS = 10000


if TYPE_CHECKING:
    import ssl

    from ..config import ChannelConfig
    from ..history import Entry
    from .logs import Log

# Where a reload says what it did: (text, failed).
ReloadAnswer = Callable[[str, bool], None]


class BansKeeper(typing.Protocol):
    """Where a lone server keeps its bans (--state-dir)."""

    def changed(self) -> None: ...


class HistoryKeeper(typing.Protocol):
    """Where a lone server writes its channels' history (--history-file)."""

    def recorded(self, channel: str, entry: Entry) -> None: ...
    def forgotten(self, channel: str, at: float) -> None: ...


def is_reload(line: str) -> bool:
    """Whether a console line is ``/reload``, which the server carries out
    itself (it reads files) instead of handing it to the rules."""
    return line.lstrip().startswith("/reload") and isinstance(parse_console_line(line), Reload)


def peer_address(stream: trio.abc.Stream) -> str | None:
    """The IP address of the peer of a TCP stream; None for other streams."""
    if not isinstance(stream, trio.SocketStream):
        return None
    try:
        peer = stream.socket.getpeername()
    except OSError:
        return None
    return str(peer[0]) if isinstance(peer, tuple) else None


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
        stamp: Stamp = wall_clock_stamp,
    ) -> None:
        self.hub = hub
        # The cluster replaces this with its gateway to the shared log.
        self.gateway: Gateway = LocalGateway(self, hub, stamp)
        self.limits = limits
        self.out = out
        self.log = log
        # What --metrics reports, counted whether or not it was asked for (counts.py).
        self.counts = ServerCounts()
        self.ssl_context = ssl_context
        self.addresses = AddressGate(limits.max_per_address)
        # Either number at 0 turns flood control off.
        self.line_budgets = (
            LineLedger(limits.flood_burst, limits.flood_rate, limits.flood_address_share)
            if limits.flood_rate > 0 and limits.flood_burst > 0
            else None
        )
        self.sessions: set[Session] = set()
        # The IRC port's connections (trio_chat/irc/client.py), when it is open.
        self.irc_clients: set[Outlet] = set()
        # Sessions whose outbox is above its high-water mark (session.py).
        self.congested: set[Outlet] = set()
        # Connections with text frames collected since the last flush.
        self._dirty: list[Outlet] = []
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
        # The web sessions told of a /shutdown, until each has closed (web/serve.py).
        self.goodbyes: list[trio.Event] = []
        # Each protocol's renderer (render/); the IRC port adds its own.
        # (With ``picks``, the renderer's recipients are its protocol's
        # members already; else apply picks them out of the audience.)
        self.renderers: list[tuple[Renderer, ClientProtocol, bool]] = [
            (terminal.frames, ClientProtocol.TERMINAL, False),
            (browser.frames, ClientProtocol.BROWSER, False),
        ]
        # Local connections of each protocol; while there are none but the
        # terminal's, every member gets the terminal's frames, and a protocol
        # without a local connection is not rendered at all (another node's
        # members are stand-ins that send nothing).
        self.connected: dict[ClientProtocol, int] = dict.fromkeys(ClientProtocol, 0)
        self.other_protocols = 0
        # The history file, when a lone server keeps one (--history-file),
        # and the bans' file (--state-dir).
        self.history_keeper: HistoryKeeper | None = None
        self.bans_keeper: BansKeeper | None = None
        # For each ban, when a refusal was last logged and how many since.
        self._ban_logged: dict[str, tuple[float, int]] = {}
        # The channels' ports while serving (ports.py); where new ones are
        # bound at a reload: --host, and --reuse-port under --workers.
        self.ports: ChannelPorts | None = None
        self.listen_host: str | None = None
        self.reuse_port = False
        # SIGHUP and /reload (server/reload.py sets it), given where to answer.
        self.reloader: Callable[[ReloadAnswer], None] | None = None
        # Told the channels after a reload changed them, and whether this
        # node's reload it was (the IRC port's channel table, the cluster's config).
        self.on_reconfigured: list[Callable[[Sequence[ChannelConfig], bool], None]] = []
        # Control connections waiting for the answer to a console line, by
        # the name their ConsoleLine carries (console_command), and the one
        # whose answer is being applied (effects.AnswerBegins).
        self.answers: dict[str, Answer] = {}
        self._answer: Answer | None = None
        self._answers_asked = 0

    @property
    def log(self) -> Log:
        """``log(text, event=..., level=..., **fields)``: the fields reach JSON
        logs (logs.py); a log that takes only text (a test's) may be set too."""
        return self._log

    @log.setter
    def log(self, log: Callable[[str], None]) -> None:
        self._log = as_log(log)

    def apply(self, effects: Iterable[fx.Effect], speaking: bool = True) -> None:
        """Carry out the hub's decisions, in order. Never awaits.

        What a member is told goes out in its protocol's rendering (render/);
        the server's own lines go to its stdout. In a cluster every node applies
        every decision to its own connections (another node's members have
        stand-ins that ignore them), and only the node where the event began
        (``speaking``) prints its lines.
        """
        for effect in effects:
            kind = type(effect)
            if kind in _CONTROL:
                self._carry_out(effect, speaking)  # type: ignore[arg-type]
                continue
            said: fx.Said = effect  # type: ignore[assignment]
            if kind is fx.Welcome:
                # Its connection learns it is in before the first line arrives.
                said.member.conn.joined(said.member)  # type: ignore[union-attr]
            elif kind is fx.Chat:
                self.counts.lines_said += 1
            if speaking:
                line = log.line(said)
                if line is not None:
                    self.out(line)
                    if self._answer is not None:
                        self._answer.said(line)
            if self.other_protocols:
                self._deliver_each_protocol(said)
            else:
                for audience, frame in terminal.frames(said):
                    self._deliver(audience, frame, None)

    def _carry_out(self, effect: fx.Control, speaking: bool) -> None:
        if isinstance(effect, fx.Reschedule):
            effect.member.conn.reschedule()
        elif isinstance(effect, fx.Disconnect):
            if speaking and effect.cause is Cause.FLOODED:
                self.counts.flood_disconnects += 1
            effect.member.conn.finish(effect.status, effect.reason, effect.cause)
        elif isinstance(effect, fx.Notice):
            effect.member.conn.notice(effect.text)
        elif isinstance(effect, fx.Roster):
            effect.member.conn.roster(effect.names)
        elif isinstance(effect, fx.OfferDecided):
            effect.conn.offer_decided(effect.offer, effect.target)
        elif isinstance(effect, fx.NickDecided):
            effect.conn.nick_decided(effect.nick, effect.accepted, effect.banned)
        elif isinstance(effect, fx.AddressBanned):
            for client in list(self.irc_clients):
                if covers(effect.ban, client.address):
                    client.banned(effect.reason)
        elif isinstance(effect, fx.BanRefused):
            if speaking:
                self._refused_by_ban(effect)
        elif isinstance(effect, fx.BansChanged):
            if self.bans_keeper is not None:
                self.bans_keeper.changed()
        elif isinstance(effect, fx.Console):
            if speaking:
                self.log(
                    effect.text,
                    event=effect.event,
                    level=WARNING if effect.failed else INFO,
                    **dict(effect.fields),
                )
                if self._answer is not None:
                    self._answer.told(effect.text, effect.failed)
        elif isinstance(effect, fx.AnswerBegins):
            if speaking:
                self._answer = self.answers.get(effect.answer_to)
        elif isinstance(effect, fx.AnswerEnds):
            if speaking:
                self._answer = None
                answer = self.answers.pop(effect.answer_to, None)
                if answer is not None:
                    answer.ended(effect.failed)
        elif isinstance(effect, fx.Recorded):
            if self.history_keeper is not None:
                self.history_keeper.recorded(effect.channel, effect.entry)
        elif isinstance(effect, fx.Forgotten):
            if self.history_keeper is not None:
                self.history_keeper.forgotten(effect.channel, effect.at)
        elif isinstance(effect, fx.Reconfigured):
            self._reconfigured(effect.channels, speaking)
        elif isinstance(effect, fx.StopServer):
            self.stop(SHUT_DOWN)

    def _refused_by_ban(self, refused: fx.BanRefused) -> None:
        """A ban kept a newcomer out: counted, and logged at most once every
        LOG_INTERVAL for each ban (a banned client that retries at once,
        under new names or from across a banned network, would fill the
        log), with how many it refused since."""
        self.counts.refuse(REFUSED_BAN)
        now = trio.current_time()
        logged, since = self._ban_logged.get(refused.target, (-math.inf, 0))
        if now - logged < LOG_INTERVAL:
            self._ban_logged[refused.target] = (logged, since + 1)
            return
        if len(self._ban_logged) >= BAN_LOG_KEYS:
            self._ban_logged.clear()
        self._ban_logged[refused.target] = (now, 0)
        address = refused.address or "an unknown address"
        more = f"; {since} more refused since the last line" if since else ""
        self.log(
            f"refused {refused.user} from {address}: banned ({refused.target}){more}",
            event="connection_refused",
            level=WARNING,
            reason=REFUSED_BAN,
            ban=refused.target,
            address=refused.address or "",
            user=refused.user,
            refused=since + 1,
        )

    def _reconfigured(self, channels: Sequence[ChannelConfig], speaking: bool) -> None:
        """A reload changed the channels: listen on their ports, and tell the
        clients' tab completion and whoever else caches the list."""
        names = [channel.name for channel in channels]
        self.channel_names_frame = wire.encode_json(wire.FrameType.CHANNELS, {"channels": names})
        for session in self.sessions:
            if session.member is not None:
                session.push_line(self.channel_names_frame)
        if self.ports is not None:
            self.ports.apply(channels)
        for hook in self.on_reconfigured:
            hook(channels, speaking)

    def _deliver_each_protocol(self, effect: fx.Said) -> None:
        """Some members are browsers or on IRC: each gets its own protocol's frames."""
        connected = self.connected
        for renderer, protocol, picks in self.renderers:
            if not connected[protocol]:
                continue
            for audience, frame in renderer(effect):
                if picks:
                    self._deliver(audience, frame, protocol)
                    continue
                picked = tuple(m for m in audience if m.conn.protocol is protocol)
                if picked:
                    self._deliver(picked, frame, protocol)

    def _deliver(
        self, recipients: Sequence[Member], frame: bytes, protocol: ClientProtocol | None
    ) -> None:
        self.counts.deliveries += len(recipients)
        if len(recipients) < 2:
            for member in recipients:
                member.conn.push_line(frame)
            return
        key = (recipients[0].channel, protocol)
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

    def want_flush(self, outlet: Outlet) -> None:
        """``outlet`` collected text frames: write them when this task yields.

        One flush per scheduling round writes every such session's frames with
        one write each, instead of waking one writer task per line per member.
        """
        self._dirty.append(outlet)
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

    def stop(self, goodbye: str = "") -> None:
        """Shut down: close every connection, release every port. With a
        ``goodbye`` (the operator's /shutdown) web pages are told it, and do
        not reconnect by themselves as they do when the server just goes."""
        self.hub.shutdown()
        self.stopped.set()
        for client in list(self.irc_clients):
            client.stopping()  # its ERROR line goes after what is queued for it
        if goodbye:
            for session in list(self.sessions):
                if session.protocol is ClientProtocol.BROWSER:
                    session.shut_down(goodbye)
                    self.goodbyes.append(session.ended)
        # What the rules handed out this round goes out first: a cluster's node
        # may apply a chat line and the /shutdown behind it in one batch, and
        # the flush at the end of the round would find every session closed.
        self._flush_now()
        if self._root is not None:
            self._root.cancel()

    async def handle_connection(
        self,
        stream: trio.abc.Stream,
        channel: str,
        address: str | None = None,
        protocol: ClientProtocol = ClientProtocol.TERMINAL,
    ) -> None:
        """One connection to ``channel``'s port, or a web page's WebSocket
        (already past its own handshake: ``address`` is the browser's)."""

        async def serve(stream: trio.abc.Stream, address: str | None) -> None:
            session = Session(self, stream, channel, address, protocol)
            self.sessions.add(session)
            await session.run()

        await self.serve_admitted(stream, address, protocol, serve)

    async def serve_admitted(
        self,
        stream: trio.abc.Stream,
        address: str | None,
        protocol: ClientProtocol,
        serve: Callable[[trio.abc.Stream, str | None], Awaitable[None]],
    ) -> None:
        """What every connection goes through, whatever its protocol: the
        connection and per-address limits (refused: closed at once), TLS when
        the server has a certificate (a web page's is the web server's), and
        the counts of what is connected; ``serve`` runs it (its stream, the
        peer's address)."""
        if address is None:
            address = peer_address(stream)
        if not self.admit(address):
            await stream.aclose()
            return
        self.opened(protocol)
        try:
            if self.ssl_context is not None and protocol is not ClientProtocol.BROWSER:
                # The handshake happens on the connection's first read, within
                # its hello (or registration) timeout; a peer that fails it is
                # dropped silently.
                stream = trio.SSLStream(stream, self.ssl_context, server_side=True)
            await serve(stream, address)
        finally:
            self.closed(protocol)
            self.addresses.release(address)

    def opened(self, protocol: ClientProtocol) -> None:
        """A local connection of ``protocol`` began (``closed`` when it ends)."""
        self.connected[protocol] += 1
        if protocol is not ClientProtocol.TERMINAL:
            self.other_protocols += 1

    def closed(self, protocol: ClientProtocol) -> None:
        self.connected[protocol] -= 1
        if protocol is not ClientProtocol.TERMINAL:
            self.other_protocols -= 1

    def admit(self, address: str | None) -> bool:
        """Whether a new connection from ``address`` may stay: within the
        connection limit and its address's (``addresses.release`` when it ends)."""
        if self.open_connections() >= self.limits.max_connections:
            self.counts.refuse(REFUSED_LIMIT)
            refused = self.counts.refused[REFUSED_LIMIT]
            if refused == 1 or refused % 1000 == 0:
                self.log(
                    f"refusing connections: {self.open_connections()} open, the limit is "
                    f"{self.limits.max_connections} ({refused} refused so far)",
                    event="connection_refused",
                    level=WARNING,
                    reason=REFUSED_LIMIT,
                    open=self.open_connections(),
                    limit=self.limits.max_connections,
                    refused=refused,
                )
            return False
        admitted, complaint = self.addresses.admit(
            address, trio.current_time(), self.gateway.connected_elsewhere
        )
        if not admitted:
            self.counts.refuse(REFUSED_PER_ADDRESS)
        if complaint is not None:
            self.log(
                complaint,
                event="connection_refused",
                level=WARNING,
                reason=REFUSED_PER_ADDRESS,
                address=address,
            )
        return admitted

    def open_connections(self) -> int:
        return len(self.sessions) + len(self.irc_clients)

    def console_line(self, line: str) -> None:
        if is_reload(line):
            # The server reads the files; what they say goes to the rules.
            self.reload(self.log_reload)
            return
        self.gateway.submit(ConsoleLine(line))

    def log_reload(self, text: str, failed: bool) -> None:
        """What a reload says, on the server's stderr."""
        self.log(text, event="reload", level=WARNING if failed else INFO)

    def reload(self, answer: ReloadAnswer) -> None:
        """Read the config (and TLS) files again (server/reload.py)."""
        if self.reloader is None:
            answer("/reload: this server cannot reload", True)
        elif self.hub.closed:
            answer("reload refused: the server is shutting down", True)
        else:
            self.reloader(answer)

    def console_command(self, line: str, answer: Answer) -> str:
        """A console line from a control connection (server/control.py): what
        the console would print for it goes to ``answer`` too, then its end
        (in a cluster, once this node's replica applies it). The name it is
        known by, for ``forget_answer`` if the connection goes first."""
        if is_reload(line):
            # The server answers a reload itself (its files are read here);
            # it is over before this returns, so there is nothing to forget.
            failures: list[bool] = []

            def told(text: str, failed: bool) -> None:
                self.log_reload(text, failed)
                answer.told(text, failed)
                failures.append(failed)

            self.reload(told)
            answer.ended(any(failures))
            return ""
        self._answers_asked += 1
        name = str(self._answers_asked)
        self.answers[name] = answer
        self.gateway.submit(ConsoleLine(line, answer_to=name))
        return name

    def forget_answer(self, name: str) -> None:
        """The control connection that asked for answer ``name`` is gone."""
        self.answers.pop(name, None)

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
                # Connections run in this nursery, each port's accept loop in
                # a scope of its own: a reload closes a port, not its members.
                self.ports = ChannelPorts(
                    nursery,
                    self.handle_connection,
                    self.backlog,
                    self.log,
                    self.listen_host,
                    self.reuse_port,
                )
                for channel, channel_listeners in listeners.items():
                    port = self.hub.channels[channel].config.port
                    self.ports.start(port, channel, channel_listeners)
                if handle_signals and early_signals.reload_requested():
                    # (Once the ports are served: a reload may move them.)
                    self.log("SIGHUP received during the start: reloading")
                    self.reload(self.log_reload)
                if console_fd is not None:
                    nursery.start_soon(self._read_console, console_fd)
                nursery.start_soon(self.transfers.expire_idle)
                for service in services:  # the web page, when asked for
                    nursery.start_soon(service)
                task_status.started()

    async def _read_console(self, fd: int) -> None:
        async for line in read_lines(fd, self.log):
            self.console_line(line)
        # EOF on the console (a closed pipe, /dev/null) never stops the server.

    async def _watch_signals(self, task_status: trio.TaskStatus[None]) -> None:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM, signal.SIGHUP) as signals:
            task_status.started()
            early = early_signals.requested()
            if early is not None:
                self._stop_on(early)
            async for signum in signals:
                if signum == signal.SIGHUP:
                    self.log("SIGHUP received: reloading")
                    self.reload(self.log_reload)
                else:
                    self._stop_on(signum)

    def _stop_on(self, signum: int) -> None:
        name = signal.Signals(signum).name
        self.log(f"{name} received: shutting down", event="shutdown", signal=name)
        self.stop()
