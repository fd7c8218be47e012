"""Relay /send files from sender to receiver, chunk by chunk, never awaiting.

The server holds no file: each chunk the sender sends goes straight into the
receiver's outbox, between chat lines. Flow control is end to end: the sender
keeps at most ``wire.SEND_WINDOW`` bytes unacknowledged, and the receiver
acknowledges what it has written to disk, so no process buffers more than a
window per transfer and nobody's chat waits behind a file.

Nothing a peer claims is taken on trust (docs/protocol.md, "What the server
checks"): data may not run past the offer or the window, and an
acknowledgement may not exceed what the server has actually written to that
receiver's socket, so a receiver cannot open the window by acknowledging data
it never had. A receiver takes at most ``max_incoming`` files at once, a sender
sends at most ``max_outgoing``, and at most ``max_between_two`` go from one
sender to one receiver, so one sender cannot take all of someone's places;
a transfer that moves no byte for
``idle_timeout`` seconds is called off.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

import trio

from .. import wire
from ..hub import Member
from ..sanitize import clean
from ..wire import FrameType, ProtocolError, SendState

if TYPE_CHECKING:
    from .core import ChatServer
    from .rules import Peer
    from .session import Session


Key = TypeVar("Key")
# Transfer ids count within the low 24 bits.
ID_SPAN = 2**24 - 1


@dataclass(eq=False)
class Transfer:
    ident: int  # the server's id, used with the receiver
    sender: Session
    ref: int  # the sender's own id for it
    receiver: Peer  # in a cluster, perhaps a member on another node
    target_name: str
    path: str  # as the sender typed it (cleaned), for the success lines
    size: int
    last_progress: float
    relayed: int = 0  # data bytes taken from the sender
    delivered: int = 0  # data bytes written to the receiver's socket
    acked: int = 0  # data bytes the receiver says it has written to disk
    ended: bool = False


def _send_state(ref: int, state: SendState, detail: str | bytes = "") -> bytes:
    """To the sender: GO carries the transfer id, the others a reason."""
    body = detail.encode() if isinstance(detail, str) else detail
    return wire.encode_with_id(FrameType.SEND_STATE, ref, bytes((state,)) + body)


def went_away(name: str) -> str:
    """Why a file broke off when ``name``, one end of it, left: hung up, was
    removed, or (in a cluster) its node went."""
    return f"{name} went away before the whole file arrived"


def _abort(ident: int, reason: str) -> bytes:
    """To the receiver: the transfer ``ident`` is over, and why."""
    return wire.encode_with_id(FrameType.FILE_ABORT, ident, reason.encode())


def _decrement(counts: dict[Key, int], key: Key) -> None:
    left = counts.get(key, 0) - 1
    if left > 0:
        counts[key] = left
    else:
        counts.pop(key, None)


def _reason(body: wire.Payload) -> str:
    """A peer's free-text reason, checked and cleaned before anyone sees it."""
    return clean(wire.decode_text(body[: wire.MAX_LINE_BYTES]))


