"""The chat rules: channels, waiting queues, names, commands, mutes and AFK.

Everything that affects who is where and who is told what lives here, in
plain code that never awaits: every call is atomic under trio and testable
without I/O. One entry point, ``Hub.handle(event, now, stamp)``, takes an
input event (``events.py``) with the current time (trio's clock, in seconds;
in a cluster, the time of the log entry) and the wall-clock ``hh:mm:ss``
stamp of the moment, and returns what happened (``effects.py``), in order.
Each event type has one rule, found in the ``_RULES`` table; docs/behaviour.md
says what the rules are.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from . import commands as cmd
from . import effects as fx
from . import events as ev
from . import history as hist
from . import text
from .bans import AddressBan, Bans, NameBan, Target, covers
from .config import ChannelConfig
from .defaults import DEFAULT_AFK_TIMEOUT as DEFAULT_AFK_TIMEOUT  # re-exported
from .defaults import DEFAULT_CONSOLE_HISTORY
from .names import fold_nick, username_problem
from .state import Cause, Channel, Member
from .who import who

if TYPE_CHECKING:
    from .state import Connection

__all__ = ["DEFAULT_AFK_TIMEOUT", "EXIT_OK", "EXIT_REFUSED", "Channel", "Hub", "Member"]

# Exit statuses a client is told to use when the server closes its connection.
EXIT_OK = 0
EXIT_REFUSED = 1

ROSTER_LIMIT = 1000
# What a newcomer from a banned address is told, after "refused: " (and
# for how long); IRC's 465 says it in its own words.
ADDRESS_BANNED = "your address is banned from this server"

Effects = list[fx.Effect]


class Hub:
    def __init__(
        self,
        channels: Sequence[ChannelConfig],
        afk_timeout: float = DEFAULT_AFK_TIMEOUT,
        connection_for: Callable[[str], Connection] | None = None,
        history: hist.HistoryConfig = hist.NO_HISTORY,
    ) -> None:
        """``connection_for`` gives the I/O handle of a connection by its
        reference (its gateway sets it): the rules keep it in the member and
        hand it on in their effects, nothing more. ``history``: how much of
        what is said each channel keeps (history.py)."""
        self.channels: dict[str, Channel] = {
            c.name: Channel(c, history=hist.History(history)) for c in channels
        }
        self.history = history
        self._keeping = history.on  # (read on every line said)
        # The last line number given (history.Entry.seq): every line said in
        # any channel takes the next, history or not, so its id is the same
        # on every node of a cluster.
        self.said = 0
        # Everyone in a channel or its queue, or told to go and not yet gone
        # (until its connection's ``Drop``), by connection reference.
        self.members: dict[str, Member] = {}
        self.connection_for = connection_for or _no_connections
        self.afk_timeout = afk_timeout
        # IRC connections' nicks (events.ClaimNick), by nick without ASCII
        # case, and the other way round: each connection's reference -> its nick.
        self.nicks: dict[str, str] = {}
        self.nick_of: dict[str, str] = {}
        # Names refused in a channel and addresses refused everywhere (bans.py).
        self.bans = Bans()
        self.closed = False
        self._stamp = ""  # the stamp of the event being handled
        self._wall = 0.0  # and its wall-clock time

    def handle(self, event: ev.Event, now: float, stamp: str, wall: float | None = None) -> Effects:
        """Apply one event; what happened, in order. ``wall``: the event's
        wall-clock time in seconds since the epoch, which history keeps
        (by default ``now``: a cluster's log time is both)."""
        if self.closed:
            # After /shutdown nothing changes and nothing is announced.
            return []
        effects: Effects = []
        self._stamp = stamp  # for the effects of this event
        self._wall = now if wall is None else wall
        _RULES[type(event)](self, event, now, effects)
        return effects

    def lines_kept(self) -> int:
        """The entries every channel's history holds."""
        return sum(len(channel.history) for channel in self.channels.values())

    def shutdown(self) -> None:
        """From now on nothing changes and nothing is announced."""
        self.closed = True

    # ----- the rules, one per event type -----

    def _join(self, event: ev.Join, now: float, effects: Effects) -> None:
        channel = self.channels.get(event.channel)
        username = event.username
        member = Member(
            event.ref,
            username,
            self.connection_for(event.ref),
            via_irc=event.via_irc,
            ident=event.ident,
            address=event.address,
            protocol=ev.IRC if event.via_irc else event.protocol,
        )
        if channel is None:
            # A reload removed it between the connection and its hello.
            reason = f"refused: there is no channel {event.channel} any more"
            effects.append(fx.Disconnect(member, EXIT_REFUSED, reason, Cause.REFUSED))
            return
        problem = username_problem(username)
        if problem is not None:
            effects.append(
                fx.Disconnect(member, EXIT_REFUSED, f"refused: {problem}", Cause.REFUSED)
            )
            return
        refusal = self._ban_refusal(channel, username, event.address, event.via_irc, now)
        if refusal is not None:
            why, ban = refusal
            effects.append(fx.Disconnect(member, EXIT_REFUSED, why, Cause.BANNED))
            effects.append(fx.BanRefused(str(ban), username, event.address))
            return
        taken = None
        if channel.has_name(username) or (event.via_irc and _clash(channel, username)):
            taken = f"the name {username} is already in {channel.name}"
        elif not event.via_irc and fold_nick(username) in self.nicks:
            # IRC folds case, and an IRC nick is one person across the chat:
            # a terminal name may not be an IRC user's nick (docs/irc.md, "Names").
            taken = f"the name {username} is an IRC user's nick"
        if taken is not None:
            effects.append(fx.CannotConnect(self._stamp, member, channel.name))
            effects.append(fx.Disconnect(member, EXIT_REFUSED, taken, Cause.NAME_TAKEN))
            return
        self.members[event.ref] = member
        self._enter(member, channel, now, effects)

    def _input(self, event: ev.Input, now: float, effects: Effects) -> None:
        member = self.members.get(event.ref)
        command = cmd.parse_client_line(event.line)
        if member is None or command is None:
            return
        channel = member.channel
        if channel is None:
            return
        if member.admitted and not member.muted(now):
            self._touch(member, now, effects)
        if isinstance(command, cmd.Chat):
            self._chat(member, channel, command.message, now, effects)
        elif isinstance(command, cmd.Whisper):
            self._whisper(member, channel, command, now, effects)
        elif isinstance(command, cmd.Quit):
            self._quit(member, channel, now, effects)
        elif isinstance(command, cmd.ListChannels):
            rows = [
                fx.ChannelRow(c.name, len(c.members), c.config.capacity, len(c.queue))
                for c in self.channels.values()
            ]
            effects.append(fx.Listing(self._stamp, member, rows))
        elif isinstance(command, cmd.Switch):
            self._switch(member, channel, command.channel, now, effects)
        elif isinstance(command, cmd.Usage):
            effects.append(fx.Notice(member, command.hint))
        elif isinstance(command, cmd.Send):
            # The client handles /send itself; a raw /send line is a client bug.
            effects.append(fx.Notice(member, "this client does not support /send"))

    def _say(self, event: ev.Say, now: float, effects: Effects) -> None:
        member = self._active(event.ref, now, effects)
        if member is not None and member.channel is not None:
            style = event.style if event.style in ev.CHAT_STYLES else ev.CHAT
            self._chat(member, member.channel, event.message, now, effects, style)

    def _tell(self, event: ev.Tell, now: float, effects: Effects) -> None:
        member = self._active(event.ref, now, effects)
        if member is not None and member.channel is not None:
            style = event.style if event.style in ev.CHAT_STYLES else ev.CHAT
            whisper = cmd.Whisper(event.target, event.message)
            self._whisper(member, member.channel, whisper, now, effects, style)

    def _leave(self, event: ev.Leave, now: float, effects: Effects) -> None:
        member = self._active(event.ref, now, effects)
        if member is not None and member.channel is not None:
            self._quit(member, member.channel, now, effects, event.reason, event.quit)

    def _claim_nick(self, event: ev.ClaimNick, now: float, effects: Effects) -> None:
        """First come, first served, across the chat; a connection may take
        back its own nick in another case. A terminal or browser member's name
        is taken too, in any ASCII case (docs/irc.md, "Names")."""
        ban = self.bans.address_ban(event.address, now)
        if ban is not None:
            why = self._address_refusal(ban, now)
            conn = self.connection_for(event.ref)
            effects.append(fx.NickDecided(conn, event.nick, False, why))
            effects.append(fx.BanRefused(str(ban), event.nick, event.address))
            return
        folded = fold_nick(event.nick)
        holder = self.nicks.get(folded)
        accepted = holder is None or holder == event.ref
        if accepted and holder is None:
            accepted = not any(self._terminal_holds(c, folded) for c in self.channels.values())
        if accepted:
            self._release_nick(event.ref)
            self.nicks[folded] = event.ref
            self.nick_of[event.ref] = event.nick
        effects.append(fx.NickDecided(self.connection_for(event.ref), event.nick, accepted))

    @staticmethod
    def _terminal_holds(channel: Channel, folded: str) -> bool:
        """Whether a terminal or browser member in ``channel`` or its queue
        has the name that folds to ``folded``. The channel's count of folded
        names answers first: every IRC registration asks this of every
        channel, and folding everyone in the chat for each cost a
        registration the size of the whole server."""
        if folded not in channel.folded:
            return False
        return any(
            fold_nick(m.name) == folded and not m.via_irc
            for m in (*channel.members.values(), *channel.queue)
        )

    def _release_nick(self, ref: str) -> None:
        nick = self.nick_of.pop(ref, None)
        if nick is not None:
            del self.nicks[fold_nick(nick)]

    def _drop(self, event: ev.Drop, now: float, effects: Effects) -> None:
        """The connection was lost without /quit: remove silently (behaviour.md, "Chatting")."""
        self._release_nick(event.ref)
        member = self.members.pop(event.ref, None)
        if member is not None and member.channel is not None:
            self._remove(member, member.channel, announce=False, now=now, effects=effects)

    def _flooded(self, event: ev.Flooded, now: float, effects: Effects) -> None:
        """The member sent more than its line budget for too long: it leaves as a
        kicked member does, without the kick line (docs/security.md, "Flood control")."""
        member = self.members.get(event.ref)
        if member is None or member.channel is None:
            return
        channel = member.channel
        effects.append(fx.Disconnect(member, EXIT_OK, event.reason, Cause.FLOODED))
        effects.append(
            fx.Console(
                f"disconnected {member.name} from {channel.name}: {event.reason}",
                event="flood_disconnect",
                fields=(("user", member.name), ("channel", channel.name), ("reason", event.reason)),
            )
        )
        self._remove(member, channel, announce=True, now=now, effects=effects, logged=False)

    def _afk_due(self, event: ev.AfkDue, now: float, effects: Effects) -> None:
        """The member's AFK timer fired; act only if the deadline really passed."""
        member = self.members.get(event.ref)
        if member is None or member.channel is None or not member.admitted:
            return
        channel = member.channel
        if now < member.afk_deadline:
            effects.append(fx.Reschedule(member))
            return
        if member.transfers:
            # Sending or receiving a file is activity; a transfer that stalls
            # is called off by the server, and then the timer counts again.
            self._touch(member, now, effects)
            return
        self._take_out(member, channel)
        msgid = self._record_event(channel, hist.LEFT, member.name, hist.BY_AFK, effects)
        effects.append(fx.WentAfk(self._stamp, channel.audience(), member.name, msgid))
        effects.append(fx.Disconnect(member, EXIT_OK, "disconnected for inactivity", Cause.AFK))
        self._advance(channel, now, effects)

    def _awake(self, event: ev.Awake, now: float, effects: Effects) -> None:
        for ref in event.refs:
            member = self.members.get(ref)
            if member is None:
                continue
            if member.admitted and not member.muted(now):
                self._touch(member, now, effects)
            else:
                # Muted, the timer stays frozen (queued, it does not run), but
                # the connection's timer must be set again all the same.
                effects.append(fx.Reschedule(member))

    def _offer(self, event: ev.Offer, now: float, effects: Effects) -> None:
        """The member asked to /send a file; the answer names the target if it may go.

        The client checked the file itself (``readable``); the server checks the
        target, so both error lines carry the server's stamp, in the documented order.
        """
        member = self.members.get(event.ref)
        channel = member.channel if member is not None else None
        if member is None or channel is None:
            # Gone meanwhile: the offer is answered all the same (nobody hears it).
            conn = member.conn if member is not None else self.connection_for(event.ref)
            effects.append(fx.OfferDecided(conn, event.offer, None))
            return
        if member.admitted and not member.muted(now):
            self._touch(member, now, effects)
        target = channel.members.get(event.target) if member.admitted else None
        if target is None:
            effects.append(fx.NotHere(self._stamp, member, event.target))
        elif target.via_irc:
            effects.append(
                fx.Notice(member, f"{target.name} is on IRC, which cannot receive files")
            )
            effects.append(fx.OfferDecided(member.conn, event.offer, None))
            return
        if not event.readable:
            effects.append(fx.NotFound(self._stamp, member, event.path))
        allowed = target if event.readable else None
        effects.append(fx.OfferDecided(member.conn, event.offer, allowed))

    def _transfer_started(self, event: ev.TransferStarted, now: float, effects: Effects) -> None:
        """While a file moves, neither end is idle (behaviour.md, "Inactivity (AFK)")."""
        ends = [self.members.get(ref) for ref in (event.sender, event.receiver)]
        here = [m for m in ends if m is not None and m.channel is not None]
        if len(here) < 2:
            return  # one end left first: the file is being called off
        for member in here:
            member.transfers += 1

    def _transfer_ended(self, event: ev.TransferEnded, now: float, effects: Effects) -> None:
        for ref in (event.sender, event.receiver):
            member = self.members.get(ref)
            if member is not None:
                member.transfers = max(0, member.transfers - 1)

    def _transfer_progress(self, event: ev.TransferProgress, now: float, effects: Effects) -> None:
        """The member's AFK timer starts again (a mute still freezes it)."""
        member = self.members.get(event.ref)
        if member is not None and member.admitted and not member.muted(now):
            self._touch(member, now, effects)

    def _file_delivered(self, event: ev.FileDelivered, now: float, effects: Effects) -> None:
        """The target saved the whole file: tell the sender and the server."""
        member = self.members.get(event.sender)
        if member is not None:
            effects.append(fx.FileSent(self._stamp, member, event.target, event.path))

    def _console(self, event: ev.ConsoleLine, now: float, effects: Effects) -> None:
        """A line from a control connection (``answer_to``) gets its answer
        marked out, for its node to copy to it (server/control.py)."""
        if not event.answer_to:
            self._console_command(event, now, effects)
            return
        effects.append(fx.AnswerBegins(event.answer_to))
        start = len(effects)
        self._console_command(event, now, effects)
        failed = any(_failure(effect) for effect in effects[start:])
        effects.append(fx.AnswerEnds(event.answer_to, failed))

    def _console_command(self, event: ev.ConsoleLine, now: float, effects: Effects) -> None:
        command = cmd.parse_console_line(event.line)
        if isinstance(command, cmd.Kick):
            self._kick(command, now, effects)
        elif isinstance(command, cmd.Mute):
            self._mute(command, now, effects)
        elif isinstance(command, cmd.Empty):
            self._empty(command.channel, now, effects)
        elif isinstance(command, cmd.ShowHistory):
            self._show_history(command, effects)
        elif isinstance(command, cmd.Shutdown):
            self.closed = True
            effects.append(fx.StopServer())
        elif isinstance(command, cmd.Who):
            effects.extend(who(self.channels.values(), command.channel, now, self.afk_timeout))
        elif isinstance(command, cmd.Ban):
            self._ban(command, now, effects)
        elif isinstance(command, cmd.Unban):
            self.bans.expire(now)
            target = command.target
            if command.or_name is not None and self.bans.end(command.or_name) > now:
                target = command.or_name  # (a channel a::b's a::b:user)
            lifted = self.bans.remove(target)
            effects.append(fx.Unbanned(self._stamp, str(target), lifted))
            if lifted:
                effects.append(fx.BansChanged())
        elif isinstance(command, cmd.ListBans):
            self._list_bans(now, effects)
        elif isinstance(command, cmd.Usage):
            effects.append(fx.Console(command.hint, failed=True))
        # cmd.Reload: the server reads the files and hands on a Reconfigure.

    def _reconfigure(self, event: ev.Reconfigure, now: float, effects: Effects) -> None:
        """A reload (behaviour.md, "Reloading the config"): a removed channel
        is emptied, members and queue; a new one starts empty; a larger
        capacity lets the queue in at once, a smaller one lets members stay
        and nobody in until below it; a port only matters to the server's
        listeners. The channels' order (``/list``) is the new config's."""
        configs = [ChannelConfig(name, port, capacity) for name, port, capacity in event.channels]
        wanted = {config.name for config in configs}
        for name, channel in self.channels.items():
            if name not in wanted:
                self._remove_channel(channel, effects)
        for channel in self.adopt_channels(configs):
            self._advance(channel, now, effects)
        effects.append(fx.Reconfigured(configs))

    def adopt_channels(self, configs: Sequence[ChannelConfig]) -> list[Channel]:
        """These channels from now on, in this order, the ones already here
        kept with whoever is in them (a reload, after its removals; a
        cluster's snapshot); those whose capacity grew."""
        channels: dict[str, Channel] = {}
        grown: list[Channel] = []
        for config in configs:
            kept = self.channels.get(config.name)
            if kept is None:
                channel = Channel(config, history=hist.History(self.history))
            else:
                channel = kept
                if config.capacity > channel.config.capacity:
                    grown.append(channel)
            channel.config = config
            channels[config.name] = channel
        self.channels = channels
        return grown

    def _remove_channel(self, channel: Channel, effects: Effects) -> None:
        """Everyone in ``channel`` and its queue goes, as an /empty's members
        do, told why; what was said there is forgotten."""
        reason = f"the operator removed the channel {channel.name}"
        for member in [*channel.members.values(), *channel.queue]:
            self._take_out(member, channel)
            effects.append(fx.Disconnect(member, EXIT_OK, reason, Cause.EMPTIED))
        effects.append(fx.ChannelRemoved(self._stamp, channel.name))
        if self._keeping and channel.history.entries:
            channel.history.clear()
            effects.append(fx.Forgotten(channel.name, self._wall))

    # ----- what the rules share -----

    def _active(self, ref: str, now: float, effects: Effects) -> Member | None:
        """The member behind ``ref``, which just did something a person does:
        its AFK timer starts again (unless it is queued or muted)."""
        member = self.members.get(ref)
        if member is not None and member.admitted and not member.muted(now):
            self._touch(member, now, effects)
        return member

    def _quit(
        self,
        member: Member,
        channel: Channel,
        now: float,
        effects: Effects,
        reason: str = "",
        quit: bool = False,
    ) -> None:
        was_admitted = member.admitted
        index = self._take_out(member, channel)
        audience = channel.audience() if was_admitted else ()
        msgid = self._record_event(
            channel, hist.LEFT, member.name, hist.BY_LEAVING, effects, was_admitted
        )
        effects.append(
            fx.Left(self._stamp, audience, member.name, True, reason=reason, quit=quit, msgid=msgid)
        )
        self._let_queue_move(channel, index, now, effects)
        effects.append(fx.Disconnect(member, EXIT_OK, "you left the chat", Cause.LEFT))

    def _enter(self, member: Member, channel: Channel, now: float, effects: Effects) -> None:
        member.channel = channel
        member.admitted = False
        if channel.has_room() and not channel.queue:
            # Admitted at once: what was said there comes before the welcome
            # (for IRC, after its JOIN: _admit).
            if not member.via_irc:
                self._send_history(member, channel, effects)
            effects.append(fx.Welcome(self._stamp, member, channel.name))
            self._admit(member, channel, now, effects, history_sent=not member.via_irc)
            return
        effects.append(fx.Welcome(self._stamp, member, channel.name))
        channel.enqueue(member)
        self._advance(channel, now, effects)
        if not member.admitted:
            # The newcomer is the last in the queue: everyone else came first.
            effects.append(fx.QueuePosition(self._stamp, member, len(channel.queue) - 1))

    def _advance(self, channel: Channel, now: float, effects: Effects) -> int:
        """Move the longest-waiting clients into free places, then tell the
        rest; how many moved."""
        moved = 0
        while channel.queue and channel.has_room():
            member = channel.dequeue()
            moved += 1
            self._admit(member, channel, now, effects)
        if moved:
            self._tell_positions(channel, 0, effects)
        return moved

    def _admit(
        self,
        member: Member,
        channel: Channel,
        now: float,
        effects: Effects,
        history_sent: bool = False,
    ) -> None:
        """``history_sent``: it has had the channel's history already."""
        member.admitted = True
        channel.admit(member)
        # Time spent queued does not count; a mute carried in freezes the timer.
        member.afk_deadline = max(now, member.muted_until) + self.afk_timeout
        effects.append(fx.Reschedule(member))
        if not (history_sent or member.via_irc):
            self._send_history(member, channel, effects)
        effects.append(fx.Roster(member, list(itertools.islice(channel.members, ROSTER_LIMIT))))
        if member.via_irc:
            # An IRC client opens the channel with its JOIN (the roster's):
            # the replay follows it.
            self._send_history(member, channel, effects)
        msgid = self._record_event(channel, hist.JOINED, member.name, "", effects)
        effects.append(fx.Joined(self._stamp, channel.audience(), member.name, channel.name, msgid))

    # ----- history (history.py; docs/behaviour.md, "Channel history") -----

    def _send_history(self, member: Member, channel: Channel, effects: Effects) -> None:
        """Send ``member`` what was said in ``channel``, if it keeps any."""
        if channel.history.entries:
            entries = channel.history.for_newcomer()
            effects.append(fx.History(member, channel.name, entries))

    def _record(
        self,
        channel: Channel,
        seq: int,
        kind: str,
        user: str,
        message: str,
        style: str,
        effects: Effects,
    ) -> hist.Entry:
        entry = hist.Entry(seq, self._wall, self._stamp, kind, user, message, style)
        channel.history.add(entry)
        effects.append(fx.Recorded(channel.name, entry))
        return entry

    def _record_event(
        self,
        channel: Channel,
        kind: str,
        user: str,
        why: str,
        effects: Effects,
        announced: bool = True,
    ) -> str:
        """Keep a join or a leave that ``channel``'s members see, with
        --history-events; its msgid, or "" when not kept."""
        if not (announced and self._keeping and self.history.events):
            return ""
        self.said += 1
        return self._record(channel, self.said, kind, user, "", why, effects).msgid

    def _show_history(self, command: cmd.ShowHistory, effects: Effects) -> None:
        """/history CHANNEL [N]: the operator reads the last lines on stderr."""
        channel = self.channels.get(command.channel)
        if channel is None:
            effects.append(
                fx.Console(f"/history: there is no channel {command.channel}", failed=True)
            )
            return
        if not self.history.on:
            effects.append(fx.Console("/history: history is off (start with --history N)"))
            return
        count = DEFAULT_CONSOLE_HISTORY if command.count is None else command.count
        entries = channel.history.latest(count)
        if not entries:
            effects.append(fx.Console(f"/history: nothing said in {channel.name} is kept"))
        for entry in entries:
            effects.append(fx.Console(text.entry_history_line(entry)))

    def _tell_positions(self, channel: Channel, start: int, effects: Effects) -> None:
        for ahead in range(start, len(channel.queue)):
            effects.append(fx.QueuePosition(self._stamp, channel.queue[ahead], ahead))

    def _take_out(self, member: Member, channel: Channel) -> int | None:
        """Remove the member from its channel or queue; its queue index, if queued."""
        member.channel = None
        member.afk_deadline = math.inf
        if member.admitted:
            member.admitted = False
            channel.remove(member.name)
            return None
        index = channel.queue.index(member)
        channel.dequeue(index)
        return index

    def _remove(
        self,
        member: Member,
        channel: Channel,
        announce: bool,
        now: float,
        effects: Effects,
        logged: bool = True,
    ) -> None:
        """Take the member out; announce its leaving if asked (on the server's
        stdout too unless not ``logged``); let the queue move."""
        was_admitted = member.admitted
        index = self._take_out(member, channel)
        audience = channel.audience() if was_admitted else ()
        if announce:
            msgid = self._record_event(
                channel, hist.LEFT, member.name, hist.BY_LEAVING, effects, was_admitted
            )
            effects.append(fx.Left(self._stamp, audience, member.name, logged, msgid=msgid))
        elif audience:
            effects.append(fx.Left(self._stamp, audience, member.name, False, quiet=True))
        self._let_queue_move(channel, index, now, effects)

    def _let_queue_move(
        self, channel: Channel, index: int | None, now: float, effects: Effects
    ) -> None:
        """After a member left from place ``index`` of the queue (None: from the
        channel), tell those behind it their places, or let the longest-waiting in."""
        if index is not None:
            self._tell_positions(channel, index, effects)
        else:
            self._advance(channel, now, effects)

    def _touch(self, member: Member, now: float, effects: Effects) -> None:
        member.afk_deadline = now + self.afk_timeout
        effects.append(fx.Reschedule(member))

    def _queue_reminder(self, member: Member, channel: Channel, effects: Effects) -> None:
        effects.append(fx.QueuePosition(self._stamp, member, channel.queue.index(member)))

    def _cannot_speak(
        self, member: Member, channel: Channel, now: float, effects: Effects, style: str
    ) -> bool:
        """Queued or muted: it is reminded of its place, or told how long the
        mute lasts; but nothing ever answers an IRC NOTICE (RFC 2812, 3.3.2),
        so one is refused in silence."""
        if member.admitted and not member.muted(now):
            return False
        if style == ev.NOTICE:
            return True
        if not member.admitted:
            self._queue_reminder(member, channel, effects)
        else:
            remaining = max(1, math.floor(member.muted_until - now))
            effects.append(fx.StillMuted(self._stamp, member, remaining))
        return True

    def _chat(
        self,
        member: Member,
        channel: Channel,
        message: str,
        now: float,
        effects: Effects,
        style: str = ev.CHAT,
    ) -> None:
        if self._cannot_speak(member, channel, now, effects, style):
            return
        self.said += 1
        seq, at = self.said, self._wall
        effects.append(
            fx.Chat(self._stamp, channel.audience(), member.name, message, style, seq, at)
        )
        if self._keeping:
            self._record(channel, seq, hist.SAID, member.name, message, style, effects)

    def _whisper(
        self,
        member: Member,
        channel: Channel,
        whisper: cmd.Whisper,
        now: float,
        effects: Effects,
        style: str = ev.CHAT,
    ) -> None:
        # A queued client cannot talk to anyone (behaviour.md, "Choices where
        # the rules are silent"): treated as chat.
        if self._cannot_speak(member, channel, now, effects, style):
            return
        target = channel.members.get(whisper.target)
        if target is None:
            effects.append(fx.NotHere(self._stamp, member, whisper.target))
        effects.append(
            fx.Whisper(
                self._stamp,
                target,
                member.name,
                whisper.target,
                whisper.message,
                style,
                sender_member=member,
            )
        )

    def _switch(
        self, member: Member, channel: Channel, target_name: str, now: float, effects: Effects
    ) -> None:
        target = self.channels.get(target_name)
        if target is None:
            effects.append(fx.NotFound(self._stamp, member, target_name))
            return
        if target.has_name(member.name):
            effects.append(fx.CannotSwitch(self._stamp, member, target_name))
            return
        refusal = self._ban_refusal(target, member.name, member.address, member.via_irc, now)
        if refusal is not None:
            effects.append(fx.CannotSwitch(self._stamp, member, target_name))
            effects.append(fx.Notice(member, refusal[0].removeprefix("refused: ")))
            return
        self._remove(member, channel, announce=True, now=now, effects=effects)
        self._enter(member, target, now, effects)

    def _kick(self, kick: cmd.Kick, now: float, effects: Effects) -> None:
        channel = self.channels.get(kick.channel)
        if channel is None:
            effects.append(fx.NotFound(self._stamp, None, kick.channel))
            return
        member = channel.members.get(kick.user)
        if member is None:
            effects.append(fx.NotInChannel(self._stamp, kick.user, kick.channel))
            return
        self._take_out(member, channel)
        effects.append(
            fx.Disconnect(member, EXIT_OK, "kicked by the server operator", Cause.KICKED)
        )
        msgid = self._record_event(channel, hist.LEFT, member.name, hist.BY_KICK, effects)
        effects.append(fx.Kicked(self._stamp, channel.audience(), member.name, msgid))
        self._advance(channel, now, effects)

    def _mute(self, mute: cmd.Mute, now: float, effects: Effects) -> None:
        if mute.seconds is None:
            effects.append(fx.InvalidMuteTime(self._stamp))
            return
        channel = self.channels.get(mute.channel)
        member = channel.members.get(mute.user) if channel is not None else None
        if channel is None or member is None:
            effects.append(fx.NotHere(self._stamp, None, mute.user))
            return
        # The AFK timer is frozen while muted: keep what was left of it when the
        # (first) mute began and resume from there when the mute ends.
        frozen_until = max(now, member.muted_until)
        left = member.afk_deadline - frozen_until
        member.muted_until = now + mute.seconds
        member.afk_deadline = member.muted_until + left
        effects.append(fx.Reschedule(member))
        others = tuple(m for m in channel.members.values() if m is not member)
        effects.append(fx.Muted(self._stamp, member, others, mute.seconds))

    def _empty(self, channel_name: str, now: float, effects: Effects) -> None:
        channel = self.channels.get(channel_name)
        if channel is None:
            effects.append(fx.NotFound(self._stamp, None, channel_name))
            return
        for member in list(channel.members.values()):
            self._take_out(member, channel)
            effects.append(
                fx.Disconnect(
                    member, EXIT_OK, f"{channel_name} was emptied by the operator", Cause.EMPTIED
                )
            )
        effects.append(fx.Emptied(self._stamp, channel_name))
        if self._keeping:
            # Whoever comes next never reads what was said before (behaviour.md).
            channel.history.clear()
            effects.append(fx.Forgotten(channel_name, self._wall))
        self._advance(channel, now, effects)

    # ----- bans (bans.py; docs/behaviour.md, "/ban, /unban and /bans") -----

    def _ban(self, ban: cmd.Ban, now: float, effects: Effects) -> None:
        """Refuse the name in its channel, or the address everywhere, from
        now on; whoever it covers now goes, kicked (told why)."""
        target: Target = ban.target
        if ban.or_name is not None and ban.or_name.channel in self.channels:
            target = ban.or_name  # a channel a::b's a::b:user, not an IPv6 address
        if isinstance(target, NameBan) and target.channel not in self.channels:
            effects.append(fx.NotFound(self._stamp, None, target.channel))
            return
        self.bans.expire(now)
        self.bans.add(target, math.inf if ban.seconds is None else now + ban.seconds)
        effects.append(fx.Banned(self._stamp, str(target), ban.seconds))
        if isinstance(target, NameBan):
            channel = self.channels[target.channel]
            covered = [
                m
                for m in (*channel.members.values(), *channel.queue)
                if self.bans.name_ban(channel.name, m.name, now, m.via_irc) is not None
            ]
            reason = f"banned from {channel.name} by the server operator"
        else:
            covered = [
                m
                for m in self.members.values()
                if m.channel is not None and covers(target, m.address)
            ]
            reason = "your address was banned by the server operator"
        self._banish(covered, reason, now, effects)
        if isinstance(target, AddressBan):
            effects.append(fx.AddressBanned(target, reason))
        effects.append(fx.BansChanged())

    def _banish(self, covered: list[Member], reason: str, now: float, effects: Effects) -> None:
        """A new ban covers these members: each goes as a kicked member does
        (a queued one without the kick line, as nobody saw it come). Only
        then do the queues move, so that a banned member waiting is never
        let in on its way out."""
        behind: dict[Channel, int | None] = {}  # each channel left: where its queue changed
        for member in covered:
            channel = member.channel
            assert channel is not None
            was_admitted = member.admitted
            index = self._take_out(member, channel)
            effects.append(fx.Disconnect(member, EXIT_OK, reason, Cause.KICKED))
            if was_admitted:
                msgid = self._record_event(channel, hist.LEFT, member.name, hist.BY_KICK, effects)
                effects.append(fx.Kicked(self._stamp, channel.audience(), member.name, msgid))
            earlier = behind.get(channel)
            if index is not None and (earlier is None or index < earlier):
                behind[channel] = index
            else:
                behind.setdefault(channel, None)
        for channel, index in behind.items():
            if not self._advance(channel, now, effects) and index is not None:
                self._tell_positions(channel, index, effects)

    def _ban_refusal(
        self, channel: Channel, user: str, address: str | None, via_irc: bool, now: float
    ) -> tuple[str, Target] | None:
        """Why a ban keeps ``user`` from ``address`` out of ``channel``, and
        which ban, if one does."""
        address_ban = self.bans.address_ban(address, now)
        if address_ban is not None:
            return self._address_refusal(address_ban, now), address_ban
        name_ban = self.bans.name_ban(channel.name, user, now, fold=via_irc)
        if name_ban is None:
            return None
        why = f"refused: {user} is banned from {channel.name}"
        return why + self._time_left(name_ban, now), name_ban

    def _address_refusal(self, ban: AddressBan, now: float) -> str:
        return f"refused: {ADDRESS_BANNED}" + self._time_left(ban, now)

    def _time_left(self, target: AddressBan | NameBan, now: float) -> str:
        end = self.bans.end(target)
        return "" if math.isinf(end) else f" for {_seconds_left(end, now)} more seconds"

    def _list_bans(self, now: float, effects: Effects) -> None:
        """/bans: every ban in force with its time left, on the server's stderr."""
        self.bans.expire(now)
        for target, end in self.bans.items(now):
            left = "until unbanned" if math.isinf(end) else f"{_seconds_left(end, now)}s left"
            effects.append(fx.Console(f"/bans: {target} {left}"))
        if not len(self.bans):
            effects.append(fx.Console("/bans: nobody is banned"))


def _seconds_left(end: float, now: float) -> int:
    """A ban's time left as it is told: whole seconds, rounded up."""
    return max(1, math.ceil(end - now))


def _failure(effect: fx.Effect) -> bool:
    """Whether ``effect`` says a console command failed: a usage error, an
    unknown command, or no such channel, user or mute time."""
    if isinstance(effect, fx.Console):
        return effect.failed
    if isinstance(effect, fx.NotFound | fx.NotHere):
        return effect.to is None
    if isinstance(effect, fx.Unbanned):
        return not effect.was
    return isinstance(effect, fx.NotInChannel | fx.InvalidMuteTime)


def _clash(channel: Channel, name: str) -> bool:
    """Whether a name in the channel or its queue is ``name`` but for ASCII case."""
    # A lookup in the channel's count of folded names (state.Channel.folded),
    # not a fold of every name: an IRC join asks this once each (issue 28).
    return fold_nick(name) in channel.folded


def _no_connections(ref: str) -> Connection:
    raise LookupError(f"no gateway has told the hub where connection {ref} is")


# The rule for each event type: adding an event adds a line here.
_RULES: dict[type[Any], Callable[[Hub, Any, float, Effects], None]] = {
    ev.Join: Hub._join,
    ev.Input: Hub._input,
    ev.Say: Hub._say,
    ev.Tell: Hub._tell,
    ev.Leave: Hub._leave,
    ev.ClaimNick: Hub._claim_nick,
    ev.Drop: Hub._drop,
    ev.AfkDue: Hub._afk_due,
    ev.Awake: Hub._awake,
    ev.Flooded: Hub._flooded,
    ev.ConsoleLine: Hub._console,
    ev.Reconfigure: Hub._reconfigure,
    ev.Offer: Hub._offer,
    ev.TransferStarted: Hub._transfer_started,
    ev.TransferEnded: Hub._transfer_ended,
    ev.TransferProgress: Hub._transfer_progress,
    ev.FileDelivered: Hub._file_delivered,
}
