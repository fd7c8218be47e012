"""The rules of the /send relay, without I/O: what the server knows of each
transfer, and what it decides when a frame comes or time passes.

``TransferTable`` holds every running transfer and the counts the offer
limits need. Its methods check what a peer sends against what the server
itself knows (docs/protocol.md, "What the server checks") and return the
decision as a value; the trio shell (``transfers.TransferRelay``) encodes
the frames, reads the clock and carries the decisions out. The time is
always a parameter here, so every rule can be tested without a clock.

The ends of a transfer are whatever the shell uses for them (a session; in a
cluster, a stand-in for another node's member): this module compares them by
identity and reads only their ``name``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from .. import wire
from ..wire import FrameType

# Transfer ids count within the low 24 bits; the top byte is the node's (id_base).
ID_SPAN = 2**24 - 1
# Frames only the receiver of a transfer may send; the sender sends the others.
RECEIVER_FRAMES = frozenset({FrameType.FILE_ACK, FrameType.FILE_RESULT})
# FILE_END's CRC-32 (wire.Checksum packs it as it packs an id).
CHECKSUM_SIZE = wire.ID.size


class Endpoint(Protocol):
    """One end of a transfer: the table needs only its name, for the reasons it gives."""

    @property
    def name(self) -> str: ...


SenderT = TypeVar("SenderT", bound=Endpoint)
ReceiverT = TypeVar("ReceiverT", bound=Endpoint)
Key = TypeVar("Key")


@dataclass(frozen=True)
class TransferLimits:
    """The relay's limits; their defaults live in the server's Limits."""

    max_file_size: int
    max_incoming: int  # files one member receives at once
    max_outgoing: int  # files one member sends at once
    max_between_two: int  # files one sender sends one receiver at once
    idle_timeout: float  # seconds without a byte moving before a transfer is called off
    window: int  # data bytes a sender may have sent and not had acknowledged

    @property
    def idle_check_interval(self) -> float:
        """How often the shell asks what is overdue: a stalled transfer is
        called off between ``idle_timeout`` and 1.25 times that after its
        last byte moved, without a timer per transfer."""
        return self.idle_timeout / 4

    @property
    def idle_reason(self) -> str:
        return f"no progress for {self.idle_timeout:g} s"


@dataclass(eq=False)
class Transfer(Generic[SenderT, ReceiverT]):
    ident: int  # the server's id, used with the receiver
    sender: SenderT
    ref: int  # the sender's own id for it
    receiver: ReceiverT
    target_name: str
    path: str  # as the sender typed it (cleaned), for the success lines
    size: int
    last_progress: float  # when a byte last moved (or the transfer started)
    relayed: int = 0  # data bytes taken from the sender
    delivered: int = 0  # data bytes written to the receiver's socket
    acked: int = 0  # data bytes the receiver says it has written to disk
    ended: bool = False  # FILE_END has been relayed


# ----- decisions -----


@dataclass(frozen=True)
class Relay:
    """The frame is in order: pass it on to the other side."""


RELAY = Relay()


@dataclass(frozen=True)
class Drop:
    """The connection that sent the frame broke the protocol: drop it. Nobody
    is told now; its transfers are called off as it closes."""

    why: str


@dataclass(frozen=True)
class SenderFailed:
    """The sender broke the protocol: the transfer is over, the receiver is
    told, the sender dropped."""

    why: str


@dataclass(frozen=True)
class ReceiverFailed:
    """The receiver broke the protocol: the transfer is over, the sender is
    told, the receiver dropped."""

    why: str


# What a data, end or acknowledgement frame comes to.
Verdict = Relay | SenderFailed | ReceiverFailed


@dataclass(frozen=True)
class Refused:
    """An offer the rules let through that cannot start now, and why (for the sender)."""

    reason: str


@dataclass(frozen=True)
class Finished:
    """The receiver's result came and the transfer is over: saved, or not."""

    saved: bool


@dataclass(frozen=True)
class CallOff(Generic[SenderT, ReceiverT]):
    """A transfer to end without either side's say, and what each is told."""

    transfer: Transfer[SenderT, ReceiverT]
    to_receiver: str
    to_sender: str


