"""One node of a cluster: its gateway to the shared log and its replica of the hub.

Events from this node's connections become log entries (``ClusterRules``,
the cluster's ``Rules``); every entry of the log, from any node, is applied
to this node's hub in log order with the time Redis gave it (``apply_log``).
The hub's effects are carried out by ``ChatServer.apply``: a member on another
node has a stand-in (``RemoteConn``) that ignores them, and only the node
where the event began prints its lines.

File chunks for a member on another node go through that node's data stream:
the sending node's relay does every check, with a stand-in (``RemotePeer``)
for the receiver; the receiving node passes chunks to its connection and
sends the receiver's acknowledgements back.

When a node goes (it left, or it is taken for dead), every file to or from
its members is called off on every node at once (``_on_gone``): the relays
call off the files to its members as when a receiver hangs up; each node
calls off, for its own receivers, the files the gone node relayed, as when
a sender hangs up; and the log's record of which members exchange files
(``pairs``) ends, on every node alike, the transfers of the other ends, so
their AFK timers count again. Then each node deletes the gone node's data
stream, after whatever it had queued for it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import trio

from .. import wire
from ..commands import parse_client_line, parse_console_line
from ..hub import Effect, Hub, Member, Reschedule
from ..server.admission import address_key, budget_keys
from ..server.flood import LineLedger, TokenBucket
from ..server.rules import OfferDecided, Peer
from ..server.session import Session
from ..text import stamp_at
from ..wire import FrameType
from . import keys, snapshot

if TYPE_CHECKING:
    from ..server.broadcast import Broadcast
    from ..server.core import ChatServer
    from .link import Link

FILE_DATA = int(FrameType.FILE_DATA)
# Entries waiting for Redis past which this node's readers pause.
BACKLOG_LIMIT = 5000
# A transfer's progress keeps its members from going AFK; logging it once a
# second is plenty for a timer of minutes.
PROGRESS_EVERY = 1.0


def node_of(ref: str) -> int:
    """The node of a connection reference "NODE.NUMBER"."""
    return int(ref.split(".", 1)[0])


@dataclass(frozen=True)
class Route:
    """A file that another node relays to one of this node's sessions."""

    node: int  # whose relay runs it
    sender: str  # the sender's name, as the relay announced it


def entry_time(entry_id: bytes) -> float:
    """Redis stream ids begin with the milliseconds of Redis's clock."""
    return int(entry_id.split(b"-", 1)[0]) / 1000


class RemoteConn:
    """A member connected to another node: its node carries out the effects."""

    def __init__(self, node: ClusterRules, ref: str) -> None:
        self.node = node
        self.conn_ref = ref
        owner, number = ref.split(".")
        self.owner = int(owner)
        self.number = int(number)
        self.peer: RemotePeer | None = None

    def push_line(self, frame: wire.Payload) -> None:
        pass

    def hold(self, broadcast: Broadcast) -> None:
        pass

    def reschedule(self) -> None:
        pass

    def finish(self, status: int, reason: str) -> None:
        self.node.forget(self.conn_ref)


class RemotePeer:
    """The relay's view of a member on another node that receives a file."""

    def __init__(self, node: ClusterRules, conn: RemoteConn, member: Member) -> None:
        self.node = node
        self.conn = conn
        self.conn_ref = conn.conn_ref
        self.member: Member | None = member

    @property
    def name(self) -> str:
        return self.member.name if self.member is not None else "?"

    def push_line(self, frame: wire.Payload) -> None:
        if self.member is None:
            return  # it left the chat (perhaps with its node): nothing more goes to it
        self.node.send_frame(self.conn.owner, {"c": self.conn.number}, frame)

    def push_chunk(self, frame: wire.Payload) -> None:
        if self.member is None:
            return
        self.node.send_frame(self.conn.owner, {"c": self.conn.number}, frame)
        # Handed on: as far as this node can know, delivered.
        self.node.server.transfers.delivered(self, frame)


