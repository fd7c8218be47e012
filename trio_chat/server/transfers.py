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

Those rules live in ``transfer_rules`` (no I/O, time passed in); this module
reads the frames and the clock, and carries out what the rules decide.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import trio

from .. import events, wire
from ..hub import Member
from ..sanitize import clean
from ..wire import FrameType, ProtocolError, SendState
from .transfer_rules import (
    CallOff,
    Drop,
    ReceiverFailed,
    Refused,
    Relay,
    SenderFailed,
    TransferLimits,
    TransferTable,
    Verdict,
    went_away,
)

if TYPE_CHECKING:
    from .gateway import Gateway, Peer
    from .session import Session
    from .transfer_rules import Transfer as AnyTransfer

    # What the relay's table holds: local senders; receivers here or, in a
    # cluster, on another node.
    Transfer = AnyTransfer[Session, Peer]


def _send_state(ref: int, state: SendState, detail: str | bytes = "") -> bytes:
    """To the sender: GO carries the transfer id, the others a reason."""
    body = detail.encode() if isinstance(detail, str) else detail
    return wire.encode_with_id(FrameType.SEND_STATE, ref, bytes((state,)) + body)


def _abort(ident: int, reason: str) -> bytes:
    """To the receiver: the transfer ``ident`` is over, and why."""
    return wire.encode_with_id(FrameType.FILE_ABORT, ident, reason.encode())


def _ref(peer: Session | Peer) -> str:
    return peer.conn_ref or "?"


def _reason(body: wire.Payload) -> str:
    """A peer's free-text reason, checked and cleaned before anyone sees it."""
    return clean(wire.decode_text(body[: wire.MAX_LINE_BYTES]))


class RelayHost(Protocol):
    """What the relay uses of its server (core.ChatServer): the gateway of
    the moment (a cluster node puts its own in place after start)."""

    @property
    def gateway(self) -> Gateway: ...


