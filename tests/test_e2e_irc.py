"""End to end with the installed programs: an IRC member (``--irc``) beside
native and browser members, on one server and on a cluster's nodes
(docs/behaviour.md; the IRC port: trio_chat/irc).

The browser members of the scenarios speak the page's WebSocket protocol
without a browser (``WebPeer``: peers.WebMember, events as docs/protocol.md
lists them); one test drives a real Chromium page as well. On a cluster the
IRC member is on the first node and the native and browser members on the
second, so every message crosses nodes. Each step waits for what it causes
before the next begins, so the merged stdout of the nodes comes in one
order; whole transcripts are compared at the end (``rest``).
"""

from __future__ import annotations

import contextlib
import functools
import re
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import trio
from irctokens.line import Line
from trio_websocket import ConnectionClosed, open_websocket_url

from trio_chat import wire
from trio_chat.wire import FrameType

from .irc_peer import SERVER_NAME, IrcPeer, mask
from .peers import WebMember, origin
from .processes import DEADLINE, Cluster, cluster, is_stamp, srv
from .test_web import Person, browser  # noqa: F401  (the fixture, and a page of the chat)

OPTIONS = ("--irc-server-name", SERVER_NAME)
AFK_TIMEOUT = 2.0  # seconds: room for several rounds of queries
# Between rounds of queries; two counted lines a round stay within the
# default flood budget (5 lines a second), so nothing holds them back.
ROUND = 0.5
# WHO #general's rows while the watcher, a browser member and the IRC member are in it.
WHO = (
    "watcher irc.test irc.test watcher H :0 a trio-chat member",
    "carol irc.test irc.test carol H :0 a trio-chat member",
    "ircnick irc.test irc.test ircnick H :0 ircnick in a test",
)
T = TypeVar("T")


@pytest.fixture(params=[None, 2], ids=["one-server", "2-nodes"])
def nodes(request: pytest.FixtureRequest) -> int | None:
    """One server, and two nodes sharing a real Redis (the IRC member on one,
    the native and browser members on the other); three nodes add nothing
    IRC's own."""
    node_count: int | None = request.param
    return node_count


@pytest.fixture
def chat(tmp_path: Path, nodes: int | None) -> Iterator[Cluster]:
    """A server (or nodes) serving IRC and the web page, with channels of capacity 5."""
    with cluster(tmp_path, nodes=nodes, server_options=OPTIONS, irc=True, web=True) as running:
        yield running


def far(chat: Cluster) -> int | None:
    """Where the native members go: the second node (None: the one server)."""
    return None if chat.redis is None else 1


# What a page is told at the operator's /shutdown (so it does not come back by itself).
SHUT_DOWN_BYE = (0, "the server was shut down by the operator")


