"""Bans, sans-I/O: the ban table (bans.py), the console's /ban, /unban and
/bans as the hub's effect lists, refusals at the hello, /switch and IRC
registration, expiry on the rules' clock, and what a cluster's snapshot
and a state file carry (docs/behaviour.md, "/ban, /unban and /bans")."""

from __future__ import annotations

import ipaddress
import math

import pytest

from trio_chat import bans
from trio_chat import effects as fx
from trio_chat import events as ev
from trio_chat.bans import AddressBan, Bans, NameBan, parse_target
from trio_chat.commands import Ban, ListBans, Unban, Usage, parse_console_line
from trio_chat.config import ChannelConfig
from trio_chat.hub import EXIT_OK, EXIT_REFUSED, Hub
from trio_chat.render import log
from trio_chat.state import Cause

from .test_hub import Conn, T, hub, joined, run


def net(text: str) -> AddressBan:
    return AddressBan(ipaddress.ip_network(text))


def texts(effects: list[fx.Effect]) -> list[str]:
    return [e.text for e in effects if isinstance(e, fx.Console)]


def stdout(effects: list[fx.Effect]) -> list[str]:
    return [line for e in effects if (line := log.line(e)) is not None]  # type: ignore[arg-type]


# ----- the table and the commands' arguments -----


@pytest.mark.parametrize(
    ("text", "target"),
    [
        ("general:bob", NameBan("general", "bob")),
        ("a:b:bob", NameBan("a:b", "bob")),
        ("10.1.2.3", net("10.1.2.3/32")),
        ("10.1.2.3/8", net("10.0.0.0/8")),
        ("::1", net("::1/128")),
        ("2001:db8::5/32", net("2001:db8::/32")),
        ("::ffff:10.0.0.1", net("10.0.0.1/32")),
        ("general:", None),
        (":bob", None),
        ("bob", None),
        ("10.0.0.0/33", None),
        ("fe80::1%eth0", net("fe80::1/128")),
        ("fe80::1%eth0/64", net("fe80::/64")),
    ],
)
def test_a_target_is_an_address_a_network_or_channel_colon_user(
    text: str, target: bans.Target | None
) -> None:
    assert parse_target(text) == target


def test_a_target_reads_back_as_the_operator_would_type_it() -> None:
    assert str(net("10.0.0.7/32")) == "10.0.0.7"
    assert str(net("10.0.0.0/8")) == "10.0.0.0/8"
    assert str(NameBan("general", "bob")) == "general:bob"


def test_the_ban_commands_parse_or_show_their_usage() -> None:
    assert parse_console_line("/ban general:bob") == Ban(NameBan("general", "bob"), None)
    assert parse_console_line("/ban 127.0.0.0/8 60") == Ban(net("127.0.0.0/8"), 60)
    # An IPv6 address reads as CHANNEL:USER too; the rules decide (below).
    assert parse_console_line("/unban ::1") == Unban(net("::1/128"), NameBan(":", "1"))
    assert parse_console_line("/bans") == ListBans()
    usage = "usage: /ban <channel_name>:<username>|<address>[/<bits>] [<seconds>]"
    for bad in ("/ban", "/ban bob", "/ban general:bob 0", "/ban general:bob x", "/ban a b c"):
        assert parse_console_line(bad) == Usage(usage), bad
    assert parse_console_line("/unban bob") == Usage(
        "usage: /unban <channel_name>:<username>|<address>[/<bits>]"
    )
    assert parse_console_line("/bans x") == Usage("usage: /bans")


def test_an_address_ban_covers_its_network_in_either_spelling() -> None:
    table = Bans()
    table.add(net("10.0.0.0/8"), math.inf)
    table.add(net("2001:db8::/32"), 50.0)
    assert table.address_ban("10.9.8.7", 0.0) == net("10.0.0.0/8")
    assert table.address_ban("::ffff:10.9.8.7", 0.0) == net("10.0.0.0/8")
    assert table.address_ban("11.0.0.1", 0.0) is None
    assert table.address_ban("2001:db8::1%eth0", 49.0) == net("2001:db8::/32")
    assert table.address_ban("2001:db8::1", 50.0) is None  # ended
    assert table.address_ban("not an address", 0.0) is None
    assert table.address_ban(None, 0.0) is None
    # A narrower ban that ended leaves a wider one in force; lifted, it goes.
    table.add(net("10.9.8.0/24"), 5.0)
    assert table.address_ban("10.9.8.7", 1.0) in (net("10.9.8.0/24"), net("10.0.0.0/8"))
    assert table.address_ban("10.9.8.7", 6.0) == net("10.0.0.0/8")
    assert table.remove(net("10.0.0.0/8")) and not table.remove(net("10.0.0.0/8"))
    assert table.address_ban("10.9.8.7", 6.0) is None
    assert table.address_ban("10.9.8.7", 1.0) == net("10.9.8.0/24")


