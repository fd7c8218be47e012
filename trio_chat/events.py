"""Everything that can happen to the chat rules, as data: the hub's input events.

Each event is a frozen, slotted dataclass naming what happened, with the
fields the rules need and nothing of the I/O around it. A connection is named
by its reference (``ref``), a string its gateway gives it at the hello
("NODE.NUMBER" in a cluster), so an event can be written to the cluster's log
and read back unchanged (``trio_chat.cluster.codec``). The hub takes every event
through one entry point, ``Hub.handle(event, now, stamp)``; docs/behaviour.md
says what each one does.

Adding an event means: its dataclass here (and its name in ``Event``), its
rule in ``hub.py``, and, if it says something new, its rendering.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass

# How a member speaks (Join.protocol), as the console's /who names it.
NATIVE = "native"
WEB = "web"
IRC = "irc"


@dataclass(frozen=True, slots=True)
class Join:
    """A client said hello on a channel's port and asks to be let in."""

    ref: str  # the connection, as its gateway names it
    channel: str  # the channel whose port it connected to
    username: str  # as the client sent it (the rules check it)
    address: str | None = None  # the peer's IP address, where it has one
    # Through the IRC port (docs/irc.md): IRC compares nicks without ASCII
    # case, so its name must differ from every name in the channel in more
    # than case; and IRC cannot receive files.
    via_irc: bool = False
    ident: str = ""  # an IRC user's USER name, shown in its nick!user@host
    # How it speaks, for the console's /who: NATIVE (the terminal client's
    # frames) or WEB (the browser page); an IRC member is IRC by ``via_irc``.
    protocol: str = NATIVE


@dataclass(frozen=True, slots=True)
class Input:
    """A member typed one line (chat or a command), already sanitized."""

    ref: str
    line: str


@dataclass(frozen=True, slots=True)
class Say:
    """A member said ``message`` to its channel, as it is (no command in it):
    what an IRC user's PRIVMSG or NOTICE to a channel is."""

    ref: str
    message: str  # already sanitized
    style: str = "chat"  # one of CHAT_STYLES: how it reads (effects.Chat)


@dataclass(frozen=True, slots=True)
class Tell:
    """A member whispered ``message`` to ``target`` in its channel, as ``/whisper`` does."""

    ref: str
    target: str
    message: str  # already sanitized
    style: str = "chat"  # CHAT_STYLES, as for Say


@dataclass(frozen=True, slots=True)
class Leave:
    """The member leaves its channel, announced, as ``/quit`` does: an IRC PART,
    or one of the channels an IRC QUIT leaves."""

    ref: str
    reason: str = ""  # the PART or QUIT message (IRC shows it; the contract has no place)
    quit: bool = False  # the whole connection goes (IRC shows a QUIT, not a PART)


@dataclass(frozen=True, slots=True)
class ClaimNick:
    """An IRC connection asks for ``nick``: IRC nicks are unique across the
    whole chat, without ASCII case (``effects.NickDecided`` answers)."""

    ref: str  # the IRC connection's own reference, not one of its members'
    nick: str
    address: str | None = None  # the peer's, for the cluster's per-address limit


@dataclass(frozen=True, slots=True)
class Drop:
    """The connection ended without /quit (or ended after the rules closed it)."""

    ref: str


@dataclass(frozen=True, slots=True)
class AfkDue:
    """The member's AFK timer fired; the rules check the deadline really passed."""

    ref: str


@dataclass(frozen=True, slots=True)
class Awake:
    """The members could not have shown activity meanwhile (their server lost
    the cluster's Redis): their AFK timers start again."""

    refs: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Flooded:
    """The member sent past its line budget for too long."""

    ref: str
    reason: str  # what it is told, and the operator


@dataclass(frozen=True, slots=True)
class ConsoleLine:
    """The operator typed one line on the server's console."""

    line: str
    # The control connection (server/control.py) that sent it, named on the
    # node where it was typed; "" for the stdin console. (Not ``origin``: a
    # cluster log entry's ``origin`` is its node, cluster/codec.py.)
    answer_to: str = ""


@dataclass(frozen=True, slots=True)
class Reconfigure:
    """The operator reloaded the config file (SIGHUP, ``/reload``): from now
    on these channels, in this order, each as ``(name, port, capacity)``.
    The server checked the file, and bound any new port, before this."""

    channels: tuple[tuple[str, int, int], ...]


@dataclass(frozen=True, slots=True)
class Offer:
    """The member asked to /send a file: the rules check the target is here and
    say so (``effects.OfferDecided``)."""

    ref: str
    target: str  # the name the member gave
    path: str  # the path as the member typed it (for the error lines)
    readable: bool  # whether the member's client could read the file
    offer: int  # the client's number for this offer, handed back with the answer


@dataclass(frozen=True, slots=True)
class TransferStarted:
    """A file began to move from one member to another: while it does, neither is idle."""

    sender: str
    receiver: str


@dataclass(frozen=True, slots=True)
class TransferEnded:
    """That file stopped moving (saved, refused, called off or either end gone)."""

    sender: str
    receiver: str


@dataclass(frozen=True, slots=True)
class TransferProgress:
    """A file the member sends or receives moved on: it is not idle."""

    ref: str


@dataclass(frozen=True, slots=True)
class FileDelivered:
    """The receiver saved the whole file the member sent."""

    sender: str
    target: str  # the receiver's name
    path: str  # as the sender typed it


Event = (
    Join
    | Input
    | Say
    | Tell
    | Leave
    | ClaimNick
    | Drop
    | AfkDue
    | Awake
    | Flooded
    | ConsoleLine
    | Reconfigure
    | Offer
    | TransferStarted
    | TransferEnded
    | TransferProgress
    | FileDelivered
)

# How a ``Say`` reads: plain chat, an IRC action (``/me``), an IRC notice.
CHAT = "chat"
ACTION = "action"
NOTICE = "notice"
CHAT_STYLES = frozenset({CHAT, ACTION, NOTICE})

# Every event type, for the tables keyed by type (the hub's rules, the
# cluster's codec and replay).
EVENTS: tuple[type[Event], ...] = typing.get_args(Event)
