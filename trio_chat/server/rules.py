"""How a connection's events reach the hub, and the hub's decisions come back.

Sessions and the file relay never call the hub directly: they call a
``Rules`` gateway. ``LocalRules`` (one server process) calls the hub at once
and applies its effects before returning. The cluster's gateway
(``trio_chat.cluster.node``) appends the same events to the shared log in
Redis and applies them when the log comes back, on every node in the same
order. Either way the rules themselves live only in ``hub.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

import trio

from .. import wire
from ..commands import parse_client_line, parse_console_line
from ..hub import Hub, Member

if TYPE_CHECKING:
    from .core import ChatServer
    from .session import Session


class Peer(Protocol):
    """One end of a file transfer as the relay sees it: a local session, or in
    a cluster a stand-in for a member connected to another node."""

    member: Member | None

    @property
    def name(self) -> str: ...

    @property
    def conn_ref(self) -> str | None: ...  # "NODE.NUMBER" in a cluster

    def push_line(self, frame: wire.Payload) -> None: ...
    def push_chunk(self, frame: wire.Payload) -> None: ...  # FILE_DATA only


OfferDecided = Callable[[Member | None], None]


class Rules(Protocol):
    hub: Hub

    def join(self, session: Session, username: str) -> None: ...
    def input(self, session: Session, line: str) -> None: ...
    def drop(self, session: Session) -> None: ...
    def afk_due(self, session: Session) -> None: ...
    def flooded(self, session: Session, reason: str) -> None: ...
    def console(self, line: str) -> None: ...
    def offer(
        self, session: Session, target: str, path: str, readable: bool, decided: OfferDecided
    ) -> None: ...
    def peer(self, member: Member) -> Peer: ...
    def transfer_started(self, sender: Peer, receiver: Peer) -> None: ...
    def transfer_ended(self, sender: Peer, receiver: Peer) -> None: ...
    def transfer_progress(self, side: Peer) -> None: ...
    def file_delivered(self, sender: Peer, target_name: str, path: str) -> None: ...
    def local_deadline(self, when: float) -> float: ...
    def foreign_transfer_frame(self, session: Session, ident: int, frame: wire.Frame) -> None: ...
    def connected_elsewhere(self, address: str) -> int: ...  # other nodes' members from it

    @property
    def backlogged(self) -> bool: ...  # events wait to reach the cluster's log: readers pause

    async def wait_for_room(self) -> None: ...


class LocalRules:
    """The hub in this process: every call decides and applies at once."""

    def __init__(self, server: ChatServer, hub: Hub) -> None:
        self.server = server
        self.hub = hub

    def join(self, session: Session, username: str) -> None:
        member, effects = self.hub.join(
            session.channel, username, trio.current_time(), conn=session
        )
        if member is not None:
            session.joined(member)
        self.server.apply(effects)

    def input(self, session: Session, line: str) -> None:
        command = parse_client_line(line)
        if command is not None and session.member is not None:
            self.server.apply(self.hub.input(session.member, command, trio.current_time()))

    def drop(self, session: Session) -> None:
        member = session.member
        if member is not None and member.channel is not None:
            self.server.apply(self.hub.drop(member, trio.current_time()))

    def afk_due(self, session: Session) -> None:
        if session.member is not None:
            self.server.apply(self.hub.afk_due(session.member, trio.current_time()))

    def flooded(self, session: Session, reason: str) -> None:
        if session.member is not None:
            self.server.apply(self.hub.flooded(session.member, trio.current_time(), reason))

    def console(self, line: str) -> None:
        command = parse_console_line(line)
        if command is not None:
            self.server.apply(self.hub.console(command, trio.current_time()))

    def offer(
        self, session: Session, target: str, path: str, readable: bool, decided: OfferDecided
    ) -> None:
        if session.member is None:
            decided(None)
            return
        found, effects = self.hub.offer_file(
            session.member, target, path, readable, trio.current_time()
        )
        self.server.apply(effects)
        decided(found)

    def peer(self, member: Member) -> Peer:
        session: Session = member.conn
        return session

    def transfer_started(self, sender: Peer, receiver: Peer) -> None:
        for side in (sender, receiver):
            if side.member is not None:
                self.server.apply(self.hub.transfer_started(side.member))

    def transfer_ended(self, sender: Peer, receiver: Peer) -> None:
        for side in (sender, receiver):
            if side.member is not None:
                self.server.apply(self.hub.transfer_ended(side.member))

    def transfer_progress(self, side: Peer) -> None:
        if side.member is not None:
            self.server.apply(self.hub.not_idle(side.member, trio.current_time()))

    def file_delivered(self, sender: Peer, target_name: str, path: str) -> None:
        if sender.member is not None:
            self.server.apply(self.hub.file_delivered(sender.member, target_name, path))

    def local_deadline(self, when: float) -> float:
        return when

    def connected_elsewhere(self, address: str) -> int:
        return 0  # there is no elsewhere

    def foreign_transfer_frame(self, session: Session, ident: int, frame: wire.Frame) -> None:
        """A file frame for a transfer this process does not relay: a stale
        one (the transfer is over; both sides were told), so it is ignored."""

    backlogged = False

    async def wait_for_room(self) -> None:
        """Never called: one process has no backlog of its own."""
