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
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from .. import effects as fx
from .. import text
from ..events import ACTION, NOTICE
from ..state import ClientProtocol, Member
from . import numerics as n
from .lines import MAX_LINE, encode
from .nicks import shown


class IrcClientView(Protocol):
    """What rendering needs to know of an IRC connection (client.IrcClient)."""

    @property
    def nick(self) -> str: ...
    @property
    def echo(self) -> bool: ...  # echo-message
    @property
    def wants_time(self) -> bool: ...  # server-time
    @property
    def wants_msgid(self) -> bool: ...  # message-tags


class IrcMembership(Protocol):
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


def server_time() -> str:
    """``server-time``'s tag value: UTC, to the millisecond."""
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"


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


def _irc_members(audience: Sequence[Member]) -> list[IrcMembership]:
    return [m.conn for m in audience if m.conn.protocol is IRC]  # type: ignore[misc]


class IrcRenderer:
    """Renders effects for the IRC members of this server."""

    def __init__(self, server_name: str) -> None:
        self.server_name = server_name
        # msgid tags: unique on this server (and on every node of a cluster:
        # each process starts its own series).
        self._msgids = itertools.count(1)
        self._msgid_prefix = os.urandom(4).hex()

    def mask(self, name: str) -> str:
        nick = shown(name)
        return f"{nick}!{nick[: n.USERLEN]}@{self.server_name}"

    def frames(self, effect: fx.Said) -> Frames:
        render = _RENDER.get(type(effect))
        return render(self, effect) if render is not None else []

    # ----- one message to several members, each copy as its client asked -----

    def _to_each(
        self,
        members: Sequence[IrcMembership],
        command: str,
        params: list[str],
        source: str,
        skip_echo_of: IrcMembership | None = None,
    ) -> Frames:
        """The message, split if too long, with tags for those who want them;
        ``skip_echo_of``: the sender, which gets it only with ``echo-message``."""
        groups: dict[tuple[bool, bool], list[Member]] = {}
        for membership in members:
            client = membership.client
            if membership is skip_echo_of and not client.echo:
                continue
            if membership.member is not None:
                groups.setdefault((client.wants_time, client.wants_msgid), []).append(
                    membership.member
                )
        if not groups:
            return []
        *head, message = params
        room = MAX_LINE - len(source) - len(command) - sum(len(p) + 1 for p in head) - 8
        pieces = split_text(message, max(room, 64))
        frames: Frames = []
        stamp = server_time() if any(wants for wants, _ in groups) else ""
        for piece in pieces:
            msgid = f"{self._msgid_prefix}-{next(self._msgids)}"
            for (wants_time, wants_msgid), recipients in groups.items():
                tags: dict[str, str] = {}
                if wants_time:
                    tags["time"] = stamp
                if wants_msgid:
                    tags["msgid"] = msgid
                frames.append((recipients, encode(command, [*head, piece], source, tags or None)))
        return frames

    def _from_server(
        self, members: Sequence[IrcMembership], command: str, params: list[str]
    ) -> Frames:
        return self._to_each(members, command, params, self.server_name)

    # ----- the effects -----

    def _cannot_connect(self, e: fx.CannotConnect) -> Frames:
        (membership,) = _irc_members((e.member,)) or (None,)
        if membership is None:
            return []
        line = n.numeric(
            self.server_name,
            n.ERR_UNAVAILRESOURCE,
            membership.client.nick,
            channel_target(e.channel),
            f"The name {shown(e.member.name)} is taken in #{e.channel} by someone not on IRC",
        )
        return [((e.member,), line)]

    def _queue_position(self, e: fx.QueuePosition) -> Frames:
        members = _irc_members((e.member,))
        if not members:
            return []
        membership = members[0]
        body = text.queue_position_body(e.ahead)
        notice = f"{channel_target(membership.channel)}: {body}"
        return self._from_server(members, "NOTICE", [membership.client.nick, notice])

    def _joined(self, e: fx.Joined) -> Frames:
        # The newcomer's own JOIN comes with its NAMES (IrcMembership.roster).
        others = [
            m for m in _irc_members(e.audience) if m.member is None or m.member.name != e.user
        ]
        return self._to_each(others, "JOIN", [channel_target(e.channel)], self.mask(e.user))

    def _left(self, e: fx.Left) -> Frames:
        members = _irc_members(e.audience)
        if not members:
            return []
        source = self.mask(e.user)
        if e.quit:
            return self._to_each(members, "QUIT", [e.reason or "Quit"], source)
        target = channel_target(members[0].channel)
        reason = e.reason or ("connection closed" if e.quiet else "")
        params = [target, reason] if reason else [target]
        return self._to_each(members, "PART", params, source)

    def _went_afk(self, e: fx.WentAfk) -> Frames:
        members = _irc_members(e.audience)
        if not members:
            return []
        target = channel_target(members[0].channel)
        return self._to_each(members, "PART", [target, "went AFK"], self.mask(e.user))

    def _kicked(self, e: fx.Kicked) -> Frames:
        members = _irc_members(e.audience)
        if not members:
            return []
        target = channel_target(members[0].channel)
        return self._from_server(
            members, "KICK", [target, shown(e.user), "kicked by the server operator"]
        )

    def _chat(self, e: fx.Chat) -> Frames:
        members = _irc_members(e.audience)
        if not members:
            return []
        sender = next(
            (m for m in members if m.member is not None and m.member.name == e.sender), None
        )
        message = e.message
        command = "PRIVMSG"
        if e.style == NOTICE:
            command = "NOTICE"
        elif e.style == ACTION:
            message = f"\x01ACTION {message}\x01"
        target = channel_target(members[0].channel)
        return self._to_each(members, command, [target, message], self.mask(e.sender), sender)

    def _whisper(self, e: fx.Whisper) -> Frames:
        if e.receiver is None:
            return []  # (not here: NotHere says so)
        frames: Frames = []
        receiver = _irc_members((e.receiver,))
        source = self.mask(e.sender)
        if receiver:
            frames += self._to_each(
                receiver, "PRIVMSG", [receiver[0].client.nick, e.message], source
            )
        # The sender's echo, if it is on IRC and asked for echo-message.
        channel = e.receiver.channel
        sender = channel.members.get(e.sender) if channel is not None else None
        echo = _irc_members((sender,)) if sender is not None and sender is not e.receiver else []
        if echo and echo[0].client.echo:
            frames += self._to_each(echo, "PRIVMSG", [shown(e.target), e.message], source)
        return frames

    def _not_here(self, e: fx.NotHere) -> Frames:
        members = _irc_members((e.to,)) if e.to is not None else []
        if not members:
            return []
        nick = members[0].client.nick
        line = n.numeric(
            self.server_name, n.ERR_NOSUCHNICK, nick, shown(e.user), "No such nick/channel"
        )
        return [((e.to,), line)] if e.to is not None else []

    def _still_muted(self, e: fx.StillMuted) -> Frames:
        members = _irc_members((e.member,))
        if not members:
            return []
        membership = members[0]
        body = text.still_muted_body(e.seconds)
        line = n.numeric(
            self.server_name,
            n.ERR_CANNOTSENDTOCHAN,
            membership.client.nick,
            channel_target(membership.channel),
            body,
        )
        return [((e.member,), line)]

    def _muted(self, e: fx.Muted) -> Frames:
        frames: Frames = []
        muted = _irc_members((e.member,))
        if muted:
            membership = muted[0]
            body = text.you_are_muted_body(e.seconds)
            notice = f"{channel_target(membership.channel)}: {body}"
            frames += self._from_server(muted, "NOTICE", [membership.client.nick, notice])
        others = _irc_members(e.others)
        if others:
            body = text.user_muted_body(shown(e.member.name), e.seconds)
            frames += self._from_server(others, "NOTICE", [channel_target(others[0].channel), body])
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
    fx.NotHere: IrcRenderer._not_here,
    fx.StillMuted: IrcRenderer._still_muted,
    fx.Muted: IrcRenderer._muted,
}
