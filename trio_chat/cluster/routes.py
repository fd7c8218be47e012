"""File frames between nodes: stand-ins for other nodes' members, and routes.

File chunks for a member on another node go through that node's data stream:
the sending node's relay does every check, with a stand-in (``RemotePeer``)
for the receiver; the receiving node passes chunks to its connection
(``Route``: which node relays the file) and sends the receiver's
acknowledgements back. Data entries carry a header, JSON: ``origin`` and ``seq``
(as log entries do), and one of ``to`` (a connection number on the reading
node: a frame for it), ``from`` (a receiver's reference: its answer for the
relay) or ``kill`` (a connection number to drop, with ``why``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from .. import wire
from ..hub import Member
from ..state import Cause, ClientProtocol
from ..wire import FrameType
from .keys import split_ref

if TYPE_CHECKING:
    from ..server.broadcast import Broadcast
    from ..server.gateway import Peer
    from ..server.session import Session
    from ..server.transfers import TransferRelay


@dataclass(frozen=True)
class Route:
    """A file that another node relays to one of this node's sessions."""

    node: int  # whose relay runs it
    sender: str  # the sender's name, as the relay announced it


class DataSender(Protocol):
    def send_frame(self, node: int, header: dict[str, Any], frame: wire.Payload) -> None: ...


class RemoteConn:
    """A member connected to another node: its node carries out the effects."""

    protocol = ClientProtocol.TERMINAL  # (whatever it is: nothing is sent from here)

    def __init__(self, ref: str, forget: Callable[[str], None]) -> None:
        self.conn_ref = ref
        self.owner, self.number = split_ref(ref)
        self.peer: RemotePeer | None = None
        self._forget = forget

    def push_line(self, frame: wire.Payload) -> None:
        pass

    def hold(self, broadcast: Broadcast) -> None:
        pass

    def reschedule(self) -> None:
        pass

    def joined(self, member: Member) -> None:
        pass

    def offer_decided(self, offer: int, target: Member | None) -> None:
        pass  # its own node answers it

    def finish(self, status: int, reason: str, cause: Cause) -> None:
        self._forget(self.conn_ref)

    def nick_decided(self, nick: str, accepted: bool, banned: str = "") -> None:
        pass  # its own node answers it

    def notice(self, text: str) -> None:
        pass

    def roster(self, names: Sequence[str]) -> None:
        pass


class RemotePeer:
    """The relay's view of a member on another node that receives a file."""

    def __init__(
        self, sender: DataSender, relay: TransferRelay, conn: RemoteConn, member: Member
    ) -> None:
        self._sender = sender
        self._relay = relay
        self.conn = conn
        self.conn_ref = conn.conn_ref
        self.member: Member | None = member

    @property
    def name(self) -> str:
        return self.member.name if self.member is not None else "?"

    def push_line(self, frame: wire.Payload) -> None:
        if self.member is not None:  # (it left the chat: nothing more goes to it)
            self._sender.send_frame(self.conn.owner, {"to": self.conn.number}, frame)

    def push_chunk(self, frame: wire.Payload) -> None:
        if self.member is None:
            return
        self._sender.send_frame(self.conn.owner, {"to": self.conn.number}, frame)
        # Handed on: as far as this node can know, delivered.
        self._relay.delivered(self, frame)


class FileRoutes:
    """This node's half of every file that crosses nodes."""

    def __init__(
        self,
        sender: DataSender,
        relay: TransferRelay,
        local: dict[int, Session],
        members: dict[str, Member],
        log: Callable[[str], None],
    ) -> None:
        self._sender = sender
        self._relay = relay
        self._local = local  # this node's sessions by connection number
        self._members = members  # the hub's, by reference
        self._log = log
        # Files other nodes relay to this node's sessions.
        self.routes: dict[tuple[Session, int], Route] = {}
        # The last sequence number applied from each node's data entries.
        self.data_seq: dict[int, int] = {}
        # Nodes that went: what is still on its way from them is ignored
        # (until a member joins from one again: taken for dead, it lived on).
        self.gone_nodes: set[int] = set()

    def peer(self, member: Member) -> Peer:
        conn = member.conn
        if isinstance(conn, RemoteConn):
            if conn.peer is None:
                conn.peer = RemotePeer(self._sender, self._relay, conn, member)
            return conn.peer
        session: Session = conn  # type: ignore[assignment]
        return session

    def session_ended(self, session: Session) -> None:
        # Its routes go even when the log is done with it (taken for dead).
        for route in [r for r in self.routes if r[0] is session]:
            del self.routes[route]

    def member_left(self, member: Member) -> None:
        """A member on another node left the hub: the relay calls off its files."""
        conn = member.conn
        if isinstance(conn, RemoteConn) and conn.peer is not None:
            conn.peer.member = None  # first: the relay sends its node nothing more
            self._relay.connection_closed(conn.peer)

    def node_gone(self, gone: int) -> None:
        """Files ``gone`` relayed to this node's sessions are called off, as
        when a sender hangs up."""
        self.gone_nodes.add(gone)
        for (session, ident), route in list(self.routes.items()):
            if route.node == gone:
                del self.routes[(session, ident)]
                self._relay.relay_gone(session, ident, route.sender)

    def foreign_frame(self, session: Session, ident: int, frame: wire.Frame) -> None:
        """A receiver's frame for a file another node relays: back it goes."""
        frame_type, _, raw = frame
        route = self.routes.get((session, ident))
        if route is None:
            return  # over already; both sides were told
        if frame_type == FrameType.FILE_RESULT:
            del self.routes[(session, ident)]
        self._sender.send_frame(route.node, {"from": session.conn_ref}, raw)

    def apply_data(self, header_blob: bytes, frame: bytes) -> None:
        try:
            header = json.loads(header_blob)
            origin = int(header["origin"])
            seq = int(header["seq"])
        except (ValueError, KeyError, TypeError):
            self._log("skipping a malformed data entry")
            return
        if seq <= self.data_seq.get(origin, 0) or origin in self.gone_nodes:
            return
        self.data_seq[origin] = seq
        if "to" in header:
            self._to_local(origin, int(header["to"]), frame)
        elif "from" in header:
            self._from_receiver(str(header["from"]), frame)
        elif "kill" in header:
            session = self._local.get(int(header["kill"]))
            if session is not None:
                session.abort(str(header.get("why", "dropped by the cluster")))

    def _to_local(self, origin: int, number: int, frame: bytes) -> None:
        session = self._local.get(number)
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
        if frame_type == FrameType.FILE_DATA:
            session.push_chunk(frame)
        else:
            session.push_line(frame)

    def _from_receiver(self, ref: str, raw: bytes) -> None:
        member = self._members.get(ref)
        if member is None or member.channel is None:
            return  # it left the chat: the relay called its files off
        peer = self.peer(member)
        decoder = wire.FrameDecoder()
        try:
            for frame in decoder.feed(raw):
                self._relay.handle(peer, frame)
        except wire.ProtocolError as error:
            conn = member.conn
            if isinstance(conn, RemoteConn):
                self._sender.send_frame(conn.owner, {"kill": conn.number, "why": str(error)}, b"")