class TransferRelay:
    def __init__(
        self,
        server: RelayHost,
        max_file_size: int,
        *,
        max_incoming: int,
        max_outgoing: int,
        max_between_two: int,
        idle_timeout: float,
    ) -> None:
        # The values come from the server's Limits, where their defaults live.
        self.server = server
        limits = TransferLimits(
            max_file_size=max_file_size,
            max_incoming=max_incoming,
            max_outgoing=max_outgoing,
            max_between_two=max_between_two,
            idle_timeout=idle_timeout,
            window=wire.SEND_WINDOW,
        )
        # Every transfer under way (table.running) and the rules they follow.
        self.table: TransferTable[Session, Peer] = TransferTable(limits)
        # File bytes relayed from senders to receivers (--metrics).
        self.bytes_relayed = 0
        # Offers the rules have not answered yet: target, path, file name, size.
        self._offers: dict[tuple[Session, int], tuple[str, str, str, int]] = {}

    @property
    def id_base(self) -> int:
        """Set by a cluster node: its number in the top byte of every id it gives out."""
        return self.table.id_base

    @id_base.setter
    def id_base(self, base: int) -> None:
        self.table.id_base = base

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
        table = self.table
        transfer = table.running.get(ident)
        if transfer is None:
            # Relayed by another node, or already over (a side left, say).
            from .session import Session

            if isinstance(session, Session):
                self.server.gateway.foreign_transfer_frame(session, ident, frame)
            return
        misplaced = table.wrong_side(transfer, session, frame_type)
        if misplaced is not None:
            raise ProtocolError(misplaced.why)
        if frame_type == FrameType.FILE_ACK:
            _, total = wire.decode_ack(payload)
            self._carry_out(transfer, table.ack(transfer, total, trio.current_time()))
            self._progress(transfer.receiver)
            transfer.sender.push_line(raw)
        elif frame_type == FrameType.FILE_RESULT:
            self._result(transfer, body)
        elif frame_type == FrameType.FILE_DATA:
            self.bytes_relayed += len(body)
            self._carry_out(transfer, table.data(transfer, len(body), trio.current_time()))
            self._progress(transfer.sender)
            transfer.receiver.push_chunk(raw)
        elif frame_type == FrameType.FILE_END:
            self._carry_out(transfer, table.end(transfer, len(body)))
            transfer.receiver.push_line(raw)
        elif frame_type == FrameType.FILE_ABORT:
            reason = _reason(body)
            self._forget(transfer)
            transfer.receiver.push_line(_abort(transfer.ident, reason))
        else:
            raise ProtocolError(f"unexpected frame type {frame_type}")

    def _carry_out(self, transfer: Transfer, verdict: Verdict) -> None:
        """Returns if the frame is to be relayed; otherwise ends the transfer as
        the rules decided, tells the other side, and drops the culprit."""
        if isinstance(verdict, Relay):
            return
        if isinstance(verdict, SenderFailed):
            self._forget(transfer)
            transfer.receiver.push_line(
                _abort(transfer.ident, f"the sender's client failed: {verdict.why}")
            )
        elif isinstance(verdict, ReceiverFailed):
            self._forget(transfer)
            transfer.sender.push_line(
                _send_state(
                    transfer.ref,
                    SendState.ABORTED,
                    f"{transfer.target_name}'s client broke the protocol ({verdict.why}); "
                    f"{transfer.path} was not delivered",
                )
            )
        raise ProtocolError(verdict.why)

    def _offer(self, session: Session, payload: wire.Payload) -> None:
        fields = wire.decode_json(payload)
        ref = wire.field(fields, "ref", int)
        target_name = clean(wire.field(fields, "target", str))
        path = clean(wire.field(fields, "path", str))
        name = clean(wire.field(fields, "name", str))
        size = wire.field(fields, "size", int)
        readable = wire.field(fields, "readable", bool)
        longest = max(len(target_name), len(path), len(name))
        malformed = self.table.take_offer(session, ref, size, longest)
        if malformed is not None:
            raise ProtocolError(malformed.why)

        self._offers[(session, ref)] = (target_name, path, name, size)
        assert session.conn_ref is not None  # (it said hello: file frames come after)
        self.server.gateway.submit(events.Offer(session.conn_ref, target_name, path, readable, ref))

    def offer_decided(self, session: Session, ref: int, target: Member | None) -> None:
        """The rules answered the offer ``ref`` of ``session`` (effects.OfferDecided)."""
        offer = self._offers.pop((session, ref), None)
        if offer is None:
            return
        self.table.answered(session, ref)
        if not session.closing:
            self._start(session, ref, target, *offer)

    def _progress(self, side: Session | Peer) -> None:
        self.server.gateway.submit(events.TransferProgress(_ref(side)))

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
        receiver = self.server.gateway.peer(target)
        started = self.table.start(
            session, ref, receiver, target_name, path, size, trio.current_time()
        )
        if isinstance(started, Refused):
            session.push_line(_send_state(ref, SendState.REFUSED, started.reason))
            return
        self.server.gateway.submit(events.TransferStarted(_ref(session), _ref(receiver)))
        receiver.push_line(
            wire.encode_json(
                FrameType.FILE_INCOMING,
                {"id": started.ident, "sender": session.name, "name": name, "size": size},
            )
        )
        session.push_line(_send_state(ref, SendState.GO, wire.ID.pack(started.ident)))

    def _result(self, transfer: Transfer, body: memoryview) -> None:
        if not body:
            raise ProtocolError("empty FILE_RESULT")
        detail = _reason(body[1:])
        finished = self.table.result(transfer, saved=body[0] == 1)
        if isinstance(finished, Drop):
            raise ProtocolError(finished.why)
        self._forget(transfer)
        sender = transfer.sender
        if finished.saved and sender.member is not None:
            self.server.gateway.submit(
                events.FileDelivered(_ref(sender), transfer.target_name, transfer.path)
            )
            sender.push_line(_send_state(transfer.ref, SendState.DONE))
        else:
            sender.push_line(
                _send_state(
                    transfer.ref,
                    SendState.ABORTED,
                    f"{transfer.target_name} could not save {transfer.path}: {detail}",
                )
            )

    def delivered(self, session: Session | Peer, frame: wire.Payload) -> None:
        """``session``'s writer has put this FILE_DATA frame on its socket."""
        ident = wire.ID.unpack_from(frame, wire.HEADER.size)[0]
        self.table.delivered(session, ident, len(frame) - wire.BODY_AFTER_ID)

    def _forget(self, transfer: Transfer) -> None:
        if self.table.forget(transfer):
            self.server.gateway.submit(
                events.TransferEnded(_ref(transfer.sender), _ref(transfer.receiver))
            )

    def _call_off(self, call_off: CallOff[Session, Peer]) -> None:
        transfer = call_off.transfer
        self._forget(transfer)
        transfer.receiver.push_line(_abort(transfer.ident, call_off.to_receiver))
        transfer.sender.push_line(_send_state(transfer.ref, SendState.ABORTED, call_off.to_sender))

    def connection_closed(self, session: Session | Peer) -> None:
        """Call off every transfer ``session`` sends or receives."""
        for offer in [o for o in self._offers if o[0] is session]:
            del self._offers[offer]
            self.table.answered(*offer)
        for call_off in self.table.gone(session):
            self._call_off(call_off)

    def relay_gone(self, receiver: Session, ident: int, sender_name: str) -> None:
        """The node that relayed the file ``ident`` to ``receiver`` is gone, and
        its sender with it (cluster): the receiver is told just as when a
        sender hangs up (``connection_closed``)."""
        receiver.push_line(_abort(ident, went_away(sender_name)))

    async def expire_idle(self) -> None:
        """Call off transfers that move no byte for ``idle_timeout`` seconds."""
        limits = self.table.limits
        while True:
            await trio.sleep(limits.idle_check_interval)
            for call_off in self.table.overdue(trio.current_time()):
                self._call_off(call_off)