class WebPeer:
    """A browser member without a browser: peers.WebMember (the page's
    WebSocket, speaking frames) driven from these synchronous tests. A trio
    loop in a thread of its own holds the connection; each call runs there
    and waits for its answer, with the peer's deadlines."""

    def __init__(self, chat: Cluster, name: str, channel: str = "general") -> None:
        """Connect to the last node's web port (on a cluster: not the IRC
        member's node) and say hello as ``name``."""
        port = chat.web_ports[-1]
        self.name = name
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self._member: WebMember | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._done: trio.Event | None = None
        self._thread = threading.Thread(
            target=trio.run, args=(self._hold, port, channel), daemon=True
        )
        self._thread.start()
        self._ready.wait(DEADLINE)
        assert self._member is not None, f"{name}: no WebSocket ({self._failure!r})"
        self._call(self._member.socket.send_message, wire.encode_hello(name))

    async def _hold(self, port: int, channel: str) -> None:
        """The connection, open until ``rest`` is done with it. (A test that
        fails leaves it waiting: the thread is a daemon, and the server's
        end closes the socket.)"""
        try:
            url = f"ws://127.0.0.1:{port}/ws/{channel}"
            async with open_websocket_url(url, extra_headers=origin(port)) as socket:
                self._member = WebMember(socket)
                self._token = trio.lowlevel.current_trio_token()
                self._done = trio.Event()
                self._ready.set()
                await self._done.wait()
        except Exception as error:  # reported by __init__ or by the call that meets it
            self._failure = error
        finally:
            self._ready.set()

    def _call(self, function: Callable[..., Awaitable[T]], *args: object) -> T:
        return trio.from_thread.run(function, *args, trio_token=self._token)

    @property
    def member(self) -> WebMember:
        assert self._member is not None
        return self._member

    def expect(self, event: str, **fields: object) -> None:
        """The next event is ``event`` with these fields (and a stamp)."""
        self._call(functools.partial(self.member.expect, event, **fields))

    def says(self, line: str) -> None:
        """A line typed into the page (chat, or a command such as /whisper)."""
        self._call(self.member.socket.send_message, wire.encode_input(line))

    def rest(self) -> list[dict[str, object]]:
        """The events not taken yet (their stamps checked, then dropped), up to
        the server's BYE (then it hangs up, as the page does: connection.js) or the
        server's close; the loop then ends."""
        events = self._call(self._until_closed)
        for event in events:
            assert is_stamp(str(event.pop("stamp"))), event
        assert self._done is not None
        trio.from_thread.run_sync(self._done.set, trio_token=self._token)
        self._thread.join(DEADLINE)
        return events

    async def _until_closed(self) -> list[dict[str, object]]:
        member = self.member
        events, member.events = member.events, []
        with trio.fail_after(DEADLINE):
            with contextlib.suppress(ConnectionClosed):
                while member.bye is None:
                    message = await member.socket.get_message()
                    assert isinstance(message, bytes), message
                    for frame_type, payload, _ in member.decoder.feed(message):
                        assert frame_type != FrameType.LINE, "a browser was sent a terminal's line"
                        if frame_type == FrameType.EVENT:
                            events.append(wire.decode_json(payload))
                        elif frame_type == FrameType.BYE:
                            member.bye = bytes(payload)
            await member.socket.aclose()
        return events

    @property
    def bye(self) -> tuple[int, str] | None:
        """The BYE the server sent (its status and reason), if it sent one."""
        bye = self.member.bye
        return None if bye is None else (bye[0], bye[1:].decode())


def web_member(chat: Cluster, name: str, channel: str = "general") -> WebPeer:
    """A browser member, once the server has admitted it to ``channel``."""
    page = WebPeer(chat, name, channel)
    page.expect("welcome", channel=channel, user=name)
    page.expect("joined", user=name)
    chat.server.expect(srv(f"{name} has joined the {channel} channel."))
    return page


def irc_member(
    chat: Cluster, nick: str, *channels: tuple[str, str], caps: tuple[str, ...] = ()
) -> IrcPeer:
    """An IRC connection to the first node, registered as ``nick`` (with
    ``caps``), in each ``(channel, names)`` of ``channels`` (NAMES as it then
    sees them)."""
    peer = IrcPeer(chat.irc_port(0), nick)
    peer.register(nick, caps)
    for channel, names in channels:
        peer.join(channel, names)
        chat.server.expect(srv(f"{nick} has joined the {channel[1:]} channel."))
    return peer


def shut_down(chat: Cluster, *peers: IrcPeer) -> None:
    """/shutdown: every IRC connection gets its ERROR and is closed."""
    chat.server.type("/shutdown")
    for peer in peers:
        peer.expect("ERROR", "Closing Link: server shutting down")
        peer.expect_closed()
    assert chat.server.wait_exit() == 0
    for program in chat.programs:
        assert program.wait_exit() == 0


