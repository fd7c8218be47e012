"""What the chat rules remember: members and channels (``hub.py`` changes them)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .config import ChannelConfig

if TYPE_CHECKING:
    from .server.connection import Connection


@dataclass(eq=False)
class Member:
    """One connected client as the rules see it."""

    ref: str  # its connection's reference (events.py)
    name: str
    # The I/O layer's handle for this client: the rules only hand it on in
    # their effects, never call it.
    conn: Connection
    channel: Channel | None = None
    admitted: bool = False
    muted_until: float = -math.inf
    afk_deadline: float = math.inf
    transfers: int = 0  # files it is sending or receiving right now

    def muted(self, now: float) -> bool:
        return now < self.muted_until


@dataclass(eq=False)
class Channel:
    config: ChannelConfig
    members: dict[str, Member] = field(default_factory=dict)  # admitted, in join order
    queue: list[Member] = field(default_factory=list)  # waiting, first come first
    queued_names: set[str] = field(default_factory=set)

    @property
    def name(self) -> str:
        return self.config.name

    def has_name(self, name: str) -> bool:
        return name in self.members or name in self.queued_names

    def has_room(self) -> bool:
        return len(self.members) < self.config.capacity
