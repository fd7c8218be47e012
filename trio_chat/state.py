"""What the chat rules remember: members and channels (``hub.py`` changes
them), and what a member's connection must offer the server (``Connection``)."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Protocol

from .config import ChannelConfig
from .events import NATIVE
from .history import NO_HISTORY, History
from .names import fold_nick

if TYPE_CHECKING:
    from . import wire
    from .server.broadcast import Broadcast


class ClientProtocol(Enum):
    """How a connection is spoken to: which renderer (``render/``) it gets."""

    TERMINAL = "terminal"  # LINE frames of contract lines (the terminal client)
    BROWSER = "browser"  # EVENT frames of JSON (the web page)
    IRC = "irc"  # IRC messages (trio_chat/irc/render.py)


class Cause(Enum):
    """Why the rules are done with a member (``effects.Disconnect``): IRC shows
    each differently (a PART, a KICK, an error), the terminal only says the reason."""

    LEFT = "left"  # /quit, or an IRC PART
    KICKED = "kicked"  # the operator's /kick
    EMPTIED = "emptied"  # the operator's /empty
    AFK = "afk"  # idle past the AFK timeout
    FLOODED = "flooded"  # over its line budget for too long
    REFUSED = "refused"  # a name the rules do not accept
    NAME_TAKEN = "name_taken"  # the name is in the channel already
    BANNED = "banned"  # refused: a ban covers its name there, or its address


class Connection(Protocol):
    """What the server's ``apply`` does with ``Member.conn``; the rules never
    call it. A local ``Session`` is one; in a cluster, a member on another node
    has a stand-in that ignores all of it (its own node carries it out)."""

    protocol: ClientProtocol

    def push_line(self, frame: wire.Payload) -> None:
        """Queue one frame that is not a file chunk, in order."""

    def hold(self, broadcast: Broadcast) -> None:
        """Take a channel broadcast's lines (server/broadcast.py)."""

    def reschedule(self) -> None:
        """The member's AFK deadline changed: follow it."""

    def finish(self, status: int, reason: str, cause: Cause) -> None:
        """The rules are done with it: send what is queued, a BYE, and close."""

    def joined(self, member: Member) -> None:
        """The rules took it in (its channel or the queue)."""

    def offer_decided(self, offer: int, target: Member | None) -> None:
        """The rules answered its file offer number ``offer``."""

    def nick_decided(self, nick: str, accepted: bool, banned: str = "") -> None:
        """The rules answered its ``ClaimNick`` (only IRC connections ask);
        ``banned``: refused for a ban on its address, and why."""

    def notice(self, text: str) -> None:
        """Tell it something that is not a contract line (``effects.Notice``)."""

    def roster(self, names: Sequence[str]) -> None:
        """It was admitted: who is in its channel (``effects.Roster``)."""


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
    via_irc: bool = False  # it came through the IRC port (events.Join)
    ident: str = ""  # and its USER name there
    address: str | None = None  # its peer's IP address (events.Join), for /who
    protocol: str = NATIVE  # how it speaks (events.Join.protocol), for /who

    def muted(self, now: float) -> bool:
        return now < self.muted_until


@dataclass(eq=False)
class Channel:
    config: ChannelConfig
    # Admitted, in join order; changed only through admit() and remove().
    members: dict[str, Member] = field(default_factory=dict)
    # Waiting, first come first, and their names; changed only through
    # enqueue() and dequeue().
    queue: list[Member] = field(default_factory=list)
    queued_names: set[str] = field(default_factory=set)
    # How many names in ``members`` and ``queued_names`` fold (names.fold_nick)
    # to each key: an IRC join asks whether its nick is here in any case
    # (hub._clash), and folding every name for each join cost a join the
    # channel's size (issue 28). A Counter, not a set: a terminal's "Bob" and
    # "bob" may both be here, and one leaving does not free the other's fold.
    folded: Counter[str] = field(default_factory=Counter, repr=False)
    # What was said in it, kept for those admitted later (history.py).
    history: History = field(default_factory=lambda: History(NO_HISTORY))
    _audience: tuple[Member, ...] | None = field(default=None, repr=False)

    def admit(self, member: Member) -> None:
        if member.name not in self.members:  # (a name admitted again is one key still)
            self.folded[fold_nick(member.name)] += 1
        self.members[member.name] = member
        self._audience = None

    def remove(self, name: str) -> None:
        del self.members[name]
        self._unfold(name)
        self._audience = None

    def enqueue(self, member: Member) -> None:
        """``member`` waits last in the queue."""
        self.queue.append(member)
        if member.name not in self.queued_names:
            self.folded[fold_nick(member.name)] += 1
            self.queued_names.add(member.name)

    def dequeue(self, index: int = 0) -> Member:
        """Take the member at ``index`` out of the queue (the first, to admit it)."""
        member = self.queue.pop(index)
        if member.name in self.queued_names:
            self.queued_names.discard(member.name)
            self._unfold(member.name)
        return member

    def _unfold(self, name: str) -> None:
        key = fold_nick(name)
        self.folded[key] -= 1
        if not self.folded[key]:
            # (A Counter keeps zeros: those gone would pile up in a busy channel.)
            del self.folded[key]

    def audience(self) -> tuple[Member, ...]:
        """Everyone in the channel, as one tuple until someone joins or
        leaves: every line said meanwhile has the same audience object, which
        a renderer may take as it is (render/irc's groups)."""
        if self._audience is None:
            self._audience = tuple(self.members.values())
        return self._audience

    @property
    def name(self) -> str:
        return self.config.name

    def has_name(self, name: str) -> bool:
        return name in self.members or name in self.queued_names

    def has_room(self) -> bool:
        return len(self.members) < self.config.capacity
