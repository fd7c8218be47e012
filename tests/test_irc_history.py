"""Channel history on the IRC port (docs/irc.md, "History"): CHATHISTORY's
parsing and selections without I/O, the renderer's replay and live ids, and
the port in process (IRC peers on memory streams beside native ones, the
hub keeping history)."""

from __future__ import annotations

import calendar
from collections.abc import AsyncIterator, Sequence

import pytest
import trio
from irctokens.line import Line, tokenise

from trio_chat import effects as fx
from trio_chat.events import ACTION, NOTICE
from trio_chat.history import JOINED, LEFT, SAID, Entry, History, HistoryConfig
from trio_chat.hub import Hub
from trio_chat.irc import chathistory as ch
from trio_chat.irc.lines import MAX_LINE
from trio_chat.irc.numerics import isupport_tokens
from trio_chat.irc.render import WANTS_MSGID, WANTS_TIME, IrcRenderer, iso_time, piece_msgid
from trio_chat.server.core import ChatServer, Limits

from .harness import CHANNELS, STAMP, Harness, settle
from .irc_harness import SERVER_NAME, IrcHarness, IrcPeer
from .test_irc_codecs import FakeClient, members, rendered

# 2024-05-06T07:08:09.000Z, and entries a second apart from it.
T0 = calendar.timegm((2024, 5, 6, 7, 8, 9)) * 1.0


def entries(count: int, start: int = 1) -> list[Entry]:
    """``count`` lines said a second apart, numbered from ``start``."""
    return [
        Entry(seq, T0 + seq, "07:08:09", SAID, "alice", f"line {seq}")
        for seq in range(start, start + count)
    ]


def history_of(kept: Sequence[Entry]) -> History:
    history = History(HistoryConfig(lines=1000))
    history.extend(kept)
    return history


def stamp(entry: Entry) -> str:
    return iso_time(entry.at)


# ----- parsing (chathistory.py) -----


def test_timestamps_parse_strictly_to_milliseconds() -> None:
    assert ch.parse_timestamp("2024-05-06T07:08:09.123Z") == int(T0 * 1000) + 123
    assert ch.parse_timestamp("2024-05-06T07:08:09Z") == int(T0 * 1000)
    assert ch.parse_timestamp("2024-05-06T07:08:09.5Z") == int(T0 * 1000) + 500
    assert ch.parse_timestamp("2024-02-29T00:00:00.000Z") is not None  # a leap day
    for bad in [
        "",
        "2024-05-06",
        "2024-05-06T07:08:09.123",  # no Z
        "2024-05-06 07:08:09.123Z",
        "2024-13-06T07:08:09.123Z",
        "2023-02-29T00:00:00.000Z",
        "2024-04-31T00:00:00.000Z",
        "2024-05-06T24:00:00.000Z",
        "2024-05-06T07:60:09.123Z",
        "0000-01-01T00:00:00.000Z",
        "\uff12\uff10\uff12\uff14-05-06T07:08:09.123Z",  # (fullwidth digits: not ASCII)
        "2024-05-06T07:08:09.1234567Z",
        "2024-05-06T07:08:09.123Z\n",
        "2024-05-06T07:08:09.123+01:00",
        "x" * 600,
    ]:
        assert ch.parse_timestamp(bad) is None, bad


def test_a_piece_msgid_names_its_line() -> None:
    assert ch.line_msgid("12-345") == "12-345"
    assert ch.line_msgid(piece_msgid("12-345", 0)) == "12-345"
    assert ch.line_msgid(piece_msgid("12-345", 1)) == "12-345"
    assert ch.line_msgid(piece_msgid("12-345", 41)) == "12-345"
    assert ch.line_msgid("12-345.1") == "12-345.1"  # (no piece is numbered 1)
    assert ch.line_msgid("12-345.02") == "12-345.02"


def test_limits_are_plain_decimals_capped_at_the_most() -> None:
    assert ch.parse_limit("10", 50) == 10
    assert ch.parse_limit("50", 50) == 50
    assert ch.parse_limit("51", 50) == 50
    assert ch.parse_limit("9" * 400, 50) == 50
    for bad in ["", "0", "-1", "+5", " 5", "5 ", "1e3", "0x10", "٣", "²", "five"]:
        assert ch.parse_limit(bad, 50) is None, bad