def test_a_name_ban_is_exact_unless_folded_for_irc() -> None:
    table = Bans()
    table.add(NameBan("general", "Bob"), math.inf)
    assert table.name_ban("general", "Bob", 0.0) == NameBan("general", "Bob")
    assert table.name_ban("general", "bob", 0.0) is None
    assert table.name_ban("general", "bob", 0.0, fold=True) == NameBan("general", "Bob")
    assert table.name_ban("random", "Bob", 0.0) is None
    table.add(NameBan("general", "BOB"), 10.0)
    assert table.name_ban("general", "bob", 20.0, fold=True) == NameBan("general", "Bob")
    table.remove(NameBan("general", "Bob"))
    assert table.name_ban("general", "bob", 5.0, fold=True) == NameBan("general", "BOB")
    assert table.name_ban("general", "bob", 20.0, fold=True) is None


def test_rows_carry_the_time_left_and_come_back_on_another_clock() -> None:
    table = Bans()
    table.add(NameBan("general", "bob"), 160.0)
    table.add(net("10.0.0.0/8"), math.inf)
    table.add(net("10.0.0.1/32"), 90.0)  # ended at 90
    rows = bans.to_rows(table, 100.0)
    assert rows == [["address", "10.0.0.0/8", None], ["name", "general:bob", 60.0]]
    again = bans.from_rows(rows, 5000.0)
    assert list(again.items(5000.0)) == [
        (net("10.0.0.0/8"), math.inf),
        (NameBan("general", "bob"), 5060.0),
    ]
    assert list(bans.from_rows([["name", "general:x", -1]], 0.0).items(0.0)) == []


@pytest.mark.parametrize(
    "rows",
    [
        {},
        [["name", "general:bob"]],
        [["address", "general:bob", None]],
        [["name", "10.0.0.1", None]],
        [["group", "general:bob", None]],
        [["name", "general:bob", "60"]],
        [["name", "general:bob", True]],
        [["name", "general:bob", math.nan]],
        [["name", 7, None]],
    ],
)
def test_rows_that_are_not_bans_are_refused(rows: object) -> None:
    with pytest.raises(ValueError):
        bans.from_rows(rows, 0.0)


# ----- /ban, /unban, /bans -----


def test_a_name_ban_kicks_the_member_and_refuses_it_there_only() -> None:
    h = hub()
    alice, bob = joined(h, "alice", "bob")
    effects = run(h, ev.ConsoleLine("/ban general:bob"))
    assert effects == [
        fx.Banned(T, "general:bob", None),
        fx.Disconnect(bob, EXIT_OK, "banned from general by the server operator", Cause.KICKED),
        fx.Kicked(T, (alice,), "bob"),
        fx.BansChanged(),
    ]
    assert stdout(effects) == [
        "[Server message (12:00:00)] Banned general:bob until unbanned.",
        "[Server message (12:00:00)] Kicked bob.",
    ]
    run(h, ev.Drop("bob"))
    refused = run(h, ev.Join("bob2", "general", "bob"))
    assert [(type(e), getattr(e, "reason", "")) for e in refused] == [
        (fx.Disconnect, "refused: bob is banned from general"),
        (fx.BanRefused, ""),
    ]
    assert refused[1] == fx.BanRefused("general:bob", "bob", None)
    assert isinstance(refused[0], fx.Disconnect)
    assert (refused[0].status, refused[0].cause) == (EXIT_REFUSED, Cause.BANNED)
    assert "bob2" not in h.members
    # Elsewhere the name is welcome.
    assert isinstance(run(h, ev.Join("bob3", "random", "bob"))[0], fx.Welcome)


def test_a_queued_member_behind_a_banned_one_learns_its_new_place() -> None:
    h = hub(capacity=1)
    run(h, ev.Join("1", "general", "alice", "192.168.1.1"))
    run(h, ev.Join("2", "general", "bob", "10.0.0.2"))
    run(h, ev.Join("3", "general", "carol", "192.168.1.3"))
    bob, carol = h.members["2"], h.members["3"]
    effects = run(h, ev.ConsoleLine("/ban 10.0.0.2"))
    reason = "your address was banned by the server operator"
    assert effects[1:4] == [
        fx.Disconnect(bob, EXIT_OK, reason, Cause.KICKED),
        fx.QueuePosition(T, carol, 0),
        fx.AddressBanned(net("10.0.0.2/32"), reason),
    ]


