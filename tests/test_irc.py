"""The IRC port in process (docs/irc.md): IRC peers beside native ones on
one ChatServer, over memory streams, timers on trio's MockClock."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio
import trio.testing

from trio_chat.irc.client import IrcSettings
from trio_chat.server.core import Limits

from .harness import Harness, chat, eventually, real_client, running_server, settle, srv
from .irc_harness import SERVER_NAME, IrcHarness, IrcPeer

Clock = trio.testing.MockClock


@pytest.fixture
async def irc() -> AsyncIterator[IrcHarness]:
    async with running_server() as harness:
        yield IrcHarness(harness)


def numerics(peer: IrcPeer) -> list[str]:
    return [m.command for m in peer.take()]


# ----- registration -----


async def test_registration_burst_and_isupport(irc: IrcHarness) -> None:
    peer = await irc.connect("alice")
    await peer.send("NICK alice", "USER al 0 * :Alice Liddell")
    await peer.expect(lambda m: m.command == "422")
    burst = peer.messages
    assert [m.command for m in burst] == ["001", "002", "003", "004", "005", "422"]
    assert all(m.source == SERVER_NAME and m.params[0] == "alice" for m in burst)
    assert burst[3].params[1:3] == [SERVER_NAME, burst[3].params[2]]
    tokens = dict(t.partition("=")[::2] for t in burst[4].params[1:-1])
    assert tokens["CHANTYPES"] == "#" and tokens["PREFIX"] == ""
    assert tokens["CASEMAPPING"] == "ascii" and tokens["NICKLEN"] == "32"
    assert tokens["CHANLIMIT"] == "#:3" and "JOIN:3" in tokens["TARGMAX"]


async def test_cap_negotiation_holds_registration_until_cap_end(irc: IrcHarness) -> None:
    peer = await irc.connect("bob")
    await peer.send("CAP LS 302", "NICK bob", "USER bob 0 * :Bob")
    await peer.send("CAP REQ :echo-message bogus", "CAP REQ :echo-message server-time", "CAP LIST")
    await settle()
    assert peer.take_text() == [
        "CAP * LS batch echo-message message-tags multi-prefix server-time userhost-in-names",
        "CAP * NAK echo-message bogus",  # (no nick until it is registered)
        "CAP * ACK echo-message server-time",
        "CAP * LIST echo-message server-time",
    ]
    await peer.send("CAP REQ :-server-time", "CAP END")
    await peer.expect(lambda m: m.command == "001")


async def test_a_taken_nick_gets_433_and_the_connection_may_try_another(irc: IrcHarness) -> None:
    await irc.register("carol")
    peer = await irc.connect("x")
    await peer.send("NICK CAROL", "USER c 0 * :c")
    await settle()
    assert peer.take_text() == ["433 * CAROL Nickname is already in use"]
    await peer.send("NICK carol2")
    await peer.expect(lambda m: m.command == "001" and m.params[0] == "carol2")


@pytest.mark.parametrize(
    "nick", ["9lives", "-dash", "a b", "with\\slash", "zoë", "x" * 33, "a:b", "a!b"]
)
async def test_nicks_irc_or_our_names_forbid_get_432(irc: IrcHarness, nick: str) -> None:
    peer = await irc.connect("x")
    await peer.send(f"NICK :{nick}")
    await settle()
    (reply,) = peer.take()
    assert reply.command == "432"


async def test_a_password_is_checked_when_one_is_set(irc: IrcHarness) -> None:
    guarded = IrcHarness(irc.harness, IrcSettings(SERVER_NAME, "sesame", 90.0, 60.0))
    good = await guarded.connect("good")
    await good.send("PASS sesame", "NICK good", "USER g 0 * :g")
    await good.expect(lambda m: m.command == "001")
    bad = await guarded.connect("bad")
    await bad.send("PASS wrong", "NICK bad", "USER b 0 * :b")
    await bad.wait_closed()
    assert [m.command for m in bad.messages] == ["464", "ERROR"]


async def test_commands_before_registration_get_451_and_quit_gets_error(
    irc: IrcHarness,
) -> None:
    peer = await irc.connect("x")
    await peer.send("JOIN #general", "PING early", "QUIT :bye")
    await peer.wait_closed()
    assert [m.command for m in peer.messages] == ["451", "PONG", "ERROR"]


# ----- channels and messages beside native members -----


async def test_chat_and_whispers_both_ways_with_a_native_member(irc: IrcHarness) -> None:
    harness = irc.harness
    alice = await harness.join("alice")
    alice.take()
    dave = await irc.join("dave")
    assert alice.take() == [srv("dave has joined the channel.")]
    await dave.send("PRIVMSG #general :hi \x02alice\x02", "PRIVMSG alice :psst")
    await dave.send("NOTICE #general :a notice", "PRIVMSG #general :\x01ACTION waves\x01")
    await alice.say("hello dave")
    await alice.say("/whisper dave back at you")
    await settle()
    assert alice.take() == [
        chat("dave", "hi alice"),
        "[dave whispers to you: (12:34:56)] psst",
        chat("dave", "a notice"),
        chat("dave", "* dave waves"),
        chat("alice", "hello dave"),
    ]
    got = dave.take()
    assert [(m.source, m.command, m.params) for m in got] == [
        (f"alice!alice@{SERVER_NAME}", "PRIVMSG", ["#general", "hello dave"]),
        (f"alice!alice@{SERVER_NAME}", "PRIVMSG", ["dave", "back at you"]),
    ]
    assert harness.printed_lines()[-3:] == [
        chat("dave", "* dave waves"),
        chat("alice", "hello dave"),
        "[alice whispers to dave: (12:34:56)] back at you",
    ]


async def test_echo_message_and_tags_follow_each_clients_caps(irc: IrcHarness) -> None:
    echoed = await irc.join("eve", caps="echo-message server-time message-tags")
    plain = await irc.join("fay")
    echoed.take()
    await echoed.send("PRIVMSG #general :hello")
    await settle()
    (own,) = echoed.take()
    (other,) = plain.take()
    assert own.params == other.params == ["#general", "hello"]
    assert own.tags is not None and set(own.tags) == {"time", "msgid"}
    assert other.tags is None


async def test_a_whisper_needs_a_shared_channel(irc: IrcHarness) -> None:
    one = await irc.join("one", "general")
    await irc.join("two", "random")
    await one.send("PRIVMSG two :hi", "PRIVMSG #random :hi", "PRIVMSG #nowhere :hi")
    await settle()
    assert numerics(one) == ["401", "404", "403"]


async def test_native_names_irc_cannot_carry_are_escaped(irc: IrcHarness) -> None:
    zoe = await irc.harness.join("zoë")
    ann = await irc.join("ann")
    await settle()
    (names,) = [m for m in ann.messages if m.command == "353"]
    assert names.params[-1] == "zo\\c3\\ab ann"
    await ann.send("PRIVMSG zo\\c3\\ab :bonjour")
    await settle()
    assert zoe.take()[-1] == "[ann whispers to you: (12:34:56)] bonjour"
    await zoe.say("salut")
    await settle()
    assert ann.take()[-1].source == f"zo\\c3\\ab!zo\\c3\\ab@{SERVER_NAME}"


async def test_a_full_channel_queues_an_irc_join_and_admits_it_later(irc: IrcHarness) -> None:
    natives = [await irc.harness.join(f"u{i}") for i in range(5)]
    late = await irc.register("late")
    await late.send("JOIN #general")
    await settle()
    (notice,) = late.take()
    assert notice.command == "NOTICE"
    assert notice.params[1] == (
        "#general: You are in the waiting queue and there are 0 user(s) ahead of you."
    )
    await late.send("PRIVMSG #general :let me in")  # queued: reminded, nothing said
    await natives[0].say("/quit")
    await settle()
    assert late.take_text()[1:4] == [
        "JOIN #general",
        "353 late = #general u1 u2 u3 u4 late",
        "366 late #general End of /NAMES list",
    ]
    assert natives[1].take()[-1] == srv("late has joined the channel.")


async def test_part_quit_and_a_native_hanging_up(irc: IrcHarness) -> None:
    alice = await irc.harness.join("alice")
    gus = await irc.join("gus")
    hal = await irc.join("hal")
    bob = await irc.harness.join("bob")
    await settle()
    gus.take()
    await bob.hang_up()  # silent for natives; IRC's member lists follow it
    await settle()
    assert gus.take_text() == ["PART #general connection closed"]
    hal.take()
    await hal.send("PART #general :bye everyone")
    await settle()
    assert gus.take_text() == ["PART #general bye everyone"]
    assert hal.take_text() == ["PART #general bye everyone"]
    await hal.send("JOIN #general")
    await settle()
    gus.take()
    await hal.send("QUIT :gone fishing")
    await hal.wait_closed()
    await settle()
    assert gus.take_text() == ["QUIT Quit: gone fishing"]
    assert alice.take()[-2:] == [
        srv("hal has joined the channel."),
        srv("hal has left the channel."),
    ]


async def test_queries_answer_from_the_rules_state(irc: IrcHarness, autojump_clock: Clock) -> None:
    await irc.harness.join("alice")
    ivy = await irc.join("ivy")
    start = len(ivy.messages)
    await ivy.send("LIST", "NAMES #general", "MODE #general", "MODE #general +m", "TOPIC #general")
    await ivy.send(
        "ISON alice ivy nobody", "WHOIS alice", "AWAY :lunch", "AWAY", "TOPIC #general :x"
    )
    # (More than the flood burst: the last lines wait for their tokens.)
    await ivy.expect(lambda m: m.params[-1] == "Topics cannot be set here")
    assert [" ".join([m.command, *m.params]) for m in ivy.messages[start:]] == [
        "321 ivy Channel Users  Name",
        "322 ivy #general 2 [2/5 members, 0 waiting]",
        "322 ivy #random 0 [0/5 members, 0 waiting]",
        "322 ivy #help 0 [0/5 members, 0 waiting]",
        "323 ivy End of /LIST",
        "353 ivy = #general alice ivy",
        "366 ivy #general End of /NAMES list",
        "324 ivy #general +nt",
        "482 ivy #general You're not a channel operator (channels here have none)",
        "331 ivy #general No topic is set",
        "303 ivy alice ivy",
        f"311 ivy alice alice {SERVER_NAME} * a trio-chat member",
        "319 ivy alice #general",
        f"312 ivy alice {SERVER_NAME} trio-chat",
        "318 ivy alice End of /WHOIS list",
        "306 ivy You have been marked as being away",
        "305 ivy You are no longer marked as being away",
        "482 ivy #general Topics cannot be set here",
    ]


# ----- the console's commands -----


async def test_mute_kick_and_empty_reach_irc_members(
    irc: IrcHarness, autojump_clock: Clock
) -> None:
    harness = irc.harness
    alice = await harness.join("alice")
    jay = await irc.join("jay")
    await jay.send("JOIN #random")
    await settle()
    jay.take()
    harness.console("/mute general:jay 30")
    await jay.send("PRIVMSG #general :can I talk?")
    await settle()
    assert jay.take_text() == [
        "NOTICE jay #general: You have been muted for 30 seconds.",
        "404 jay #general You are still muted for 30 seconds.",
    ]
    harness.console("/kick general:jay")
    await settle()
    assert jay.take_text() == ["KICK #general jay kicked by the server operator"]
    assert alice.take()[-2:] == [
        srv("jay has been muted for 30 seconds."),
        srv("jay has left the channel."),
    ]
    await jay.send("PRIVMSG #random :still here")
    await settle()
    assert harness.printed_lines()[-1] == chat("jay", "still here")
    harness.console("/empty random")
    await settle()
    assert jay.take_text() == ["KICK #random jay random was emptied by the operator"]
    assert not jay.closed


# ----- timers -----


@pytest.fixture
async def slow_afk() -> AsyncIterator[Harness]:
    async with running_server(afk_timeout=100.0) as harness:
        yield harness


async def test_afk_parts_one_channel_and_queries_do_not_count(
    slow_afk: Harness, autojump_clock: Clock
) -> None:
    irc = IrcHarness(slow_afk)
    alice = await slow_afk.join("alice")
    lou = await irc.join("lou")
    for _ in range(5):
        await trio.sleep(19)
        await lou.send("PING x", "WHO #general", "MODE #general", "ISON alice")
        await alice.say("still here")
    await lou.expect("PART #general disconnected for inactivity")
    assert trio.current_time() == pytest.approx(100.0, abs=1)
    assert alice.take()[-1] == srv("lou went AFK.")
    assert not lou.closed


async def test_chat_in_one_channel_keeps_every_channel_of_the_connection(
    slow_afk: Harness, autojump_clock: Clock
) -> None:
    irc = IrcHarness(slow_afk)
    max_ = await irc.join("max")
    await max_.send("JOIN #random")
    for _ in range(5):
        await trio.sleep(50)
        await max_.send("PRIVMSG #general :busy")
    await settle()
    assert not [m for m in max_.take() if m.command == "PART"]


async def test_a_silent_connection_is_pinged_then_dropped(autojump_clock: Clock) -> None:
    async with running_server(afk_timeout=1000.0) as harness:
        await pinged_then_dropped(IrcHarness(harness))


async def pinged_then_dropped(irc: IrcHarness) -> None:
    ned = await irc.join("ned")
    start = trio.current_time()
    ping = await ned.next()
    assert (ping.command, ping.params) == ("PING", [SERVER_NAME])
    assert trio.current_time() - start == pytest.approx(90.0, abs=0.1)
    await ned.send(f"PONG :{SERVER_NAME}")
    second = await ned.next()
    assert second.command == "PING"
    error = await ned.next()
    assert error.command == "ERROR" and "Ping timeout" in error.params[0]
    assert trio.current_time() - start == pytest.approx(240.0, abs=0.2)
    await ned.wait_closed()


# ----- hostile and broken input -----


async def test_long_lines_and_tags_get_417_and_the_connection_goes_on(irc: IrcHarness) -> None:
    alice = await irc.harness.join("alice")
    oz = await irc.join("oz")
    await oz.send("PRIVMSG #general :" + "a" * 600)
    await oz.send("@+tag=" + "b" * 4100 + " PRIVMSG #general :tagged")
    await oz.send_raw(b"PRIVMSG #general :" + b"c" * 50_000)  # no line end in sight
    await oz.send_raw(b"c" * 50_000 + b"\r\nPRIVMSG #general :bad \xff utf-8 \x1b[2J\r\n")
    await settle()
    assert numerics(oz) == ["417", "417", "417"]
    assert alice.take()[-1] == chat("oz", "bad \ufffd utf-8 \ufffd[2J")


async def test_flooding_closes_the_link_and_spares_the_others(autojump_clock: Clock) -> None:
    limits = Limits(flood_burst=3, flood_rate=1.0, flood_patience=2.0)
    async with running_server(limits=limits) as harness:
        irc = IrcHarness(harness)
        alice = await harness.join("alice")
        pat = await irc.join("pat")
        await pat.send(*[f"PRIVMSG #general :line {i}" for i in range(20)])
        await pat.wait_closed()
        error = pat.messages[-1]
        assert error.command == "ERROR" and "excess flood" in error.params[0]
        await settle()
        assert srv("pat has left the channel.") in alice.take()
        await alice.say("fine")
        await settle()
        assert alice.take() == [chat("alice", "fine")]


async def test_registration_must_finish_in_time_however_slowly_bytes_trickle(
    irc: IrcHarness, autojump_clock: Clock
) -> None:
    slow = await irc.connect("slow")
    start = trio.current_time()
    with trio.move_on_after(60), contextlib.suppress(trio.BrokenResourceError):
        for char in "NICK slow\r\n":
            await slow.send_raw(char.encode())  # (until the server hangs up)
            await trio.sleep(3)
    await slow.wait_closed()
    assert [m.command for m in slow.messages] == ["ERROR"]
    assert slow.closed_at == pytest.approx(start + 10.0)  # the hello timeout


async def test_a_file_to_an_irc_member_is_refused_with_the_reason(
    irc: IrcHarness, tmp_path: Path
) -> None:
    await irc.join("quinn")
    sender = await real_client(irc.harness, "sam", str(tmp_path))
    notes = tmp_path / "notes.txt"
    notes.write_text("for quinn")
    await sender.type(f"/send quinn {notes}")
    await eventually(lambda: any("quinn is on IRC" in note for note in sender.notes))
    assert sender.take() == []  # nothing on stdout: no contract line says it


async def test_part_keeps_the_connections_other_channels_alive(
    slow_afk: Harness, autojump_clock: Clock
) -> None:
    irc = IrcHarness(slow_afk)
    pam = await irc.join("pam")
    await pam.send("JOIN #random")
    await trio.sleep(90)
    await pam.send("PART #random")  # a person did something: #general is not idle
    await trio.sleep(50)
    await settle()
    assert "PART #general disconnected for inactivity" not in pam.take_text()
    await pam.expect("PART #general disconnected for inactivity")
    assert trio.current_time() == pytest.approx(190.0, abs=1)


async def test_nothing_answers_a_notice_not_even_the_rules(
    irc: IrcHarness, autojump_clock: Clock
) -> None:
    natives = [await irc.harness.join(f"u{i}") for i in range(5)]
    late = await irc.register("late")
    await late.send("JOIN #general")
    await late.expect(lambda m: m.command == "NOTICE")  # its place in the queue
    await late.send("NOTICE #general :am I in?")
    await natives[0].say("/quit")
    await late.expect("366 late #general End of /NAMES list")
    irc.harness.console("/mute general:late 30")
    await late.expect(lambda m: m.command == "NOTICE")  # "You have been muted ..."
    await late.send("NOTICE #general :still muted?", "NOTICE u1 :psst")
    await settle()
    assert late.take_text() == []


async def test_whois_of_an_irc_user_in_no_channel(irc: IrcHarness) -> None:
    await irc.register("rob", user="robuser")
    asker = await irc.register("ask")
    await asker.send("WHOIS rob")
    await settle()
    assert asker.take_text()[0] == f"311 ask rob robuser {SERVER_NAME} * rob the tester"