def test_chat_whisper_and_nicks(chat: Cluster) -> None:
    alice = chat.join("alice", node=far(chat))
    bob = chat.join("bob", node=far(chat))
    carol = web_member(chat, "carol")
    caps = ("echo-message", "server-time")
    irc = irc_member(chat, "ircnick", ("#general", "alice bob carol ircnick"), caps=caps)
    alice.expect(srv("bob has joined the channel."))
    for member in (alice, bob):
        member.expect(srv("carol has joined the channel."))
        member.expect(srv("ircnick has joined the channel."))
    carol.expect("joined", user="ircnick")

    alice.type("hello irc")
    said = irc.expect("PRIVMSG", "#general", "hello irc", source=mask("alice"))
    stamp = (said.tags or {}).get("time", "")  # server-time
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", stamp), said
    chat.server.expect("[alice (<time>)] hello irc")
    irc.send("PRIVMSG #general :hello   natives")
    irc.expect("PRIVMSG", "#general", "hello   natives", source=irc.mask)  # echo-message
    alice.expect("[alice (<time>)] hello irc")
    alice.expect("[ircnick (<time>)] hello   natives")
    bob.expect("[alice (<time>)] hello irc")
    bob.expect("[ircnick (<time>)] hello   natives")
    chat.server.expect("[ircnick (<time>)] hello   natives")
    carol.expect("chat", sender="alice", message="hello irc")
    carol.expect("chat", sender="ircnick", message="hello   natives")

    # The browser member's chat reaches IRC as a PRIVMSG; an IRC /me (CTCP
    # ACTION) reaches the page marked as an action.
    carol.says("hello from a browser")
    irc.expect("PRIVMSG", "#general", "hello from a browser", source=mask("carol"))
    carol.expect("chat", sender="carol", message="hello from a browser")
    chat.server.expect("[carol (<time>)] hello from a browser")
    irc.send("PRIVMSG #general :\x01ACTION waves\x01")
    irc.expect("PRIVMSG", "#general", "\x01ACTION waves\x01", source=irc.mask)
    carol.expect("chat", sender="ircnick", message="waves", action=True)
    chat.server.expect("[ircnick (<time>)] * ircnick waves")
    for member in (alice, bob):
        member.expect("[carol (<time>)] hello from a browser")
        member.expect("[ircnick (<time>)] * ircnick waves")

    alice.type("/whisper ircnick psst")
    irc.expect("PRIVMSG", "ircnick", "psst", source=mask("alice"))
    chat.server.expect("[alice whispers to ircnick: (<time>)] psst")
    irc.send("PRIVMSG alice :psst back")
    irc.expect("PRIVMSG", "alice", "psst back", source=irc.mask)  # echo-message
    alice.expect("[ircnick whispers to you: (<time>)] psst back")
    chat.server.expect("[ircnick whispers to alice: (<time>)] psst back")
    # Whispers between the page and IRC, both ways; a /me whispered is an action.
    carol.says("/whisper ircnick psst from a browser")
    irc.expect("PRIVMSG", "ircnick", "psst from a browser", source=mask("carol"))
    # The page shows its own whisper in its log (docs/web.md).
    carol.expect("whispered", to="ircnick", message="psst from a browser")
    chat.server.expect("[carol whispers to ircnick: (<time>)] psst from a browser")
    irc.send("PRIVMSG carol :psst back, page")
    irc.expect("PRIVMSG", "carol", "psst back, page", source=irc.mask)
    carol.expect("whisper", sender="ircnick", message="psst back, page")
    chat.server.expect("[ircnick whispers to carol: (<time>)] psst back, page")
    irc.send("PRIVMSG carol :\x01ACTION winks\x01")
    irc.expect("PRIVMSG", "carol", "\x01ACTION winks\x01", source=irc.mask)
    carol.expect("whisper", sender="ircnick", message="winks", action=True)
    chat.server.expect("[ircnick whispers to carol: (<time>)] * ircnick winks")
    # A whisper to no one here: 401, as IRC says it.
    irc.send("PRIVMSG nobody :anyone?")
    irc.expect("401", "ircnick", "nobody", "No such nick/channel (or no channel you share)")

    bob.type("/quit")
    assert bob.wait_exit() == 0
    irc.expect("PART", "#general", source=mask("bob"))
    chat.server.expect(srv("bob has left the channel."))
    alice.expect(srv("bob has left the channel."))
    carol.expect("left", user="bob", why="left")

    # The same nick from another IRC connection (on a cluster: on the other
    # node), in any ASCII case: 433; another nick then registers.
    twin = IrcPeer(chat.irc_port(-1), "twin")
    twin.send("NICK ircnick", "USER twin 0 * :twin")
    twin.expect("433", "*", "ircnick", "Nickname is already in use")
    twin.send("NICK IRCNICK")
    twin.expect("433", "*", "IRCNICK", "Nickname is already in use")
    twin.send("NICK other")
    twin.welcome("other")
    # A terminal or browser member's name, in any ASCII case, is nobody's
    # nick on IRC (an IRC nick is one person everywhere: docs/irc.md, "Names").
    namesake = IrcPeer(chat.irc_port(-1), "namesake")
    namesake.send("NICK Alice", "USER a 0 * :a")
    namesake.expect("433", "*", "Alice", "Nickname is already in use")
    namesake.send("NICK CAROL")
    namesake.expect("433", "*", "CAROL", "Nickname is already in use")
    namesake.send("NICK alicia")
    namesake.welcome("alicia")
    # Nor is an IRC nick, in any case, a name a page may join with (on a
    # cluster: on the other node).
    page_twin = WebPeer(chat, "IrcNick")
    page_twin.expect("cannot_connect", channel="general")
    assert page_twin.rest() == []
    assert page_twin.bye == (1, "the name IrcNick is an IRC user's nick")

    # /shutdown: every IRC connection, on every node, gets its ERROR.
    shut_down(chat, irc, twin, namesake)
    assert chat.server.rest() == []
    assert alice.rest() == []
    assert bob.rest() == []
    assert carol.rest() == [] and carol.bye == SHUT_DOWN_BYE
    assert irc.rest() == [] and namesake.rest() == [] and twin.rest() == []


