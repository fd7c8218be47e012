"""End to end with the installed programs: an IRC member (``--irc``) beside
native and browser members, on one server and on a cluster's nodes
(docs/behaviour.md; the IRC port: trio_chat/irc).

On a cluster the IRC member is on the first node and the native members
on the second, so every message crosses nodes. Each step waits for what
it causes before the next begins, so the merged stdout of the nodes comes
in one order; whole transcripts are compared at the end (``rest``).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from irctokens.line import Line

from .irc_peer import SERVER_NAME, IrcPeer, mask
from .processes import DEADLINE, Cluster, cluster, srv
from .test_web import Person, browser  # noqa: F401  (the fixture, and a page of the chat)

OPTIONS = ("--irc-server-name", SERVER_NAME)
AFK_TIMEOUT = 2.0  # seconds: room for several rounds of queries
# Between rounds of queries; two counted lines a round stay within the
# default flood budget (5 lines a second), so nothing holds them back.
ROUND = 0.5
# WHO #general's rows while the watcher and the IRC member are in it.
WHO = (
    "watcher irc.test irc.test watcher H :0 a trio-chat member",
    "ircnick irc.test irc.test ircnick H :0 ircnick in a test",
)


@pytest.fixture(params=[None, 2], ids=["one-server", "2-nodes"])
def nodes(request: pytest.FixtureRequest) -> int | None:
    """One server, and two nodes sharing a real Redis (the IRC member on one,
    the native members on the other); three nodes add nothing IRC's own."""
    node_count: int | None = request.param
    return node_count


@pytest.fixture
def chat(tmp_path: Path, nodes: int | None) -> Iterator[Cluster]:
    """A server (or nodes) serving IRC, with channels of capacity 5."""
    with cluster(tmp_path, nodes=nodes, server_options=OPTIONS, irc=True) as running:
        yield running


def far(chat: Cluster) -> int | None:
    """Where the native members go: the second node (None: the one server)."""
    return None if chat.redis is None else 1


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
    caps = ("echo-message", "server-time")
    irc = irc_member(chat, "ircnick", ("#general", "alice bob ircnick"), caps=caps)
    alice.expect(srv("bob has joined the channel."))
    alice.expect(srv("ircnick has joined the channel."))
    bob.expect(srv("ircnick has joined the channel."))

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

    alice.type("/whisper ircnick psst")
    irc.expect("PRIVMSG", "ircnick", "psst", source=mask("alice"))
    chat.server.expect("[alice whispers to ircnick: (<time>)] psst")
    irc.send("PRIVMSG alice :psst back")
    irc.expect("PRIVMSG", "alice", "psst back", source=irc.mask)  # echo-message
    alice.expect("[ircnick whispers to you: (<time>)] psst back")
    chat.server.expect("[ircnick whispers to alice: (<time>)] psst back")
    # A whisper to no one here: 401, as IRC says it.
    irc.send("PRIVMSG nobody :anyone?")
    irc.expect("401", "ircnick", "nobody", "No such nick/channel (or no channel you share)")

    bob.type("/quit")
    assert bob.wait_exit() == 0
    irc.expect("PART", "#general", source=mask("bob"))
    chat.server.expect(srv("bob has left the channel."))
    alice.expect(srv("bob has left the channel."))

    # The same nick from another IRC connection (on a cluster: on the other
    # node), in any ASCII case: 433; another nick then registers.
    twin = IrcPeer(chat.irc_port(-1), "twin")
    twin.send("NICK ircnick", "USER twin 0 * :twin")
    twin.expect("433", "*", "ircnick", "Nickname is already in use")
    twin.send("NICK IRCNICK")
    twin.expect("433", "*", "IRCNICK", "Nickname is already in use")
    twin.send("NICK other")
    twin.welcome("other")
    # A terminal member's name, in any ASCII case, is nobody's nick on IRC
    # (an IRC nick is one person everywhere: docs/irc.md, "Names").
    namesake = IrcPeer(chat.irc_port(-1), "namesake")
    namesake.send("NICK Alice", "USER a 0 * :a")
    namesake.expect("433", "*", "Alice", "Nickname is already in use")
    namesake.send("NICK alicia")
    namesake.welcome("alicia")

    # /shutdown: every IRC connection, on every node, gets its ERROR.
    shut_down(chat, irc, twin, namesake)
    assert chat.server.rest() == []
    assert alice.rest() == []
    assert bob.rest() == []
    assert irc.rest() == [] and namesake.rest() == [] and twin.rest() == []


