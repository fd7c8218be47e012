"""One node of a cluster: its gateway to the shared log, and what holds it together.

Events from this node's connections become log entries (``ClusterGateway``,
the cluster's ``server.gateway.Gateway``); every entry of the log, from any
node, is applied to this node's replica of the hub in log order
(``replica.py``); file frames between nodes go through the nodes' data
streams (``routes.py``). The link to Redis (``link.py``) calls back here
(``LinkHost``) for what it reads and for what happens to the cluster.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import trio

from .. import events as ev
from .. import wire
from ..effects import Effect
from ..hub import Hub, Member
from ..server.flood import LineLedger
from ..server.gateway import Peer
from ..state import Connection
from . import codec, keys
from .replica import Replica
from .routes import FileRoutes, RemoteConn

if TYPE_CHECKING:
    from ..server.core import ChatServer
    from ..server.session import Session
    from .link import Link, LinkHost

# Entries waiting for Redis past which this node's readers pause.
BACKLOG_LIMIT = 5000
# A transfer's progress keeps its members from going AFK; logging it once a
# second is plenty for a timer of minutes.
PROGRESS_EVERY = 1.0


class ClusterGateway:
    def __init__(
        self,
        server: ChatServer,
        hub: Hub,
        number: int,
        link_for: Callable[[LinkHost], Link],
    ) -> None:
        """``link_for`` makes this node's link to Redis, calling back here."""
        self.server = server
        self.hub = hub
        self.number = number
        self.line_budgets: LineLedger | None = server.line_budgets
        # This node's connections past their hello, by connection number.
        self.local: dict[int, Session] = {}
        self._next_conn = 1
        self._progress_logged: dict[str, float] = {}
        self._seq = 0
        # This node's log entries, by sequence number, until it has applied
        # them: if Redis loses them, they are appended again (link.py).
        self.unconfirmed: dict[int, bytes] = {}
        self.leaving = False
        self._room = trio.Event()
        self.routes = FileRoutes(self, server.transfers, self.local, hub.members, server.log)
        self.replica = Replica(self, hub, self.routes)
        self.link = link_for(self)

    # ----- what the link reads and writes -----

    @property
    def applied_id(self) -> bytes:
        return self.replica.applied_id

    @property
    def members(self) -> dict[str, Member]:
        return self.hub.members

    @property
    def log_seq(self) -> dict[int, int]:
        return self.replica.log_seq

    @property
    def data_seq(self) -> dict[int, int]:
        return self.routes.data_seq

    def apply_log(self, entry_id: bytes, blob: bytes) -> None:
        self.replica.apply_log(entry_id, blob)

    def apply_data(self, header: bytes, frame: bytes) -> None:
        self.routes.apply_data(header, frame)

    def load(self, entry_id: bytes, blob: bytes) -> None:
        self.replica.load(entry_id, blob)

    def dump(self) -> bytes:
        return self.replica.dump()

    # ----- events from this node's connections -----

    def _append(self, event: codec.LogEvent) -> None:
        if self.leaving:
            return
        self._seq += 1
        blob = codec.encode(event, self.number, self._seq)
        self.unconfirmed[self._seq] = blob
        self.link.send(keys.LOG, {b"e": blob})

    def connect(self, conn: Connection) -> str:
        number = self._next_conn
        self._next_conn += 1
        session: Session = conn  # type: ignore[assignment]
        self.local[number] = session
        return keys.connection_ref(self.number, number)

    def submit(self, event: ev.Event) -> None:
        if isinstance(event, ev.AfkDue) and self.link.down_since is not None:
            return  # nobody could speak meanwhile; outage_over restarts the timer
        if isinstance(event, ev.TransferProgress):
            now = trio.current_time()
            if now - self._progress_logged.get(event.ref, -math.inf) < PROGRESS_EVERY:
                return
            self._progress_logged[event.ref] = now
        self._append(event)

    def release(self, ref: str) -> None:
        session = self.local.pop(keys.split_ref(ref)[1], None)
        if session is None:
            return  # dropped with the others when the node was taken for dead
        self.routes.session_ended(session)
        self._append(ev.Drop(ref))

    def peer(self, member: Member) -> Peer:
        return self.routes.peer(member)

    def local_deadline(self, when: float) -> float:
        if math.isinf(when):
            return when
        return trio.current_time() + (when - self.link.redis_now())

    def rules_now(self) -> float:
        return self.link.redis_now()

    def connected_elsewhere(self, address: str) -> int:
        return self.replica.connected_elsewhere(address)

    def foreign_transfer_frame(self, peer: Peer, ident: int, frame: wire.Frame) -> None:
        session: Session = peer  # type: ignore[assignment]  # a local receiver
        self.routes.foreign_frame(session, ident, frame)

    @property
    def log_backlogged(self) -> bool:
        return self.link.pending() > BACKLOG_LIMIT

    def log_room(self) -> trio.Event | None:
        return self._room if self.log_backlogged else None

    # ----- data frames to other nodes (routes.DataSender) -----

    def send_frame(self, node: int, header: dict[str, Any], frame: wire.Payload) -> None:
        self._seq += 1
        header["origin"] = self.number
        header["seq"] = self._seq
        self.link.send(keys.data(node), {b"h": json.dumps(header).encode(), b"f": bytes(frame)})

    # ----- the replica's host (replica.ReplicaHost) -----

    def apply(self, effects: Iterable[Effect], speaking: bool) -> None:
        self.server.apply(effects, speaking)

    def log(self, text: str) -> None:
        self.server.log(text)

    def stand_in(self, ref: str) -> Connection:
        owner, number = keys.split_ref(ref)
        if owner == self.number:
            session = self.local.get(number)
            if session is not None and not session.closing:
                return session
        return RemoteConn(ref, self._forget)

    def _forget(self, ref: str) -> None:
        member = self.hub.members.get(ref)
        if member is not None:
            self.replica.forget(ref, member)

    def confirmed(self, seq: int) -> None:
        while self.unconfirmed and next(iter(self.unconfirmed)) <= seq:
            del self.unconfirmed[next(iter(self.unconfirmed))]

    def lower_line_budget(self, ref: str, tokens: float) -> None:
        session = self.local.get(keys.split_ref(ref)[1])
        if session is not None:
            session.lower_line_budget(tokens)

    def forget_progress(self, ref: str) -> None:
        self._progress_logged.pop(ref, None)

    def node_gone(self, node: int) -> None:
        """The log says ``node`` went (replica.py has dropped its members)."""
        if node != self.number:
            # Nothing more goes to it (RemotePeer; the routes are gone): its
            # stream can go once what this node queued for it is written.
            # Every node does this, so whoever wrote to it last deletes it.
            self.link.delete(keys.data(node))
        elif not self.leaving:
            # Another node thought this one dead: its clients are not in the
            # chat any more, so they must not stay connected as if they were.
            self.server.log("this node was taken for dead (its lease lapsed): dropping its clients")
            self._drop_clients("this node was taken for dead by the cluster")

    # ----- what happens to the cluster (the link's calls) -----

    def announce_gone(self, node: int) -> None:
        """``node`` left the cluster (this one, when it stops): the log says so."""
        self._append(codec.NodeGone(node))
        if node == self.number:
            self.leaving = True

    def outage_over(self) -> None:
        """Redis is back: time without it does not count toward anyone's AFK timer."""
        refs = tuple(s.conn_ref for s in self.local.values() if s.member is not None and s.conn_ref)
        if refs:
            self._append(ev.Awake(refs))

    def room_again(self) -> None:
        """The link caught up: paused readers carry on."""
        self._room.set()
        self._room = trio.Event()

    def _drop_clients(self, why: str) -> None:
        for session in list(self.local.values()):
            # Its routes go even though the log is done with it.
            self.routes.session_ended(session)
            session.abort(why)
        self.local.clear()  # (so their drops are not logged: they left with the node)

    def fell_behind(self, reason: str) -> None:
        """The log was trimmed past what this node applied (see link.py): its
        replica can never catch up, so it stops; its clients go as when it is
        taken for dead, and it leaves the cluster as when it stops."""
        self.server.log(reason)
        self._drop_clients("this node was taken for dead by the cluster")
        self.server.stop()

    def cluster_lost(self, reason: str) -> None:
        """Redis no longer holds this node's cluster (see link.py): stop serving."""
        self.server.log(reason)
        self.leaving = True  # nothing more goes to a log that is not this cluster's
        self._drop_clients("the cluster's Redis lost its state")
        self.server.stop()