def test_parse_reads_each_subcommand() -> None:
    stamp = "timestamp=2024-05-06T07:08:09.123Z"
    millis = int(T0 * 1000) + 123
    assert ch.parse(["latest", "#general", "*", "5"], 50) == ch.Query(
        "LATEST", "#general", (None,), 5
    )
    assert ch.parse(["BEFORE", "#g", "msgid=3-4", "500"], 50) == ch.Query(
        "BEFORE", "#g", (ch.ByMsgid("3-4"),), 50
    )
    assert ch.parse(["AFTER", "#g", stamp, "1"], 50) == ch.Query(
        "AFTER", "#g", (ch.ByTime(millis),), 1
    )
    assert ch.parse(["AROUND", "#g", "MSGID=3-4.2", "3"], 50) == ch.Query(
        "AROUND", "#g", (ch.ByMsgid("3-4"),), 3
    )
    assert ch.parse(["BETWEEN", "#g", "msgid=1-2", stamp, "9"], 50) == ch.Query(
        "BETWEEN", "#g", (ch.ByMsgid("1-2"), ch.ByTime(millis)), 9
    )
    assert ch.parse(["TARGETS", stamp, stamp, "9"], 50) == ch.Query(
        "TARGETS", "", (ch.ByTime(millis), ch.ByTime(millis)), 9
    )
    # BEFORE * is what some clients send for LATEST *.
    assert ch.parse(["BEFORE", "#g", "*", "5"], 50) == ch.Query("BEFORE", "#g", (None,), 5)


@pytest.mark.parametrize(
    ("params", "fail"),
    [
        ([], ch.Fail("INVALID_PARAMS", ("*",), "Insufficient parameters")),
        (["SEARCH", "#g", "*", "5"], ch.Fail("INVALID_PARAMS", ("SEARCH",), "Unknown command")),
        (["LATEST", "#g", "*"], ch.Fail("INVALID_PARAMS", ("LATEST",), "Insufficient parameters")),
        (
            ["LATEST", "#g", "*", "5", "6"],
            ch.Fail("INVALID_PARAMS", ("LATEST",), "Too many parameters"),
        ),
        (
            ["BETWEEN", "#g", "*", "*", "5"],
            ch.Fail("INVALID_PARAMS", ("BETWEEN", "*"), "Invalid message reference"),
        ),
        (
            ["AFTER", "#g", "*", "5"],
            ch.Fail("INVALID_PARAMS", ("AFTER", "*"), "Invalid message reference"),
        ),
        (
            ["LATEST", "#g", "msgid=", "5"],
            ch.Fail("INVALID_PARAMS", ("LATEST", "msgid="), "Invalid message reference"),
        ),
        (
            ["LATEST", "#g", "id=3-4", "5"],
            ch.Fail("INVALID_PARAMS", ("LATEST", "id=3-4"), "Invalid message reference"),
        ),
        (
            ["AROUND", "#g", "timestamp=yesterday", "5"],
            ch.Fail("INVALID_PARAMS", ("AROUND", "timestamp=yesterday"), "Invalid timestamp"),
        ),
        (
            ["LATEST", "#g", "*", "-5"],
            ch.Fail("INVALID_PARAMS", ("LATEST", "-5"), "Invalid limit"),
        ),
        (
            ["LATEST", "#g", "*", "0"],
            ch.Fail("INVALID_PARAMS", ("LATEST", "0"), "Invalid limit"),
        ),
        (
            ["TARGETS", "msgid=1-2", "timestamp=2024-05-06T07:08:09Z", "5"],
            ch.Fail("INVALID_PARAMS", ("TARGETS", "msgid=1-2"), "TARGETS takes timestamps"),
        ),
    ],
)
def test_parse_refuses_what_is_not_a_request(params: list[str], fail: ch.Fail) -> None:
    assert ch.parse(params, 50) == fail


# ----- selections (what irctest's chathistory tests ask, and the edges) -----

TEN = entries(10)
HISTORY = history_of(TEN)


def select(subcommand: str, *references: ch.Reference, limit: int = 20) -> list[Entry] | ch.Fail:
    return ch.select(HISTORY, ch.Query(subcommand, "#g", references, limit))


def by_id(index: int) -> ch.ByMsgid:
    return ch.ByMsgid(TEN[index].msgid)


def by_time(index: int, offset: int = 0) -> ch.ByTime:
    return ch.ByTime(int(TEN[index].at * 1000) + offset)