def test_a_nick_is_free_again_once_its_connection_quit(chat: Cluster) -> None:
    """After QUIT the server ends the link (ERROR, then it closes its side):
    the nick is no one's any more, on every node, whenever the old client
    closes its own side of the socket. A browser member in the channel sees
    the one leave and the other come."""
    carol = web_member(chat, "carol")
    gone = IrcPeer(chat.irc_port(0), "gone", hang_up=False)
    gone.register("ircnick")
    gone.join("#general", "carol ircnick")
    chat.server.expect(srv("ircnick has joined the general channel."))
    carol.expect("joined", user="ircnick")
    gone.send("QUIT :brb")
    gone.expect("ERROR", "Closing Link: ircnick@127.0.0.1 (Quit: brb)")
    gone.expect_closed()
    chat.server.expect(srv("ircnick has left the channel."))
    carol.expect("left", user="ircnick", why="left")
    back = IrcPeer(chat.irc_port(-1), "back")
    back.send("NICK ircnick", "USER back 0 * :back")
    back.welcome("ircnick")
    back.join("#general", "carol ircnick")
    chat.server.expect(srv("ircnick has joined the general channel."))
    carol.expect("joined", user="ircnick")
    gone.close()
    back.send("PRIVMSG #general :back again")
    carol.expect("chat", sender="ircnick", message="back again")
    chat.server.expect("[ircnick (<time>)] back again")
    carol.says("welcome back")
    back.expect("PRIVMSG", "#general", "welcome back", source=mask("carol"))
    carol.expect("chat", sender="carol", message="welcome back")
    chat.server.expect("[carol (<time>)] welcome back")

    shut_down(chat, back)
    assert chat.server.rest() == []
    assert carol.rest() == [] and carol.bye == SHUT_DOWN_BYE
    assert back.rest() == [] and gone.rest() == []


