"""What the hub's ``Member.conn`` must offer: the I/O side of one member.

The hub never touches it (hub.py); the server's ``ChatServer.apply`` carries
out the hub's decisions through it, and a cluster's snapshot names it by its
reference. A local connection is a ``session.Session``; in a cluster, a member
connected to another node has a stand-in (``cluster.node.RemoteConn``) that
ignores what its own node carries out. Every method is called while the
server applies effects, so none may await or block.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from .. import wire
    from .broadcast import Broadcast


class Connection(Protocol):
    @property
    def conn_ref(self) -> str | None:
        """ "NODE.NUMBER" in a cluster (its log and snapshots name it so); None alone."""

    def push_line(self, frame: wire.Payload) -> None:
        """Queue one frame that is not a file chunk: a line, a notice, JSON."""

    def hold(self, broadcast: Broadcast) -> None:
        """Take the lines of a channel broadcast, now and while it stays open."""

    def reschedule(self) -> None:
        """The member's AFK deadline moved (or the rules answered the timer)."""

    def finish(self, status: int, reason: str) -> None:
        """The rules are done with it: what is queued, then a BYE, then close."""