def test_latest() -> None:
    assert select("LATEST", None) == TEN
    assert select("LATEST", None, limit=5) == TEN[-5:]
    assert select("LATEST", None, limit=1) == TEN[-1:]
    assert select("LATEST", by_id(4)) == TEN[5:]
    assert select("LATEST", by_time(4)) == TEN[5:]
    assert select("LATEST", by_id(4), limit=2) == TEN[-2:]
    assert select("LATEST", by_id(9)) == []


def test_before_and_after_exclude_their_reference() -> None:
    assert select("BEFORE", by_id(6)) == TEN[:6]
    assert select("BEFORE", by_time(6)) == TEN[:6]
    assert select("BEFORE", by_time(6), limit=2) == TEN[4:6]
    assert select("BEFORE", by_time(6, offset=999)) == TEN[:7]
    assert select("BEFORE", None, limit=3) == TEN[-3:]
    assert select("BEFORE", by_id(0)) == []
    assert select("AFTER", by_id(3)) == TEN[4:]
    assert select("AFTER", by_time(3)) == TEN[4:]
    assert select("AFTER", by_time(3), limit=3) == TEN[4:7]
    assert select("AFTER", by_time(3, offset=-1)) == TEN[3:]
    assert select("AFTER", by_id(9)) == []


def test_around_centres_on_its_reference() -> None:
    assert select("AROUND", by_id(7), limit=1) == [TEN[7]]
    assert select("AROUND", by_id(7), limit=3) == TEN[6:9]
    assert select("AROUND", by_id(0), limit=3) == TEN[0:3]
    assert select("AROUND", by_id(9), limit=3) == TEN[7:10]
    around = select("AROUND", by_time(7), limit=3)
    assert isinstance(around, list) and TEN[7] in around
    assert select("AROUND", ch.ByTime(0), limit=2) == TEN[:2]


def test_between_goes_either_way_counting_from_the_first() -> None:
    assert select("BETWEEN", by_id(0), by_id(9)) == TEN[1:-1]
    assert select("BETWEEN", by_id(9), by_id(0)) == TEN[1:-1]
    assert select("BETWEEN", by_id(0), by_id(9), limit=3) == TEN[1:4]
    assert select("BETWEEN", by_id(9), by_id(0), limit=3) == TEN[-4:-1]
    assert select("BETWEEN", by_time(0), by_time(9)) == TEN[1:-1]
    assert select("BETWEEN", by_time(9), by_time(0)) == TEN[1:-1]
    assert select("BETWEEN", by_time(0), by_time(9), limit=3) == TEN[1:4]
    assert select("BETWEEN", by_time(9), by_time(0), limit=3) == TEN[-4:-1]
    assert select("BETWEEN", by_id(0), by_time(9)) == TEN[1:-1]
    assert select("BETWEEN", by_id(4), by_id(4)) == []
    assert select("BETWEEN", by_id(4), by_id(5)) == []
    assert select("BETWEEN", by_time(4), by_time(4)) == []


def test_a_msgid_the_history_does_not_have_is_a_message_error() -> None:
    unknown = ch.Fail("MESSAGE_ERROR", (), "Unknown message id")
    forgotten = entries(1, start=99)[0]
    for reference in [ch.ByMsgid("11-0"), ch.ByMsgid(forgotten.msgid), ch.ByMsgid("x")]:
        # (A line number we have with another time is not ours either.)
        assert select("BEFORE", reference) == unknown
        assert select("AFTER", reference) == unknown
        assert select("LATEST", reference) == unknown
        assert select("AROUND", reference) == unknown
        assert select("BETWEEN", reference, by_id(3)) == unknown
        assert select("BETWEEN", by_id(3), reference) == unknown
    other_time = ch.ByMsgid(f"{TEN[3].seq}-{int(TEN[3].at * 1000) + 1}")
    assert select("BEFORE", other_time) == unknown


def test_an_empty_history_selects_nothing() -> None:
    empty = history_of([])
    for subcommand, references in [
        ("LATEST", (None,)),
        ("BEFORE", (ch.ByTime(5),)),
        ("AFTER", (ch.ByTime(5),)),
        ("AROUND", (ch.ByTime(5),)),
        ("BETWEEN", (ch.ByTime(5), ch.ByTime(9))),
    ]:
        assert ch.select(empty, ch.Query(subcommand, "#g", references, 5)) == []


