"""One IRC connection on the server, and its memberships.

An IRC connection registers (CAP, PASS, NICK, USER), then joins channels.
Each channel it is in, or waits for, is one member of that channel as the
rules see it: an ``IrcMembership``, with its own connection reference, AFK
timer and place in the queue, all sharing the connection's outbox. So one
nick in three channels is three members, and everything the rules decide
for a member (a kick, AFK, /empty) affects that channel only.

What the connection's commands mean to the rules goes to the hub as events
through the server's gateway (docs/irc.md, "What maps to what"): PRIVMSG
and NOTICE to a channel are ``Say``, to a nick ``Tell``, JOIN is ``Join``,
PART ``Leave``, NICK ``ClaimNick``. Queries (NAMES, LIST, WHO, WHOIS, ISON,
USERHOST, MODE, TOPIC) are answered from the hub's state and change
nothing, so they are no activity for the AFK timer; neither are PING and
PONG, which keep the connection alive (the ping timeout) and nothing else.
"""

from __future__ import annotations

import hmac
import math
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import trio
from irctokens.line import Line

from .. import events as ev
from .. import wire
from ..bans import NameBan
from ..history import Entry
from ..hub import ADDRESS_BANNED, Hub
from ..sanitize import clean
from ..server.flood import LineLedger
from ..server.gateway import Gateway, wait_for_log_room
from ..server.line_budget import LineBudget, flood_reason
from ..server.outlet import CLOSED, FINISHING, MEMBER, STOP_GRACE, Outlet, OutletHost
from ..state import Cause, ClientProtocol, Member
from . import chathistory
from . import numerics as n
from .lines import LineReader, TooLong, encode, strip_formatting, word
from .nicks import fold_nick, member_name, nick_problem, shown
from .render import (
    CHATHISTORY_CAP,
    WANTS_MSGID,
    WANTS_TIME,
    IrcRenderer,
    channel_target,
    iso_time,
)

if TYPE_CHECKING:
    from ..server.broadcast import Broadcast
    from ..server.session import SessionLimits

RECEIVE_SIZE = 64 * 1024
IRC = ClientProtocol.IRC
# The most lines one CHATHISTORY request returns (CHATHISTORY=N), however
# many a channel keeps: a request is one line of the client's flood budget,
# its answer up to this many (ergo's default is the same).
CHATHISTORY_MOST = 1000

# Capabilities this port has (CAP LS); any other is NAKed. With history
# (--history N) ``draft/chathistory`` too (HISTORY_CAPABILITIES).
CAPABILITIES = (
    "batch",
    "echo-message",
    "message-tags",
    "multi-prefix",
    "server-time",
    "userhost-in-names",
)
HISTORY_CAPABILITIES = tuple(sorted((*CAPABILITIES, CHATHISTORY_CAP)))
# Commands a connection may send before it is registered.
BEFORE_REGISTRATION = frozenset({"CAP", "NICK", "USER", "PASS", "PING", "PONG", "QUIT"})
# The most lines a connection may send before it is registered (a client
# needs about eight); past them it is dropped. Flood control's budget starts
# with registration, when the connection has a name to file it under.
LINES_BEFORE_REGISTRATION = 32


@dataclass(frozen=True, slots=True)
class IrcSettings:
    """How the IRC port was asked to run (``--irc`` and its options)."""

    server_name: str
    password: str | None  # None: no server password (PASS is ignored)
    ping_interval: float  # seconds of silence before the server sends PING
    ping_timeout: float  # seconds after that PING before the connection is dropped
    network: str = "trio-chat"


class IrcHost(OutletHost, Protocol):
    """What an IRC connection uses of the server (core.ChatServer)."""

    @property
    def limits(self) -> SessionLimits: ...
    @property
    def gateway(self) -> Gateway: ...
    @property
    def hub(self) -> Hub: ...
    @property
    def line_budgets(self) -> LineLedger | None: ...
    @property
    def stopped(self) -> trio.Event: ...


class IrcMembership:
    """One channel an IRC connection is in or waits for: one member of it."""

    protocol = IRC

    def __init__(self, client: IrcClient, channel: str) -> None:
        self.client = client
        self.channel = channel  # the configured name (no '#')
        self.conn_ref = ""  # its gateway gives it one (IrcClient._join)
        self.member: Member | None = None  # once the rules took it in
        self.admitted = False  # it got its JOIN (not only a place in the queue)
        self.part_reason = ""  # what its PART said, for the PART it gets back
        self.quitting = False  # it leaves with the connection (QUIT)
        self.done = False  # the rules are done with it
        self.released = False  # and its connection told them it is gone (Drop)
        self.afk_reported = False  # its AFK timer fired; the rules have not answered

    @property
    def closing(self) -> bool:
        return self.done or self.client.closing

    # ----- what ChatServer.apply calls (state.Connection) -----

    def push_line(self, frame: wire.Payload) -> None:
        self.client.push_line(frame)

    def hold(self, broadcast: Broadcast) -> None:
        self.client.hold(broadcast)

    def reschedule(self) -> None:
        self.client.afk_changed(self)

    def finish(self, status: int, reason: str, cause: Cause) -> None:
        self.client.membership_over(self, reason, cause)

    def joined(self, member: Member) -> None:
        if not self.released:  # (a cluster's late answer: see IrcClient._release_now)
            self.member = member

    def roster(self, names: Sequence[str]) -> None:
        self.client.admitted(self)

    def notice(self, text: str) -> None:
        self.client.notice(text)

    def offer_decided(self, offer: int, target: Member | None) -> None:
        """(An IRC connection offers no files.)"""

    def nick_decided(self, nick: str, accepted: bool, banned: str = "") -> None:
        """(The connection claims nicks, not its memberships.)"""

    def stopping(self) -> None:
        """(The connection says goodbye, ChatServer.stop.)"""

    # ----- what a cluster's node calls of its local connections -----

    def abort(self, why: str) -> None:
        self.client.abort(why)

    def lower_line_budget(self, tokens: float) -> None:
        self.client.lower_line_budget(tokens)


