"""What the server's ``apply`` needs of a member's connection (``Member.conn``).

A local ``Session`` is one; in a cluster, a member on another node has a
stand-in that ignores all of it (its own node carries it out).
"""

from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from .. import wire
    from ..state import Member
    from .broadcast import Broadcast


class ClientProtocol(Enum):
    """How a connection is spoken to: which renderer (``render/``) it gets."""

    TERMINAL = "terminal"  # LINE frames of contract lines (the terminal client)
    BROWSER = "browser"  # EVENT frames of JSON (the web page)


class Connection(Protocol):
    protocol: ClientProtocol

    def push_line(self, frame: wire.Payload) -> None:
        """Queue one frame that is not a file chunk, in order."""

    def hold(self, broadcast: Broadcast) -> None:
        """Take a channel broadcast's lines (broadcast.py)."""

    def reschedule(self) -> None:
        """The member's AFK deadline changed: follow it."""

    def finish(self, status: int, reason: str) -> None:
        """The rules are done with it: send what is queued, a BYE, and close."""

    def joined(self, member: Member) -> None:
        """The rules took it in (its channel or the queue)."""

    def offer_decided(self, offer: int, target: Member | None) -> None:
        """The rules answered its file offer number ``offer``."""
