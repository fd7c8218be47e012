"""End to end with the installed programs: channel history on the IRC port
(docs/irc.md, "History") of a server started with ``--history 50``, and of
two nodes sharing a real Redis.

The IRC members are real sockets (irc_peer.IrcPeer). Every msgid a test
asks CHATHISTORY about is one it read off a live line; times are compared
as the lines carried them. A client's end of each exchange is taken whole
(``rest``), so a stray line fails the test.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from irctokens.line import Line

from .irc_peer import SERVER_NAME, IrcPeer, mask
from .processes import Cluster, cluster
from .weechat import INSTALL, weechat, weechat_path

HISTORY = ("--irc-server-name", SERVER_NAME, "--history", "50", "--flood-rate", "0")
TALKER = ("echo-message", "message-tags", "server-time")
FETCHER = ("batch", "draft/chathistory", "echo-message", "message-tags", "server-time")


@pytest.fixture
def chat(tmp_path: Path) -> Iterator[Cluster]:
    with cluster(tmp_path, server_options=HISTORY, irc=True) as running:
        yield running


def member(chat: Cluster, nick: str, caps: Sequence[str] = (), node: int = 0) -> IrcPeer:
    """Registered as ``nick`` (asking for ``caps``), in no channel yet."""
    peer = IrcPeer(chat.irc_port(node), nick)
    peer.register(nick, caps)
    return peer


def say(peer: IrcPeer, *messages: str) -> list[Line]:
    """Each of ``messages`` said in #general, as its echo came back (with its
    msgid and time: ``peer`` has echo-message and the tags)."""
    echoes = []
    for message in messages:
        peer.send(f"PRIVMSG #general :{message}")
        echoes.append(peer.expect("PRIVMSG", "#general", message, source=peer.mask))
    return echoes


def tag(line: Line, name: str) -> str:
    assert line.tags is not None and name in line.tags, line.format()
    return line.tags[name]


def quiet(peer: IrcPeer) -> None:
    """Nothing more is on its way to ``peer`` before a PONG it asked for."""
    peer.send("PING :quiet")
    peer.expect("PONG", SERVER_NAME, "quiet")
    assert peer.rest() == []


def batch(peer: IrcPeer, target: str = "#general") -> list[Line]:
    """The next chathistory batch ``peer`` gets: its messages, each tagged with it."""
    start = peer.expect("BATCH", where=lambda line: line.params[1:] == ["chathistory", target])
    reference = start.params[0][1:]
    assert start.params[0].startswith("+") and start.source == SERVER_NAME
    lines = []
    while (line := peer.next_message()).command != "BATCH":
        assert tag(line, "batch") == reference, line.format()
        lines.append(line)
    assert line.params == [f"-{reference}"]
    return lines


def ask(peer: IrcPeer, request: str, target: str = "#general") -> list[str]:
    """The texts of the batch that answers ``request``."""
    peer.send(request)
    return [line.params[1] for line in batch(peer, target)]


def test_replay_on_join_follows_the_clients_caps(chat: Cluster) -> None:
    native = chat.join("nat")
    talker = member(chat, "talker", TALKER)
    talker.join("#general", "nat talker")
    said = say(talker, "one", "two")
    talker.send("PRIVMSG #general :\x01ACTION waves\x01")
    said.append(talker.expect("PRIVMSG", "#general", "\x01ACTION waves\x01"))
    native.type("from the terminal")
    said.append(talker.expect("PRIVMSG", "#general", "from the terminal", source=mask("nat")))

    # Without caps: JOIN, NAMES, then the lines as they were said, untagged.
    plain = member(chat, "plain")
    plain.join("#general", "nat talker plain")
    for line in said:
        again = plain.next_message()
        assert (again.source, again.command, again.params) == (
            line.source,
            "PRIVMSG",
            line.params,
        )
        assert again.tags is None
    plain.expect("NOTICE", "#general", "— earlier messages —", source=SERVER_NAME)
    quiet(plain)

    # With batch and server-time: the same lines in a chathistory batch, at
    # their own times; with message-tags, their own msgids.
    tagged = member(chat, "tagged", ("batch", "server-time", "message-tags"))
    tagged.join("#general", "nat talker plain tagged")
    replayed = batch(tagged)
    assert [line.params for line in replayed] == [line.params for line in said]
    assert [tag(line, "time") for line in replayed] == [tag(line, "time") for line in said]
    assert [tag(line, "msgid") for line in replayed] == [tag(line, "msgid") for line in said]
    quiet(tagged)

    # draft/chathistory: no replay; CHATHISTORY brings the same.
    bot = member(chat, "bot", FETCHER)
    bot.join("#general", "nat talker plain tagged bot")
    quiet(bot)
    bot.send("CHATHISTORY LATEST #general * 50")
    fetched = batch(bot)
    assert [tag(line, "msgid") for line in fetched] == [tag(line, "msgid") for line in said]
    quiet(bot)


def test_chathistory_subcommands_with_msgids_from_live_lines(chat: Cluster) -> None:
    talker = member(chat, "talker", FETCHER)
    talker.join("#general", "talker")
    texts = [f"message {i}" for i in range(10)]
    ids = [tag(line, "msgid") for line in say(talker, *texts)]
    reader = member(chat, "reader", FETCHER)
    reader.join("#general", "talker reader")

    assert ask(reader, "CHATHISTORY LATEST #general * 100") == texts
    assert ask(reader, "CHATHISTORY LATEST #general * 3") == texts[-3:]
    assert ask(reader, f"CHATHISTORY LATEST #general msgid={ids[4]} 100") == texts[5:]
    assert ask(reader, f"CHATHISTORY BEFORE #general msgid={ids[6]} 100") == texts[:6]
    assert ask(reader, f"CHATHISTORY BEFORE #general msgid={ids[6]} 2") == texts[4:6]
    assert ask(reader, f"CHATHISTORY AFTER #general msgid={ids[3]} 100") == texts[4:]
    assert ask(reader, f"CHATHISTORY AFTER #general msgid={ids[3]} 3") == texts[4:7]
    assert ask(reader, f"CHATHISTORY AROUND #general msgid={ids[7]} 1") == texts[7:8]
    assert ask(reader, f"CHATHISTORY AROUND #general msgid={ids[7]} 3") == texts[6:9]
    between = f"CHATHISTORY BETWEEN #general msgid={ids[0]} msgid={ids[-1]}"
    assert ask(reader, f"{between} 100") == texts[1:-1]
    assert ask(reader, f"{between} 3") == texts[1:4]
    backwards = f"CHATHISTORY BETWEEN #general msgid={ids[-1]} msgid={ids[0]}"
    assert ask(reader, f"{backwards} 3") == texts[-4:-1]
    # Timestamps well before and after every line.
    early, late = "timestamp=2000-01-01T00:00:00.000Z", "timestamp=2999-12-31T23:59:59.999Z"
    assert ask(reader, f"CHATHISTORY AFTER #general {early} 100") == texts
    assert ask(reader, f"CHATHISTORY BEFORE #general {late} 2") == texts[-2:]
    assert ask(reader, f"CHATHISTORY BETWEEN #general {late} {early} 2") == texts[-2:]
    assert ask(reader, f"CHATHISTORY LATEST #general {late} 100") == []
    # The limit is capped at CHATHISTORY=50.
    assert ask(reader, "CHATHISTORY LATEST #general * 99999999999999999999999") == texts
    reader.send(f"CHATHISTORY TARGETS {early} {late} 10")
    start = reader.expect(
        "BATCH", where=lambda line: line.params[1:] == ["draft/chathistory-targets"]
    )
    reader.expect("CHATHISTORY", "TARGETS", "#general", where=lambda line: len(line.params) == 3)
    reader.expect("BATCH", "-" + start.params[0][1:])
    quiet(reader)


def test_hostile_requests_are_refused_and_disturb_no_one(chat: Cluster) -> None:
    talker = member(chat, "talker", TALKER)
    talker.join("#general", "talker")
    (line,) = say(talker, "kept")
    hostile = member(chat, "hostile", FETCHER)
    hostile.join("#random", "hostile")
    fail = "FAIL"
    hostile.send("CHATHISTORY LATEST #general * 10")  # (not joined)
    hostile.expect(
        fail,
        "CHATHISTORY",
        "INVALID_TARGET",
        "LATEST",
        "#general",
        "Messages could not be retrieved",
    )
    hostile.send("CHATHISTORY LATEST #nowhere * 10")
    hostile.expect(
        fail,
        "CHATHISTORY",
        "INVALID_TARGET",
        "LATEST",
        "#nowhere",
        "Messages could not be retrieved",
    )
    hostile.send(f"CHATHISTORY BEFORE #random msgid={tag(line, 'msgid')} 10")  # (another channel's)
    hostile.expect(fail, "CHATHISTORY", "MESSAGE_ERROR", "BEFORE", "#random", "Unknown message id")
    hostile.send("CHATHISTORY AFTER #random msgid=../../etc/passwd 10")
    hostile.expect(fail, "CHATHISTORY", "MESSAGE_ERROR", "AFTER", "#random", "Unknown message id")
    for garbage in [
        "timestamp=2024-13-01T00:00:00.000Z",
        "timestamp=now",
        "timestamp=" + "9" * 300,
    ]:
        hostile.send(f"CHATHISTORY AROUND #random {garbage} 10")
        refused = hostile.expect(
            fail,
            "CHATHISTORY",
            "INVALID_PARAMS",
            "AROUND",
            where=lambda line: line.params[-1] == "Invalid timestamp",
        )
        assert len(refused.format().encode()) + 2 <= 512
    for limit in ["-1", "0", "ten", "1.5"]:
        hostile.send(f"CHATHISTORY LATEST #random * {limit}")
        hostile.expect(fail, "CHATHISTORY", "INVALID_PARAMS", "LATEST", limit, "Invalid limit")
    hostile.send("CHATHISTORY LATEST #random *")
    hostile.expect(fail, "CHATHISTORY", "INVALID_PARAMS", "LATEST", "Insufficient parameters")
    hostile.send("CHATHISTORY " + "A" * 480)
    hostile.expect(
        fail,
        "CHATHISTORY",
        "INVALID_PARAMS",
        where=lambda line: line.params[-1] == "Unknown command",
    )
    assert ask(hostile, "CHATHISTORY LATEST #random * 999999999999", "#random") == []
    quiet(hostile)
    # The others never noticed; the chat goes on.
    quiet(talker)
    say(talker, "still here")


def test_empty_clears_what_irc_can_fetch(chat: Cluster) -> None:
    talker = member(chat, "talker", FETCHER)
    talker.join("#general", "talker")
    (line,) = say(talker, "before the empty")
    chat.server.type("/empty general")
    talker.expect("KICK", "#general", "talker", where=lambda line: True)
    talker.join("#general", "talker")
    assert ask(talker, "CHATHISTORY LATEST #general * 50") == []
    talker.send(f"CHATHISTORY AROUND #general msgid={tag(line, 'msgid')} 5")
    talker.expect(
        "FAIL", "CHATHISTORY", "MESSAGE_ERROR", "AROUND", "#general", "Unknown message id"
    )
    plain = member(chat, "plain", ("batch", "server-time"))
    plain.join("#general", "talker plain")
    quiet(plain)  # (no replay: nothing is kept)
    talker.expect("JOIN", "#general", source=plain.mask)
    (after,) = say(talker, "after the empty")
    plain.expect("PRIVMSG", "#general", "after the empty", source=talker.mask)
    assert ask(talker, "CHATHISTORY LATEST #general * 50") == ["after the empty"]
    assert tag(after, "msgid") != tag(line, "msgid")


def test_every_node_of_a_cluster_tags_a_line_alike(tmp_path: Path) -> None:
    """The msgid and time are the hub's: a line said on one node has them on
    the other, live and in its history."""
    with cluster(tmp_path, server_options=HISTORY, nodes=2, irc=True) as nodes:
        talker = member(nodes, "talker", FETCHER, node=0)
        talker.join("#general", "talker")
        far = member(nodes, "far", FETCHER, node=1)
        far.join("#general", "talker far")
        talker.expect("JOIN", "#general", source=far.mask)
        said = say(talker, "across", "the nodes")
        live = [
            far.expect("PRIVMSG", "#general", text, source=talker.mask)
            for text in ["across", "the nodes"]
        ]
        for here, there in zip(said, live, strict=True):
            assert (tag(here, "msgid"), tag(here, "time")) == (
                tag(there, "msgid"),
                tag(there, "time"),
            )
        far.send("CHATHISTORY LATEST #general * 10")
        fetched = batch(far)
        assert [tag(line, "msgid") for line in fetched] == [tag(line, "msgid") for line in said]
        late = member(nodes, "late", ("batch", "server-time", "message-tags"), node=1)
        late.join("#general", "talker far late")
        assert [tag(line, "msgid") for line in batch(late)] == [tag(line, "msgid") for line in said]


def test_weechat_shows_the_replay_on_join(tmp_path: Path) -> None:
    """A real client (weechat-headless, skipped without it) that does not
    ask for draft/chathistory gets the replay after its JOIN and shows it.
    (WeeChat 3.8 asks for server-time and message-tags, not batch: it shows
    the replayed lines as messages at their own times.)"""
    if weechat_path() is None:
        if os.environ.get("TRIO_CHAT_REQUIRE_IRC_CLIENT") == "1":
            pytest.fail(f"no weechat-headless found: install it with `{INSTALL}`")
        pytest.skip(f"no weechat-headless found: install it with `{INSTALL}`")
    with cluster(tmp_path, server_options=HISTORY, irc=True) as chat:
        term = chat.join("term")
        term.type("said before weechat came")
        term.expect("[term (<time>)] said before weechat came")
        with weechat(tmp_path / "weechat", chat.irc_port(0), "wee") as wee:
            wee.join("#general")
            replayed = wee.wait_message("#general", "term", "said before weechat came")
            term.type("said live")
            wee.wait_message("#general", "term", "said live")
            assert wee.quit() == 0
        assert replayed.message == "said before weechat came"