def test_targets_takes_a_channel_whose_latest_line_is_between() -> None:
    latest = int(TEN[-1].at * 1000)
    assert ch.latest_in(HISTORY, latest - 1, latest + 1) == TEN[-1].at
    assert ch.latest_in(HISTORY, latest + 1, latest - 1) == TEN[-1].at
    assert ch.latest_in(HISTORY, latest, latest + 1) is None
    assert ch.latest_in(HISTORY, 0, latest - 1) is None
    assert ch.latest_in(history_of([]), 0, latest + 1) is None


# ----- the renderer: live ids and times, the replay -----


def tags_of(frame: bytes) -> dict[str, str]:
    return tokenise(frame.decode().rstrip("\r\n")).tags or {}


def test_a_live_line_carries_the_hubs_msgid_and_time() -> None:
    renderer = IrcRenderer("srv")
    _, (alice, bob) = members(
        ("alice", FakeClient("alice", wants_time=True, wants_msgid=True)),
        ("bob", FakeClient("bob", wants_msgid=True)),
    )
    frames = renderer.frames(fx.Chat("t", (alice, bob), "carol", "hi", seq=7, at=T0 + 0.4567))
    assert [tags_of(frame) for _, frame in frames] == [
        {"time": "2024-05-06T07:08:09.456Z", "msgid": f"7-{int(T0 * 1000) + 456}"},
        {"msgid": f"7-{int(T0 * 1000) + 456}"},
    ]
    # Another renderer (another node of a cluster) tags it alike.
    again = IrcRenderer("srv").frames(
        fx.Chat("t", (alice, bob), "carol", "hi", seq=7, at=T0 + 0.4567)
    )
    assert again == frames


def test_a_long_lines_pieces_have_ids_derived_from_its_own() -> None:
    renderer = IrcRenderer("srv")
    _, (bob,) = members(("bob", FakeClient("bob", wants_msgid=True)))
    frames = renderer.frames(fx.Chat("t", (bob,), "alice", "w" * 1500, seq=3, at=T0))
    ids = [tags_of(frame)["msgid"] for _, frame in frames]
    line_id = f"3-{int(T0 * 1000)}"
    assert ids == [line_id] + [f"{line_id}.{i}" for i in range(2, len(frames) + 1)]
    assert {ch.line_msgid(piece) for piece in ids} == {line_id}


def test_history_lines_are_the_live_lines_with_the_tags_asked_for() -> None:
    renderer = IrcRenderer("srv")
    said = [
        Entry(3, T0, "s", SAID, "alice", "w" * 1500),
        Entry(4, T0 + 1, "s", JOINED, "bob"),
        Entry(5, T0 + 2, "s", SAID, "bob", "waves", ACTION),
        Entry(6, T0 + 3, "s", LEFT, "bob", "", "afk"),
        Entry(7, T0 + 4, "s", SAID, "zoë", "psst", NOTICE),
    ]
    _, (carol,) = members(("carol", FakeClient("carol", wants_time=True, wants_msgid=True)))
    live = renderer.frames(fx.Chat("t", (carol,), "alice", "w" * 1500, seq=3, at=T0))
    lines = renderer.history_lines(said, "#general", WANTS_TIME | WANTS_MSGID)
    assert lines[: len(live)] == [frame for _, frame in live]
    rest = [line.split(b" ", 1)[1] for line in lines[len(live) :]]
    assert rest == [
        b":bob!bob@srv PRIVMSG #general :\x01ACTION waves\x01\r\n",
        b":zo\\c3\\ab!zo\\c3\\ab@srv NOTICE #general psst\r\n",
    ]
    batched = renderer.history_lines(said[4:], "#general", 0, "b1")
    assert batched == [b"@batch=b1 :zo\\c3\\ab!zo\\c3\\ab@srv NOTICE #general psst\r\n"]
    assert renderer.history_lines(said[4:], "#general", 0) == [
        b":zo\\c3\\ab!zo\\c3\\ab@srv NOTICE #general psst\r\n"
    ]
    assert all(len(line.split(b" ", 1)[1]) <= MAX_LINE for line in lines)


def replay(client: FakeClient, kept: Sequence[Entry]) -> list[Line]:
    _, (member,) = members((client.nick, client))
    frames = rendered(IrcRenderer("srv").frames(fx.History(member, "general", tuple(kept))))
    assert all(audience == [client.nick] for audience, _ in frames)
    return [tokenise(frame.decode().rstrip("\r\n")) for _, frame in frames]


