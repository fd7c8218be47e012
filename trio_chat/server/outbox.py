"""What one client's outbox holds, counted, and what the counts call for.

No I/O here: the session (session.py) owns the socket, the memory channel and
the writer task, and tells its Outbox what it queued and what got written;
the Outbox keeps the counts and answers with a decision. The policy it
carries out is docs/security.md, "Limits and the slow-consumer policy":

- past a hard limit (frames, bytes, or bytes of file chunks) the client is
  not reading: the session drops it (``Backpressure.OVER_LIMIT``, the reason
  in ``Outbox.overflow``);
- past the high-water mark the outbox is congested: the readers that filled
  it wait (``Backpressure.CONGESTED``, said once each time it is crossed)
  until the writer brings it down to the low-water mark (``written`` says
  "drained"), unless its writer has been stuck on the socket for longer than
  the writer grace (``keeping_up``).

Text frames of one scheduling round do not go to the writer one by one: they
collect as ``pending`` (frames of this session's own and channel broadcasts,
broadcast.py, that it holds) and are taken joined, as one write, at the end
of the round (``take_round``). A held broadcast's lines count only when it
closes, which is why ``count_held`` is public: the broadcast calls it, via
the session, for every holder.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import Protocol

from .. import wire
from .broadcast import Broadcast

# What the writer is handed: the bytes, and whether they are one file chunk
# (FILE_DATA, counted apart and reported to the file relay once written)
# rather than text frames, one or joined.
WriterItem = tuple[wire.Payload, bool]


class OutboxLimits(Protocol):
    """The server's limits an outbox goes by (core.Limits has the defaults)."""

    @property
    def outbox_frames(self) -> int: ...
    @property
    def outbox_bytes(self) -> int: ...
    @property
    def outbox_file_bytes(self) -> int: ...
    @property
    def high_water_frames(self) -> int: ...
    @property
    def high_water_bytes(self) -> int: ...
    @property
    def low_water_frames(self) -> int: ...
    @property
    def low_water_bytes(self) -> int: ...
    @property
    def writer_grace(self) -> float: ...


class Backpressure(enum.IntEnum):
    """What a count calls for; false when nothing does."""

    # Within the limits and nothing new: carry on.
    NONE = 0
    # Just went past its high-water mark: readers that fill it wait for it
    # to drain (the server's ``congested`` set).
    CONGESTED = 1
    # Past a hard limit: the client is not reading; drop it, saying
    # ``Outbox.overflow``.
    OVER_LIMIT = 2


NONE = Backpressure.NONE
CONGESTED = Backpressure.CONGESTED
OVER_LIMIT = Backpressure.OVER_LIMIT


