"""The console's /who and the answers of control connections, sans-I/O: the
hub's effect lists (docs/behaviour.md, "The server console" and "The control
socket"), and what the cluster carries of them (codec, snapshot)."""

from __future__ import annotations

import pytest

from trio_chat import effects as fx
from trio_chat import events as ev
from trio_chat.cluster import codec, snapshot
from trio_chat.commands import Usage, Who, parse_console_line
from trio_chat.hub import EXIT_OK
from trio_chat.state import Cause

from .test_hub import T, hub, run


def texts(effects: list[fx.Effect]) -> list[tuple[str, bool]]:
    return [(e.text, e.failed) for e in effects if isinstance(e, fx.Console)]


def test_who_is_parsed_with_or_without_a_channel() -> None:
    assert parse_console_line("/who") == Who(None)
    assert parse_console_line("/who general") == Who("general")
    assert parse_console_line("/who a b") == Usage("usage: /who [<channel_name>]")


def test_who_with_nobody_anywhere_or_in_one_channel() -> None:
    h = hub(capacity=5)
    assert run(h, ev.ConsoleLine("/who")) == [fx.Console("/who: nobody is in any channel")]
    assert run(h, ev.ConsoleLine("/who random")) == [fx.Console("/who: nobody is in random")]


def test_who_of_an_unknown_channel_fails() -> None:
    h = hub(capacity=5)
    assert run(h, ev.ConsoleLine("/who nowhere")) == [
        fx.Console("/who: there is no channel nowhere", failed=True)
    ]


def test_who_lists_each_member_protocol_address_node_idle_and_place() -> None:
    h = hub(capacity=5)
    run(h, ev.Join("1", "general", "alice", "127.0.0.1"), now=0.0)
    run(h, ev.Join("2", "general", "bob", "::1", protocol=ev.WEB), now=5.0)
    run(h, ev.Join("3", "random", "carol", "10.0.0.7", via_irc=True, ident="c"), now=8.0)
    run(h, ev.Input("1", "hello"), now=10.0)  # alice last did something at 10
    assert texts(run(h, ev.ConsoleLine("/who"), now=22.5)) == [
        ("/who: general alice native 127.0.0.1 node - idle 12s admitted", False),
        ("/who: general bob web ::1 node - idle 17s admitted", False),
        ("/who: random carol irc 10.0.0.7 node - idle 14s admitted", False),
    ]
    assert texts(run(h, ev.ConsoleLine("/who random"), now=22.5)) == [
        ("/who: random carol irc 10.0.0.7 node - idle 14s admitted", False)
    ]


def test_who_shows_queue_places_and_a_cluster_members_node() -> None:
    h = hub(capacity=5)
    for number in range(5):
        run(h, ev.Join(f"1.{number}", "general", f"u{number}"))
    run(h, ev.Join("2.1", "general", "dan"))  # no address: an in-memory stream
    run(h, ev.Join("1.9", "general", "eve", "127.0.0.2"))
    lines = texts(run(h, ev.ConsoleLine("/who general"), now=1.0))
    assert lines[0] == ("/who: general u0 native - node 1 idle 1s admitted", False)
    assert lines[5:] == [
        ("/who: general dan native - node 2 idle - queued 1", False),
        ("/who: general eve native 127.0.0.2 node 1 idle - queued 2", False),
    ]


def test_who_of_a_muted_member_shows_its_frozen_idle_time_and_the_mute_left() -> None:
    h = hub(capacity=5)
    run(h, ev.Join("1", "general", "alice", "127.0.0.1"))
    run(h, ev.ConsoleLine("/mute general:alice 30"), now=10.0)  # the timer stops at 10 s
    assert texts(run(h, ev.ConsoleLine("/who"), now=25.0)) == [
        ("/who: general alice native 127.0.0.1 node - idle 10s admitted muted 15s", False)
    ]
    # The mute ended at 40: the timer counts again from 10 s.
    assert texts(run(h, ev.ConsoleLine("/who"), now=45.0)) == [
        ("/who: general alice native 127.0.0.1 node - idle 15s admitted", False)
    ]


def test_a_stdin_console_line_has_no_answer_markers() -> None:
    h = hub(capacity=5)
    assert run(h, ev.ConsoleLine("/who")) == [fx.Console("/who: nobody is in any channel")]