def test_queue_then_admitted(chat: Cluster) -> None:
    natives = [chat.join(f"u{i}", node=far(chat)) for i in range(4)]
    carol = web_member(chat, "carol")  # the fifth: the channel is full
    waiting = chat.client("waiting", node=far(chat))
    waiting.expect(srv("Welcome to the general channel, waiting."))
    waiting.expect(srv("You are in the waiting queue and there are 0 user(s) ahead of you."))

    irc = irc_member(chat, "ircnick")
    irc.send("JOIN #general")
    queued = "#general: You are in the waiting queue and there are {} user(s) ahead of you."
    irc.expect("NOTICE", "ircnick", queued.format(1), source=SERVER_NAME)
    # A browser member queued behind it counts the IRC member ahead of itself.
    dora = WebPeer(chat, "dora")
    dora.expect("welcome", channel="general", user="dora")
    dora.expect("queued", ahead=2)
    # Chat from the queue reaches no one: as a native member is, it is told
    # its place again.
    irc.send("PRIVMSG #general :let me in")
    irc.expect("NOTICE", "ircnick", queued.format(1), source=SERVER_NAME)
    natives[0].type("/list")  # the IRC member waits with the others
    for name in ("u1", "u2", "u3", "carol"):
        natives[0].expect(srv(f"{name} has joined the channel."))
    natives[0].expect("[Channel] general 5/5/3.")
    natives[0].expect("[Channel] random 0/5/0.")
    natives[0].expect("[Channel] help 0/5/0.")

    waiting.type("/quit")
    assert waiting.wait_exit() == 0
    chat.server.expect(srv("waiting has left the channel."))
    irc.expect("NOTICE", "ircnick", queued.format(0), source=SERVER_NAME)
    dora.expect("queued", ahead=1)

    natives[3].expect(srv("carol has joined the channel."))
    natives[3].type("/quit")
    assert natives[3].wait_exit() == 0
    irc.expect_joined("#general", "u0 u1 u2 carol ircnick")
    chat.server.expect(srv("u3 has left the channel."))
    chat.server.expect(srv("ircnick has joined the general channel."))
    for i, member in enumerate(natives[1:3], start=1):
        for later in range(i + 1, 4):
            member.expect(srv(f"u{later} has joined the channel."))
        member.expect(srv("carol has joined the channel."))
    for member in natives[:3]:
        member.expect(srv("u3 has left the channel."))
        member.expect(srv("ircnick has joined the channel."))
    carol.expect("left", user="u3", why="left")
    carol.expect("joined", user="ircnick")
    dora.expect("queued", ahead=0)
    irc.send("PRIVMSG #general :thanks")
    carol.expect("chat", sender="ircnick", message="thanks")
    chat.server.expect("[ircnick (<time>)] thanks")
    carol.says("welcome, ircnick")
    irc.expect("PRIVMSG", "#general", "welcome, ircnick", source=mask("carol"))
    carol.expect("chat", sender="carol", message="welcome, ircnick")
    chat.server.expect("[carol (<time>)] welcome, ircnick")
    for member in natives[:3]:
        member.expect("[ircnick (<time>)] thanks")
        member.expect("[carol (<time>)] welcome, ircnick")

    # The IRC member leaves: its place goes to the browser member queued next.
    irc.send("PART #general")
    irc.expect("PART", "#general", source=irc.mask)
    chat.server.expect(srv("ircnick has left the channel."))
    chat.server.expect(srv("dora has joined the general channel."))
    dora.expect("joined", user="dora")
    carol.expect("left", user="ircnick", why="left")
    carol.expect("joined", user="dora")
    for member in natives[:3]:
        member.expect(srv("ircnick has left the channel."))
        member.expect(srv("dora has joined the channel."))
    # The channel is full again: back in the queue, first in it.
    irc.send("JOIN #general")
    irc.expect("NOTICE", "ircnick", queued.format(0), source=SERVER_NAME)

    shut_down(chat, irc)
    assert chat.server.rest() == []
    assert [member.rest() for member in natives] == [[]] * 4
    assert carol.rest() == [] and dora.rest() == []
    assert irc.rest() == []