class Outbox:
    """Counts of what waits for one client, from queued to written."""

    __slots__ = (
        "_high_bytes",
        "_high_frames",
        "_low_bytes",
        "_low_frames",
        "_max_bytes",
        "_max_file_bytes",
        "_max_frames",
        "_writer_grace",
        "congested",
        "file_bytes",
        "frames",
        "in_writer",
        "overflow",
        "pending",
        "pending_frames",
        "text_bytes",
        "writing_since",
    )

    def __init__(self, limits: OutboxLimits) -> None:
        self._max_frames = limits.outbox_frames
        self._max_bytes = limits.outbox_bytes
        self._max_file_bytes = limits.outbox_file_bytes
        # The high-water mark (Limits: a quarter of the hard limits), so that
        # readers pause long before anyone is dropped.
        self._high_frames = limits.high_water_frames
        self._high_bytes = limits.high_water_bytes
        self._low_frames = limits.low_water_frames
        self._low_bytes = limits.low_water_bytes
        self._writer_grace = limits.writer_grace
        # Frames waiting, pending or in the writer's hands (a round taken
        # joined counts as one), and their bytes: text, and file chunks apart.
        self.frames = 0
        self.text_bytes = 0
        self.file_bytes = 0
        # This round's text frames and held broadcasts, in order; and how many
        # frames they hold that have been counted (a broadcast's, once closed).
        self.pending: list[wire.Payload | Broadcast] = []
        self.pending_frames = 0
        # Items handed to the writer and not yet written; 0: the writer is idle.
        self.in_writer = 0
        # When the writer's current write began; None while it is not writing.
        self.writing_since: float | None = None
        # Past the high-water mark and not yet drained to the low-water mark.
        self.congested = False
        # Why the last count said OVER_LIMIT.
        self.overflow = ""

    # ----- queueing -----

    # add_line and hold run per line per member: the tail check is written
    # out in both rather than called.

    def add_line(self, frame: wire.Payload) -> Backpressure:
        """One text frame for this round (anything but a file chunk)."""
        pending = self.pending
        if pending:
            tail = pending[-1]
            if isinstance(tail, Broadcast) and tail.open:
                # Whatever comes after a broadcast must not be overtaken by
                # lines added to it later.
                tail.close()
        pending.append(frame)
        return self.count_held(1, len(frame))

    def hold(self, broadcast: Broadcast) -> None:
        """A channel broadcast for this round; its lines count when it closes."""
        pending = self.pending
        if pending:
            tail = pending[-1]
            if isinstance(tail, Broadcast) and tail.open:
                tail.close()
        pending.append(broadcast)

    def count_held(self, frames: int, size: int) -> Backpressure:
        """Text frames that joined the pending ones count against the limits."""
        self.pending_frames += frames
        self.frames += frames
        self.text_bytes += size
        if self.text_bytes > self._max_bytes or self.frames > self._max_frames:
            self.overflow = (
                f"{self.frames} frames, {self.text_bytes} bytes waiting: the client is not reading"
            )
            return OVER_LIMIT
        if self.congested:
            return NONE
        if self.frames > self._high_frames or self.text_bytes > self._high_bytes:
            self.congested = True
            return CONGESTED
        return NONE

    def add_chunk(self, size: int) -> Backpressure:
        """One file chunk, for the writer straight after this round's text."""
        # Bounded by the transfer windows; a receiver past this has
        # acknowledged data it cannot have had.
        self.file_bytes += size
        self.frames += 1
        if self.file_bytes > self._max_file_bytes:
            self.overflow = f"{self.file_bytes} bytes of files waiting: not reading"
            return OVER_LIMIT
        if self.frames > self._max_frames:
            self.overflow = "outbox full: the client is not reading"
            return OVER_LIMIT
        return NONE

    def handed_to_writer(self) -> None:
        """An item (a round, a chunk, the BYE) went into the writer's channel."""
        self.in_writer += 1

    def add_last(self, size: int) -> None:
        """The last frame (the BYE), for the writer: counted, never refused."""
        self.frames += 1
        self.text_bytes += size

    def take_round(self) -> wire.Payload:
        """This round's text frames as one piece, counted from now on as one
        frame. Closing a held broadcast counts its lines first, which may find
        the outbox over its limit (the caller checks). Only with ``pending``."""
        pending = self.pending
        tail = pending[-1]
        if isinstance(tail, Broadcast):
            tail.close()
        self.frames -= self.pending_frames - 1
        self.pending = []
        self.pending_frames = 0
        if len(pending) == 1:
            return tail.joined() if isinstance(tail, Broadcast) else tail
        return b"".join(
            [item.joined() if isinstance(item, Broadcast) else item for item in pending]
        )

    def drop_round(self) -> None:
        """Forget this round's text: the client is closing."""
        self.pending = []

    # ----- writing -----

    def wrote_part(self, size: int) -> None:
        """The session itself wrote ``size`` bytes of the round it took; the
        rest (if any) goes to the writer, still as one frame."""
        self.text_bytes -= size

    def wrote_round(self, size: int) -> bool:
        """The session itself wrote the whole round it took. Whether that
        drained a congested outbox."""
        self.frames -= 1
        self.text_bytes -= size
        return self._drained()

    def written(self, batch: Sequence[WriterItem]) -> bool:
        """The writer wrote ``batch``. Whether that drained a congested outbox."""
        self.frames -= len(batch)
        self.in_writer -= len(batch)
        for data, chunk in batch:
            if chunk:
                self.file_bytes -= len(data)
            else:
                self.text_bytes -= len(data)
        return self._drained()

    def _drained(self) -> bool:
        if (
            self.congested
            and self.frames <= self._low_frames
            and self.text_bytes <= self._low_bytes
        ):
            self.congested = False
            return True
        return False

    def keeping_up(self, now: float) -> bool:
        """Whether its writer is not stuck: not writing, or not for longer than
        the writer grace (a client that stopped reading is not waited for)."""
        since = self.writing_since
        return since is None or now - since < self._writer_grace

    def patience(self, now: float) -> float:
        """How long a reader may still wait for this outbox to drain."""
        since = self.writing_since
        if since is None:
            return self._writer_grace
        return max(self._writer_grace - (now - since), 0.0)
