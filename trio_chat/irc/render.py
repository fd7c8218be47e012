"""The hub's effects as IRC messages: the IRC protocol's renderer.

``IrcRenderer.frames`` is to IRC what ``render/terminal.py`` is to the
terminal client: for one effect, each message and the IRC members it goes
to. What a member's client asked for shapes its copy: with ``echo-message``
a member gets its own chat back; with ``server-time`` and ``message-tags``
its copy carries ``time`` and ``msgid`` tags. docs/irc.md, "What maps to
what", lists every rendering.

Every name is shown as IRC can carry it (``nicks.shown``); every member's
mask is ``nick!user@host`` with the user made from the nick and the host this
server's name, never anyone's address.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

from .. import effects as fx
from .. import history as hist
from .. import text
from ..events import ACTION, NOTICE
from ..history import SAID, Entry, millis
from ..state import ClientProtocol, Member
from . import numerics as n
from .lines import MAX_LINE, encode
from .nicks import fold_nick, shown


class IrcClientView(Protocol):
    """What rendering needs to know of an IRC connection (client.IrcClient)."""

    @property
    def nick(self) -> str: ...
    @property
    def echo(self) -> bool: ...  # echo-message
    @property
    def tags(self) -> int: ...  # WANTS_TIME | WANTS_MSGID, as its caps ask
    @property
    def caps(self) -> set[str]: ...  # the capabilities it negotiated

    def sees_elsewhere(self, name: str, channel: str) -> bool:
        """Whether ``name`` is in one of its channels other than ``channel``."""


class MembershipView(Protocol):
    """A member's connection on IRC, as rendering sees it (client.IrcMembership)."""

    @property
    def client(self) -> IrcClientView: ...
    @property
    def channel(self) -> str: ...
    @property
    def member(self) -> Member | None: ...


Frames = list[tuple[Sequence[Member], bytes]]

IRC = ClientProtocol.IRC


def channel_target(name: str) -> str:
    return f"#{name}"


