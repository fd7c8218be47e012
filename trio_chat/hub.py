"""The chat rules: channels, waiting queues, names, commands, mutes and AFK.

Plain code that never awaits, so every call is atomic under trio and testable
without I/O. Each call takes the current time (trio's clock, in seconds) and
returns the effects it decided, in order; the server's trio layer carries them
out. Wall-clock ``hh:mm:ss`` stamps come from the injected ``stamp`` function.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from . import text
from .commands import (
    Chat,
    ClientCommand,
    ConsoleCommand,
    Empty,
    Kick,
    ListChannels,
    Mute,
    Quit,
    Send,
    Shutdown,
    Switch,
    Usage,
    Whisper,
)
from .config import ChannelConfig
from .defaults import DEFAULT_AFK_TIMEOUT as DEFAULT_AFK_TIMEOUT  # re-exported
from .names import username_problem
from .text import Stamp
from .wire import LineKind

# Exit statuses a client is told to use when the server closes its connection.
EXIT_OK = 0
EXIT_REFUSED = 1


@dataclass(eq=False)
class Member:
    """One connected client as the rules see it."""

    name: str
    conn: Any = None  # the I/O layer's handle for this client; never touched here
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


@dataclass(frozen=True)
class Deliver:
    """Send one contract line to each recipient, in this order."""

    recipients: Sequence[Member]
    kind: LineKind
    line: str


@dataclass(frozen=True)
class Print:
    """Print one contract line on the server's stdout."""

    line: str


@dataclass(frozen=True)
class Notice:
    """Tell one client something on its stderr (not a contract line)."""

    member: Member
    text: str


@dataclass(frozen=True)
class Console:
    """Tell the operator something on the server's stderr (not a contract line)."""

    text: str


@dataclass(frozen=True)
class Disconnect:
    """Close a client's connection after what was already sent to it."""

    member: Member
    status: int
    reason: str


@dataclass(frozen=True)
class Reschedule:
    """The member's AFK deadline changed; its timer must follow."""

    member: Member


@dataclass(frozen=True)
class Roster:
    """Tell a newly admitted member who is in its channel (for tab completion)."""

    member: Member
    names: Sequence[str]


@dataclass(frozen=True)
class StopServer:
    pass


Effect = Deliver | Print | Notice | Console | Disconnect | Reschedule | Roster | StopServer

ROSTER_LIMIT = 1000