def test_the_replay_is_a_batch_for_a_client_with_batch() -> None:
    kept = entries(2)
    lines = replay(FakeClient("bob", wants_time=True, caps={"batch", "server-time"}), kept)
    assert [(line.command, line.params) for line in lines] == [
        ("BATCH", [lines[0].params[0], "chathistory", "#general"]),
        ("PRIVMSG", ["#general", "line 1"]),
        ("PRIVMSG", ["#general", "line 2"]),
        ("BATCH", ["-" + lines[0].params[0][1:]]),
    ]
    assert lines[0].params[0].startswith("+") and lines[0].source == "srv"
    batch = lines[0].params[0][1:]
    assert [line.tags for line in lines[1:3]] == [
        {"batch": batch, "time": stamp(kept[0])},
        {"batch": batch, "time": stamp(kept[1])},
    ]
    assert {line.source for line in lines[1:3]} == {"alice!alice@srv"}


def test_the_replay_is_plain_lines_without_batch_and_none_with_chathistory() -> None:
    kept = [*entries(2), Entry(3, T0 + 3, "s", JOINED, "bob")]
    plain = replay(FakeClient("bob"), kept)
    # Nothing marks them as history but the divider the server ends them with.
    assert [line.format() for line in plain] == [
        ":alice!alice@srv PRIVMSG #general :line 1",
        ":alice!alice@srv PRIVMSG #general :line 2",
        ":srv NOTICE #general :— earlier messages —",
    ]
    timed = replay(FakeClient("bob", wants_time=True, wants_msgid=True), kept[:1])
    assert [line.tags for line in timed[:1]] == [{"time": stamp(kept[0]), "msgid": kept[0].msgid}]
    fetching = FakeClient("bob", caps={"batch", "draft/chathistory", "server-time"})
    assert replay(fetching, kept) == []
    # Nothing said (joins only): no empty batch either.
    assert replay(FakeClient("bob", caps={"batch"}), kept[2:]) == []


def test_isupport_names_chathistory_only_with_history() -> None:
    without = isupport_tokens(["general"], "net", 0)
    assert not any(t.startswith(("CHATHISTORY", "MSGREFTYPES")) for t in without)
    tokens = isupport_tokens(["general"], "net", 50)
    assert "CHATHISTORY=50" in tokens and "MSGREFTYPES=msgid,timestamp" in tokens
    assert [t for t in tokens if t not in without] == [
        "CHATHISTORY=50",
        "MSGREFTYPES=msgid,timestamp",
    ]


# ----- the port in process -----

FULL = "batch server-time message-tags echo-message draft/chathistory"


@pytest.fixture
async def irc() -> AsyncIterator[IrcHarness]:
    """An IRC port on a server keeping 50 lines of each channel, flood
    control off (the tests send bursts of requests and settle)."""
    hub = Hub(CHANNELS, afk_timeout=100.0, history=HistoryConfig(lines=50))
    async with trio.open_nursery() as nursery:
        printed: list[str] = []
        limits = Limits(flood_rate=0)
        server = ChatServer(
            hub, limits, out=printed.append, log=lambda text: None, stamp=lambda: STAMP
        )
        harness = Harness(server, nursery)
        harness.printed = printed
        yield IrcHarness(harness)
        nursery.cancel_scope.cancel()


def text_of(lines: Sequence[Line]) -> list[str]:
    return [" ".join([line.command, *line.params]) for line in lines]


async def say_lines(peer: IrcPeer, count: int, channel: str = "general") -> list[Line]:
    """``count`` lines said by ``peer`` (with echo-message and message-tags),
    as their echoes came back: each with its msgid."""
    await peer.send(*(f"PRIVMSG #{channel} :message {i}" for i in range(count)))
    await settle()
    echoes = [line for line in peer.take() if line.command == "PRIVMSG"]
    assert len(echoes) == count
    return echoes


async def ask(peer: IrcPeer, request: str) -> list[Line]:
    await peer.send(request)
    await settle()
    return peer.take()


def batch_of(lines: Sequence[Line], target: str = "#general") -> list[Line]:
    """The messages of the one chathistory batch that is all of ``lines``."""
    start, *inner, end = lines
    assert (start.command, start.params[1:]) == ("BATCH", ["chathistory", target]), lines
    reference = start.params[0][1:]
    assert (end.command, end.params) == ("BATCH", [f"-{reference}"])
    assert all(line.tags is not None and line.tags["batch"] == reference for line in inner)
    return inner