def test_a_control_connections_line_is_answered_between_markers() -> None:
    h = hub(capacity=5)
    run(h, ev.Join("1", "general", "alice"))
    run(h, ev.Join("2", "general", "bob"))
    alice, bob = h.members["1"], h.members["2"]
    assert run(h, ev.ConsoleLine("/kick general:alice", answer_to="7")) == [
        fx.AnswerBegins("7"),
        fx.Disconnect(alice, EXIT_OK, "kicked by the server operator", Cause.KICKED),
        fx.Kicked(T, (bob,), "alice"),
        fx.AnswerEnds("7", False),
    ]
    assert run(h, ev.ConsoleLine("", answer_to="8")) == [
        fx.AnswerBegins("8"),
        fx.AnswerEnds("8", False),
    ]


def test_failed_answers_are_marked() -> None:
    h = hub(capacity=5)
    run(h, ev.Join("1", "general", "alice"))
    for line, effect in [
        ("/kick nowhere:bob", fx.NotFound(T, None, "nowhere")),
        ("/kick general:zed", fx.NotInChannel(T, "zed", "general")),
        ("/mute general:alice x", fx.InvalidMuteTime(T)),
        ("/mute general:zed 5", fx.NotHere(T, None, "zed")),
        ("/empty nowhere", fx.NotFound(T, None, "nowhere")),
        ("/history nowhere", fx.Console("/history: there is no channel nowhere", failed=True)),
        ("/who nowhere", fx.Console("/who: there is no channel nowhere", failed=True)),
        ("/kick", fx.Console("usage: /kick <channel_name>:<username>", failed=True)),
    ]:
        assert run(h, ev.ConsoleLine(line, answer_to="c")) == [
            fx.AnswerBegins("c"),
            effect,
            fx.AnswerEnds("c", True),
        ], line
    (_, unknown, end) = run(h, ev.ConsoleLine("/bogus", answer_to="c"))
    assert isinstance(unknown, fx.Console) and unknown.failed
    assert unknown.text.startswith("unknown console command '/bogus'; commands: ")
    assert end == fx.AnswerEnds("c", True)


def test_shutdown_is_answered_and_then_nothing_happens() -> None:
    h = hub(capacity=5)
    assert run(h, ev.ConsoleLine("/shutdown", answer_to="1")) == [
        fx.AnswerBegins("1"),
        fx.StopServer(),
        fx.AnswerEnds("1", False),
    ]
    assert run(h, ev.ConsoleLine("/who", answer_to="2")) == []


def test_the_codec_carries_answer_to_and_protocol_and_reads_entries_without_them() -> None:
    events: list[ev.Event] = [
        ev.ConsoleLine("/who", answer_to="3"),
        ev.Join("1.2", "general", "bob", "::1", protocol=ev.WEB),
    ]
    for event in events:
        assert codec.decode(codec.encode(event, 1, 5)).event == event
    older = b'{"type":"console_line","origin":1,"seq":1,"line":"/who"}'
    assert codec.decode(older).event == ev.ConsoleLine("/who")
    older_join = (
        b'{"type":"join","origin":1,"seq":2,"ref":"1.1","channel":"general",'
        b'"username":"al","address":null,"via_irc":false,"ident":""}'
    )
    assert codec.decode(older_join).event == ev.Join("1.1", "general", "al")
    # Only those fields: an entry without one it always had is unreadable.
    with pytest.raises(codec.EntryError):
        codec.decode(b'{"type":"console_line","origin":1,"seq":1,"answer_to":"3"}')


def test_a_snapshot_keeps_each_members_address_and_protocol() -> None:
    h = hub(capacity=5)
    run(h, ev.Join("1.1", "general", "alice", "127.0.0.1", protocol=ev.WEB))
    run(h, ev.Join("2.1", "general", "carol", "10.0.0.1", via_irc=True))
    restored = hub(capacity=5)
    snapshot.restore(restored, snapshot.dump(h))
    assert texts(run(restored, ev.ConsoleLine("/who"))) == [
        ("/who: general alice web 127.0.0.1 node 1 idle 0s admitted", False),
        ("/who: general carol irc 10.0.0.1 node 2 idle 0s admitted", False),
    ]