def iso_time(at: float) -> str:
    """``server-time``'s tag value for the moment ``at`` (epoch seconds): UTC,
    to the millisecond (``history.millis``), so a line's time tag and its
    msgid name the same millisecond."""
    seconds, rest = divmod(millis(at), 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{rest:03d}Z"


def server_time() -> str:
    """``server-time``'s tag value for now."""
    return iso_time(time.time())


def piece_msgid(msgid: str, index: int) -> str:
    """The msgid of piece ``index`` (from 0) of a line too long for one IRC
    message: the first piece carries the line's own id, the others ids
    derived from it (``chathistory.line_msgid`` reads them back)."""
    return msgid if index == 0 else f"{msgid}.{index + 1}"


def split_text(message: str, room: int) -> list[str]:
    """``message`` in pieces of at most ``room`` bytes of UTF-8, cut between characters."""
    data = message.encode()
    if len(data) <= room:
        return [message]
    pieces: list[str] = []
    while data:
        cut = min(room, len(data))
        while cut < len(data) and (data[cut] & 0xC0) == 0x80:
            cut -= 1  # not inside a character
        pieces.append(data[:cut].decode())
        data = data[cut:]
    return pieces


# The capability of a client that fetches history itself (CHATHISTORY).
CHATHISTORY_CAP = "draft/chathistory"
# What may go as several messages when too long for one line.
_SPLIT = frozenset({"PRIVMSG", "NOTICE"})
# What tags a client wants on its copies (``IrcClientView.tags``), as bits.
WANTS_TIME = 1  # server-time
WANTS_MSGID = 2  # message-tags


def _sees_elsewhere(member: Member, name: str, target: str) -> bool:
    conn = member.conn
    if conn.protocol is not IRC:
        return False
    return conn.client.sees_elsewhere(name, target[1:])  # type: ignore[attr-defined, no-any-return]


def _channel_of(audience: Sequence[Member]) -> str:
    """The channel of the IRC members among ``audience`` (all are in one)."""
    for member in audience:
        conn = member.conn
        if conn.protocol is IRC:
            return channel_target(conn.channel)  # type: ignore[attr-defined]
    return ""


def _pieces(command: str, head: list[str], message: str, source: str, action: bool) -> list[str]:
    """``message`` as the last parameters of one or more messages: a PRIVMSG
    or NOTICE too long for one line goes as several (``action``: each a CTCP
    ACTION), cut where the live line and its replay from history alike cut
    it; anything else whole (lines.encode cuts it to fit)."""
    # Bytes left for the text on a line (the source is ASCII; a channel
    # name may not be).
    room = MAX_LINE - len(source) - len(command) - sum(len(p.encode()) + 1 for p in head) - 8
    if action:
        room -= len("\x01ACTION \x01")
    pieces = [message]
    if command in _SPLIT and len(message) > room // 4:
        # (However little room a long source leaves, nothing is cut off.)
        pieces = split_text(message, max(room, 1))
    if action:
        pieces = [f"\x01ACTION {piece}\x01" for piece in pieces]
    return pieces


class IrcRenderer:
    """Renders effects for the IRC members of this server."""

    def __init__(
        self,
        server_name: str,
        channels: Iterable[str] = (),
        replay_room: tuple[int, int] | None = None,
    ) -> None:
        """``replay_room``: the most frames and bytes an automatic replay
        takes (``open_irc``: an outbox's high-water mark), its latest lines;
        None: no bound."""
        self.server_name = server_name
        self.replay_room = replay_room
        # The configured channels by their name without ASCII case, as IRC
        # compares them: one table for every connection (client._channel).
        self.channels = {fold_nick(name): name for name in channels}
        # Each channel's IRC members by the tags they want, for the last
        # audience seen there (hub's Channel.audience: one object until someone
        # joins or leaves) and the capabilities then (``caps_changed``).
        self._groups: dict[str, tuple[Sequence[Member], int, dict[int, list[Member]]]] = {}
        self._caps_version = 0
        # msgid tags: unique on this server (and on every node of a cluster:
        # each process starts its own series).
        self._msgids = itertools.count(1)
        self._msgid_prefix = os.urandom(4).hex()
        self._batches = itertools.count(1)

    def channels_changed(self, channels: Iterable[str]) -> None:
        """A reload changed the configured channels."""
        self.channels = {fold_nick(name): name for name in channels}

    def caps_changed(self) -> None:
        """A client's capabilities changed: the groups are stale."""
        self._caps_version += 1

    def mask(self, name: str) -> str:
        nick = shown(name)
        return f"{nick}!{nick[: n.USERLEN]}@{self.server_name}"

    def frames(self, effect: fx.Said) -> Frames:
        render = _RENDER.get(type(effect))
        return render(self, effect) if render is not None else []

    # ----- one message to several members, each copy as its client asked -----

    def _to_each(
        self,
        audience: Sequence[Member],
        command: str,
        params: list[str],
        source: str,
        sender: str | None = None,
        leaving_out: str | None = None,
        action: bool = False,
    ) -> Frames:
        """The message to the IRC members of ``audience``, with tags for those
        who want them. ``sender``: the member of that name gets it only with
        ``echo-message``; ``leaving_out``: that one never. A PRIVMSG or NOTICE
        too long for one line goes as several (``action``: each a CTCP
        ACTION); anything else is cut to fit (lines.encode)."""
        groups = self._group(audience, sender, leaving_out)
        return self._frames(groups, command, params, source, action)

    def _frames(
        self,
        groups: dict[int, list[Member]],
        command: str,
        params: list[str],
        source: str,
        action: bool,
        seq: int = 0,
        at: float = 0.0,
    ) -> Frames:
        """``seq`` and ``at``: the number and time the hub gave a line
        (``fx.Chat``), its msgid and time tag, the same on every node of a
        cluster and in the channel's history; without them (0), this
        renderer's own series and the time now."""
        groups = {wanted: group for wanted, group in groups.items() if group}
        if not groups:
            return []
        *head, message = params
        pieces = _pieces(command, head, message, source, action)
        frames: Frames = []
        stamp = ""
        if any(wanted & WANTS_TIME for wanted in groups):
            stamp = iso_time(at) if seq else server_time()
        tagged = len(groups) > 1 or 0 not in groups
        line_id = hist.msgid(seq, at) if seq and tagged else ""
        for index, piece in enumerate(pieces):
            msgid = ""
            if tagged:
                msgid = (
                    piece_msgid(line_id, index)
                    if line_id
                    else f"{self._msgid_prefix}-{next(self._msgids)}"
                )
            for wanted, recipients in groups.items():
                tags: dict[str, str] | None = None
                if wanted:
                    tags = {}
                    if wanted & WANTS_TIME:
                        tags["time"] = stamp
                    if wanted & WANTS_MSGID:
                        tags["msgid"] = msgid
                frames.append((recipients, encode(command, [*head, piece], source, tags)))
        return frames

    def history_lines(
        self, entries: Iterable[Entry], target: str, wanted: int, batch: str = ""
    ) -> list[bytes]:
        """The lines said among ``entries`` (joins and leaves are left out:
        no ``draft/event-playback`` here) as one client gets them: from
        their senders' masks, split as they were live, with the ``time``
        and ``msgid`` tags ``wanted`` asks for (``IrcClientView.tags``) and
        the ``batch`` tag if in a batch."""
        lines: list[bytes] = []
        for entry in entries:
            if entry.kind != SAID:
                continue
            command = "NOTICE" if entry.style == NOTICE else "PRIVMSG"
            source = self.mask(entry.user)
            action = entry.style == ACTION
            line_id = entry.msgid
            for index, piece in enumerate(
                _pieces(command, [target], entry.message, source, action)
            ):
                tags: dict[str, str] | None = None
                if wanted or batch:
                    tags = {"batch": batch} if batch else {}
                    if wanted & WANTS_TIME:
                        tags["time"] = iso_time(entry.at)
                    if wanted & WANTS_MSGID:
                        tags["msgid"] = piece_msgid(line_id, index)
                lines.append(encode(command, [target, piece], source, tags))
        return lines

    def batch_id(self) -> str:
        """A reference tag for a new batch, unique on this server."""
        return f"{self._msgid_prefix}b{next(self._batches)}"

    def batch_ends(self, batch: str, *kind: str) -> tuple[bytes, bytes]:
        """The lines that open (``BATCH +ID kind...``) and close batch ``batch``."""
        server = self.server_name
        return encode("BATCH", [f"+{batch}", *kind], server), encode("BATCH", [f"-{batch}"], server)

    def _to_one(self, member: Member, command: str, params: list[str]) -> Frames:
        """From the server to one member (if it is on IRC)."""
        return self._to_each((member,), command, params, self.server_name)

    # ----- the effects -----

    def _numeric(self, member: Member, code: str, *params: str) -> Frames:
        """A numeric reply to one member, if it is on IRC."""
        conn = member.conn
        if conn.protocol is not IRC:
            return []
        nick = conn.client.nick  # type: ignore[attr-defined]
        return [((member,), n.numeric(self.server_name, code, nick, *params))]

    def _notice_to(self, member: Member, text: str) -> Frames:
        """A server NOTICE about its channel to one member, if it is on IRC."""
        conn = member.conn
        if conn.protocol is not IRC:
            return []
        membership: MembershipView = conn  # type: ignore[assignment]
        notice = f"{channel_target(membership.channel)}: {text}"
        return self._to_one(member, "NOTICE", [membership.client.nick, notice])

    def _cannot_connect(self, e: fx.CannotConnect) -> Frames:
        taken = f"The name {shown(e.member.name)} is taken in #{e.channel} by someone not on IRC"
        return self._numeric(e.member, n.ERR_UNAVAILRESOURCE, channel_target(e.channel), taken)

    def _queue_position(self, e: fx.QueuePosition) -> Frames:
        return self._notice_to(e.member, text.queue_position_body(e.ahead))

    def _joined(self, e: fx.Joined) -> Frames:
        # The newcomer's own JOIN comes with its NAMES (MembershipView.roster).
        target = channel_target(e.channel)
        return self._to_each(e.audience, "JOIN", [target], self.mask(e.user), leaving_out=e.user)

    def _left(self, e: fx.Left) -> Frames:
        target = _channel_of(e.audience)
        if not target:
            return []
        source = self.mask(e.user)
        if e.quit:
            # One QUIT for each client: the last of the channels it shares with
            # the leaver sends it (the leaver leaves them one after another).
            audience = [m for m in e.audience if not _sees_elsewhere(m, e.user, target)]
            return self._to_each(audience, "QUIT", [e.reason or "Quit"], source)
        reason = e.reason or ("connection closed" if e.quiet else "")
        params = [target, reason] if reason else [target]
        return self._to_each(e.audience, "PART", params, source)

    def _went_afk(self, e: fx.WentAfk) -> Frames:
        target = _channel_of(e.audience)
        if not target:
            return []
        return self._to_each(e.audience, "PART", [target, "went AFK"], self.mask(e.user))

    def _kicked(self, e: fx.Kicked) -> Frames:
        target = _channel_of(e.audience)
        if not target:
            return []
        params = [target, shown(e.user), "kicked by the server operator"]
        return self._to_each(e.audience, "KICK", params, self.server_name)

    def _chat(self, e: fx.Chat) -> Frames:
        """On every line said in a channel: its IRC members are grouped once
        for as long as the channel's audience stays the same object."""
        target = _channel_of(e.audience)
        if not target:
            return []
        cached = self._groups.get(target)
        if cached is not None and cached[0] is e.audience and cached[1] == self._caps_version:
            groups = cached[2]
        else:
            groups = self._group(e.audience)
            self._groups[target] = (e.audience, self._caps_version, groups)
        sender = e.audience[0].channel.members.get(e.sender) if e.audience[0].channel else None
        if sender is not None and sender.conn.protocol is IRC:
            client = sender.conn.client  # type: ignore[attr-defined]
            group = groups.get(client.tags, [])
            if not client.echo and sender in group:
                # Without echo-message the sender does not get its own line.
                at = group.index(sender)
                groups = {**groups, client.tags: group[:at] + group[at + 1 :]}
        command = "NOTICE" if e.style == NOTICE else "PRIVMSG"
        params = [target, e.message]
        source, action = self.mask(e.sender), e.style == ACTION
        return self._frames(groups, command, params, source, action, e.seq, e.at)

    @staticmethod
    def _group(
        audience: Sequence[Member], sender: str | None = None, leaving_out: str | None = None
    ) -> dict[int, list[Member]]:
        """The IRC members of ``audience`` by the tags they want, one group
        of recipients per kind of copy; ``sender``: the member of that name
        only with ``echo-message``; ``leaving_out``: that one never. One pass
        over plain attributes: it runs for lines to whole channels."""
        groups: dict[int, list[Member]] = {}
        for member in audience:
            conn = member.conn
            if conn.protocol is not IRC:
                continue
            client = conn.client  # type: ignore[attr-defined]
            name = member.name
            if (name == sender and not client.echo) or name == leaving_out:
                continue
            group = groups.get(client.tags)
            if group is None:
                groups[client.tags] = [member]
            else:
                group.append(member)
        return groups

    def _history(self, e: fx.History) -> Frames:
        """The automatic replay after an IRC member's JOIN (docs/irc.md,
        "History"): a ``chathistory`` batch if its client has ``batch``, else
        plain messages, with the tags it asked for. A client that negotiated
        ``draft/chathistory`` asks for history itself (CHATHISTORY) and gets
        none unasked, as the specification says."""
        conn = e.member.conn
        if conn.protocol is not IRC:
            return []
        client: IrcClientView = conn.client  # type: ignore[attr-defined]
        if CHATHISTORY_CAP in client.caps:
            return []
        target = channel_target(e.channel)
        batch = self.batch_id() if "batch" in client.caps else ""
        lines = self._latest_lines(e.entries, target, client.tags, batch)
        if not lines:
            return []
        if batch:
            opening, closing = self.batch_ends(batch, "chathistory", target)
            lines = [opening, *lines, closing]
        else:
            # Without a batch nothing marks them as history: the server says
            # where they end, in the divider the terminal client draws.
            notice = encode("NOTICE", [target, text.HISTORY_DIVIDER], self.server_name)
            lines = [*lines, notice]
        member = (e.member,)
        return [(member, line) for line in lines]

    def _latest_lines(
        self, entries: Sequence[Entry], target: str, wanted: int, batch: str
    ) -> list[bytes]:
        """``history_lines`` of the latest ``entries`` that fit ``replay_room``
        (rendered in one go, a replay cannot wait for the outbox to drain as
        a CHATHISTORY reply does: a full outbox would drop the newcomer)."""
        if self.replay_room is None:
            return self.history_lines(entries, target, wanted, batch)
        most_frames, most_bytes = self.replay_room
        taken: list[list[bytes]] = []
        frames = size = 0
        for entry in reversed(entries):
            lines = self.history_lines((entry,), target, wanted, batch)
            frames += len(lines)
            size += sum(len(line) for line in lines)
            if frames > most_frames or size > most_bytes:
                break
            taken.append(lines)
        return [line for lines in reversed(taken) for line in lines]

    def _whisper(self, e: fx.Whisper) -> Frames:
        receiver = e.receiver
        if receiver is None:
            return []  # (not here: NotHere says so)
        source = self.mask(e.sender)
        command = "NOTICE" if e.style == NOTICE else "PRIVMSG"
        action = e.style == ACTION
        frames: Frames = []
        if receiver.conn.protocol is IRC:
            nick = receiver.conn.client.nick  # type: ignore[attr-defined]
            params = [nick, e.message]
            frames += self._to_each((receiver,), command, params, source, action=action)
        # The sender's echo, if it is on IRC and asked for echo-message.
        channel = receiver.channel
        sender = channel.members.get(e.sender) if channel is not None else None
        if sender is not None and sender is not receiver:
            params = [shown(e.target), e.message]
            frames += self._to_each(
                (sender,), command, params, source, sender=e.sender, action=action
            )
        return frames

    def _not_here(self, e: fx.NotHere) -> Frames:
        if e.to is None:
            return []
        return self._numeric(e.to, n.ERR_NOSUCHNICK, shown(e.user), "No such nick/channel")

    def _still_muted(self, e: fx.StillMuted) -> Frames:
        target = _channel_of((e.member,))
        body = text.still_muted_body(e.seconds)
        return self._numeric(e.member, n.ERR_CANNOTSENDTOCHAN, target, body) if target else []

    def _muted(self, e: fx.Muted) -> Frames:
        frames = self._notice_to(e.member, text.you_are_muted_body(e.seconds))
        target = _channel_of(e.others)
        if target:
            body = text.user_muted_body(shown(e.member.name), e.seconds)
            frames += self._to_each(e.others, "NOTICE", [target, body], self.server_name)
        return frames


_RENDER: dict[type[Any], Callable[[IrcRenderer, Any], Frames]] = {
    fx.CannotConnect: IrcRenderer._cannot_connect,
    fx.QueuePosition: IrcRenderer._queue_position,
    fx.Joined: IrcRenderer._joined,
    fx.Left: IrcRenderer._left,
    fx.WentAfk: IrcRenderer._went_afk,
    fx.Kicked: IrcRenderer._kicked,
    fx.Chat: IrcRenderer._chat,
    fx.Whisper: IrcRenderer._whisper,
    fx.History: IrcRenderer._history,
    fx.NotHere: IrcRenderer._not_here,
    fx.StillMuted: IrcRenderer._still_muted,
    fx.Muted: IrcRenderer._muted,
}