def test_switch_then_mute_kick_and_empty(chat: Cluster) -> None:
    alice = chat.join("alice", node=far(chat))
    dave = chat.join("dave", "random", node=far(chat))
    carol = web_member(chat, "carol")
    erin = web_member(chat, "erin", "random")
    alice.expect(srv("carol has joined the channel."))
    dave.expect(srv("erin has joined the channel."))
    irc = irc_member(chat, "ircnick", ("#general", "alice carol ircnick"))
    alice.expect(srv("ircnick has joined the channel."))
    carol.expect("joined", user="ircnick")

    # A native member switches away and back: PART, then JOIN.
    alice.type("/switch random")
    irc.expect("PART", "#general", source=mask("alice"))
    chat.server.expect(srv("alice has left the channel."))
    chat.server.expect(srv("alice has joined the random channel."))
    alice.expect(srv("Welcome to the random channel, alice."))
    alice.expect(srv("alice has joined the channel."))
    dave.expect(srv("alice has joined the channel."))
    carol.expect("left", user="alice", why="left")
    erin.expect("joined", user="alice")
    alice.type("/switch general")
    irc.expect("JOIN", "#general", source=mask("alice"))
    chat.server.expect(srv("alice has left the channel."))
    chat.server.expect(srv("alice has joined the general channel."))
    alice.expect(srv("Welcome to the general channel, alice."))
    alice.expect(srv("alice has joined the channel."))
    dave.expect(srv("alice has left the channel."))
    carol.expect("joined", user="alice")
    erin.expect("left", user="alice", why="left")

    # The IRC member leaves #general and goes to #random.
    irc.send("PART #general :going random")
    irc.expect("PART", "#general", "going random", source=irc.mask)
    alice.expect(srv("ircnick has left the channel."))
    chat.server.expect(srv("ircnick has left the channel."))
    carol.expect("left", user="ircnick", why="left")
    irc.join("#random", "dave erin ircnick")
    chat.server.expect(srv("ircnick has joined the random channel."))
    dave.expect(srv("ircnick has joined the channel."))
    erin.expect("joined", user="ircnick")
    irc.send("PRIVMSG #random :hi dave")
    dave.expect("[ircnick (<time>)] hi dave")
    erin.expect("chat", sender="ircnick", message="hi dave")
    chat.server.expect("[ircnick (<time>)] hi dave")

    # A browser member switches to #random and back: JOIN, then PART.
    carol.says("/switch random")
    irc.expect("JOIN", "#random", source=mask("carol"))
    chat.server.expect(srv("carol has left the channel."))
    chat.server.expect(srv("carol has joined the random channel."))
    carol.expect("welcome", channel="random", user="carol")
    carol.expect("joined", user="carol")
    alice.expect(srv("carol has left the channel."))
    dave.expect(srv("carol has joined the channel."))
    erin.expect("joined", user="carol")
    carol.says("/switch general")
    irc.expect("PART", "#random", source=mask("carol"))
    chat.server.expect(srv("carol has left the channel."))
    chat.server.expect(srv("carol has joined the general channel."))
    carol.expect("welcome", channel="general", user="carol")
    carol.expect("joined", user="carol")
    alice.expect(srv("carol has joined the channel."))
    dave.expect(srv("carol has left the channel."))
    erin.expect("left", user="carol", why="left")

    # Back in #general too, for the console's commands.
    irc.join("#general", "alice carol ircnick")
    chat.server.expect(srv("ircnick has joined the general channel."))
    alice.expect(srv("ircnick has joined the channel."))
    carol.expect("joined", user="ircnick")

    chat.server.type("/mute general:ircnick 10")
    chat.server.expect(srv("Muted ircnick for 10 seconds."))
    irc.expect("NOTICE", "ircnick", "#general: You have been muted for 10 seconds.")
    alice.expect(srv("ircnick has been muted for 10 seconds."))
    carol.expect("muted", user="ircnick", seconds=10)
    irc.send("PRIVMSG #general :can you hear me?")
    still = re.compile(r"You are still muted for (\d+) seconds\.")

    def still_muted(line: Line) -> bool:
        found = still.fullmatch(line.params[-1])
        return found is not None and 1 <= int(found[1]) <= 10

    irc.expect("404", "ircnick", "#general", where=still_muted)
    irc.send("PRIVMSG alice :please")  # a whisper through #general: muted too
    irc.expect("404", "ircnick", "#general", where=still_muted)
    irc.send("PRIVMSG carol :please")  # to the browser member: the same
    irc.expect("404", "ircnick", "#general", where=still_muted)
    # Muted, it still hears: the browser member's chat and whisper reach it.
    carol.says("we cannot hear you")
    irc.expect("PRIVMSG", "#general", "we cannot hear you", source=mask("carol"))
    carol.expect("chat", sender="carol", message="we cannot hear you")
    alice.expect("[carol (<time>)] we cannot hear you")
    chat.server.expect("[carol (<time>)] we cannot hear you")
    carol.says("/whisper ircnick try #random")
    irc.expect("PRIVMSG", "ircnick", "try #random", source=mask("carol"))
    carol.expect("whispered", to="ircnick", message="try #random")
    chat.server.expect("[carol whispers to ircnick: (<time>)] try #random")
    # Muted in #general only: #random hears it.
    irc.send("PRIVMSG #random :and here?")
    dave.expect("[ircnick (<time>)] and here?")
    erin.expect("chat", sender="ircnick", message="and here?")
    chat.server.expect("[ircnick (<time>)] and here?")

    # Kicked from #general: a KICK; still connected, and still in #random.
    chat.server.type("/kick general:ircnick")
    chat.server.expect(srv("Kicked ircnick."))
    irc.expect("KICK", "#general", "ircnick", "kicked by the server operator", source=SERVER_NAME)
    alice.expect(srv("ircnick has left the channel."))
    carol.expect("left", user="ircnick", why="kicked")
    irc.send("PRIVMSG #random :still here")
    dave.expect("[ircnick (<time>)] still here")
    erin.expect("chat", sender="ircnick", message="still here")
    chat.server.expect("[ircnick (<time>)] still here")
    irc.send("PRIVMSG #general :and back?")
    irc.expect("404", "ircnick", "#general", "You are not in the channel")

    # Back in #general, then the channel is emptied: a KICK again, and the
    # browser member there is disconnected.
    irc.join("#general", "alice carol ircnick")
    chat.server.expect(srv("ircnick has joined the general channel."))
    alice.expect(srv("ircnick has joined the channel."))
    carol.expect("joined", user="ircnick")
    chat.server.type("/empty general")
    chat.server.expect(srv("general has been emptied."))
    irc.expect(
        "KICK", "#general", "ircnick", "general was emptied by the operator", source=SERVER_NAME
    )
    assert alice.wait_exit() == 0
    assert carol.rest() == []
    assert carol.bye == (0, "general was emptied by the operator")
    irc.send("PRIVMSG #random :emptied")
    dave.expect("[ircnick (<time>)] emptied")
    erin.expect("chat", sender="ircnick", message="emptied")
    chat.server.expect("[ircnick (<time>)] emptied")

    # QUIT: out of every channel, and the connection closes.
    irc.send("QUIT :bye")
    irc.expect("ERROR", "Closing Link: ircnick@127.0.0.1 (Quit: bye)")
    irc.expect_closed()
    dave.expect(srv("ircnick has left the channel."))
    erin.expect("left", user="ircnick", why="left")
    chat.server.expect(srv("ircnick has left the channel."))

    shut_down(chat)
    assert chat.server.rest() == []
    assert alice.rest() == []
    assert dave.rest() == []
    assert erin.rest() == [] and erin.bye == SHUT_DOWN_BYE
    assert irc.rest() == []