class TransferRelay:
    def __init__(
        self,
        server: ChatServer,
        max_file_size: int,
        *,
        max_incoming: int,
        max_outgoing: int,
        max_between_two: int,
        idle_timeout: float,
    ) -> None:
        # The values come from the server's Limits, where their defaults live.
        self.server = server
        self.max_file_size = max_file_size
        self.max_incoming = max_incoming
        self.max_outgoing = max_outgoing
        self.max_between_two = max_between_two
        self.idle_timeout = idle_timeout
        self._by_id: dict[int, Transfer] = {}
        self._by_sender: dict[tuple[Session, int], Transfer] = {}
        self._outgoing: dict[Session, int] = {}  # transfers each session sends
        self._incoming: dict[Peer, int] = {}  # transfers each peer receives
        self._between: dict[tuple[Session, Peer], int] = {}  # by (sender, receiver)
        self._deciding: set[tuple[Session, int]] = set()  # offers the rules have not answered
        self._next_id = 1
        self.id_base = 0

    def handle(self, session: Session | Peer, frame: wire.Frame) -> None:
        """One file frame from ``session``; ProtocolError drops that connection.

        Sender and receiver both use the server's transfer id, so data, end and
        acknowledgement frames are relayed as they arrived, without a copy.
        """
        frame_type, payload, raw = frame
        if frame_type == FrameType.SEND_OFFER:
            from .session import Session

            if not isinstance(session, Session):
                raise ProtocolError("an offer from another node's member")
            self._offer(session, payload)
            return
        ident, body = wire.split_id(payload)
        transfer = self._by_id.get(ident)
        if transfer is None:
            # Relayed by another node, or already over (a side left, say).
            from .session import Session

            if isinstance(session, Session):
                self.server.rules.foreign_transfer_frame(session, ident, frame)
            return
        if frame_type in (FrameType.FILE_ACK, FrameType.FILE_RESULT):
            if transfer.receiver is not session:
                raise ProtocolError(f"frame type {frame_type} for someone else's transfer")
            if frame_type == FrameType.FILE_ACK:
                self._ack(transfer, payload, raw)
            else:
                self._result(transfer, body)
            return
        if transfer.sender is not session:
            raise ProtocolError(f"frame type {frame_type} for someone else's transfer")
        if frame_type == FrameType.FILE_DATA:
            transfer.relayed += len(body)
            if transfer.ended or transfer.relayed > transfer.size:
                self._fail_sender(transfer, "more file data than the offer announced")
            if transfer.relayed - transfer.acked > wire.SEND_WINDOW:
                self._fail_sender(transfer, "file data beyond the flow-control window")
            self._progress(transfer, transfer.sender)
            transfer.receiver.push_chunk(raw)
        elif frame_type == FrameType.FILE_END:
            if transfer.ended or transfer.relayed != transfer.size or len(body) != 4:
                self._fail_sender(transfer, "FILE_END does not match the offer")
            transfer.ended = True
            transfer.receiver.push_line(raw)
        elif frame_type == FrameType.FILE_ABORT:
            reason = _reason(body)
            self._forget(transfer)
            transfer.receiver.push_line(_abort(transfer.ident, reason))
        else:
            raise ProtocolError(f"unexpected frame type {frame_type}")

    def _offer(self, session: Session, payload: wire.Payload) -> None:
        fields = wire.decode_json(payload)
        ref = wire.field(fields, "ref", int)
        target_name = clean(wire.field(fields, "target", str))
        path = clean(wire.field(fields, "path", str))
        name = clean(wire.field(fields, "name", str))
        size = wire.field(fields, "size", int)
        readable = wire.field(fields, "readable", bool)
        if (
            not 0 <= ref < 2**32
            or size < 0
            or (session, ref) in self._by_sender
            or (session, ref) in self._deciding
            or max(len(target_name), len(path), len(name)) > wire.MAX_LINE_BYTES
        ):
            raise ProtocolError("malformed SEND_OFFER")
        self._deciding.add((session, ref))

        def decided(target: Member | None) -> None:
            self._deciding.discard((session, ref))
            if not session.closing:
                self._start(session, ref, target, target_name, path, name, size)

        self.server.rules.offer(session, target_name, path, readable, decided)

    def _start(
        self,
        session: Session,
        ref: int,
        target: Member | None,
        target_name: str,
        path: str,
        name: str,
        size: int,
    ) -> None:
        """The rules answered the offer: refuse it, or let the file move."""
        if target is None:
            session.push_line(_send_state(ref, SendState.REFUSED))
            return
        receiver = self.server.rules.peer(target)
        refusal = self._refusal(session, receiver, target_name, path, size)
        if refusal:
            session.push_line(_send_state(ref, SendState.REFUSED, refusal))
            return
        now = trio.current_time()
        transfer = Transfer(self._new_id(), session, ref, receiver, target_name, path, size, now)
        self._by_id[transfer.ident] = transfer
        self._by_sender[(session, ref)] = transfer
        self._outgoing[session] = self._outgoing.get(session, 0) + 1
        self._incoming[receiver] = self._incoming.get(receiver, 0) + 1
        pair = (session, receiver)
        self._between[pair] = self._between.get(pair, 0) + 1
        self.server.rules.transfer_started(session, receiver)
        receiver.push_line(
            wire.encode_json(
                FrameType.FILE_INCOMING,
                {"id": transfer.ident, "sender": session.name, "name": name, "size": size},
            )
        )
        session.push_line(_send_state(ref, SendState.GO, wire.ID.pack(transfer.ident)))

    def _new_id(self) -> int:
        """A transfer id no running transfer has; in a cluster, the node's
        number in the top byte keeps ids from two nodes apart at one receiver."""
        while True:
            ident = self.id_base | self._next_id
            self._next_id = self._next_id % ID_SPAN + 1
            if ident not in self._by_id:
                return ident

    def _refusal(
        self, sender: Session, receiver: Peer, target_name: str, path: str, size: int
    ) -> str:
        """Why this offer cannot start now, or "" if it can."""
        if size > self.max_file_size:
            return (
                f"{path} is {size} bytes; the server accepts files of at most "
                f"{self.max_file_size} bytes"
            )
        if self._outgoing.get(sender, 0) >= self.max_outgoing:
            return f"you are already sending {self.max_outgoing} files; wait for one to finish"
        if self._between.get((sender, receiver), 0) >= self.max_between_two:
            return (
                f"you are already sending {self.max_between_two} files to {target_name}; "
                "wait for one to finish"
            )
        if self._incoming.get(receiver, 0) >= self.max_incoming:
            return f"{target_name} is already receiving {self.max_incoming} files; try again later"
        return ""

    def _ack(self, transfer: Transfer, payload: wire.Payload, raw: wire.Payload) -> None:
        _, total = wire.decode_ack(payload)
        if total < transfer.acked or total > transfer.delivered:
            self._fail_receiver(
                transfer,
                f"acknowledged {total} bytes of which only {transfer.delivered} were sent to it",
            )
        transfer.acked = total
        self._progress(transfer, transfer.receiver)
        transfer.sender.push_line(raw)

    def _result(self, transfer: Transfer, body: memoryview) -> None:
        if not body:
            raise ProtocolError("empty FILE_RESULT")
        saved, detail = body[0] == 1, _reason(body[1:])
        if saved and not transfer.ended:
            raise ProtocolError("FILE_RESULT before FILE_END")
        self._forget(transfer)
        sender = transfer.sender
        if saved and sender.member is not None:
            self.server.rules.file_delivered(sender, transfer.target_name, transfer.path)
            sender.push_line(_send_state(transfer.ref, SendState.DONE))
        else:
            sender.push_line(
                _send_state(
                    transfer.ref,
                    SendState.ABORTED,
                    f"{transfer.target_name} could not save {transfer.path}: {detail}",
                )
            )

    def _progress(self, transfer: Transfer, side: Peer) -> None:
        transfer.last_progress = trio.current_time()
        self.server.rules.transfer_progress(side)

    def _fail_sender(self, transfer: Transfer, why: str) -> None:
        """The sender broke the protocol: the receiver is told, the sender dropped."""
        self._forget(transfer)
        transfer.receiver.push_line(_abort(transfer.ident, f"the sender's client failed: {why}"))
        raise ProtocolError(why)

    def _fail_receiver(self, transfer: Transfer, why: str) -> None:
        """The receiver broke the protocol: the sender is told, the receiver dropped."""
        self._forget(transfer)
        transfer.sender.push_line(
            _send_state(
                transfer.ref,
                SendState.ABORTED,
                f"{transfer.target_name}'s client broke the protocol ({why}); "
                f"{transfer.path} was not delivered",
            )
        )
        raise ProtocolError(why)

    def delivered(self, session: Session | Peer, frame: wire.Payload) -> None:
        """``session``'s writer has put this FILE_DATA frame on its socket."""
        ident = wire.ID.unpack_from(frame, wire.HEADER.size)[0]
        transfer = self._by_id.get(ident)
        if transfer is not None and transfer.receiver is session:
            transfer.delivered += len(frame) - wire.HEADER.size - wire.ID.size

    def _forget(self, transfer: Transfer) -> None:
        if self._by_id.pop(transfer.ident, None) is None:
            return
        self._by_sender.pop((transfer.sender, transfer.ref), None)
        _decrement(self._outgoing, transfer.sender)
        _decrement(self._incoming, transfer.receiver)
        _decrement(self._between, (transfer.sender, transfer.receiver))
        self.server.rules.transfer_ended(transfer.sender, transfer.receiver)

    def _call_off(self, transfer: Transfer, to_receiver: str, to_sender: str) -> None:
        self._forget(transfer)
        transfer.receiver.push_line(_abort(transfer.ident, to_receiver))
        transfer.sender.push_line(_send_state(transfer.ref, SendState.ABORTED, to_sender))

    def connection_closed(self, session: Session | Peer) -> None:
        """Call off every transfer ``session`` sends or receives."""
        if session not in self._outgoing and session not in self._incoming:
            return
        for transfer in [t for t in self._by_id.values() if session in (t.sender, t.receiver)]:
            self._call_off(
                transfer, went_away(transfer.sender.name), went_away(transfer.target_name)
            )

    def relay_gone(self, receiver: Session, ident: int, sender_name: str) -> None:
        """The node that relayed the file ``ident`` to ``receiver`` is gone, and
        its sender with it (cluster): the receiver is told just as when a
        sender hangs up (``connection_closed``)."""
        receiver.push_line(_abort(ident, went_away(sender_name)))

    async def expire_idle(self) -> None:
        """Call off transfers that move no byte for ``idle_timeout`` seconds."""
        while True:
            await trio.sleep(self.idle_timeout / 4)
            now = trio.current_time()
            for transfer in list(self._by_id.values()):
                if now - transfer.last_progress >= self.idle_timeout:
                    reason = f"no progress for {self.idle_timeout:g} s"
                    self._call_off(transfer, reason, f"{transfer.path} not delivered: {reason}")

    def active(self) -> int:
        return len(self._by_id)