class Hub:
    def __init__(
        self,
        channels: Sequence[ChannelConfig],
        stamp: Stamp = text.wall_clock_stamp,
        afk_timeout: float = DEFAULT_AFK_TIMEOUT,
    ) -> None:
        self.channels: dict[str, Channel] = {c.name: Channel(c) for c in channels}
        self.stamp = stamp
        self.afk_timeout = afk_timeout
        self.closed = False

    # ----- events from connections -----

    def join(
        self, channel_name: str, username: str, now: float, conn: Any = None
    ) -> tuple[Member | None, list[Effect]]:
        """A client said hello on ``channel_name``'s port."""
        effects: list[Effect] = []
        channel = self.channels[channel_name]
        member = Member(username, conn)
        if self.closed:
            return None, effects
        problem = username_problem(username)
        if problem is not None:
            effects.append(Disconnect(member, EXIT_REFUSED, f"refused: {problem}"))
            return None, effects
        if channel.has_name(username):
            stamp = self.stamp()
            effects.append(
                Deliver((member,), LineKind.SERVER, text.cannot_connect(stamp, channel.name))
            )
            effects.append(
                Disconnect(
                    member, EXIT_REFUSED, f"the name {username} is already in {channel.name}"
                )
            )
            return None, effects
        self._enter(member, channel, now, effects)
        return member, effects

    def input(self, member: Member, command: ClientCommand, now: float) -> list[Effect]:
        """A client sent one parsed stdin line."""
        effects: list[Effect] = []
        channel = member.channel
        if self.closed or channel is None:
            return effects
        if member.admitted and not member.muted(now):
            self._touch(member, now, effects)
        if isinstance(command, Chat):
            self._chat(member, channel, command.message, now, effects)
        elif isinstance(command, Whisper):
            self._whisper(member, channel, command, now, effects)
        elif isinstance(command, Quit):
            self._remove(member, channel, announce=True, now=now, effects=effects)
            effects.append(Disconnect(member, EXIT_OK, "you left the chat"))
        elif isinstance(command, ListChannels):
            lines = [
                text.channel_listing(c.name, len(c.members), c.config.capacity, len(c.queue))
                for c in self.channels.values()
            ]
            effects.extend(Deliver((member,), LineKind.LISTING, line) for line in lines)
        elif isinstance(command, Switch):
            self._switch(member, channel, command.channel, now, effects)
        elif isinstance(command, Usage):
            effects.append(Notice(member, command.hint))
        elif isinstance(command, Send):
            # The client handles /send itself; a raw /send line is a client bug.
            effects.append(Notice(member, "this client does not support /send"))
        return effects

    def drop(self, member: Member, now: float) -> list[Effect]:
        """The connection was lost without /quit: remove silently (behaviour.md, "Chatting")."""
        effects: list[Effect] = []
        channel = member.channel
        if self.closed or channel is None:
            return effects
        self._remove(member, channel, announce=False, now=now, effects=effects)
        return effects

    def flooded(self, member: Member, now: float, reason: str) -> list[Effect]:
        """The member sent more than its line budget for too long: it leaves as a
        kicked member does, without the kick line (README, "Flood control")."""
        effects: list[Effect] = []
        channel = member.channel
        if self.closed or channel is None:
            return effects
        effects.append(Disconnect(member, EXIT_OK, reason))
        effects.append(Console(f"disconnected {member.name} from {channel.name}: {reason}"))
        self._remove(member, channel, announce=True, now=now, effects=effects, logged=False)
        return effects

    def afk_due(self, member: Member, now: float) -> list[Effect]:
        """The member's AFK timer fired; act only if the deadline really passed."""
        effects: list[Effect] = []
        channel = member.channel
        if self.closed or channel is None or not member.admitted:
            return effects
        if now < member.afk_deadline:
            effects.append(Reschedule(member))
            return effects
        if member.transfers:
            # Sending or receiving a file is activity; a transfer that stalls
            # is called off by the server, and then the timer counts again.
            self._touch(member, now, effects)
            return effects
        line = text.went_afk(self.stamp(), member.name)
        self._take_out(member, channel)
        effects.append(Print(line))
        self._tell_channel(channel, LineKind.SERVER, line, effects)
        effects.append(Disconnect(member, EXIT_OK, "disconnected for inactivity"))
        self._advance(channel, now, effects)
        return effects

    def offer_file(
        self, member: Member, target_name: str, path: str, readable: bool, now: float
    ) -> tuple[Member | None, list[Effect]]:
        """The member asked to /send ``path``; the target if the transfer may start.

        The client checked the file itself (``readable``); the server checks the
        target, so both error lines carry the server's stamp, in the documented order.
        """
        effects: list[Effect] = []
        channel = member.channel
        if self.closed or channel is None:
            return None, effects
        if member.admitted and not member.muted(now):
            self._touch(member, now, effects)
        target = channel.members.get(target_name) if member.admitted else None
        stamp = self.stamp()
        if target is None:
            effects.append(Deliver((member,), LineKind.SERVER, text.not_here(stamp, target_name)))
        if not readable:
            effects.append(Deliver((member,), LineKind.SERVER, text.does_not_exist(stamp, path)))
        if target is None or not readable:
            return None, effects
        return target, effects

    def transfer_started(self, member: Member) -> list[Effect]:
        """A file the member sends or receives began to move: while it does,
        the member is not idle. Called once for each end."""
        member.transfers += 1
        return []

    def transfer_ended(self, member: Member) -> list[Effect]:
        member.transfers = max(0, member.transfers - 1)
        return []

    def not_idle(self, member: Member, now: float) -> list[Effect]:
        """The member's AFK timer starts again (a mute still freezes it): a file
        it sends or receives moved on (behaviour.md, "Inactivity (AFK)"), or it
        could not have shown activity (its server lost the cluster's Redis)."""
        effects: list[Effect] = []
        if not self.closed and member.admitted and not member.muted(now):
            self._touch(member, now, effects)
        return effects

    def file_delivered(self, sender: Member, target_name: str, path: str) -> list[Effect]:
        """The target saved the whole file: tell the sender and the server."""
        if self.closed:
            return []
        stamp = self.stamp()
        return [
            Deliver((sender,), LineKind.SERVER, text.you_sent(stamp, path, target_name)),
            Print(text.file_sent(stamp, sender.name, path, target_name)),
        ]

    # ----- events from the server console -----

    def console(self, command: ConsoleCommand, now: float) -> list[Effect]:
        effects: list[Effect] = []
        if self.closed:
            return effects
        if isinstance(command, Kick):
            self._kick(command, now, effects)
        elif isinstance(command, Mute):
            self._mute(command, now, effects)
        elif isinstance(command, Empty):
            self._empty(command.channel, now, effects)
        elif isinstance(command, Shutdown):
            self.closed = True
            effects.append(StopServer())
        elif isinstance(command, Usage):
            effects.append(Console(command.hint))
        return effects

    def shutdown(self) -> None:
        """From now on nothing changes and nothing is announced."""
        self.closed = True

    # ----- the rules -----

    def _enter(self, member: Member, channel: Channel, now: float, effects: list[Effect]) -> None:
        stamp = self.stamp()
        member.channel = channel
        member.admitted = False
        effects.append(
            Deliver((member,), LineKind.SERVER, text.welcome(stamp, channel.name, member.name))
        )
        channel.queue.append(member)
        channel.queued_names.add(member.name)
        self._advance(channel, now, effects)
        if not member.admitted:
            # The newcomer is the last in the queue: everyone else came first.
            ahead = len(channel.queue) - 1
            effects.append(Deliver((member,), LineKind.SERVER, text.queue_position(stamp, ahead)))

    def _advance(self, channel: Channel, now: float, effects: list[Effect]) -> None:
        """Move the longest-waiting clients into free places, then tell the rest."""
        moved = 0
        while channel.queue and channel.has_room():
            member = channel.queue.pop(0)
            channel.queued_names.discard(member.name)
            moved += 1
            self._admit(member, channel, now, effects)
        if moved:
            self._tell_positions(channel, 0, effects)

    def _admit(self, member: Member, channel: Channel, now: float, effects: list[Effect]) -> None:
        stamp = self.stamp()
        member.admitted = True
        channel.members[member.name] = member
        # Time spent queued does not count; a mute carried in freezes the timer.
        member.afk_deadline = max(now, member.muted_until) + self.afk_timeout
        effects.append(Reschedule(member))
        effects.append(Roster(member, list(itertools.islice(channel.members, ROSTER_LIMIT))))
        self._tell_channel(
            channel, LineKind.SERVER, text.joined_channel(stamp, member.name), effects
        )
        effects.append(Print(text.joined_named_channel(stamp, member.name, channel.name)))

    def _tell_positions(self, channel: Channel, start: int, effects: list[Effect]) -> None:
        stamp = self.stamp()
        for ahead in range(start, len(channel.queue)):
            waiting = channel.queue[ahead]
            effects.append(Deliver((waiting,), LineKind.SERVER, text.queue_position(stamp, ahead)))

    def _tell_channel(
        self, channel: Channel, kind: LineKind, line: str, effects: list[Effect]
    ) -> None:
        if channel.members:
            effects.append(Deliver(tuple(channel.members.values()), kind, line))

    def _take_out(self, member: Member, channel: Channel) -> int | None:
        """Remove the member from its channel or queue; its queue index, if queued."""
        member.channel = None
        member.afk_deadline = math.inf
        if member.admitted:
            member.admitted = False
            del channel.members[member.name]
            return None
        index = channel.queue.index(member)
        del channel.queue[index]
        channel.queued_names.discard(member.name)
        return index

    def _remove(
        self,
        member: Member,
        channel: Channel,
        announce: bool,
        now: float,
        effects: list[Effect],
        logged: bool = True,
    ) -> None:
        """Take the member out; announce its leaving if asked (on the server's
        stdout too unless not ``logged``); let the queue move."""
        was_admitted = member.admitted
        index = self._take_out(member, channel)
        if announce:
            line = text.left_channel(self.stamp(), member.name)
            if logged:
                effects.append(Print(line))
            if was_admitted:
                self._tell_channel(channel, LineKind.SERVER, line, effects)
        if index is not None:
            self._tell_positions(channel, index, effects)
        else:
            self._advance(channel, now, effects)

    def _touch(self, member: Member, now: float, effects: list[Effect]) -> None:
        member.afk_deadline = now + self.afk_timeout
        effects.append(Reschedule(member))

    def _queue_reminder(self, member: Member, channel: Channel, effects: list[Effect]) -> None:
        ahead = channel.queue.index(member)
        effects.append(
            Deliver((member,), LineKind.SERVER, text.queue_position(self.stamp(), ahead))
        )

    def _refuse_if_muted(self, member: Member, now: float, effects: list[Effect]) -> bool:
        if not member.muted(now):
            return False
        remaining = max(1, math.floor(member.muted_until - now))
        effects.append(
            Deliver((member,), LineKind.SERVER, text.still_muted(self.stamp(), remaining))
        )
        return True

    def _chat(
        self, member: Member, channel: Channel, message: str, now: float, effects: list[Effect]
    ) -> None:
        if not member.admitted:
            self._queue_reminder(member, channel, effects)
            return
        if self._refuse_if_muted(member, now, effects):
            return
        line = text.chat(self.stamp(), member.name, message)
        self._tell_channel(channel, LineKind.CHAT, line, effects)
        effects.append(Print(line))

    def _whisper(
        self, member: Member, channel: Channel, whisper: Whisper, now: float, effects: list[Effect]
    ) -> None:
        if not member.admitted:
            # A queued client cannot talk to anyone (behaviour.md, "Choices where the
            # rules are silent"): treated as chat.
            self._queue_reminder(member, channel, effects)
            return
        if self._refuse_if_muted(member, now, effects):
            return
        stamp = self.stamp()
        target = channel.members.get(whisper.target)
        if target is None:
            effects.append(
                Deliver((member,), LineKind.SERVER, text.not_here(stamp, whisper.target))
            )
        else:
            effects.append(
                Deliver(
                    (target,),
                    LineKind.WHISPER,
                    text.whisper_received(stamp, member.name, whisper.message),
                )
            )
        effects.append(
            Print(text.whisper_logged(stamp, member.name, whisper.target, whisper.message))
        )

    def _switch(
        self, member: Member, channel: Channel, target_name: str, now: float, effects: list[Effect]
    ) -> None:
        target = self.channels.get(target_name)
        stamp = self.stamp()
        if target is None:
            effects.append(
                Deliver((member,), LineKind.SERVER, text.does_not_exist(stamp, target_name))
            )
            return
        if target.has_name(member.name):
            effects.append(
                Deliver((member,), LineKind.SERVER, text.cannot_switch(stamp, target_name))
            )
            return
        self._remove(member, channel, announce=True, now=now, effects=effects)
        self._enter(member, target, now, effects)

    def _kick(self, kick: Kick, now: float, effects: list[Effect]) -> None:
        stamp = self.stamp()
        channel = self.channels.get(kick.channel)
        if channel is None:
            effects.append(Print(text.does_not_exist(stamp, kick.channel)))
            return
        member = channel.members.get(kick.user)
        if member is None:
            effects.append(Print(text.not_in_channel(stamp, kick.user, kick.channel)))
            return
        self._take_out(member, channel)
        effects.append(Disconnect(member, EXIT_OK, "kicked by the server operator"))
        self._tell_channel(channel, LineKind.SERVER, text.left_channel(stamp, member.name), effects)
        effects.append(Print(text.kicked(stamp, member.name)))
        self._advance(channel, now, effects)

    def _mute(self, mute: Mute, now: float, effects: list[Effect]) -> None:
        stamp = self.stamp()
        if mute.seconds is None:
            effects.append(Print(text.invalid_mute_time(stamp)))
            return
        channel = self.channels.get(mute.channel)
        member = channel.members.get(mute.user) if channel is not None else None
        if channel is None or member is None:
            effects.append(Print(text.not_here(stamp, mute.user)))
            return
        # The AFK timer is frozen while muted: keep what was left of it when the
        # (first) mute began and resume from there when the mute ends.
        frozen_until = max(now, member.muted_until)
        left = member.afk_deadline - frozen_until
        member.muted_until = now + mute.seconds
        member.afk_deadline = member.muted_until + left
        effects.append(Reschedule(member))
        effects.append(Print(text.muted_log(stamp, member.name, mute.seconds)))
        effects.append(Deliver((member,), LineKind.SERVER, text.you_are_muted(stamp, mute.seconds)))
        others = tuple(m for m in channel.members.values() if m is not member)
        if others:
            effects.append(
                Deliver(others, LineKind.SERVER, text.user_muted(stamp, member.name, mute.seconds))
            )

    def _empty(self, channel_name: str, now: float, effects: list[Effect]) -> None:
        stamp = self.stamp()
        channel = self.channels.get(channel_name)
        if channel is None:
            effects.append(Print(text.does_not_exist(stamp, channel_name)))
            return
        for member in list(channel.members.values()):
            self._take_out(member, channel)
            effects.append(
                Disconnect(member, EXIT_OK, f"{channel_name} was emptied by the operator")
            )
        effects.append(Print(text.emptied(stamp, channel_name)))
        self._advance(channel, now, effects)