def test_afk_and_queries_are_no_activity(tmp_path: Path, nodes: int | None) -> None:
    options = (*OPTIONS, "--afk-timeout", f"{AFK_TIMEOUT:g}")
    with cluster(tmp_path, nodes=nodes, server_options=options, irc=True, web=True) as chat:
        watcher = chat.join("watcher", node=far(chat))
        carol = web_member(chat, "carol")
        watcher.expect(srv("carol has joined the channel."))
        irc = irc_member(chat, "ircnick", ("#general", "watcher carol ircnick"))
        joined = time.monotonic()
        carol.expect("joined", user="ircnick")

        # Queries all through the wait, each round answered before the next:
        # if any of them restarted the timer, no PART would ever come.
        rounds = 0
        part = None
        while part is None:
            assert time.monotonic() - joined < DEADLINE, "the IRC member never went AFK"
            # The watcher speaks a round after the IRC member joined, the
            # browser member a round later still (ROUND seconds at least each):
            # their timers run out in that order, after the IRC member's.
            if rounds == 1:
                watcher.type("still here")
                irc.expect("PRIVMSG", "#general", "still here", source=mask("watcher"))
                chat.server.expect("[watcher (<time>)] still here")
                carol.expect("chat", sender="watcher", message="still here")
            if rounds == 2:
                carol.says("me too")
                irc.expect("PRIVMSG", "#general", "me too", source=mask("carol"))
                chat.server.expect("[carol (<time>)] me too")
                carol.expect("chat", sender="carol", message="me too")
            irc.send(f"PING :round{rounds}", "WHO #general", "MODE #general")
            irc.expect("PONG", SERVER_NAME, f"round{rounds}")
            irc.expect("315", "ircnick", "#general", "End of /WHO list")
            irc.expect("324", "ircnick", "#general", "+nt")
            rounds += 1
            part = irc.poll("PART", "#general", "disconnected for inactivity", deadline=ROUND)
        assert part.source == irc.mask
        assert rounds >= 3, rounds  # queries (and chat) went on during the wait
        chat.server.expect(srv("ircnick went AFK."))
        carol.expect("left", user="ircnick", why="afk")
        watcher.expect(srv("ircnick has joined the channel."))
        watcher.expect("[watcher (<time>)] still here")
        watcher.expect("[carol (<time>)] me too")
        watcher.expect(srv("ircnick went AFK."))
        # Only the membership went: the connection stays.
        irc.send("PING :after")
        irc.expect("PONG", SERVER_NAME, "after")
        # The watcher's timer runs out next, then the browser member's.
        chat.server.expect(srv("watcher went AFK."))
        assert watcher.wait_exit() == 0
        carol.expect("left", user="watcher", why="afk")
        chat.server.expect(srv("carol went AFK."))
        assert carol.rest() == []
        assert carol.bye == (0, "disconnected for inactivity")

        shut_down(chat, irc)
        # The rounds' WHO rows are all that is left.
        assert set(irc.rest()) == {f":{SERVER_NAME} 352 ircnick #general {row}" for row in WHO}
        assert chat.server.rest() == []
        assert watcher.rest() == []


