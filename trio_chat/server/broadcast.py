"""A scheduling round's lines for all of a channel, held once by all its sessions.

Most lines go to every member of a channel. Putting each line into each
member's outbox costs Python work per line per member, which is most of the
server's time in a busy channel. Instead, the lines of one round that go to the
same members (in the same order) collect in one Broadcast that each of their
sessions holds once among its pending frames: per line, one append; per member
and round, one reference, and at the flush the same joined bytes for everyone.

A broadcast stays open while it is the last thing every holder has pending.
Whatever breaks that closes it: a line for one of them alone, lines for a
different set of members, the holder's flush, or the broadcast reaching its cap.
Only when it closes are its lines counted against each holder's outbox limits,
so the cap (the outboxes' low-water mark) bounds how far that count can lag.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from collections.abc import Sequence

    from .. import wire


class Holder(Protocol):
    """What holds a broadcast among its pending frames: a session."""

    def count_held(self, frames: int, size: int) -> None:
        """The broadcast closed with ``frames`` frames of ``size`` bytes."""


class Broadcast:
    __slots__ = ("_joined", "frames", "holders", "open", "recipients", "size")

    def __init__(self, recipients: Sequence[object], frame: wire.Payload) -> None:
        # The hub's Member objects this broadcast goes to, in order.
        self.recipients = recipients
        self.frames: list[wire.Payload] = [frame]
        self.size = len(frame)
        self.holders: list[Holder] = []
        self.open = True
        self._joined: bytes | None = None

    def add(self, frame: wire.Payload) -> None:
        self.frames.append(frame)
        self.size += len(frame)

    def close(self) -> None:
        """No more lines: count them in every holder's outbox."""
        if not self.open:
            return
        self.open = False
        frames = len(self.frames)
        for holder in self.holders:
            holder.count_held(frames, self.size)
        self.holders = []

    def joined(self) -> bytes:
        """All its frames as one piece of bytes: one join for all holders."""
        assert not self.open, "an open broadcast may still grow"
        if self._joined is None:
            self._joined = b"".join(self.frames)
        return self._joined