class IrcClient(Outlet):
    """One IRC connection: registration, commands, and its memberships."""

    server: IrcHost
    protocol = IRC

    def __init__(
        self,
        server: IrcHost,
        stream: trio.abc.Stream,
        address: str | None,
        settings: IrcSettings,
        renderer: IrcRenderer,
    ) -> None:
        super().__init__(server, stream, server.limits, "the IRC port")
        self.settings = settings
        self.renderer = renderer
        self.address = address
        self.nick = "*"  # until the rules give it one
        self.user: str | None = None
        self.realname = ""
        self.password: str | None = None
        self.registered = False
        self.negotiating = False  # CAP LS or REQ came, CAP END not yet
        self.caps: set[str] = set()
        self.echo = False  # echo-message
        self.tags = 0  # render.WANTS_TIME | WANTS_MSGID
        self.away: str | None = None
        self.user_modes = ""
        # The channels it is in or waits for, by name without ASCII case.
        self.memberships: dict[str, IrcMembership] = {}
        # Those it left that the rules have not finished yet (a PART on its
        # way through a cluster's log): released when the connection goes.
        self._leaving: list[IrcMembership] = []
        self.conn_ref: str | None = None  # its own, for its nick (ClaimNick)
        self.member: Member | None = None  # (never one itself: its memberships are)
        self._wanted_nick: str | None = None  # NICK before registration
        self._nick_answer: trio.Event | None = None
        self._nick_accepted = False
        self._nick_banned = ""  # why the rules refused its nick, if for a ban
        self._nick_released = False
        self._to_release: list[IrcMembership] = []
        self._release_due = trio.Event()
        self._ban = ""  # a new ban covers it: why (banned)
        self._afk_scope: trio.CancelScope | None = None
        self._connected_at = self._last_heard = 0.0
        self._ping_sent: float | None = None
        self._lines_before_registration = 0
        self._budget: LineBudget | None = None
        # History (docs/irc.md, "History"): without it the port is as it was,
        # CHATHISTORY an unknown command.
        history = server.hub.history
        self.history_limit = min(history.lines, CHATHISTORY_MOST) if history.on else 0
        self.capabilities = HISTORY_CAPABILITIES if self.history_limit else CAPABILITIES

    def _caps_changed(self) -> None:
        """What its capabilities ask of its copies, as the renderer reads it
        (plain attributes: it looks at them for every line to every member)."""
        self.echo = "echo-message" in self.caps
        self.tags = (WANTS_TIME if "server-time" in self.caps else 0) | (
            WANTS_MSGID if "message-tags" in self.caps else 0
        )
        self.renderer.caps_changed()

    # ----- replies -----

    def _send(self, command: str, params: list[str], source: str | None = None) -> None:
        self.push_line(encode(command, params, source or self.settings.server_name))

    def _reply(self, code: str, *params: str) -> None:
        self.push_line(n.numeric(self.settings.server_name, code, self.nick, *params))

    def notice(self, text: str) -> None:
        """A server NOTICE to this connection (``effects.Notice`` too)."""
        self._send("NOTICE", [self.nick, clean(text)])

    @property
    def mask(self) -> str:
        return self.renderer.mask(self.nick)

    # ----- what the rules tell it (through ChatServer.apply) -----

    def reschedule(self) -> None:
        """(Its memberships have the AFK timers.)"""

    def joined(self, member: Member) -> None:
        """(Its memberships join.)"""

    def roster(self, names: Sequence[str]) -> None:
        """(Its memberships are told who is in.)"""

    def offer_decided(self, offer: int, target: Member | None) -> None:
        """(An IRC connection offers no files.)"""

    def finish(self, status: int, reason: str, cause: Cause) -> None:
        """(The rules finish memberships, never the connection itself.)"""

    def nick_decided(self, nick: str, accepted: bool, banned: str = "") -> None:
        self._nick_accepted = accepted
        self._nick_banned = banned
        if self._nick_answer is not None:
            self._nick_answer.set()

    def admitted(self, membership: IrcMembership) -> None:
        """The rules let ``membership`` into its channel: its JOIN, then NAMES
        of everyone (from the channel: the rules' roster stops at its limit)."""
        if membership.done:
            return
        membership.admitted = True
        target = channel_target(membership.channel)
        self._send("JOIN", [target], self.mask)
        self._send_names(membership.channel)

    def sees_elsewhere(self, name: str, channel: str) -> bool:
        """Whether the member ``name`` is in one of this connection's channels
        other than ``channel`` (then a QUIT waits for the last: render.py)."""
        channels = self.server.hub.channels
        return any(
            m.admitted and m.channel != channel and name in channels[m.channel].members
            for m in self.memberships.values()
        )

    def stopping(self) -> None:
        """The server stops: the ERROR line goes after what is queued, and
        the connection has a moment (``STOP_GRACE``) to write it all before
        it closes, out of the stop's reach: a line cut in half at the end
        would be all a client saw of the goodbye."""
        self.close_link("Closing Link: server shutting down")
        self.scope.shield = True
        self.scope.deadline = min(self.scope.deadline, trio.current_time() + STOP_GRACE)

    def membership_over(self, membership: IrcMembership, reason: str, cause: Cause) -> None:
        """The rules are done with one of its channels (docs/irc.md, "What
        maps to what")."""
        if membership.done:
            return
        membership.done = True
        key = fold_nick(membership.channel)
        if self.memberships.get(key) is membership:
            del self.memberships[key]
        if membership in self._leaving:
            self._leaving.remove(membership)
        self._release(membership)
        if self.closing or membership.quitting:
            return
        target = channel_target(membership.channel)
        if cause is Cause.LEFT:
            if membership.admitted:
                part = [target, membership.part_reason] if membership.part_reason else [target]
                self._send("PART", part, self.mask)
            else:
                self.notice(f"{target}: you left its waiting queue")
        elif cause in (Cause.KICKED, Cause.EMPTIED) and membership.admitted:
            self._send("KICK", [target, self.nick, reason])
        elif cause in (Cause.KICKED, Cause.EMPTIED):
            # Out of the queue of a channel it never JOINed: no KICK from there.
            self.notice(f"{target}: {reason}")
        elif cause is Cause.AFK:
            self._send("PART", [target, reason], self.mask)
        elif cause is Cause.REFUSED:
            self.notice(f"{target}: {reason}")
        elif cause is Cause.BANNED:
            why = reason.removeprefix("refused: ")
            self._reply(n.ERR_BANNEDFROMCHAN, target, f"Cannot join channel (+b): {why}")
        # NAME_TAKEN: 437 said so (render.py); FLOODED: the connection closes.

    def afk_changed(self, membership: IrcMembership) -> None:
        membership.afk_reported = False
        member = membership.member
        scope = self._afk_scope
        if member is None or scope is None or self.state >= FINISHING:
            return
        when = self.server.gateway.local_deadline(member.afk_deadline)
        if when < scope.deadline:
            scope.deadline = when

    def lower_line_budget(self, tokens: float) -> None:
        if self._budget is not None:
            self._budget.lower(tokens, trio.current_time())

    # ----- its tasks -----

    async def run(self) -> None:
        try:
            with self.scope:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._write_loop)
                    nursery.start_soon(self._afk_loop)
                    nursery.start_soon(self._release_loop)
                    await self._read_loop()
                    nursery.cancel_scope.cancel()
        finally:
            self._close_line_budget()
            self._become(CLOSED)
            self._release_waiters()
            self._release_everything()
            with trio.move_on_after(self.close_grace) as goodbye:
                await self.stream.aclose()
            if goodbye.cancelled_caught:
                await trio.aclose_forcefully(self.stream)

    def _release(self, membership: IrcMembership) -> None:
        """``membership`` is done: the rules hear of it (``Drop``) from the
        release task, never from inside the rules' own call."""
        if not membership.released and membership not in self._to_release:
            self._to_release.append(membership)
            self._release_due.set()

    def _release_now(self, membership: IrcMembership) -> None:
        if not membership.released:
            membership.released = True
            self.server.gateway.release(membership.conn_ref)
        # Member.conn is the membership: so that a departed connection is
        # freed at once, not by the cyclic collector's full pass that stops
        # the server.
        membership.member = None

    async def _release_loop(self) -> None:
        while True:
            await self._release_due.wait()
            self._release_due = trio.Event()
            memberships, self._to_release = self._to_release, []
            for membership in memberships:
                self._release_now(membership)
            if self._ban:
                why, self._ban = self._ban, ""
                self.refuse_banned(why)

    async def _afk_loop(self) -> None:
        gateway = self.server.gateway
        while True:
            deadlines = [
                gateway.local_deadline(m.member.afk_deadline)
                for m in self.memberships.values()
                if m.member is not None and m.admitted and not m.afk_reported
            ]
            with trio.CancelScope(deadline=min(deadlines, default=math.inf)) as scope:
                self._afk_scope = scope
                await trio.sleep_forever()
            self._afk_scope = None
            now = trio.current_time()
            for membership in list(self.memberships.values()):
                member = membership.member
                if (
                    member is not None
                    and membership.admitted
                    and not membership.afk_reported
                    and gateway.local_deadline(member.afk_deadline) <= now
                ):
                    membership.afk_reported = True
                    gateway.submit(ev.AfkDue(membership.conn_ref))

    def _read_deadline(self) -> float:
        if self.state >= FINISHING:
            return math.inf
        if not self.registered:
            # From the connection's start: a trickle of bytes does not extend it.
            return self._connected_at + self.server.limits.hello_timeout
        if self._ping_sent is not None:
            return self._ping_sent + self.settings.ping_timeout
        return self._last_heard + self.settings.ping_interval

    async def _read_loop(self) -> None:
        reader = LineReader()
        self._last_heard = self._connected_at = trio.current_time()
        while True:
            with trio.CancelScope(deadline=self._read_deadline()) as timer:
                try:
                    data = await self.stream.receive_some(RECEIVE_SIZE)
                except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                    return
            if timer.cancelled_caught:
                if not self.registered:
                    self.server.log("an IRC connection did not register within the time limit")
                    self.close_link("Closing Link: registration timed out")
                elif self._ping_sent is None:
                    self._ping_sent = trio.current_time()
                    self._send("PING", [self.settings.server_name])
                else:
                    self.close_link(
                        f"Closing Link: Ping timeout: {self.settings.ping_timeout:g} seconds"
                    )
                continue
            if not data:
                return
            self._last_heard = trio.current_time()
            self._ping_sent = None
            if self.state >= FINISHING:
                continue  # closing: input is discarded until the peer hangs up
            for item in reader.feed(data):
                if not await self._may_take(item):
                    break
                if isinstance(item, TooLong):
                    self._reply(n.ERR_INPUTTOOLONG, f"Input {item.what} too long")
                else:
                    await self._handle(item)
                if self.state >= FINISHING:
                    break
                if self.server.congested:
                    await self.wait_for_congested_outboxes()

    async def _may_take(self, item: Line | TooLong) -> bool:
        """Every line counts (a PONG aside): before registration against a
        fixed allowance, after it against the line budget (flood control),
        which holds the connection back, or closes it for flooding."""
        if not self.registered:
            self._lines_before_registration += 1
            if self._lines_before_registration > LINES_BEFORE_REGISTRATION:
                self.close_link("Closing Link: too many lines before registering")
                return False
            return True
        if isinstance(item, Line) and item.command.upper() == "PONG":
            return True
        if self.server.gateway.log_room() is not None:
            await wait_for_log_room(self.server.gateway)
        budget = self._budget
        if budget is None:
            return True
        wait = budget.next_line(trio.current_time())
        if wait is None:
            reason = flood_reason(self.server.limits)
            for membership in list(self.memberships.values()):
                self.server.gateway.submit(ev.Flooded(membership.conn_ref, reason))
            self.close_link(f"Closing Link: {reason}")
            return False
        # Not reading meanwhile: TCP holds the flooder back, nothing piles up here.
        while wait:
            await trio.sleep(wait)
            wait = budget.retry(trio.current_time())
        return self.state < FINISHING

    async def _handle(self, line: Line) -> None:
        command = line.command.upper()
        handler = _COMMANDS.get(command)
        if command == "CHATHISTORY" and not self.history_limit:
            handler = None  # without history it is an unknown command
        if not self.registered and command not in BEFORE_REGISTRATION:
            if handler is not None or not command.isdigit():
                self._reply(n.ERR_NOTREGISTERED, "You have not registered")
            return
        if handler is None:
            if not command.isdigit():  # (a numeric from a client means nothing)
                self._reply(n.ERR_UNKNOWNCOMMAND, word(command), "Unknown command")
            return
        result = handler(self, line)
        if result is not None:
            await result

    def _awake_all(self, done_in: IrcMembership | None = None) -> None:
        """A person did something: none of its channels is idle (docs/irc.md,
        "Inactivity and keeping the connection"). ``done_in``: the channel it
        did it in, whose timer the rules restarted already."""
        refs = tuple(
            m.conn_ref
            for m in self.memberships.values()
            if m is not done_in and m.member is not None and m.admitted
        )
        if refs:
            self.server.gateway.submit(ev.Awake(refs))

    def close_link(self, message: str) -> None:
        """End the connection with an ERROR line, as IRC servers do. Its
        channels are left and its nick is free before the line goes out: a
        client that reconnects at once may take the nick again, on any node.
        (Called from its own tasks, never from inside the rules' call: it
        hands the rules its Drops.)"""
        if self.state >= FINISHING:
            return
        self._release_everything()
        self._close_line_budget()
        self._finish_with(encode("ERROR", [message]))

    def _release_everything(self) -> None:
        for membership in [*self.memberships.values(), *self._leaving, *self._to_release]:
            membership.done = True
            self._release_now(membership)
        self.memberships.clear()
        self._leaving.clear()
        self._to_release.clear()
        if self.conn_ref is not None and not self._nick_released:
            self._nick_released = True
            self.server.gateway.release(self.conn_ref)

    # ----- flood control (docs/security.md, "Flood control") -----

    def _start_line_budget(self) -> None:
        budgets = self.server.line_budgets
        if budgets is not None:
            now = trio.current_time()
            patience = self.server.limits.flood_patience
            self._budget = LineBudget(budgets, self.nick, self.address, now, patience)

    def _close_line_budget(self) -> None:
        if self._budget is not None:
            self._budget.close(trio.current_time())
            self._budget = None

    # ----- registration -----

    async def _cap(self, line: Line) -> None:
        if not line.params:
            self._reply(n.ERR_NEEDMOREPARAMS, "CAP", "Not enough parameters")
            return
        sub = line.params[0].upper()
        if sub == "LS":
            if not self.registered:
                self.negotiating = True
            self._send("CAP", [self.nick, "LS", " ".join(self.capabilities)])
        elif sub == "LIST":
            self._send("CAP", [self.nick, "LIST", " ".join(sorted(self.caps))])
        elif sub == "REQ":
            if not self.registered:
                self.negotiating = True
            asked = line.params[1] if len(line.params) > 1 else ""
            wanted = asked.split()
            known = all(cap.removeprefix("-") in self.capabilities for cap in wanted)
            if known and wanted:
                for cap in wanted:
                    if cap.startswith("-"):
                        self.caps.discard(cap[1:])
                    else:
                        self.caps.add(cap)
                self._caps_changed()
            self._send("CAP", [self.nick, "ACK" if known and wanted else "NAK", clean(asked)])
        elif sub == "END":
            self.negotiating = False
            await self._try_to_register()
        else:
            self._reply(n.ERR_INVALIDCAPCMD, word(line.params[0]), "Invalid CAP subcommand")

    def _pass(self, line: Line) -> None:
        if self.registered:
            self._reply(n.ERR_ALREADYREGISTERED, "You may not reregister")
        elif not line.params:
            self._reply(n.ERR_NEEDMOREPARAMS, "PASS", "Not enough parameters")
        else:
            self.password = line.params[0]

    async def _nick(self, line: Line) -> None:
        if not line.params or not line.params[0]:
            self._reply(n.ERR_NONICKNAMEGIVEN, "No nickname given")
            return
        nick = line.params[0]
        problem = nick_problem(nick)
        if problem is not None:
            self._reply(n.ERR_ERRONEUSNICKNAME, word(nick), f"Erroneous nickname: {problem}")
            return
        if not self.registered:
            # Claimed once registration is due, after the password: a peer
            # without it, or one that never registers, holds no nick.
            self._wanted_nick = nick
            await self._try_to_register()
            return
        if nick == self.nick:
            return
        if self.memberships:
            # Our members keep one name in a channel (docs/irc.md, "Names").
            self._reply(
                n.ERR_NONICKCHANGE, "Cannot change nickname while in channels (part them first)"
            )
            return
        if await self._claim(nick):
            old_mask = self.mask
            self.nick = nick
            self._send("NICK", [nick], old_mask)

    async def _claim(self, nick: str) -> bool:
        """Ask the rules for ``nick`` (unique across the chat, docs/irc.md,
        "Names"); 433 when it is taken."""
        if self.conn_ref is None:
            self.conn_ref = self.server.gateway.connect(self)
        self._nick_answer = trio.Event()
        self.server.gateway.submit(ev.ClaimNick(self.conn_ref, nick, self.address))
        await self._nick_answer.wait()
        self._nick_answer = None
        if self.state >= FINISHING:
            return False
        if self._nick_banned:
            self.refuse_banned(self._nick_banned)
            return False
        if not self._nick_accepted:
            self._reply(n.ERR_NICKNAMEINUSE, nick, "Nickname is already in use")
        return self._nick_accepted

    def refuse_banned(self, why: str) -> None:
        """A ban covers its address: 465, then the ERROR that closes it."""
        if self.state >= FINISHING:
            return
        why = why.removeprefix("refused: ")
        banned = "You are banned from this server"
        # The rules' refusal says just that, and for how long; a ban made
        # now says why it came.
        refusal = ADDRESS_BANNED
        text = banned + why[len(refusal) :] if why.startswith(refusal) else f"{banned} ({why})"
        self._reply(n.ERR_YOUREBANNEDCREEP, text)
        self.close_link(f"Closing Link: {why}")

    def banned(self, why: str) -> None:
        """A new ban covers its address (``effects.AddressBanned``): it is
        closed from its release task, outside the rules' call."""
        if self.state < FINISHING and not self._ban:
            self._ban = why
            self._release_due.set()

    async def _user(self, line: Line) -> None:
        if self.registered or self.user is not None:
            self._reply(n.ERR_ALREADYREGISTERED, "You may not reregister")
            return
        if len(line.params) < 4 or not line.params[0] or not line.params[3]:
            self._reply(n.ERR_NEEDMOREPARAMS, "USER", "Not enough parameters")
            return
        user = line.params[0]
        if not user.isascii() or not user.isprintable() or any(c in user for c in " !@:"):
            self._reply(n.ERR_INVALIDUSERNAME, "USER", "Your username is not valid")
            return
        self.user = user[: n.USERLEN]
        self.realname = _text(line.params[3])
        await self._try_to_register()

    async def _try_to_register(self) -> None:
        """Once NICK and USER came and CAP negotiation is over: the password,
        then the nick, then the welcome."""
        nick = self._wanted_nick
        if self.registered or self.negotiating or nick is None or self.user is None:
            return
        expected = self.settings.password
        given = (self.password or "").encode()
        if expected is not None and not hmac.compare_digest(given, expected.encode()):
            self._reply(n.ERR_PASSWDMISMATCH, "Password incorrect")
            self.close_link("Closing Link: bad password")
            return
        self._wanted_nick = None  # (another NICK asks again)
        if not await self._claim(nick):
            return
        self.nick = nick
        self.registered = True
        self._become(MEMBER)
        self._start_line_budget()
        channels = list(self.server.hub.channels)
        for frame in n.registration_burst(
            self.settings.server_name,
            self.nick,
            self.mask,
            channels,
            self.settings.network,
            self.history_limit,
        ):
            self.push_line(frame)

    def _ping(self, line: Line) -> None:
        if not line.params:
            self._reply(n.ERR_NOORIGIN, "No origin specified")
            return
        server = self.settings.server_name
        self._send("PONG", [server, clean(line.params[0])])

    def _quit(self, line: Line) -> None:
        reason = _text(line.params[0]) if line.params else ""
        quit_message = f"Quit: {reason}" if reason else "Quit"
        for membership in list(self.memberships.values()):
            membership.quitting = True
            self.server.gateway.submit(ev.Leave(membership.conn_ref, quit_message, quit=True))
        host = self.address or "unknown"
        self.close_link(f"Closing Link: {self.user or self.nick}@{host} ({quit_message})")

    # ----- channels -----

    def _channel(self, target: str) -> str | None:
        """The configured channel ``#name`` names, without ASCII case."""
        if not target.startswith("#"):
            return None
        return self.renderer.channels.get(fold_nick(target[1:]))

    def _join(self, line: Line) -> None:
        if not line.params:
            self._reply(n.ERR_NEEDMOREPARAMS, "JOIN", "Not enough parameters")
            return
        if line.params[0] == "0":
            for membership in list(self.memberships.values()):
                self._leave(membership, "")
            self._awake_all()
            return
        # Keys (the second parameter) are ignored: no channel has one.
        joined = False
        for target in line.params[0].split(","):
            name = self._channel(target)
            if name is None:
                self._reply(n.ERR_NOSUCHCHANNEL, word(target), "No such channel")
                continue
            if fold_nick(name) in self.memberships:
                continue  # in it already, or waiting for it
            membership = IrcMembership(self, name)
            membership.conn_ref = self.server.gateway.connect(membership)
            self.memberships[fold_nick(name)] = membership
            self.server.gateway.submit(
                ev.Join(
                    membership.conn_ref,
                    name,
                    self.nick,
                    self.address,
                    via_irc=True,
                    ident=self.user or "",
                )
            )
            joined = True
        if joined:
            self._awake_all()

    def _part(self, line: Line) -> None:
        if not line.params:
            self._reply(n.ERR_NEEDMOREPARAMS, "PART", "Not enough parameters")
            return
        reason = _text(line.params[1]) if len(line.params) > 1 else ""
        left = False
        for target in line.params[0].split(","):
            name = self._channel(target)
            membership = self.memberships.get(fold_nick(name)) if name is not None else None
            if name is None:
                self._reply(n.ERR_NOSUCHCHANNEL, word(target), "No such channel")
            elif membership is None:
                self._reply(n.ERR_NOTONCHANNEL, channel_target(name), "You're not on that channel")
            else:
                self._leave(membership, reason)
                left = True
        if left:
            self._awake_all()

    def _leave(self, membership: IrcMembership, reason: str) -> None:
        membership.part_reason = reason
        del self.memberships[fold_nick(membership.channel)]
        self._leaving.append(membership)  # (until the rules finish it)
        self.server.gateway.submit(ev.Leave(membership.conn_ref, reason))

    # ----- messages -----

    def _message(self, line: Line) -> None:
        notice = line.command.upper() == "NOTICE"
        # Nothing ever answers a NOTICE, not even an error (RFC 2812, 3.3.2).
        reply = _nothing_to_say if notice else self._reply
        if not line.params or not line.params[0]:
            reply(n.ERR_NORECIPIENT, f"No recipient given ({line.command.upper()})")
            return
        if len(line.params) < 2 or not line.params[1]:
            reply(n.ERR_NOTEXTTOSEND, "No text to send")
            return
        target, raw = line.params[0], line.params[1]
        if "," in target:
            reply(n.ERR_TOOMANYTARGETS, word(target), "One target at a time")
            return
        style = ev.NOTICE if notice else ev.CHAT
        if raw.startswith("\x01"):
            ctcp, _, rest = raw.strip("\x01").partition(" ")
            if ctcp.upper() != "ACTION":
                if ctcp.upper() == "DCC" and not notice:
                    self.notice("DCC is not relayed here: files cannot be sent over this IRC port")
                return  # other CTCP queries and replies are not relayed (docs/irc.md)
            raw, style = rest, ev.ACTION
        message = _text(raw)
        if not message:
            reply(n.ERR_NOTEXTTOSEND, "No text to send")
            return
        if target.startswith("#"):
            name = self._channel(target)
            if name is None:
                reply(n.ERR_NOSUCHCHANNEL, word(target), "No such channel")
                return
            membership = self.memberships.get(fold_nick(name))
            if membership is None:
                reply(n.ERR_CANNOTSENDTOCHAN, channel_target(name), "You are not in the channel")
                return
            self.server.gateway.submit(ev.Say(membership.conn_ref, message, style))
            self._awake_all(done_in=membership)
            return
        # A whisper goes through the first channel this connection shares
        # with the one it names (docs/irc.md, "Private messages"); the rules
        # decide whether it arrives.
        whom = member_name(target)
        for membership in self.memberships.values():
            channel = self.server.hub.channels[membership.channel]
            receiver = find_member(channel.members, whom)
            if membership.admitted and receiver is not None:
                self.server.gateway.submit(
                    ev.Tell(membership.conn_ref, receiver.name, message, style)
                )
                self._awake_all(done_in=membership)
                away = _away_of(receiver)
                if away is not None and not notice:
                    self._reply(n.RPL_AWAY, shown(receiver.name), away)
                return
        reply(n.ERR_NOSUCHNICK, word(target), "No such nick/channel (or no channel you share)")

    # ----- history: answered from the hub's state, no activity -----

    async def _chathistory(self, line: Line) -> None:
        """CHATHISTORY (docs/irc.md, "History"): what the channel's history
        holds, for a channel this connection is in; every parameter checked
        (chathistory.parse) and only cleaned words of it echoed."""
        query = chathistory.parse(line.params, self.history_limit)
        if isinstance(query, chathistory.Fail):
            self._fail(query.code, *query.context, description=query.description)
            return
        if query.subcommand == "TARGETS":
            self._history_targets(query)
            return
        name = self._channel(query.target)
        membership = self.memberships.get(fold_nick(name)) if name is not None else None
        if membership is None or not membership.admitted:
            if name is None and nick_problem(query.target) is None:
                # Private messages are never kept: a nick's history is empty.
                await self._history_reply(membership, word(query.target), [])
            else:
                self._fail(
                    "INVALID_TARGET",
                    query.subcommand,
                    query.target,
                    description="Messages could not be retrieved",
                )
            return
        target = channel_target(membership.channel)
        selected = chathistory.select(self.server.hub.channels[membership.channel].history, query)
        if isinstance(selected, chathistory.Fail):
            self._fail(
                selected.code,
                query.subcommand,
                target,
                *selected.context,
                description=selected.description,
            )
            return
        await self._history_reply(membership, target, selected)

    async def _history_reply(
        self, membership: IrcMembership | None, target: str, entries: Sequence[Entry]
    ) -> None:
        """``entries`` as a ``chathistory`` batch (with ``batch``; else plain
        lines). Past an outbox's high-water mark the reply waits for it to
        drain, as the read loop does, so a long reply never fills it (a full
        outbox counts as a peer not reading, outlet.py). It stops short, its
        batch closed, if the connection leaves the channel meanwhile: a kick
        by /empty takes what was said before with it."""
        batch = self.renderer.batch_id() if "batch" in self.caps else ""
        if batch:
            opening, closing = self.renderer.batch_ends(batch, "chathistory", target)
            self.push_line(opening)
        for entry in entries:
            if self.server.congested:
                await self.wait_for_congested_outboxes()
                if self.state >= FINISHING or membership is None or membership.done:
                    break
            for frame in self.renderer.history_lines((entry,), target, self.tags, batch):
                self.push_line(frame)
        if batch:
            self.push_line(closing)

    def _history_targets(self, query: chathistory.Query) -> None:
        """TARGETS: the channels this connection is in whose latest line is
        between the two times, ordered by that time, oldest first. (Private
        messages are never kept, so no nick is among them.)"""
        low, high = (r.millis for r in query.references if isinstance(r, chathistory.ByTime))
        found: list[tuple[float, str]] = []
        for membership in self.memberships.values():
            if membership.admitted:
                history = self.server.hub.channels[membership.channel].history
                at = chathistory.latest_in(history, low, high)
                if at is not None:
                    found.append((at, channel_target(membership.channel)))
        found.sort()
        server = self.settings.server_name
        batch = self.renderer.batch_id() if "batch" in self.caps else ""
        if batch:
            opening, closing = self.renderer.batch_ends(batch, "draft/chathistory-targets")
            self.push_line(opening)
        tags = {"batch": batch} if batch else None
        for at, target in found[: query.limit]:
            params = ["TARGETS", target, iso_time(at)]
            self.push_line(encode("CHATHISTORY", params, server, tags))
        if batch:
            self.push_line(closing)

    def _fail(self, code: str, *context: str, description: str) -> None:
        """A standard reply ``FAIL CHATHISTORY CODE context... :description``;
        what it echoes of the peer's request is cleaned (lines.word)."""
        self._send("FAIL", ["CHATHISTORY", code, *(word(c) for c in context), description])

    # ----- queries: answered from the hub's state, no activity -----

    def _send_names(self, channel: str) -> None:
        """353 and 366 for everyone in ``channel`` (a configured name)."""
        target = channel_target(channel)
        names = self.server.hub.channels[channel].members
        if "userhost-in-names" in self.caps:
            shown_names = [self.renderer.mask(name) for name in names]
        else:
            shown_names = [shown(name) for name in names]
        # As many names to a 353 line as fit in 512 bytes (names and masks are
        # ASCII; a channel's name may not be).
        room = 400 - len(target.encode()) - len(self.nick)
        line: list[str] = []
        size = 0
        for name in shown_names:
            if line and size + len(name) + 1 > room:
                self._reply(n.RPL_NAMREPLY, "=", target, " ".join(line))
                line, size = [], 0
            line.append(name)
            size += len(name) + 1
        if line:
            self._reply(n.RPL_NAMREPLY, "=", target, " ".join(line))
        self._reply(n.RPL_ENDOFNAMES, target, "End of /NAMES list")

    def _names(self, line: Line) -> None:
        if not line.params:
            for membership in self.memberships.values():
                if membership.admitted:
                    self._send_names(membership.channel)
            self._reply(n.RPL_ENDOFNAMES, "*", "End of /NAMES list")
            return
        target = line.params[0].split(",")[0]  # (TARGMAX: NAMES:1)
        name = self._channel(target)
        if name is None:
            self._reply(n.RPL_ENDOFNAMES, word(target), "End of /NAMES list")
        else:
            self._send_names(name)

    def _list(self, line: Line) -> None:
        hub = self.server.hub
        names = list(hub.channels)
        if line.params and line.params[0]:
            names = [c for t in line.params[0].split(",") if (c := self._channel(t)) is not None]
        self._reply(n.RPL_LISTSTART, "Channel", "Users  Name")
        for name in names:
            channel = hub.channels[name]
            members, capacity = len(channel.members), channel.config.capacity
            topic = f"[{members}/{capacity} members, {len(channel.queue)} waiting]"
            self._reply(n.RPL_LIST, channel_target(name), str(members), topic)
        self._reply(n.RPL_LISTEND, "End of /LIST")

    def _member_anywhere(self, nick: str) -> tuple[Member, list[str]] | None:
        """The member a nick means (the first found, in any ASCII case), and
        every channel where someone of that name is."""
        found: Member | None = None
        channels: list[str] = []
        name = member_name(nick)
        for channel in self.server.hub.channels.values():
            member = find_member(channel.members, name if found is None else found.name)
            if member is not None:
                found = found or member
                channels.append(channel.name)
        return (found, channels) if found is not None else None

    def _realname(self, member: Member) -> tuple[str, str]:
        """The user and real name WHO and WHOIS show for ``member``."""
        conn = member.conn
        if isinstance(conn, IrcMembership):
            return conn.client.user or shown(member.name), conn.client.realname
        if member.via_irc:
            return member.ident or shown(member.name), "on IRC through another node"
        return shown(member.name)[: n.USERLEN], "a trio-chat member"

    def _who(self, line: Line) -> None:
        mask = line.params[0] if line.params else "*"
        server = self.settings.server_name
        rows: list[tuple[str, Member]] = []
        name = self._channel(mask)
        if name is not None:
            rows = [
                (channel_target(name), m) for m in self.server.hub.channels[name].members.values()
            ]
        else:
            found = self._member_anywhere(mask)
            if found is not None:
                rows = [("*", found[0])]
        for target, member in rows:
            user, realname = self._realname(member)
            nick = shown(member.name)
            flag = "G" if _away_of(member) is not None else "H"
            self._reply(n.RPL_WHOREPLY, target, user, server, server, nick, flag, f"0 {realname}")
        self._reply(n.RPL_ENDOFWHO, word(mask), "End of /WHO list")

    def _whois(self, line: Line) -> None:
        if not line.params:
            self._reply(n.ERR_NONICKNAMEGIVEN, "No nickname given")
            return
        target = line.params[-1].split(",")[0]
        server = self.settings.server_name
        found = self._member_anywhere(target)
        irc_nick = self.server.hub.nick_of.get(self.server.hub.nicks.get(fold_nick(target), ""))
        if fold_nick(target) == fold_nick(self.nick) and self.registered:
            nick, user, realname = self.nick, self.user or self.nick, self.realname
            channels = [channel_target(m.channel) for m in self.memberships.values() if m.admitted]
            away = self.away
        elif found is not None:
            member, names = found
            nick = shown(member.name)
            user, realname = self._realname(member)
            channels = [channel_target(c) for c in names]
            away = _away_of(member)
        elif irc_nick is not None:  # on IRC, in no channel
            holder = self.server.hub.connection_for(self.server.hub.nicks[fold_nick(target)])
            if isinstance(holder, IrcClient):  # connected here: it is known
                nick, user, realname = irc_nick, holder.user or irc_nick, holder.realname
                channels, away = [], holder.away
            else:
                nick, user, realname, channels, away = irc_nick, irc_nick, "on IRC", [], None
        else:
            self._reply(n.ERR_NOSUCHNICK, word(target), "No such nick")
            self._reply(n.RPL_ENDOFWHOIS, word(target), "End of /WHOIS list")
            return
        self._reply(n.RPL_WHOISUSER, nick, user, server, "*", realname)
        if channels:
            self._reply(n.RPL_WHOISCHANNELS, nick, " ".join(channels))
        self._reply(n.RPL_WHOISSERVER, nick, server, "trio-chat")
        if away is not None:
            self._reply(n.RPL_AWAY, nick, away)
        self._reply(n.RPL_ENDOFWHOIS, nick, "End of /WHOIS list")

    def _present(self, nick: str) -> bool:
        if fold_nick(nick) in self.server.hub.nicks:
            return True
        return self._member_anywhere(nick) is not None

    def _ison(self, line: Line) -> None:
        asked = " ".join(line.params).split()
        self._reply(n.RPL_ISON, " ".join(nick for nick in asked if self._present(nick)))

    def _userhost(self, line: Line) -> None:
        replies = []
        for nick in line.params[:5]:
            if self._present(nick):
                away = "-" if fold_nick(nick) == fold_nick(self.nick) and self.away else "+"
                found = self._member_anywhere(nick)
                name = found[0].name if found is not None else member_name(nick)
                replies.append(f"{word(nick)}={away}{self.renderer.mask(name).split('!')[1]}")
        self._reply(n.RPL_USERHOST, " ".join(replies))

    def _mode(self, line: Line) -> None:
        if not line.params:
            self._reply(n.ERR_NEEDMOREPARAMS, "MODE", "Not enough parameters")
            return
        target = line.params[0]
        modes = line.params[1] if len(line.params) > 1 else ""
        if target.startswith("#"):
            name = self._channel(target)
            if name is None:
                self._reply(n.ERR_NOSUCHCHANNEL, word(target), "No such channel")
            elif not modes:
                self._reply(n.RPL_CHANNELMODEIS, channel_target(name), f"+{n.CHANNEL_MODES}")
            elif modes.lstrip("+") == "b" and len(line.params) == 2:  # the ban list
                for mask in self._ban_masks(name):
                    self._reply(n.RPL_BANLIST, channel_target(name), mask)
                self._reply(n.RPL_ENDOFBANLIST, channel_target(name), "End of channel ban list")
            else:
                self._reply(
                    n.ERR_CHANOPRIVSNEEDED,
                    channel_target(name),
                    "You're not a channel operator (channels here have none)",
                )
            return
        if fold_nick(target) != fold_nick(self.nick):
            self._reply(n.ERR_USERSDONTMATCH, "Cannot change mode for other users")
        elif not modes:
            self._reply(n.RPL_UMODEIS, f"+{self.user_modes}")
        elif modes.strip("+-") and set(modes.strip("+-")) <= set(n.USER_MODES):
            self.user_modes = "" if modes.startswith("-") else n.USER_MODES
            self._send("MODE", [self.nick, modes], self.mask)
        else:
            self._reply(n.ERR_UMODEUNKNOWNFLAG, "Unknown MODE flag")

    def _ban_masks(self, channel: str) -> list[str]:
        """The console's bans in force that keep people out of ``channel``,
        as IRC masks: a nick's ``nick!*@*``, an address's ``*!*@address``."""
        now = self.server.gateway.rules_now()
        return [
            f"{shown(target.user)}!*@*" if isinstance(target, NameBan) else f"*!*@{target}"
            for target in self.server.hub.bans.keeping_out(channel, now)
        ]

    def _topic(self, line: Line) -> None:
        if not line.params:
            self._reply(n.ERR_NEEDMOREPARAMS, "TOPIC", "Not enough parameters")
            return
        name = self._channel(line.params[0])
        if name is None:
            self._reply(n.ERR_NOSUCHCHANNEL, word(line.params[0]), "No such channel")
        elif len(line.params) > 1:
            self._reply(n.ERR_CHANOPRIVSNEEDED, channel_target(name), "Topics cannot be set here")
        else:
            self._reply(n.RPL_NOTOPIC, channel_target(name), "No topic is set")

    def _away(self, line: Line) -> None:
        message = _text(line.params[0]) if line.params else ""
        if message:
            self.away = message
            self._reply(n.RPL_NOWAWAY, "You have been marked as being away")
        else:
            self.away = None
            self._reply(n.RPL_UNAWAY, "You are no longer marked as being away")

    def _motd(self, line: Line) -> None:
        self._reply(n.ERR_NOMOTD, "There is no message of the day")

    def _no_operators(self, line: Line) -> None:
        target = (
            channel_target(name) if line.params and (name := self._channel(line.params[0])) else "*"
        )
        self._reply(
            n.ERR_CHANOPRIVSNEEDED,
            target,
            "You're not a channel operator (channels here have none)",
        )