def test_a_name_refused_as_an_irc_nick_is_not_said_to_be_in_the_channel(tmp_path: Path) -> None:
    """It is refused because an IRC user has it as its nick, and says so."""
    with cluster(tmp_path, server_options=OPTIONS, irc=True, web=True) as chat:
        irc = irc_member(chat, "other", ("#random", "other"))
        page = WebPeer(chat, "OTHER")
        page.expect("cannot_connect", channel="general")
        assert page.rest() == []
        assert page.bye is not None and page.bye[0] == 1
        assert page.bye[1] == "the name OTHER is an IRC user's nick", page.bye
        irc.close()


def test_a_browser_member_beside_irc_and_native_members(
    browser: Any,  # noqa: F811  (the fixture)
    tmp_path: Path,
    nodes: int | None,
) -> None:
    with cluster(tmp_path, nodes=nodes, server_options=OPTIONS, irc=True, web=True) as chat:
        alice = chat.join("alice", node=far(chat))
        page = Person(browser, chat.web_url(-1), "carol")
        page.sees(srv("carol has joined the channel."))
        chat.server.expect(srv("carol has joined the general channel."))
        irc = irc_member(chat, "ircnick", ("#general", "alice carol ircnick"))
        page.sees(srv("ircnick has joined the channel."))
        alice.expect(srv("carol has joined the channel."))
        alice.expect(srv("ircnick has joined the channel."))

        page.says("hi from a browser")
        irc.expect("PRIVMSG", "#general", "hi from a browser", source=mask("carol"))
        chat.server.expect("[carol (<time>)] hi from a browser")
        irc.send("PRIVMSG #general :hi from IRC")
        page.sees("[ircnick (<time>)] hi from IRC")
        alice.expect("[carol (<time>)] hi from a browser")
        alice.expect("[ircnick (<time>)] hi from IRC")
        chat.server.expect("[ircnick (<time>)] hi from IRC")

        page.says("/whisper ircnick psst")
        irc.expect("PRIVMSG", "ircnick", "psst", source=mask("carol"))
        chat.server.expect("[carol whispers to ircnick: (<time>)] psst")
        irc.send("PRIVMSG carol :psst back")
        page.sees("[ircnick whispers to you: (<time>)] psst back")
        chat.server.expect("[ircnick whispers to carol: (<time>)] psst back")

        # The page lists the IRC member among the members.
        page.page.locator("#members").get_by_role("button", name="ircnick", exact=True).wait_for()
        page.close()
        irc.expect("PART", "#general", "connection closed", source=mask("carol"))

        shut_down(chat, irc)
        assert chat.server.rest() == []
        assert alice.rest() == []
        assert irc.rest() == []