async def test_caps_and_isupport_offer_chathistory(irc: IrcHarness) -> None:
    peer = await irc.connect("alice")
    await peer.send("CAP LS 302", "NICK alice", "USER al 0 * :Alice")
    await peer.expect(lambda m: m.command == "CAP")
    assert peer.messages[-1].params[2].split() == [
        "batch",
        "draft/chathistory",
        "echo-message",
        "message-tags",
        "multi-prefix",
        "server-time",
        "userhost-in-names",
    ]
    await peer.send("CAP REQ :draft/chathistory batch", "CAP END")
    await peer.expect(lambda m: m.command == "422")
    tokens = {t for m in peer.messages if m.command == "005" for t in m.params[1:-1]}
    assert {"CHATHISTORY=50", "MSGREFTYPES=msgid,timestamp"} <= tokens


async def test_a_joiner_without_chathistory_gets_the_replay_after_its_names(
    irc: IrcHarness,
) -> None:
    talker = await irc.join("talker", caps="echo-message message-tags server-time")
    said = await say_lines(talker, 3)
    native = await irc.harness.join("nat")
    await native.say("from a native")
    await settle()
    plain = await irc.register("plain")
    await plain.send("JOIN #general")
    await settle()
    lines = plain.take()
    assert text_of(lines[:3]) == [
        "JOIN #general",
        "353 plain = #general talker nat plain",
        "366 plain #general End of /NAMES list",
    ]
    assert [line.format() for line in lines[3:7]] == [
        f":talker!talker@{SERVER_NAME} PRIVMSG #general :message 0",
        f":talker!talker@{SERVER_NAME} PRIVMSG #general :message 1",
        f":talker!talker@{SERVER_NAME} PRIVMSG #general :message 2",
        f":nat!nat@{SERVER_NAME} PRIVMSG #general :from a native",
    ]
    batched = await irc.register("batched", caps="batch server-time message-tags")
    await batched.send("JOIN #general")
    await settle()
    replayed = batch_of(batched.take()[3:])  # (after its JOIN and NAMES)
    assert [line.tags and line.tags["msgid"] for line in replayed[:3]] == [
        line.tags and line.tags["msgid"] for line in said
    ]
    assert [line.tags and line.tags["time"] for line in replayed[:3]] == [
        line.tags and line.tags["time"] for line in said
    ]
    # Its own lines come back to a member too, from its mask, as they were.
    talker.take()
    await talker.send("PART #general")
    await settle()
    await talker.send("JOIN #general")
    await settle()
    again = talker.take()
    assert [line.source for line in again if line.command == "PRIVMSG"][:3] == [
        f"talker!talker@{SERVER_NAME}"
    ] * 3


async def test_a_joiner_with_chathistory_gets_no_replay_and_asks(irc: IrcHarness) -> None:
    talker = await irc.join("talker", caps=FULL)
    said = await say_lines(talker, 4)
    bot = await irc.register("bot", caps=FULL)
    await bot.send("JOIN #general")
    await settle()
    assert [line.command for line in bot.take()] == ["JOIN", "353", "366"]
    ids = [line.tags["msgid"] for line in said if line.tags]
    latest = batch_of(await ask(bot, "CHATHISTORY LATEST #general * 10"))
    assert [line.tags["msgid"] for line in latest if line.tags] == ids
    assert [line.params for line in latest] == [line.params for line in said]
    assert [line.tags and line.tags["time"] for line in latest] == [
        line.tags and line.tags["time"] for line in said
    ]
    before = batch_of(await ask(bot, f"CHATHISTORY BEFORE #general msgid={ids[2]} 10"))
    assert [line.params[1] for line in before] == ["message 0", "message 1"]
    after = batch_of(await ask(bot, f"CHATHISTORY AFTER #GENERAL msgid={ids[0]} 2"))
    assert [line.params[1] for line in after] == ["message 1", "message 2"]
    around = batch_of(await ask(bot, f"CHATHISTORY AROUND #general msgid={ids[1]} 1"))
    assert [line.params[1] for line in around] == ["message 1"]
    between = batch_of(
        await ask(bot, f"CHATHISTORY BETWEEN #general msgid={ids[3]} msgid={ids[0]} 9")
    )
    assert [line.params[1] for line in between] == ["message 1", "message 2"]
    # A client without batch gets the lines alone.
    await bot.send("CAP REQ -batch")
    await settle()
    bot.take()
    plain = await ask(bot, "CHATHISTORY LATEST #general * 1")
    assert [(line.command, line.params, set(line.tags or {})) for line in plain] == [
        ("PRIVMSG", ["#general", "message 3"], {"time", "msgid"})
    ]