def test_a_nick_is_free_again_once_its_connection_quit(chat: Cluster) -> None:
    """After QUIT the server ends the link (ERROR, then it closes its side):
    the nick is no one's any more, on every node, whenever the old client
    closes its own side of the socket."""
    gone = IrcPeer(chat.irc_port(0), "gone", hang_up=False)
    gone.register("ircnick")
    gone.join("#general", "ircnick")
    chat.server.expect(srv("ircnick has joined the general channel."))
    gone.send("QUIT :brb")
    gone.expect("ERROR", "Closing Link: ircnick@127.0.0.1 (Quit: brb)")
    gone.expect_closed()
    chat.server.expect(srv("ircnick has left the channel."))
    back = IrcPeer(chat.irc_port(-1), "back")
    back.send("NICK ircnick", "USER back 0 * :back")
    back.welcome("ircnick")
    back.join("#general", "ircnick")
    chat.server.expect(srv("ircnick has joined the general channel."))
    gone.close()

    shut_down(chat, back)
    assert chat.server.rest() == []
    assert back.rest() == [] and gone.rest() == []


def test_queue_then_admitted(chat: Cluster) -> None:
    members = [chat.join(f"u{i}", node=far(chat)) for i in range(5)]
    waiting = chat.client("waiting", node=far(chat))
    waiting.expect(srv("Welcome to the general channel, waiting."))
    waiting.expect(srv("You are in the waiting queue and there are 0 user(s) ahead of you."))

    irc = irc_member(chat, "ircnick")
    irc.send("JOIN #general")
    queued = "#general: You are in the waiting queue and there are {} user(s) ahead of you."
    irc.expect("NOTICE", "ircnick", queued.format(1), source=SERVER_NAME)
    # Chat from the queue reaches no one: as a native member is, it is told
    # its place again.
    irc.send("PRIVMSG #general :let me in")
    irc.expect("NOTICE", "ircnick", queued.format(1), source=SERVER_NAME)
    members[0].type("/list")  # the IRC member waits with the others
    for i in range(1, 5):
        members[0].expect(srv(f"u{i} has joined the channel."))
    members[0].expect("[Channel] general 5/5/2.")
    members[0].expect("[Channel] random 0/5/0.")
    members[0].expect("[Channel] help 0/5/0.")

    waiting.type("/quit")
    assert waiting.wait_exit() == 0
    chat.server.expect(srv("waiting has left the channel."))
    irc.expect("NOTICE", "ircnick", queued.format(0), source=SERVER_NAME)

    members[4].type("/quit")
    assert members[4].wait_exit() == 0
    irc.expect_joined("#general", "u0 u1 u2 u3 ircnick")
    chat.server.expect(srv("u4 has left the channel."))
    chat.server.expect(srv("ircnick has joined the general channel."))
    for i, member in enumerate(members[1:4], start=1):
        for later in range(i + 1, 5):
            member.expect(srv(f"u{later} has joined the channel."))
    for member in members[:4]:
        member.expect(srv("u4 has left the channel."))
        member.expect(srv("ircnick has joined the channel."))
    irc.send("PRIVMSG #general :thanks")
    for member in members[:4]:
        member.expect("[ircnick (<time>)] thanks")
    chat.server.expect("[ircnick (<time>)] thanks")

    shut_down(chat, irc)
    assert chat.server.rest() == []
    assert [member.rest() for member in members] == [[]] * 4 + [[]]
    assert irc.rest() == []