def find_member(members: Mapping[str, Member], name: str) -> Member | None:
    """The member ``name`` means: by its exact name, else without ASCII case
    (``CASEMAPPING=ascii``), as IRC clients may write a nick."""
    member = members.get(name)
    if member is not None:
        return member
    folded = fold_nick(name)
    return next((m for other, m in members.items() if fold_nick(other) == folded), None)


def _text(raw: str) -> str:
    """What an IRC user typed, as the rules take it: formatting codes out,
    then the one sanitizer (sanitize.py)."""
    return clean(strip_formatting(raw))


def _away_of(member: Member) -> str | None:
    conn = member.conn
    return conn.client.away if isinstance(conn, IrcMembership) else None


def _ignored(client: IrcClient, line: Line) -> None:
    """PONG: that the peer is alive is all it says (the read loop noted it)."""


def _nothing_to_say(code: str, *params: str) -> None:
    """A NOTICE's errors go unanswered."""


# What each command calls. One table for every connection (a dict of bound
# methods made per connection cost a join more than its NAMES reply).
_COMMANDS: dict[str, Callable[[IrcClient, Line], Awaitable[None] | None]] = {
    "CAP": IrcClient._cap,
    "PASS": IrcClient._pass,
    "NICK": IrcClient._nick,
    "USER": IrcClient._user,
    "PING": IrcClient._ping,
    "PONG": _ignored,
    "QUIT": IrcClient._quit,
    "JOIN": IrcClient._join,
    "PART": IrcClient._part,
    "PRIVMSG": IrcClient._message,
    "NOTICE": IrcClient._message,
    "NAMES": IrcClient._names,
    "LIST": IrcClient._list,
    "WHO": IrcClient._who,
    "WHOIS": IrcClient._whois,
    "ISON": IrcClient._ison,
    "USERHOST": IrcClient._userhost,
    "MODE": IrcClient._mode,
    "TOPIC": IrcClient._topic,
    "AWAY": IrcClient._away,
    "MOTD": IrcClient._motd,
    "KICK": IrcClient._no_operators,
    "INVITE": IrcClient._no_operators,
    # Client-only tags (+typing) are not relayed: taken, unanswered.
    "TAGMSG": _ignored,
    # Only with history on (IrcClient.history_limit); else unknown.
    "CHATHISTORY": IrcClient._chathistory,
}
