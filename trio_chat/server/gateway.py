"""How a connection's events reach the hub, and the hub's decisions come back.

Sessions and the file relay never call the hub directly: they hand events
(``events.py``) to a ``Gateway``. ``LocalGateway`` (one server process)
gives each to the hub at once and applies its effects before returning. The
cluster's gateway (``trio_chat.cluster.node.ClusterGateway``) appends them to
the shared log in Redis, and every node's replica hands them to its hub when
the log comes back, in the same order. Either way the rules live only in
``hub.py``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Protocol

import trio

from .. import wire
from ..effects import Effect
from ..events import Drop, Event
from ..hub import Hub, Member
from ..text import Stamp, wall_clock_stamp

if TYPE_CHECKING:
    from ..state import Connection


class Peer(Protocol):
    """One end of a file transfer as the relay sees it: a local session, or in
    a cluster a stand-in for a member connected to another node."""

    member: Member | None

    @property
    def name(self) -> str: ...

    @property
    def conn_ref(self) -> str | None: ...

    def push_line(self, frame: wire.Payload) -> None: ...
    def push_chunk(self, frame: wire.Payload) -> None: ...


class EffectsHost(Protocol):
    """Where a gateway's decided effects are carried out (the ChatServer)."""

    def apply(self, effects: Iterable[Effect], speaking: bool = True) -> None: ...


class Gateway(Protocol):
    hub: Hub

    def connect(self, conn: Connection) -> str:
        """A connection said hello: its reference for the events it causes."""

    def submit(self, event: Event) -> None:
        """Hand one event to the rules (at once, or through the cluster's log)."""

    def release(self, ref: str) -> None:
        """The connection behind ``ref`` ended: the rules hear of it (``Drop``)."""

    def peer(self, member: Member) -> Peer:
        """The relay's end for a member, wherever it is connected."""

    def local_deadline(self, when: float) -> float:
        """A deadline of the rules' clock on this process's trio clock."""

    def rules_now(self) -> float:
        """The rules' clock now (a cluster's is its Redis's), for a query
        that asks the rules' state what holds now (IRC's ban list)."""

    def connected_elsewhere(self, address: str) -> int:
        """Members from ``address`` (admission.address_key) on other nodes."""

    def foreign_transfer_frame(self, peer: Peer, ident: int, frame: wire.Frame) -> None:
        """A file frame for a transfer this process's relay does not run."""

    def log_room(self) -> trio.Event | None:
        """None while events reach the rules as they come; else too many wait
        for the cluster's log, and readers pause until this event is set."""


async def wait_for_log_room(gateway: Gateway) -> None:
    """Before a reader hands on its next event: while too many wait for the
    cluster's log, it waits (TCP then holds its peer back)."""
    room = gateway.log_room()
    while room is not None:
        await room.wait()
        room = gateway.log_room()


class LocalGateway:
    """The hub in this process: every event is decided and applied at once."""

    def __init__(self, host: EffectsHost, hub: Hub, stamp: Stamp = wall_clock_stamp) -> None:
        self.host = host
        self.hub = hub
        self.stamp = stamp
        self._connections: dict[str, Connection] = {}
        self._next_ref = 1
        hub.connection_for = self.connection

    def connection(self, ref: str) -> Connection:
        return self._connections[ref]

    def connect(self, conn: Connection) -> str:
        ref = str(self._next_ref)
        self._next_ref += 1
        self._connections[ref] = conn
        return ref

    def submit(self, event: Event) -> None:
        effects = self.hub.handle(event, trio.current_time(), self.stamp(), time.time())
        self.host.apply(effects)

    def release(self, ref: str) -> None:
        self.submit(Drop(ref))
        self._connections.pop(ref, None)

    def peer(self, member: Member) -> Peer:
        conn: Peer = member.conn  # type: ignore[assignment]  # a Session, here
        return conn

    def local_deadline(self, when: float) -> float:
        return when

    def rules_now(self) -> float:
        return trio.current_time()

    def connected_elsewhere(self, address: str) -> int:
        return 0  # there is no elsewhere

    def foreign_transfer_frame(self, peer: Peer, ident: int, frame: wire.Frame) -> None:
        """A stale file frame (the transfer is over; both sides were told): ignored."""

    def log_room(self) -> None:
        return None  # one process has no log to wait for