def test_switch_then_mute_kick_and_empty(chat: Cluster) -> None:
    alice = chat.join("alice", node=far(chat))
    dave = chat.join("dave", "random", node=far(chat))
    irc = irc_member(chat, "ircnick", ("#general", "alice ircnick"))
    alice.expect(srv("ircnick has joined the channel."))

    # A native member switches away and back: PART, then JOIN.
    alice.type("/switch random")
    irc.expect("PART", "#general", source=mask("alice"))
    chat.server.expect(srv("alice has left the channel."))
    chat.server.expect(srv("alice has joined the random channel."))
    alice.expect(srv("Welcome to the random channel, alice."))
    alice.expect(srv("alice has joined the channel."))
    dave.expect(srv("alice has joined the channel."))
    alice.type("/switch general")
    irc.expect("JOIN", "#general", source=mask("alice"))
    chat.server.expect(srv("alice has left the channel."))
    chat.server.expect(srv("alice has joined the general channel."))
    alice.expect(srv("Welcome to the general channel, alice."))
    alice.expect(srv("alice has joined the channel."))
    dave.expect(srv("alice has left the channel."))

    # The IRC member leaves #general and goes to #random.
    irc.send("PART #general :going random")
    irc.expect("PART", "#general", "going random", source=irc.mask)
    alice.expect(srv("ircnick has left the channel."))
    chat.server.expect(srv("ircnick has left the channel."))
    irc.join("#random", "dave ircnick")
    chat.server.expect(srv("ircnick has joined the random channel."))
    dave.expect(srv("ircnick has joined the channel."))
    irc.send("PRIVMSG #random :hi dave")
    dave.expect("[ircnick (<time>)] hi dave")
    chat.server.expect("[ircnick (<time>)] hi dave")

    # Back in #general too, for the console's commands.
    irc.join("#general", "alice ircnick")
    chat.server.expect(srv("ircnick has joined the general channel."))
    alice.expect(srv("ircnick has joined the channel."))

    chat.server.type("/mute general:ircnick 10")
    chat.server.expect(srv("Muted ircnick for 10 seconds."))
    irc.expect("NOTICE", "ircnick", "#general: You have been muted for 10 seconds.")
    alice.expect(srv("ircnick has been muted for 10 seconds."))
    irc.send("PRIVMSG #general :can you hear me?")
    still = re.compile(r"You are still muted for (\d+) seconds\.")

    def still_muted(line: Line) -> bool:
        found = still.fullmatch(line.params[-1])
        return found is not None and 1 <= int(found[1]) <= 10

    irc.expect("404", "ircnick", "#general", where=still_muted)
    irc.send("PRIVMSG alice :please")  # a whisper through #general: muted too
    irc.expect("404", "ircnick", "#general", where=still_muted)
    # Muted in #general only: #random hears it.
    irc.send("PRIVMSG #random :and here?")
    dave.expect("[ircnick (<time>)] and here?")
    chat.server.expect("[ircnick (<time>)] and here?")

    # Kicked from #general: a KICK; still connected, and still in #random.
    chat.server.type("/kick general:ircnick")
    chat.server.expect(srv("Kicked ircnick."))
    irc.expect("KICK", "#general", "ircnick", "kicked by the server operator", source=SERVER_NAME)
    alice.expect(srv("ircnick has left the channel."))
    irc.send("PRIVMSG #random :still here")
    dave.expect("[ircnick (<time>)] still here")
    chat.server.expect("[ircnick (<time>)] still here")
    irc.send("PRIVMSG #general :and back?")
    irc.expect("404", "ircnick", "#general", "You are not in the channel")

    # Back in #general, then the channel is emptied: a KICK again.
    irc.join("#general", "alice ircnick")
    chat.server.expect(srv("ircnick has joined the general channel."))
    alice.expect(srv("ircnick has joined the channel."))
    chat.server.type("/empty general")
    chat.server.expect(srv("general has been emptied."))
    irc.expect(
        "KICK", "#general", "ircnick", "general was emptied by the operator", source=SERVER_NAME
    )
    assert alice.wait_exit() == 0
    irc.send("PRIVMSG #random :emptied")
    dave.expect("[ircnick (<time>)] emptied")
    chat.server.expect("[ircnick (<time>)] emptied")

    # QUIT: out of every channel, and the connection closes.
    irc.send("QUIT :bye")
    irc.expect("ERROR", "Closing Link: ircnick@127.0.0.1 (Quit: bye)")
    irc.expect_closed()
    dave.expect(srv("ircnick has left the channel."))
    chat.server.expect(srv("ircnick has left the channel."))

    shut_down(chat)
    assert chat.server.rest() == []
    assert alice.rest() == []
    assert dave.rest() == []
    assert irc.rest() == []


def test_afk_and_queries_are_no_activity(tmp_path: Path, nodes: int | None) -> None:
    options = (*OPTIONS, "--afk-timeout", f"{AFK_TIMEOUT:g}")
    with cluster(tmp_path, nodes=nodes, server_options=options, irc=True) as chat:
        watcher = chat.join("watcher", node=far(chat))
        irc = irc_member(chat, "ircnick", ("#general", "watcher ircnick"))
        joined = time.monotonic()
        # The watcher speaks after the IRC member joined: its own timer
        # runs out after the IRC member's.
        watcher.type("still here")
        irc.expect("PRIVMSG", "#general", "still here", source=mask("watcher"))
        chat.server.expect("[watcher (<time>)] still here")

        # Queries all through the wait, each round answered before the next:
        # if any of them restarted the timer, no PART would ever come.
        rounds = 0
        part = None
        while part is None:
            assert time.monotonic() - joined < DEADLINE, "the IRC member never went AFK"
            irc.send(f"PING :round{rounds}", "WHO #general", "MODE #general")
            irc.expect("PONG", SERVER_NAME, f"round{rounds}")
            irc.expect("315", "ircnick", "#general", "End of /WHO list")
            irc.expect("324", "ircnick", "#general", "+nt")
            rounds += 1
            part = irc.poll("PART", "#general", "disconnected for inactivity", deadline=ROUND)
        assert part.source == irc.mask
        assert rounds >= 2, rounds  # queries went on during the wait
        chat.server.expect(srv("ircnick went AFK."))
        watcher.expect(srv("ircnick has joined the channel."))
        watcher.expect("[watcher (<time>)] still here")
        watcher.expect(srv("ircnick went AFK."))
        # Only the membership went: the connection stays.
        irc.send("PING :after")
        irc.expect("PONG", SERVER_NAME, "after")
        # The watcher's timer, started after the IRC member's, runs out after it.
        chat.server.expect(srv("watcher went AFK."))
        assert watcher.wait_exit() == 0

        shut_down(chat, irc)
        # The rounds' WHO rows are all that is left.
        assert set(irc.rest()) == {f":{SERVER_NAME} 352 ircnick #general {row}" for row in WHO}
        assert chat.server.rest() == []
        assert watcher.rest() == []


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
