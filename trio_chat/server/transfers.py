"""Relay /send files from sender to receiver, chunk by chunk, never awaiting.

The server holds no file: each chunk the sender sends goes straight into the
receiver's outbox, between chat lines. Flow control is end to end: the sender
keeps at most ``wire.SEND_WINDOW`` bytes unacknowledged, and the receiver
acknowledges what it has written to disk, so no process buffers more than a
window per transfer and nobody's chat waits behind a file.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import trio

from .. import wire
from ..wire import FrameType, ProtocolError, SendState

if TYPE_CHECKING:
    from .core import ChatServer
    from .session import Session


@dataclass(eq=False)
class Transfer:
    ident: int  # the server's id, used with the receiver
    sender: Session
    ref: int  # the sender's own id for it
    receiver: Session
    target_name: str
    path: str  # as the sender typed it, for the success lines
    size: int
    relayed: int = 0
    acked: int = 0
    ended: bool = False


def _send_state(ref: int, state: SendState, detail: str | bytes = "") -> bytes:
    """To the sender: GO carries the transfer id, the others a reason."""
    body = detail.encode() if isinstance(detail, str) else detail
    return wire.encode_with_id(FrameType.SEND_STATE, ref, bytes((state,)) + body)


class TransferRelay:
    def __init__(self, server: ChatServer, max_file_size: int) -> None:
        self.server = server
        self.max_file_size = max_file_size
        self._by_id: dict[int, Transfer] = {}
        self._by_sender: dict[tuple[Session, int], Transfer] = {}
        self._next_id = 1

    def handle(self, session: Session, frame: wire.Frame) -> None:
        """One file frame from ``session``; ProtocolError drops that connection.

        Sender and receiver both use the server's transfer id, so data, end and
        acknowledgement frames are relayed as they arrived, without a copy.
        """
        frame_type, payload, raw = frame
        if frame_type == FrameType.SEND_OFFER:
            self._offer(session, payload)
            return
        ident, body = wire.split_id(payload)
        transfer = self._by_id.get(ident)
        if transfer is None:
            return  # already over (a side left, say); both sides were told
        if frame_type == FrameType.FILE_ACK:
            if transfer.receiver is session:
                transfer.acked = max(transfer.acked, wire.decode_ack(payload)[1])
                transfer.sender.push(raw)
            return
        if frame_type == FrameType.FILE_RESULT:
            if transfer.receiver is session:
                self._result(transfer, body)
            return
        if transfer.sender is not session:
            raise ProtocolError(f"frame type {frame_type} for someone else's transfer")
        if frame_type == FrameType.FILE_DATA:
            transfer.relayed += len(body)
            if transfer.ended or transfer.relayed > transfer.size:
                raise ProtocolError("more file data than the offer announced")
            if transfer.relayed - transfer.acked > wire.SEND_WINDOW:
                raise ProtocolError("file data beyond the flow-control window")
            transfer.receiver.push(raw)
        elif frame_type == FrameType.FILE_END:
            if transfer.ended or transfer.relayed != transfer.size or len(body) != 4:
                raise ProtocolError("FILE_END does not match the offer")
            transfer.ended = True
            transfer.receiver.push(raw)
        elif frame_type == FrameType.FILE_ABORT:
            self._forget(transfer)
            transfer.receiver.push(raw)
        else:
            raise ProtocolError(f"unexpected frame type {frame_type}")

    def _offer(self, session: Session, payload: wire.Payload) -> None:
        member = session.member
        assert member is not None
        fields = wire.decode_json(payload)
        ref = wire.field(fields, "ref", int)
        target_name = wire.field(fields, "target", str)
        path = wire.field(fields, "path", str)
        name = wire.field(fields, "name", str)
        size = wire.field(fields, "size", int)
        readable = wire.field(fields, "readable", bool)
        if not 0 <= ref < 2**32 or size < 0 or (session, ref) in self._by_sender:
            raise ProtocolError("malformed SEND_OFFER")
        target, effects = self.server.hub.offer_file(
            member, target_name, path, readable, trio.current_time()
        )
        self.server.apply(effects)
        if target is None:
            session.push(_send_state(ref, SendState.REFUSED))
            return
        if size > self.max_file_size:
            session.push(
                _send_state(
                    ref,
                    SendState.REFUSED,
                    f"{path} is {size} bytes; the server accepts files of at most "
                    f"{self.max_file_size} bytes",
                )
            )
            return
        transfer = Transfer(self._next_id, session, ref, target.conn, target_name, path, size)
        self._next_id = (self._next_id + 1) % 2**32 or 1
        self._by_id[transfer.ident] = transfer
        self._by_sender[(session, ref)] = transfer
        transfer.receiver.push(
            wire.encode_json(
                FrameType.FILE_INCOMING,
                {"id": transfer.ident, "sender": member.name, "name": name, "size": size},
            )
        )
        session.push(_send_state(ref, SendState.GO, wire.ID.pack(transfer.ident)))

    def _result(self, transfer: Transfer, body: memoryview) -> None:
        if not body:
            raise ProtocolError("empty FILE_RESULT")
        saved, detail = body[0] == 1, wire.decode_text(body[1:])
        if saved and not transfer.ended:
            raise ProtocolError("FILE_RESULT before FILE_END")
        self._forget(transfer)
        sender = transfer.sender
        if saved and sender.member is not None:
            self.server.apply(
                self.server.hub.file_delivered(sender.member, transfer.target_name, transfer.path)
            )
            sender.push(_send_state(transfer.ref, SendState.DONE))
        else:
            sender.push(
                _send_state(
                    transfer.ref,
                    SendState.ABORTED,
                    f"{transfer.target_name} could not save {transfer.path}: {detail}",
                )
            )

    def _forget(self, transfer: Transfer) -> None:
        self._by_id.pop(transfer.ident, None)
        self._by_sender.pop((transfer.sender, transfer.ref), None)

    def connection_closed(self, session: Session) -> None:
        """Call off every transfer ``session`` sends or receives."""
        for transfer in [t for t in self._by_id.values() if session in (t.sender, t.receiver)]:
            self._forget(transfer)
            if transfer.sender is session:
                transfer.receiver.push(
                    wire.encode_with_id(
                        FrameType.FILE_ABORT,
                        transfer.ident,
                        f"{transfer.sender.name} went away before the whole file arrived".encode(),
                    )
                )
            else:
                transfer.sender.push(
                    _send_state(
                        transfer.ref,
                        SendState.ABORTED,
                        f"{transfer.target_name} went away before the whole file arrived",
                    )
                )

    def active(self) -> int:
        return len(self._by_id)