class ClusterRules:
    def __init__(self, server: ChatServer, hub: Hub, node: int, link: Link) -> None:
        self.server = server
        self.hub = hub
        self.node = node
        self.link = link
        # Everyone in the hub, by connection reference "NODE.NUMBER".
        self.members: dict[str, Member] = {}
        self.local: dict[int, Session] = {}
        self._next_conn = 1
        self._offers: dict[int, tuple[Session, OfferDecided]] = {}
        self._next_offer = 1
        # Files other nodes relay to this node's sessions.
        self.routes: dict[tuple[Session, int], Route] = {}
        # (sender, receiver) references -> the files between them, from the
        # log's "xs" and "xe": every node keeps the same, with the hub.
        self.pairs: dict[tuple[str, str], int] = {}
        # Nodes that went: what is still on its way from them is ignored
        # (until a member joins from one again: taken for dead, it lived on).
        self.gone_nodes: set[int] = set()
        self._progress_logged: dict[str, float] = {}
        self._seq = 0
        # The last sequence number applied from each node, per stream: a batch
        # retried after a lost connection may reach Redis twice.
        self.log_seq: dict[int, int] = {}
        self.data_seq: dict[int, int] = {}
        # This node's log entries, by sequence number, until it has applied
        # them: if Redis loses them, they are appended again (link.py).
        self.unconfirmed: dict[int, bytes] = {}
        self.applied_id = b"0-0"
        self.leaving = False
        self._room = trio.Event()
        # Every member's line budget as the log sees it (in log time), so that
        # a member who reconnects through another node, or someone from the
        # same address or with the same name, starts from what was spent
        # through any node (flood.LineLedger; README, "Flood control").
        local_budgets = server.line_budgets
        self._budgets = (
            LineLedger(local_budgets.burst, local_budgets.rate)
            if local_budgets is not None
            else None
        )
        self._budget_of: dict[str, tuple[tuple[str, ...], TokenBucket]] = {}
        self._log_now = 0.0  # the time of the entry being applied
        # Other nodes' members by address (admission.address_key), for the
        # per-address limit: it is the cluster's, not each node's.
        self._address_of: dict[str, str] = {}
        self._elsewhere: dict[str, int] = {}

    # ----- events from this node's connections -----

    def _log(self, kind: str, **fields: Any) -> None:
        if self.leaving:
            return
        self._seq += 1
        fields["k"] = kind
        fields["n"] = self.node
        fields["q"] = self._seq
        blob = json.dumps(fields).encode()
        self.unconfirmed[self._seq] = blob
        self.link.send(keys.LOG, {b"e": blob})

    def send_frame(self, node: int, header: dict[str, Any], frame: wire.Payload) -> None:
        self._seq += 1
        header["n"] = self.node
        header["q"] = self._seq
        self.link.send(keys.data(node), {b"h": json.dumps(header).encode(), b"f": bytes(frame)})

    def node_gone(self, node: int) -> None:
        """``node`` left the cluster (this one, when it stops)."""
        self._log("gone", g=node)
        if node == self.node:
            self.leaving = True

    def join(self, session: Session, username: str) -> None:
        number = self._next_conn
        self._next_conn += 1
        session.conn_ref = f"{self.node}.{number}"
        self.local[number] = session
        self._log("join", c=session.conn_ref, ch=session.channel, u=username, a=session.address)

    def input(self, session: Session, line: str) -> None:
        self._log("in", c=session.conn_ref, l=line)

    def drop(self, session: Session) -> None:
        if not session.greeted or session.conn_ref is None:
            return
        number = int(session.conn_ref.split(".")[1])
        # Its routes go even when the log is done with it (taken for dead).
        for route in [r for r in self.routes if r[0] is session]:
            del self.routes[route]
        if self.local.pop(number, None) is None:
            return
        self._log("drop", c=session.conn_ref)

    def afk_due(self, session: Session) -> None:
        if self.link.down_since is not None:
            return  # nobody could speak meanwhile; outage_over restarts the timer
        self._log("afk", c=session.conn_ref)

    def outage_over(self) -> None:
        """Redis is back: time without it does not count toward anyone's AFK timer."""
        refs = [s.conn_ref for s in self.local.values() if s.member is not None]
        if refs:
            self._log("awake", c=refs)

    def flooded(self, session: Session, reason: str) -> None:
        self._log("flood", c=session.conn_ref, r=reason)

    def console(self, line: str) -> None:
        self._log("con", l=line)

    def offer(
        self, session: Session, target: str, path: str, readable: bool, decided: OfferDecided
    ) -> None:
        number = self._next_offer
        self._next_offer += 1
        self._offers[number] = (session, decided)
        self._log("offer", c=session.conn_ref, t=target, p=path, r=readable, o=number)

    def peer(self, member: Member) -> Peer:
        conn = member.conn
        if isinstance(conn, RemoteConn):
            if conn.peer is None:
                conn.peer = RemotePeer(self, conn, member)
            return conn.peer
        session: Session = conn
        return session

    def transfer_started(self, sender: Peer, receiver: Peer) -> None:
        self._log("xs", c=[_ref(sender), _ref(receiver)])

    def transfer_ended(self, sender: Peer, receiver: Peer) -> None:
        self._log("xe", c=[_ref(sender), _ref(receiver)])

    def transfer_progress(self, side: Peer) -> None:
        ref = _ref(side)
        now = trio.current_time()
        if now - self._progress_logged.get(ref, -math.inf) >= PROGRESS_EVERY:
            self._progress_logged[ref] = now
            self._log("xp", c=ref)

    def file_delivered(self, sender: Peer, target_name: str, path: str) -> None:
        self._log("xd", c=_ref(sender), t=target_name, p=path)

    def connected_elsewhere(self, address: str) -> int:
        return self._elsewhere.get(address, 0)

    def local_deadline(self, when: float) -> float:
        if math.isinf(when):
            return when
        return trio.current_time() + (when - self.link.redis_now())

    def foreign_transfer_frame(self, session: Session, ident: int, frame: wire.Frame) -> None:
        frame_type, _, raw = frame
        route = self.routes.get((session, ident))
        if route is None:
            return  # over already; both sides were told
        if frame_type == FrameType.FILE_RESULT:
            del self.routes[(session, ident)]
        self.send_frame(route.node, {"r": session.conn_ref}, raw)

    @property
    def backlogged(self) -> bool:
        return self.link.pending() > BACKLOG_LIMIT

    async def wait_for_room(self) -> None:
        while self.backlogged:
            await self._room.wait()

    def room_again(self) -> None:
        """The link caught up: paused readers carry on."""
        self._room.set()
        self._room = trio.Event()

    # ----- the shared log, applied in order -----

    def stand_in(self, ref: str) -> Any:
        owner, number = ref.split(".")
        if int(owner) == self.node:
            session = self.local.get(int(number))
            if session is not None and not session.closing:
                return session
        return RemoteConn(self, ref)

    def load(self, entry_id: bytes, blob: bytes) -> None:
        """Start from a snapshot taken after ``entry_id``."""
        state = json.loads(blob)
        self.members = snapshot.restore(self.hub, state["hub"].encode(), self.stand_in)
        self.log_seq = {int(k): v for k, v in state["seq"].items()}
        self.pairs = {(str(s), str(r)): int(n) for s, r, n in state["pairs"]}
        self.applied_id = entry_id

    def dump(self) -> bytes:
        return json.dumps(
            {
                "hub": snapshot.dump(self.hub).decode(),
                "seq": self.log_seq,
                "pairs": [[s, r, n] for (s, r), n in self.pairs.items()],
            }
        ).encode()

    def apply_log(self, entry_id: bytes, blob: bytes) -> None:
        self.applied_id = entry_id
        try:
            event = json.loads(blob)
            origin = int(event["n"])
            seq = int(event["q"])
        except (ValueError, KeyError, TypeError):
            self.server.log(f"skipping a malformed log entry {entry_id!r}")
            return
        if seq <= self.log_seq.get(origin, 0):
            return  # a retried batch reached Redis twice
        self.log_seq[origin] = seq
        if origin == self.node:
            while self.unconfirmed and next(iter(self.unconfirmed)) <= seq:
                del self.unconfirmed[next(iter(self.unconfirmed))]
        now = entry_time(entry_id)
        self._log_now = now
        stamp = stamp_at(now)
        self.hub.stamp = lambda: stamp
        handler = getattr(self, "_on_" + str(event.get("k")), None)
        if handler is None:
            self.server.log(f"skipping a log entry of unknown kind {event.get('k')!r}")
            return
        try:
            handler(event, now, origin == self.node)
        except (KeyError, ValueError, TypeError) as error:
            # Written by a node, so trusted; still, one bad entry must not stop this one.
            self.server.log(f"skipping a log entry {entry_id!r} this node cannot read: {error!r}")

    def _effects(self, effects: list[Effect], speaking: bool) -> None:
        self.server.apply(effects, speaking)

    def _on_join(self, event: dict[str, Any], now: float, here: bool) -> None:
        ref = str(event["c"])
        self.gone_nodes.discard(node_of(ref))
        conn = self.stand_in(ref)
        member, effects = self.hub.join(str(event["ch"]), str(event["u"]), now, conn=conn)
        if member is not None:
            self.members[ref] = member
            if isinstance(conn, Session):
                conn.joined(member)
            address = event.get("a")
            if address is not None and not here:
                key = self._address_of[ref] = address_key(str(address))
                self._elsewhere[key] = self._elsewhere.get(key, 0) + 1
            if self._budgets is not None:
                keys = budget_keys(str(event["u"]), None if address is None else str(address))
                bucket = self._budgets.open(keys, now)
                self._budget_of[ref] = (keys, bucket)
                if isinstance(conn, Session):
                    conn.lower_line_budget(bucket.level(now))
        self._effects(effects, here)

    def _spend_line(self, ref: str, now: float) -> None:
        """A line of ``ref``'s, in the log's budget (its own node held it back
        already, so there is a token unless clocks disagree a little)."""
        budget = self._budget_of.get(ref)
        if budget is not None:
            budget[1].take(now)
        # Another node's member: the members from its address here share
        # what is left of the address's budget.
        address = self._address_of.get(ref)
        local = self.server.line_budgets
        if address is not None and local is not None:
            local.charge_address(address, trio.current_time())

    def _on_in(self, event: dict[str, Any], now: float, here: bool) -> None:
        self._spend_line(str(event["c"]), now)
        member = self.members.get(str(event["c"]))
        command = parse_client_line(str(event["l"]))
        if member is not None and command is not None:
            self._effects(self.hub.input(member, command, now), here)

    def _on_drop(self, event: dict[str, Any], now: float, here: bool) -> None:
        ref = str(event["c"])
        member = self.members.get(ref)
        if member is not None:
            effects = self.hub.drop(member, now)
            self.forget(ref)
            self._effects(effects, here)

    def _on_afk(self, event: dict[str, Any], now: float, here: bool) -> None:
        member = self.members.get(str(event["c"]))
        if member is not None:
            self._effects(self.hub.afk_due(member, now), here)

    def _on_flood(self, event: dict[str, Any], now: float, here: bool) -> None:
        member = self.members.get(str(event["c"]))
        if member is not None:
            self._effects(self.hub.flooded(member, now, str(event["r"])), here)

    def _on_con(self, event: dict[str, Any], now: float, here: bool) -> None:
        command = parse_console_line(str(event["l"]))
        if command is not None:
            self._effects(self.hub.console(command, now), here)

    def _on_offer(self, event: dict[str, Any], now: float, here: bool) -> None:
        self._spend_line(str(event["c"]), now)
        member = self.members.get(str(event["c"]))
        target = None
        if member is not None:
            target, effects = self.hub.offer_file(
                member, str(event["t"]), str(event["p"]), bool(event["r"]), now
            )
            self._effects(effects, here)
        if here:
            pending = self._offers.pop(int(event["o"]), None)
            if pending is not None:
                pending[1](target)

    def _on_xs(self, event: dict[str, Any], now: float, here: bool) -> None:
        sender, receiver = (str(ref) for ref in event["c"])
        ends = [m for m in (self.members.get(sender), self.members.get(receiver)) if m is not None]
        if len(ends) < 2:
            # One end left first: its relay calls the file off, and that
            # "xe" finds nothing counted either.
            return
        pair = (sender, receiver)
        self.pairs[pair] = self.pairs.get(pair, 0) + 1
        for member in ends:
            self._effects(self.hub.transfer_started(member), here)

    def _on_xe(self, event: dict[str, Any], now: float, here: bool) -> None:
        sender, receiver = (str(ref) for ref in event["c"])
        pair = (sender, receiver)
        count = self.pairs.get(pair, 0)
        if count == 0:
            return  # not counted, or ended already when a node went
        if count > 1:
            self.pairs[pair] = count - 1
        else:
            del self.pairs[pair]
        self._end_transfer(pair, 1, here)

    def _end_transfer(self, pair: tuple[str, str], count: int, here: bool) -> None:
        for ref in pair:
            member = self.members.get(ref)
            if member is not None:
                for _ in range(count):
                    self._effects(self.hub.transfer_ended(member), here)

    def _on_xp(self, event: dict[str, Any], now: float, here: bool) -> None:
        member = self.members.get(str(event["c"]))
        if member is not None:
            self._effects(self.hub.not_idle(member, now), here)

    def _on_awake(self, event: dict[str, Any], now: float, here: bool) -> None:
        for ref in event["c"]:
            member = self.members.get(str(ref))
            if member is not None:
                # Muted: the timer stays frozen, but it must be set again.
                effects = self.hub.not_idle(member, now) or [Reschedule(member)]
                self._effects(effects, here)

    def _on_xd(self, event: dict[str, Any], now: float, here: bool) -> None:
        member = self.members.get(str(event["c"]))
        if member is not None:
            self._effects(self.hub.file_delivered(member, str(event["t"]), str(event["p"])), here)

    def _on_gone(self, event: dict[str, Any], now: float, here: bool) -> None:
        """A node left (or its lease lapsed): its members go, as if each hung
        up, and with them every file to or from them, wherever the other end is."""
        gone = int(event["g"])
        self.gone_nodes.add(gone)
        for pair in [p for p in self.pairs if gone in (node_of(p[0]), node_of(p[1]))]:
            self._end_transfer(pair, self.pairs.pop(pair), here)
        for (session, ident), route in list(self.routes.items()):
            if route.node == gone:
                del self.routes[(session, ident)]
                self.server.transfers.relay_gone(session, ident, route.sender)
        for ref in [r for r in self.members if node_of(r) == gone]:
            member = self.members[ref]
            if member.channel is not None:
                self._effects(self.hub.drop(member, now), here)
            self.forget(ref)
        if gone != self.node:
            # Nothing more goes to it (RemotePeer.push_line; the routes are gone):
            # its stream can go once what this node queued for it is written.
            # Every node does this, so whoever wrote to it last deletes it.
            self.link.delete(keys.data(gone))
        if gone == self.node and not self.leaving:
            # Another node thought this one dead: its clients are not in the
            # chat any more, so they must not stay connected as if they were.
            self.server.log("this node was taken for dead (its lease lapsed): dropping its clients")
            self._drop_clients()

    def _drop_clients(self) -> None:
        for session in list(self.local.values()):
            session.abort("this node was taken for dead by the cluster")
        self.local.clear()  # (so their drops are not logged: they left with the node)

    def fell_behind(self, reason: str) -> None:
        """The log was trimmed past what this node applied (see link.py): its
        replica can never catch up, so it stops; its clients go as when it is
        taken for dead, and it leaves the cluster as when it stops."""
        self.server.log(reason)
        self._drop_clients()
        self.server.stop()

    def cluster_lost(self, reason: str) -> None:
        """Redis no longer holds this node's cluster (see link.py): stop serving."""
        self.server.log(reason)
        self.leaving = True  # nothing more goes to a log that is not this cluster's
        for session in list(self.local.values()):
            session.abort("the cluster's Redis lost its state")
        self.local.clear()
        self.server.stop()

    def forget(self, ref: str) -> None:
        """The member behind ``ref`` left the hub: call off its files."""
        member = self.members.pop(ref, None)
        self._progress_logged.pop(ref, None)
        budget = self._budget_of.pop(ref, None)
        if budget is not None and self._budgets is not None:
            self._budgets.close(*budget, self._log_now)
        address = self._address_of.pop(ref, None)
        if address is not None:
            left = self._elsewhere[address] - 1
            if left:
                self._elsewhere[address] = left
            else:
                del self._elsewhere[address]
        if member is not None and isinstance(member.conn, RemoteConn):
            peer = member.conn.peer
            if peer is not None:
                peer.member = None  # first: the relay sends its node nothing more
                self.server.transfers.connection_closed(peer)

    # ----- frames from other nodes -----

    def apply_data(self, header_blob: bytes, frame: bytes) -> None:
        try:
            header = json.loads(header_blob)
            origin = int(header["n"])
            seq = int(header["q"])
        except (ValueError, KeyError, TypeError):
            self.server.log("skipping a malformed data entry")
            return
        if seq <= self.data_seq.get(origin, 0) or origin in self.gone_nodes:
            return
        self.data_seq[origin] = seq
        if "c" in header:
            self._to_local(origin, int(header["c"]), frame)
        elif "r" in header:
            self._from_receiver(str(header["r"]), frame)
        elif "kill" in header:
            session = self.local.get(int(header["kill"]))
            if session is not None:
                session.abort(str(header.get("why", "dropped by the cluster")))

    def _to_local(self, origin: int, number: int, frame: bytes) -> None:
        session = self.local.get(number)
        if session is None or session.closing:
            return  # gone; the sending node learns it from the log
        frame_type = frame[4]
        if frame_type in (FrameType.FILE_INCOMING, FrameType.FILE_ABORT):
            try:
                if frame_type == FrameType.FILE_INCOMING:
                    fields = wire.decode_json(memoryview(frame)[wire.HEADER.size :])
                    ident = wire.field(fields, "id", int)
                    sender = wire.field(fields, "sender", str)
                    self.routes[(session, ident)] = Route(origin, sender)
                else:
                    ident = wire.ID.unpack_from(frame, wire.HEADER.size)[0]
                    self.routes.pop((session, ident), None)
            except (wire.ProtocolError, ValueError, KeyError):
                return
        (session.push_chunk if frame_type == FILE_DATA else session.push_line)(frame)

    def _from_receiver(self, ref: str, raw: bytes) -> None:
        member = self.members.get(ref)
        if member is None:
            return
        peer = self.peer(member)
        decoder = wire.FrameDecoder()
        try:
            for frame in decoder.feed(raw):
                self.server.transfers.handle(peer, frame)
        except wire.ProtocolError as error:
            conn = member.conn
            if isinstance(conn, RemoteConn):
                self.send_frame(conn.owner, {"kill": conn.number, "why": str(error)}, b"")


def _ref(peer: Peer) -> str:
    return peer.conn_ref or "?"