def test_a_name_ban_takes_a_queued_member_out_and_moves_the_queue() -> None:
    h = hub(capacity=1)
    joined(h, "alice", "bob", "carol")  # bob and carol wait
    bob, carol = h.members["bob"], h.members["carol"]
    assert run(h, ev.ConsoleLine("/ban general:bob 60")) == [
        fx.Banned(T, "general:bob", 60),
        fx.Disconnect(bob, EXIT_OK, "banned from general by the server operator", Cause.KICKED),
        fx.QueuePosition(T, carol, 0),
        fx.BansChanged(),
    ]


def test_a_ban_of_an_unknown_channel_says_it_does_not_exist() -> None:
    h = hub()
    effects = run(h, ev.ConsoleLine("/ban nowhere:bob", answer_to="1"))
    assert effects == [
        fx.AnswerBegins("1"),
        fx.NotFound(T, None, "nowhere"),
        fx.AnswerEnds("1", True),
    ]
    assert len(h.bans) == 0


def test_an_address_ban_drops_everyone_from_there_and_refuses_newcomers() -> None:
    h = hub(capacity=1)
    run(h, ev.Join("1", "general", "alice", "10.0.0.1"))
    run(h, ev.Join("2", "general", "bob", "10.0.0.2"))  # queued
    run(h, ev.Join("3", "general", "erin", "192.168.1.2"))  # queued behind bob
    run(h, ev.Join("4", "random", "carol", "192.168.1.1"))
    run(h, ev.Join("5", "random", "dan", "10.0.0.3"))  # queued behind carol
    alice, bob, erin, dan = (h.members[ref] for ref in "1235")
    reason = "your address was banned by the server operator"
    effects = run(h, ev.ConsoleLine("/ban 10.0.0.0/24 30"))
    # Everyone covered goes first; only then does erin move up (bob, banned
    # too, is never let in on his way out), and dan's queue has nobody left.
    assert effects == [
        fx.Banned(T, "10.0.0.0/24", 30),
        fx.Disconnect(alice, EXIT_OK, reason, Cause.KICKED),
        fx.Kicked(T, (), "alice"),
        fx.Disconnect(bob, EXIT_OK, reason, Cause.KICKED),
        fx.Disconnect(dan, EXIT_OK, reason, Cause.KICKED),
        fx.Reschedule(erin),
        fx.Roster(erin, ["erin"]),
        fx.Joined(T, (erin,), "erin", "general"),
        fx.AddressBanned(net("10.0.0.0/24"), reason),
        fx.BansChanged(),
    ]
    assert stdout(effects) == [
        "[Server message (12:00:00)] Banned 10.0.0.0/24 for 30 seconds.",
        "[Server message (12:00:00)] Kicked alice.",
        "[Server message (12:00:00)] erin has joined the general channel.",
    ]
    assert list(h.channels["random"].members) == ["carol"]
    refused = run(h, ev.Join("6", "random", "eve", "10.0.0.9"), now=10.0)
    assert [getattr(e, "reason", None) for e in refused] == [
        "refused: your address is banned from this server for 20 more seconds",
        None,
    ]
    assert refused[1] == fx.BanRefused("10.0.0.0/24", "eve", "10.0.0.9")
    # An IRC connection registering from there is refused its nick.
    [answer, counted] = run(h, ev.ClaimNick("7", "eve", "10.0.0.9"), now=10.0)
    assert counted == fx.BanRefused("10.0.0.0/24", "eve", "10.0.0.9")
    assert isinstance(answer, fx.NickDecided)
    assert (answer.nick, answer.accepted, answer.banned) == (
        "eve",
        False,
        "refused: your address is banned from this server for 20 more seconds",
    )
    assert "eve" not in h.nicks
    # At 30 s the ban ends by itself.
    assert isinstance(run(h, ev.Join("8", "random", "eve", "10.0.0.9"), now=30.0)[0], fx.Welcome)


def test_a_channel_named_like_an_ipv6_network_gets_its_name_ban() -> None:
    channels = [ChannelConfig("a::b", 1, 5), ChannelConfig("c", 2, 5), ChannelConfig("d", 3, 5)]
    h = Hub(channels, connection_for=Conn)  # type: ignore[arg-type]
    run(h, ev.Join("1", "a::b", "c"))
    effects = run(h, ev.ConsoleLine("/ban a::b:c"))
    assert stdout(effects) == [
        "[Server message (12:00:00)] Banned a::b:c until unbanned.",
        "[Server message (12:00:00)] Kicked c.",
    ]
    assert list(h.bans.items(0.0)) == [(NameBan("a::b", "c"), math.inf)]
    assert run(h, ev.ConsoleLine("/unban a::b:c"))[0] == fx.Unbanned(T, "a::b:c", True)
    # Where no channel is called so, it is the IPv6 address it also is.
    run(h, ev.ConsoleLine("/ban fe80::1"))
    assert list(h.bans.items(0.0)) == [(net("fe80::1/128"), math.inf)]


