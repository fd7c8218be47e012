"""The server's limits, and so the defaults of its command-line options
(docs/security.md, "Limits and the slow-consumer policy").

Imports no trio, and nothing the command line does not import already: the
command line reads its defaults from ``Limits`` before any port is bound.
"""

from __future__ import annotations

from dataclasses import dataclass, field

MAX_INCOMING_TRANSFERS = 16


def _outbox_file_bytes() -> int:
    # Imported only when a server sets up its limits: wire brings json, zlib
    # and typing, which a bad invocation must not wait for.
    from .. import wire

    return MAX_INCOMING_TRANSFERS * wire.SEND_WINDOW + wire.MAX_PAYLOAD


@dataclass(frozen=True)
class Limits:
    # A client with this many frames, or bytes (file chunks aside), waiting
    # to be written counts as not reading and is dropped.
    outbox_frames: int = 4096
    outbox_bytes: int = 1024 * 1024
    # Seconds a new connection has to say hello.
    hello_timeout: float = 10.0
    # Seconds a finished client has to take its last lines and hang up.
    close_grace: float = 5.0
    # Largest file /send relays.
    max_file_size: int = 4 * 1024**3
    # Connections held at once (members, queued and not yet said hello);
    # past this, new connections are closed at once.
    max_connections: int = 20000
    # File chunks waiting in one outbox: the windows of a receiver's
    # transfers; more means it acknowledged data it never had.
    outbox_file_bytes: int = field(default_factory=_outbox_file_bytes)
    # A reader that filled an outbox waits for it to drain unless that
    # outbox's writer has been stuck on its socket this long (not reading).
    writer_grace: float = 0.25
    # Files one member may receive, and send, at once, and send to one member.
    max_incoming_transfers: int = MAX_INCOMING_TRANSFERS
    max_outgoing_transfers: int = 8
    max_transfers_between_two: int = 4
    # A transfer that moves no byte for this long is called off.
    transfer_idle_timeout: float = 60.0
    # Flood control: a burst of lines, then this many a second (either at 0:
    # off); a member held back for this long without a break is disconnected.
    flood_burst: int = 10
    flood_rate: float = 5.0
    flood_patience: float = 30.0
    # The members from one address share, on top of their own budgets, a
    # budget of this many members (people behind one NAT): however many
    # connections an address opens, its lines together get no more.
    flood_address_share: int = 4
    # Connections at once from one address, and a connect rate (0: off).
    max_per_address: int = 50

    # An outbox past its high-water mark makes the reader that filled it wait
    # until it drains to the low-water mark (session.py); a round's broadcast
    # closes at the low-water mark (broadcast.py).
    @property
    def high_water_frames(self) -> int:
        return self.outbox_frames // 4

    @property
    def high_water_bytes(self) -> int:
        return self.outbox_bytes // 4

    @property
    def low_water_frames(self) -> int:
        return self.outbox_frames // 16

    @property
    def low_water_bytes(self) -> int:
        return self.outbox_bytes // 16
