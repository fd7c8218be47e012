"""What the rules decided, as data: the hub's effects.

An effect says what happened — who said what to whom, who joined or left,
who waits at which place — never how it is shown. Each protocol renders the
effects it cares about (``render/``): the terminal protocol's contract lines
(``render/terminal.py`` with ``text.py``), the server's stdout log
(``render/log.py``) and the browser's JSON (``render/browser.py``). The
server's trio layer (``server/core.py``, ``ChatServer.apply``) carries out the
rest (``CONTROL``): timers, disconnects, notices.

Effects are plain slotted dataclasses, not frozen ones: the hub makes
several for every line and a frozen one costs twice as much to build;
nothing changes an effect once the hub has returned it.

Every effect that says something carries its ``stamp``: the server's
wall-clock ``hh:mm:ss`` when it happened (in a cluster, when the log took
it). ``audience`` fields are the members told, in order; ``to=None`` means
the operator (the server's stdout), for what a console command answers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .events import CHAT
from .state import Cause as Cause  # re-exported: what a Disconnect says
from .state import Member

if TYPE_CHECKING:
    from .bans import AddressBan
    from .config import ChannelConfig
    from .history import Entry
    from .state import Connection


# ----- said to members or the operator -----


@dataclass(slots=True)
class Welcome:
    """The member's hello was taken: it is in the channel or its queue."""

    stamp: str
    member: Member
    channel: str


@dataclass(slots=True)
class CannotConnect:
    """The name is taken in the channel it asked for."""

    stamp: str
    member: Member
    channel: str


@dataclass(slots=True)
class QueuePosition:
    stamp: str
    member: Member
    ahead: int  # members queued before it


@dataclass(slots=True)
class Joined:
    """``user`` was admitted to ``channel``; ``audience`` is everyone now in it."""

    stamp: str
    audience: Sequence[Member]
    user: str
    channel: str
    msgid: str = ""  # its id in the channel's history, when kept (--history-events)


@dataclass(slots=True)
class Left:
    """``user`` left (``/quit``, ``/switch``, flooding); ``logged``: on the
    server's stdout too. ``quiet``: it hung up, which the contract does not
    announce; only protocols that keep a member list (IRC) show it."""

    stamp: str
    audience: Sequence[Member]
    user: str
    logged: bool
    quiet: bool = False
    reason: str = ""  # what an IRC user gave as its PART or QUIT message
    quit: bool = False  # it left every channel with its connection (an IRC QUIT)
    msgid: str = ""  # as Joined's


@dataclass(slots=True)
class WentAfk:
    stamp: str
    audience: Sequence[Member]
    user: str
    msgid: str = ""  # as Joined's


@dataclass(slots=True)
class Kicked:
    """The operator kicked ``user``; ``audience`` sees it leave."""

    stamp: str
    audience: Sequence[Member]
    user: str
    msgid: str = ""  # as Joined's


@dataclass(slots=True)
class Chat:
    """``audience`` is the whole channel, the sender included."""

    stamp: str
    audience: Sequence[Member]
    sender: str
    message: str
    style: str = CHAT  # events.CHAT_STYLES: an IRC action or notice reads differently
    # The hub's line number and wall-clock time (history.Entry): the line's
    # id (history.msgid) is the same on every node, live and in history.
    seq: int = 0
    at: float = 0.0


@dataclass(slots=True)
class Whisper:
    """``receiver`` is None when ``target`` is not in the channel (then only
    the server's log has it). ``sender_member`` is who whispered, for the
    renderers that show the sender its own whisper (render/browser.py); the
    terminal, the log and IRC (echo-message) do not."""

    stamp: str
    receiver: Member | None
    sender: str
    target: str
    message: str
    style: str = CHAT  # events.CHAT_STYLES, as for Chat
    sender_member: Member | None = None


@dataclass(slots=True)
class NotHere:
    stamp: str
    to: Member | None
    user: str


@dataclass(slots=True)
class NotFound:
    """A channel or file that does not exist."""

    stamp: str
    to: Member | None
    thing: str


@dataclass(slots=True)
class CannotSwitch:
    stamp: str
    member: Member
    channel: str


@dataclass(slots=True)
class StillMuted:
    stamp: str
    member: Member
    seconds: int


@dataclass(slots=True)
class ChannelRow:
    name: str
    members: int
    capacity: int
    queued: int


@dataclass(slots=True)
class Listing:
    stamp: str
    member: Member
    rows: Sequence[ChannelRow]


@dataclass(slots=True)
class Muted:
    stamp: str
    member: Member
    others: Sequence[Member]  # the rest of its channel
    seconds: int


@dataclass(slots=True)
class NotInChannel:
    stamp: str
    user: str
    channel: str


@dataclass(slots=True)
class InvalidMuteTime:
    stamp: str


@dataclass(slots=True)
class Emptied:
    stamp: str
    channel: str


@dataclass(slots=True)
class ChannelRemoved:
    """A reload took ``channel`` out of the config: its members and queue went."""

    stamp: str
    channel: str