def test_a_banned_name_cannot_switch_in() -> None:
    h = hub()
    _, bob = joined(h, "alice", "bob")
    run(h, ev.ConsoleLine("/ban random:bob"))
    assert run(h, ev.Input("bob", "/switch random")) == [
        fx.Reschedule(bob),
        fx.CannotSwitch(T, bob, "random"),
        fx.Notice(bob, "bob is banned from random"),
    ]
    assert bob.channel is h.channels["general"]


def test_an_irc_join_is_refused_for_the_name_in_any_case() -> None:
    h = hub()
    run(h, ev.ConsoleLine("/ban general:Bob"))
    refused = run(h, ev.Join("1", "general", "BOB", via_irc=True))
    assert [(getattr(e, "cause", None), getattr(e, "reason", None)) for e in refused] == [
        (Cause.BANNED, "refused: BOB is banned from general"),
        (None, None),
    ]
    assert refused[1] == fx.BanRefused("general:Bob", "BOB", None)
    # A terminal name is exact: "bob" is someone else.
    assert isinstance(run(h, ev.Join("2", "general", "bob"))[0], fx.Welcome)


def test_unban_lifts_a_ban_or_says_there_was_none() -> None:
    h = hub()
    run(h, ev.ConsoleLine("/ban general:bob 10"))
    effects = run(h, ev.ConsoleLine("/unban general:bob"), now=1.0)
    assert effects == [fx.Unbanned(T, "general:bob", True), fx.BansChanged()]
    assert stdout(effects) == ["[Server message (12:00:00)] Unbanned general:bob."]
    again = run(h, ev.ConsoleLine("/unban general:bob", answer_to="a"), now=2.0)
    assert again == [
        fx.AnswerBegins("a"),
        fx.Unbanned(T, "general:bob", False),
        fx.AnswerEnds("a", True),
    ]
    assert stdout(again) == ["[Server message (12:00:00)] general:bob is not banned."]
    # A ban that ended by itself is not there to lift either.
    run(h, ev.ConsoleLine("/ban 10.0.0.1 5"), now=0.0)
    assert run(h, ev.ConsoleLine("/unban 10.0.0.1"), now=5.0) == [fx.Unbanned(T, "10.0.0.1", False)]
    # A ban on a channel a reload removed may still be lifted.
    run(h, ev.ConsoleLine("/ban random:zed"))
    run(h, ev.Reconfigure((("general", 1, 2),)))
    assert run(h, ev.ConsoleLine("/unban random:zed")) == [
        fx.Unbanned(T, "random:zed", True),
        fx.BansChanged(),
    ]


def test_bans_lists_every_ban_in_force_with_its_time_left() -> None:
    h = hub()
    assert texts(run(h, ev.ConsoleLine("/bans"))) == ["/bans: nobody is banned"]
    run(h, ev.ConsoleLine("/ban general:bob 60"), now=0.0)
    run(h, ev.ConsoleLine("/ban 10.0.0.0/8"), now=0.0)
    run(h, ev.ConsoleLine("/ban random:carol 5"), now=0.0)
    assert texts(run(h, ev.ConsoleLine("/bans"), now=10.5)) == [
        "/bans: 10.0.0.0/8 until unbanned",
        "/bans: general:bob 50s left",
    ]
    # Banning again replaces the end.
    run(h, ev.ConsoleLine("/ban 10.0.0.0/8 100"), now=20.0)
    assert texts(run(h, ev.ConsoleLine("/bans"), now=20.0))[0] == "/bans: 10.0.0.0/8 100s left"


def test_the_ban_lines_are_answers_that_did_not_fail() -> None:
    h = hub()
    effects = run(h, ev.ConsoleLine("/ban general:bob", answer_to="x"))
    assert effects[-1] == fx.AnswerEnds("x", False)
    effects = run(h, ev.ConsoleLine("/bans", answer_to="y"))
    assert effects[-1] == fx.AnswerEnds("y", False)


# ----- what a cluster carries -----


def test_a_snapshot_carries_the_bans_with_their_ends() -> None:
    from trio_chat.cluster import codec, snapshot

    h = hub()
    run(h, ev.ConsoleLine("/ban general:bob 60"), now=1000.0)
    run(h, ev.ConsoleLine("/ban 10.0.0.0/8"), now=1000.0)
    again = hub()
    snapshot.restore(again, snapshot.dump(h))
    assert list(again.bans.items(1010.0)) == [
        (net("10.0.0.0/8"), math.inf),
        (NameBan("general", "bob"), 1060.0),
    ]
    # The commands travel in the log as the console lines they are.
    line = ev.ConsoleLine("/ban 10.0.0.0/8", answer_to="3")
    assert codec.decode(codec.encode(line, 1, 5)).event == line