async def test_targets_lists_the_channels_joined_with_their_latest_time(
    irc: IrcHarness,
) -> None:
    talker = await irc.join("talker", caps=FULL)
    await talker.send("JOIN #random", "JOIN #help")
    await settle()
    said = await say_lines(talker, 1, "random")
    await say_lines(talker, 1, "general")
    lines = await ask(
        talker,
        "CHATHISTORY TARGETS timestamp=2000-01-01T00:00:00.000Z "
        "timestamp=2999-01-01T00:00:00.000Z 10",
    )
    start, *inner, end = lines
    assert start.params[1:] == ["draft/chathistory-targets"]
    assert (
        text_of(inner)[0] == f"CHATHISTORY TARGETS #random {said[0].tags and said[0].tags['time']}"
    )
    assert [line.params[1] for line in inner] == ["#random", "#general"]  # (#help: nothing said)
    assert end.params == ["-" + start.params[0][1:]]


async def test_hostile_requests_get_fail_and_disturb_no_one(irc: IrcHarness) -> None:
    talker = await irc.join("talker", caps=FULL)
    listener = await irc.join("listener")
    said = await say_lines(talker, 2)
    listener.take()
    hostile = await irc.join("hostile", "random", caps=FULL)
    long = "x" * 400
    requests = {
        "CHATHISTORY": "FAIL CHATHISTORY INVALID_PARAMS * Insufficient parameters",
        "CHATHISTORY DELETE #general * 5": "FAIL CHATHISTORY INVALID_PARAMS DELETE Unknown command",
        "CHATHISTORY LATEST #general * 5": (
            "FAIL CHATHISTORY INVALID_TARGET LATEST #general Messages could not be retrieved"
        ),
        "CHATHISTORY LATEST #nowhere * 5": (
            "FAIL CHATHISTORY INVALID_TARGET LATEST #nowhere Messages could not be retrieved"
        ),
        "CHATHISTORY LATEST #random msgid=999-1 5": (
            "FAIL CHATHISTORY MESSAGE_ERROR LATEST #random Unknown message id"
        ),
        f"CHATHISTORY BEFORE #random msgid={said[0].tags and said[0].tags['msgid']} 5": (
            "FAIL CHATHISTORY MESSAGE_ERROR BEFORE #random Unknown message id"
        ),
        "CHATHISTORY AFTER #random timestamp=2024-02-30T00:00:00.000Z 5": (
            "FAIL CHATHISTORY INVALID_PARAMS AFTER timestamp=2024-02-30T00:00:00.000Z "
            "Invalid timestamp"
        ),
        f"CHATHISTORY AFTER #random timestamp={long} 5": (
            f"FAIL CHATHISTORY INVALID_PARAMS AFTER timestamp={long[:54]} Invalid timestamp"
        ),
        "CHATHISTORY LATEST #random * 1e9": (
            "FAIL CHATHISTORY INVALID_PARAMS LATEST 1e9 Invalid limit"
        ),
        "CHATHISTORY LATEST #random * :\x01\r": (
            "FAIL CHATHISTORY INVALID_PARAMS LATEST \ufffd Invalid limit"  # (cleaned)
        ),
        "CHATHISTORY LATEST \x02#ra\x03ndom * 5": (
            "FAIL CHATHISTORY INVALID_TARGET LATEST \ufffd#ra\ufffdndom "
            "Messages could not be retrieved"
        ),
    }
    for request, answer in requests.items():
        lines = await ask(hostile, request)
        assert text_of(lines) == [answer], request
        assert all(len(line.format().encode()) + 2 <= MAX_LINE for line in lines)
    huge = batch_of(
        await ask(hostile, "CHATHISTORY LATEST #random * 99999999999999999999"), "#random"
    )
    assert huge == []
    nick = await ask(hostile, "CHATHISTORY LATEST talker * 5")
    assert batch_of(nick, "talker") == []
    assert listener.take() == [] and talker.take() == []
    await talker.send("PRIVMSG #general :still here")
    await settle()
    assert text_of(listener.take()) == ["PRIVMSG #general still here"]