@dataclass(slots=True)
class Banned:
    """The operator banned ``target`` (a ``bans.Target``'s text), for
    ``seconds`` or (None) until /unban."""

    stamp: str
    target: str
    seconds: int | None


@dataclass(slots=True)
class Unbanned:
    """The operator lifted the ban on ``target``; ``was``: there was one."""

    stamp: str
    target: str
    was: bool


@dataclass(slots=True)
class FileSent:
    stamp: str
    sender: Member
    target: str
    path: str


@dataclass(slots=True)
class History:
    """What was said in ``channel`` before ``member`` was admitted to it,
    oldest first (docs/behaviour.md, "Channel history"): sent just before
    its welcome, or for an IRC member just after its JOIN."""

    member: Member
    channel: str
    entries: Sequence[Entry]


# ----- carried out by the server -----


@dataclass(slots=True)
class Notice:
    """Tell one client something on its stderr (not a contract line)."""

    member: Member
    text: str


@dataclass(slots=True)
class Console:
    """Tell the operator something on the server's stderr (not a contract line)."""

    text: str
    # A usage error, an unknown command or a "no such ..." answer: a control
    # connection's client (trio-chat-ctl) exits 1 for it.
    failed: bool = False
    # What it is, for JSON logs (server/logs.py): an event name, and its
    # fields; not part of what the rules said (equality).
    event: str = field(default="console", compare=False)
    fields: tuple[tuple[str, str], ...] = field(default=(), compare=False)


@dataclass(slots=True)
class Disconnect:
    """Close a client's connection after what was already sent to it."""

    member: Member
    status: int
    reason: str
    cause: Cause


@dataclass(slots=True)
class Reschedule:
    """The member's AFK deadline changed; its timer must follow."""

    member: Member


@dataclass(slots=True)
class Roster:
    """Tell a newly admitted member who is in its channel (for tab completion)."""

    member: Member
    names: Sequence[str]


@dataclass(slots=True)
class OfferDecided:
    """The answer to an ``events.Offer``: ``target`` if the file may go."""

    conn: Connection  # the offering connection
    offer: int
    target: Member | None


@dataclass(slots=True)
class NickDecided:
    """The answer to an ``events.ClaimNick``: the IRC connection has ``nick`` now, or not."""

    conn: Connection
    nick: str
    accepted: bool
    banned: str = ""  # refused because its address is banned: why, in words


@dataclass(slots=True)
class AddressBanned:
    """A new ban covers ``network``: each node closes its own connections
    from there that the rules have no member for (an IRC connection that is
    in no channel, or is in some: its members were told already)."""

    ban: AddressBan
    reason: str


@dataclass(slots=True)
class BanRefused:
    """A ban kept a newcomer out (its hello, or an IRC registration): for
    the server's count of refusals and its log."""

    target: str  # the ban's, as /bans lists it
    user: str
    address: str | None


@dataclass(slots=True)
class BansChanged:
    """A ban was made or lifted: for a lone server's --state-dir file."""


@dataclass(slots=True)
class Recorded:
    """``entry`` joined ``channel``'s history (for the history file)."""

    channel: str
    entry: Entry


@dataclass(slots=True)
class Forgotten:
    """``channel``'s history was cleared (/empty): for the history file."""

    channel: str
    at: float


@dataclass(slots=True)
class Reconfigured:
    """The channels changed (a reload): the server listens on each one's
    port from now on, in this order, and on no other channel port."""

    channels: Sequence[ChannelConfig]


@dataclass(slots=True)
class StopServer:
    pass


@dataclass(slots=True)
class AnswerBegins:
    """What follows, up to the ``AnswerEnds`` of the same name, answers the
    console line that control connection ``answer_to`` sent (server/control.py):
    its node copies those stdout lines and ``Console`` texts to it."""

    answer_to: str


@dataclass(slots=True)
class AnswerEnds:
    """The answer to control connection ``answer_to`` is complete; ``failed``:
    it had an error in it (a ``Console`` with ``failed``, or an operator's
    "does not exist"-style stdout line)."""

    answer_to: str
    failed: bool


Said = (
    Welcome
    | CannotConnect
    | QueuePosition
    | Joined
    | Left
    | WentAfk
    | Kicked
    | Chat
    | Whisper
    | NotHere
    | NotFound
    | CannotSwitch
    | StillMuted
    | Listing
    | Muted
    | NotInChannel
    | InvalidMuteTime
    | Emptied
    | ChannelRemoved
    | Banned
    | Unbanned
    | FileSent
    | History
)
Control = (
    Notice
    | Console
    | Disconnect
    | Reschedule
    | Roster
    | OfferDecided
    | NickDecided
    | AddressBanned
    | BanRefused
    | BansChanged
    | Recorded
    | Forgotten
    | Reconfigured
    | StopServer
    | AnswerBegins
    | AnswerEnds
)
Effect = Said | Control