def went_away(name: str) -> str:
    """Why a file broke off when ``name``, one end of it, left: hung up, was
    removed, or (in a cluster) its node went."""
    return f"{name} went away before the whole file arrived"


def _decrement(counts: dict[Key, int], key: Key) -> None:
    left = counts.get(key, 0) - 1
    if left > 0:
        counts[key] = left
    else:
        counts.pop(key, None)


class TransferTable(Generic[SenderT, ReceiverT]):
    def __init__(self, limits: TransferLimits) -> None:
        self.limits = limits
        self._running: dict[int, Transfer[SenderT, ReceiverT]] = {}
        self._by_sender: dict[tuple[SenderT, int], Transfer[SenderT, ReceiverT]] = {}
        self._outgoing: dict[SenderT, int] = {}  # transfers each sender sends
        self._incoming: dict[ReceiverT, int] = {}  # transfers each receiver receives
        self._between: dict[tuple[SenderT, ReceiverT], int] = {}
        self._deciding: set[tuple[SenderT, int]] = set()  # offers the rules have not answered
        self._next_id = 1
        # In a cluster, the node's number in the top byte keeps ids from two
        # nodes apart at one receiver.
        self.id_base = 0

    @property
    def running(self) -> Mapping[int, Transfer[SenderT, ReceiverT]]:
        """The transfers under way, by the server's id."""
        return self._running

    # ----- offers -----

    def take_offer(self, sender: SenderT, ref: int, size: int, longest_text: int) -> Drop | None:
        """A SEND_OFFER, before the rules answer it: malformed, or now waiting
        for their answer (``answered``). ``longest_text`` is the length of its
        longest text field (target, path, name)."""
        if (
            not 0 <= ref < 2**32
            or size < 0
            or (sender, ref) in self._by_sender
            or (sender, ref) in self._deciding
            or longest_text > wire.MAX_LINE_BYTES
        ):
            return Drop("malformed SEND_OFFER")
        self._deciding.add((sender, ref))
        return None

    def answered(self, sender: SenderT, ref: int) -> None:
        """The rules answered the offer ``ref``: the sender may use the ref again
        once that transfer (if it starts) is over."""
        self._deciding.discard((sender, ref))

    def start(
        self,
        sender: SenderT,
        ref: int,
        receiver: ReceiverT,
        target_name: str,
        path: str,
        size: int,
        now: float,
    ) -> Transfer[SenderT, ReceiverT] | Refused:
        """The rules let the offer through: it starts now, or is refused."""
        refusal = self._refusal(sender, receiver, target_name, path, size)
        if refusal:
            return Refused(refusal)
        transfer = Transfer(self._new_id(), sender, ref, receiver, target_name, path, size, now)
        self._running[transfer.ident] = transfer
        self._by_sender[(sender, ref)] = transfer
        self._outgoing[sender] = self._outgoing.get(sender, 0) + 1
        self._incoming[receiver] = self._incoming.get(receiver, 0) + 1
        pair = (sender, receiver)
        self._between[pair] = self._between.get(pair, 0) + 1
        return transfer

    def _refusal(
        self, sender: SenderT, receiver: ReceiverT, target_name: str, path: str, size: int
    ) -> str:
        """Why this offer cannot start now, or "" if it can."""
        limits = self.limits
        if size > limits.max_file_size:
            return (
                f"{path} is {size} bytes; the server accepts files of at most "
                f"{limits.max_file_size} bytes"
            )
        if self._outgoing.get(sender, 0) >= limits.max_outgoing:
            return f"you are already sending {limits.max_outgoing} files; wait for one to finish"
        if self._between.get((sender, receiver), 0) >= limits.max_between_two:
            return (
                f"you are already sending {limits.max_between_two} files to {target_name}; "
                "wait for one to finish"
            )
        if self._incoming.get(receiver, 0) >= limits.max_incoming:
            return (
                f"{target_name} is already receiving {limits.max_incoming} files; try again later"
            )
        return ""

    def _new_id(self) -> int:
        """A transfer id no running transfer has."""
        while True:
            ident = self.id_base | self._next_id
            self._next_id = self._next_id % ID_SPAN + 1
            if ident not in self._running:
                return ident

    # ----- frames of a running transfer -----

    def wrong_side(
        self, transfer: Transfer[SenderT, ReceiverT], side: object, frame_type: int
    ) -> Drop | None:
        """Acknowledgements and results come from the receiver, everything
        else from the sender; a frame from the other end (or a stranger) is
        dropped."""
        rightful = transfer.receiver if frame_type in RECEIVER_FRAMES else transfer.sender
        if side is not rightful:
            return Drop(f"frame type {frame_type} for someone else's transfer")
        return None

    def data(self, transfer: Transfer[SenderT, ReceiverT], length: int, now: float) -> Verdict:
        """A FILE_DATA chunk of ``length`` bytes from the sender."""
        transfer.relayed += length
        if transfer.ended or transfer.relayed > transfer.size:
            return SenderFailed("more file data than the offer announced")
        if transfer.relayed - transfer.acked > self.limits.window:
            return SenderFailed("file data beyond the flow-control window")
        transfer.last_progress = now
        return RELAY

    def end(self, transfer: Transfer[SenderT, ReceiverT], checksum_length: int) -> Verdict:
        """FILE_END from the sender, with a checksum of ``checksum_length`` bytes."""
        if transfer.ended or transfer.relayed != transfer.size or checksum_length != CHECKSUM_SIZE:
            return SenderFailed("FILE_END does not match the offer")
        transfer.ended = True
        return RELAY

    def ack(self, transfer: Transfer[SenderT, ReceiverT], total: int, now: float) -> Verdict:
        """FILE_ACK from the receiver: it claims ``total`` bytes written. It may
        not go back, nor claim more than the server has handed to it, so it
        cannot open the sender's window by acknowledging data it never had."""
        if total < transfer.acked or total > transfer.delivered:
            return ReceiverFailed(
                f"acknowledged {total} bytes of which only {transfer.delivered} were sent to it"
            )
        transfer.acked = total
        transfer.last_progress = now
        return RELAY

    def result(self, transfer: Transfer[SenderT, ReceiverT], saved: bool) -> Finished | Drop:
        """FILE_RESULT from the receiver. A file cannot be saved before it ended;
        a failure may come at any time. Over either way: the shell forgets it."""
        if saved and not transfer.ended:
            return Drop("FILE_RESULT before FILE_END")
        return Finished(saved)

    def delivered(self, receiver: object, ident: int, length: int) -> None:
        """``length`` bytes of the transfer ``ident`` are on ``receiver``'s socket."""
        transfer = self._running.get(ident)
        if transfer is not None and transfer.receiver is receiver:
            transfer.delivered += length

    # ----- the end of transfers -----

    def forget(self, transfer: Transfer[SenderT, ReceiverT]) -> bool:
        """The transfer is over; False if it already was."""
        if self._running.pop(transfer.ident, None) is None:
            return False
        self._by_sender.pop((transfer.sender, transfer.ref), None)
        _decrement(self._outgoing, transfer.sender)
        _decrement(self._incoming, transfer.receiver)
        _decrement(self._between, (transfer.sender, transfer.receiver))
        return True

    def gone(self, side: object) -> list[CallOff[SenderT, ReceiverT]]:
        """``side`` hung up (or was removed): every transfer it sends or receives
        is called off, and the other end told who went."""
        if side not in self._outgoing and side not in self._incoming:
            return []
        return [
            CallOff(t, went_away(t.sender.name), went_away(t.target_name))
            for t in self._running.values()
            if side in (t.sender, t.receiver)
        ]

    def overdue(self, now: float) -> list[CallOff[SenderT, ReceiverT]]:
        """The transfers no byte of which has moved for ``idle_timeout`` by ``now``."""
        reason = self.limits.idle_reason
        return [
            CallOff(t, reason, f"{t.path} not delivered: {reason}")
            for t in self._running.values()
            if now - t.last_progress >= self.limits.idle_timeout
        ]