async def test_empty_forgets_what_irc_can_fetch(irc: IrcHarness) -> None:
    talker = await irc.join("talker", caps=FULL)
    said = await say_lines(talker, 2)
    irc.harness.console("/empty general")
    await settle()
    assert [line.command for line in talker.take()] == ["KICK"]
    await talker.send("JOIN #general")
    await settle()
    assert [line.command for line in talker.take()] == ["JOIN", "353", "366"]
    assert batch_of(await ask(talker, "CHATHISTORY LATEST #general * 50")) == []
    old = said[1].tags and said[1].tags["msgid"]
    assert text_of(await ask(talker, f"CHATHISTORY BEFORE #general msgid={old} 50")) == [
        "FAIL CHATHISTORY MESSAGE_ERROR BEFORE #general Unknown message id"
    ]
    newcomer = await irc.register("newcomer")
    await newcomer.send("JOIN #general")
    await settle()
    assert [line.command for line in newcomer.take()] == ["JOIN", "353", "366"]


async def test_a_long_reply_is_written_in_chunks_the_outbox_takes() -> None:
    """More lines than an outbox holds at once (Limits.outbox_frames) come
    through: the reply waits for the outbox between chunks."""
    limits = Limits(outbox_frames=256)
    # (All 400 lines kept: 1 MiB of text.)
    history = HistoryConfig(lines=1000, max_bytes=1024 * 1024)
    hub = Hub(CHANNELS, afk_timeout=100.0, history=history)
    hub.channels["general"].history.extend(
        Entry(seq, T0 + seq, "s", SAID, "alice", "y" * 900) for seq in range(1, 401)
    )
    async with trio.open_nursery() as nursery:
        server = ChatServer(hub, limits, out=lambda line: None, log=lambda text: None)
        irc = IrcHarness(Harness(server, nursery))
        reader = await irc.join("reader", caps=FULL)
        await reader.send("CHATHISTORY LATEST #general * 1000")
        await reader.expect(lambda m: m.command == "BATCH" and m.params[0].startswith("-"))
        lines = reader.messages
        pieces = [line for line in lines if line.command == "PRIVMSG"]
        assert len(pieces) == 800 and not reader.closed  # (two pieces to a line)
        assert "".join(p.params[1] for p in pieces) == "y" * 900 * 400
        nursery.cancel_scope.cancel()


async def test_without_history_chathistory_is_unknown() -> None:
    from .harness import running_server

    async with running_server() as harness:
        irc = IrcHarness(harness)
        peer = await irc.join("alice")
        assert text_of(await ask(peer, "CHATHISTORY LATEST #general * 5")) == [
            "421 alice CHATHISTORY Unknown command"
        ]
        await peer.send("CAP REQ :draft/chathistory")
        await settle()
        assert text_of(peer.take()) == ["CAP alice NAK draft/chathistory"]


async def test_the_replay_on_join_takes_only_the_latest_lines_an_outbox_holds() -> None:
    """A history longer than a connection's outbox holds is replayed from
    where it fits (open_irc: the outbox's high-water mark), never dropping
    the newcomer; CHATHISTORY can fetch the rest."""
    limits = Limits(outbox_frames=256)
    # (All 400 lines kept: 1 MiB of text.)
    history = HistoryConfig(lines=1000, max_bytes=1024 * 1024)
    hub = Hub(CHANNELS, afk_timeout=100.0, history=history)
    kept = [Entry(seq, T0 + seq, "s", SAID, "alice", f"line {seq}") for seq in range(1, 401)]
    hub.channels["general"].history.extend(kept)
    async with trio.open_nursery() as nursery:
        server = ChatServer(hub, limits, out=lambda line: None, log=lambda text: None)
        irc = IrcHarness(Harness(server, nursery))
        newcomer = await irc.register("newcomer", caps="batch")
        await newcomer.send("JOIN #general")
        await newcomer.expect(lambda m: m.command == "BATCH" and m.params[0].startswith("-"))
        replayed = [line.params[1] for line in newcomer.messages if line.command == "PRIVMSG"]
        assert replayed == [f"line {seq}" for seq in range(401 - 64, 401)]  # (256 // 4 frames)
        assert not newcomer.closed
        nursery.cancel_scope.cancel()
