"""The rules, sans-I/O: events in, the exact list of effects out
(docs/behaviour.md, each section in turn)."""

from __future__ import annotations

import json
import math
import typing
from collections import Counter

from trio_chat import effects as fx
from trio_chat import events as ev
from trio_chat.config import ChannelConfig
from trio_chat.hub import EXIT_OK, EXIT_REFUSED, Hub, Member
from trio_chat.names import fold_nick
from trio_chat.render import browser, log, terminal
from trio_chat.state import Cause, Channel

T = "12:00:00"  # every event's stamp here


class Conn:
    """A connection the rules only hand on."""

    def __init__(self, ref: str) -> None:
        self.ref = ref


def hub(capacity: int = 2, afk: float = 100.0) -> Hub:
    channels = [ChannelConfig("general", 1, capacity), ChannelConfig("random", 2, capacity)]
    return Hub(channels, afk_timeout=afk, connection_for=Conn)  # type: ignore[arg-type]


def run(h: Hub, event: ev.Event, now: float = 0.0) -> list[fx.Effect]:
    return h.handle(event, now, T)


def joined(h: Hub, *names: str, channel: str = "general", now: float = 0.0) -> list[Member]:
    for name in names:
        run(h, ev.Join(name, channel, name), now)
    return [h.members[name] for name in names]


# ----- joining and the waiting queue -----


def test_the_first_members_are_admitted_and_told_who_is_there() -> None:
    h = hub()
    effects = run(h, ev.Join("a", "general", "alice"))
    alice = h.members["a"]
    assert effects == [
        fx.Welcome(T, alice, "general"),
        fx.Reschedule(alice),
        fx.Roster(alice, ["alice"]),
        fx.Joined(T, (alice,), "alice", "general"),
    ]
    assert alice.afk_deadline == 100.0


def test_a_full_channel_queues_newcomers_first_come_first_served() -> None:
    h = hub(capacity=1)
    (alice,) = joined(h, "alice")
    effects = run(h, ev.Join("bob", "general", "bob"))
    bob = h.members["bob"]
    assert effects == [fx.Welcome(T, bob, "general"), fx.QueuePosition(T, bob, 0)]
    run(h, ev.Join("carol", "general", "carol"))
    carol = h.members["carol"]
    # alice leaves: bob is admitted, carol moves up.
    effects = run(h, ev.Input("alice", "/quit"), now=5.0)
    assert effects == [
        fx.Reschedule(alice),
        fx.Left(T, (), "alice", True),
        fx.Reschedule(bob),
        fx.Roster(bob, ["bob"]),
        fx.Joined(T, (bob,), "bob", "general"),
        fx.QueuePosition(T, carol, 0),
        fx.Disconnect(alice, EXIT_OK, "you left the chat", Cause.LEFT),
    ]
    assert bob.admitted and bob.afk_deadline == 105.0  # time queued does not count


def test_a_queued_member_who_leaves_moves_those_behind_it_up() -> None:
    h = hub(capacity=1)
    joined(h, "alice", "bob", "carol", "dave")
    carol, dave = h.members["carol"], h.members["dave"]
    assert run(h, ev.Drop("bob")) == [
        fx.QueuePosition(T, carol, 0),
        fx.QueuePosition(T, dave, 1),
    ]
    assert "bob" not in h.members


def test_a_taken_name_is_refused_with_the_cannot_connect_line() -> None:
    h = hub()
    joined(h, "alice")
    effects = run(h, ev.Join("x", "general", "alice"))
    (refused,) = {e.member for e in effects if isinstance(e, fx.Disconnect)}
    assert effects == [
        fx.CannotConnect(T, refused, "general"),
        fx.Disconnect(
            refused, EXIT_REFUSED, "the name alice is already in general", Cause.NAME_TAKEN
        ),
    ]
    assert "x" not in h.members


def test_an_unacceptable_name_is_refused_without_a_line() -> None:
    h = hub()
    effects = run(h, ev.Join("x", "general", "a b"))
    assert len(effects) == 1 and isinstance(effects[0], fx.Disconnect)
    assert effects[0].reason == "refused: the username contains whitespace"


# ----- chatting and client commands -----


def test_chat_goes_to_the_whole_channel() -> None:
    h = hub()
    alice, bob = joined(h, "alice", "bob")
    assert run(h, ev.Input("alice", "hello"), now=1.0) == [
        fx.Reschedule(alice),
        # Line 1 of the hub, said at the event's time (history.msgid).
        fx.Chat(T, (alice, bob), "alice", "hello", seq=1, at=1.0),
    ]
    assert alice.afk_deadline == 101.0


def test_a_queued_member_is_reminded_of_its_place_instead() -> None:
    h = hub(capacity=1)
    joined(h, "alice", "bob")
    bob = h.members["bob"]
    assert run(h, ev.Input("bob", "hello")) == [fx.QueuePosition(T, bob, 0)]
    assert run(h, ev.Input("bob", "/whisper alice hi")) == [fx.QueuePosition(T, bob, 0)]


def test_whispers_reach_one_member_and_the_log() -> None:
    h = hub()
    alice, bob = joined(h, "alice", "bob")
    assert run(h, ev.Input("alice", "/whisper bob psst")) == [
        fx.Reschedule(alice),
        fx.Whisper(T, bob, "alice", "bob", "psst", sender_member=alice),
    ]
    assert run(h, ev.Input("alice", "/whisper zed psst")) == [
        fx.Reschedule(alice),
        fx.NotHere(T, alice, "zed"),
        fx.Whisper(T, None, "alice", "zed", "psst", sender_member=alice),
    ]


def test_list_gives_every_channel_s_counts() -> None:
    h = hub(capacity=1)
    joined(h, "alice", "bob")
    alice = h.members["alice"]
    assert run(h, ev.Input("alice", "/list")) == [
        fx.Reschedule(alice),
        fx.Listing(T, alice, [fx.ChannelRow("general", 1, 1, 1), fx.ChannelRow("random", 0, 1, 0)]),
    ]


def test_switch_leaves_one_channel_and_enters_the_other() -> None:
    h = hub()
    alice, bob = joined(h, "alice", "bob")
    effects = run(h, ev.Input("alice", "/switch random"))
    assert effects == [
        fx.Reschedule(alice),
        fx.Left(T, (bob,), "alice", True),
        fx.Welcome(T, alice, "random"),
        fx.Reschedule(alice),
        fx.Roster(alice, ["alice"]),
        fx.Joined(T, (alice,), "alice", "random"),
    ]
    assert run(h, ev.Input("alice", "/switch nowhere"))[1:] == [fx.NotFound(T, alice, "nowhere")]


def test_switch_to_a_channel_with_the_name_is_refused_and_to_a_full_one_queues() -> None:
    h = hub(capacity=1)
    (alice,) = joined(h, "alice")
    joined(h, "bob", channel="random")
    run(h, ev.Join("alice2", "random", "alice"))  # queued in random as alice
    assert run(h, ev.Input("alice", "/switch random"))[1:] == [fx.CannotSwitch(T, alice, "random")]
    joined(h, "carol")  # queued in general
    carol = h.members["carol"]
    assert run(h, ev.Drop("alice2")) == []  # nobody waited behind it in random
    assert run(h, ev.Input("alice", "/switch random"))[1:] == [
        fx.Left(T, (), "alice", True),
        fx.Reschedule(carol),
        fx.Roster(carol, ["carol"]),
        fx.Joined(T, (carol,), "carol", "general"),
        fx.Welcome(T, alice, "random"),
        fx.QueuePosition(T, alice, 0),
    ]


def test_usage_and_raw_send_lines_are_notices() -> None:
    h = hub()
    (alice,) = joined(h, "alice")
    assert run(h, ev.Input("alice", "/whisper"))[1:] == [
        fx.Notice(alice, "usage: /whisper <username> <message>")
    ]
    assert run(h, ev.Input("alice", "/send bob file"))[1:] == [
        fx.Notice(alice, "this client does not support /send")
    ]


def test_a_lost_connection_leaves_silently() -> None:
    h = hub()
    _, bob = joined(h, "alice", "bob")
    # Said as quiet: no contract line announces it (only IRC's member lists follow it).
    (left,) = run(h, ev.Drop("alice"))
    assert left == fx.Left(T, (bob,), "alice", False, quiet=True)
    assert isinstance(left, fx.Left)
    assert terminal.frames(left) == [] and log.line(left) is None and browser.frames(left) == []
    assert list(h.channels["general"].members) == ["bob"]


# ----- the server console -----


def test_kick_tells_the_channel_and_the_log() -> None:
    h = hub()
    alice, bob = joined(h, "alice", "bob")
    assert run(h, ev.ConsoleLine("/kick general:alice")) == [
        fx.Disconnect(alice, EXIT_OK, "kicked by the server operator", Cause.KICKED),
        fx.Kicked(T, (bob,), "alice"),
    ]
    assert run(h, ev.ConsoleLine("/kick nowhere:bob")) == [fx.NotFound(T, None, "nowhere")]
    assert run(h, ev.ConsoleLine("/kick general:zed")) == [fx.NotInChannel(T, "zed", "general")]


def test_mute_freezes_the_afk_timer_and_refuses_lines() -> None:
    h = hub()
    alice, bob = joined(h, "alice", "bob")
    assert run(h, ev.ConsoleLine("/mute general:alice 30"), now=10.0) == [
        fx.Reschedule(alice),
        fx.Muted(T, alice, (bob,), 30),
    ]
    assert alice.afk_deadline == 130.0  # 90 s were left when the mute began
    assert run(h, ev.Input("alice", "hi"), now=20.5) == [fx.StillMuted(T, alice, 19)]
    assert run(h, ev.ConsoleLine("/mute general:alice x")) == [fx.InvalidMuteTime(T)]
    assert run(h, ev.ConsoleLine("/mute general:zed 5")) == [fx.NotHere(T, None, "zed")]


def test_empty_disconnects_every_member_and_admits_the_queue() -> None:
    h = hub(capacity=1)
    joined(h, "alice", "bob")
    alice, bob = h.members["alice"], h.members["bob"]
    assert run(h, ev.ConsoleLine("/empty general")) == [
        fx.Disconnect(alice, EXIT_OK, "general was emptied by the operator", Cause.EMPTIED),
        fx.Emptied(T, "general"),
        fx.Reschedule(bob),
        fx.Roster(bob, ["bob"]),
        fx.Joined(T, (bob,), "bob", "general"),
    ]


def test_after_shutdown_nothing_happens() -> None:
    h = hub()
    joined(h, "alice")
    assert run(h, ev.ConsoleLine("/shutdown")) == [fx.StopServer()]
    assert run(h, ev.Input("alice", "hi")) == []
    assert run(h, ev.Join("b", "general", "bob")) == []


# ----- inactivity (AFK) -----


def test_afk_removes_a_member_whose_deadline_passed() -> None:
    h = hub()
    alice, bob = joined(h, "alice", "bob")
    assert run(h, ev.AfkDue("alice"), now=50.0) == [fx.Reschedule(alice)]  # not yet
    assert run(h, ev.AfkDue("alice"), now=100.0) == [
        fx.WentAfk(T, (bob,), "alice"),
        fx.Disconnect(alice, EXIT_OK, "disconnected for inactivity", Cause.AFK),
    ]
    assert alice.afk_deadline == math.inf


def test_a_moving_file_keeps_both_ends_awake() -> None:
    h = hub()
    alice, bob = joined(h, "alice", "bob")
    assert run(h, ev.TransferStarted("alice", "bob")) == []
    assert run(h, ev.AfkDue("alice"), now=100.0) == [fx.Reschedule(alice)]
    assert alice.afk_deadline == 200.0
    assert run(h, ev.TransferProgress("bob"), now=150.0) == [fx.Reschedule(bob)]
    assert run(h, ev.TransferEnded("alice", "bob")) == []
    assert (alice.transfers, bob.transfers) == (0, 0)


def test_awake_restarts_timers_and_keeps_a_mute_frozen() -> None:
    h = hub()
    alice, bob = joined(h, "alice", "bob")
    run(h, ev.ConsoleLine("/mute general:bob 60"), now=0.0)
    assert run(h, ev.Awake(("alice", "bob")), now=30.0) == [
        fx.Reschedule(alice),
        fx.Reschedule(bob),
    ]
    assert alice.afk_deadline == 130.0 and bob.afk_deadline == 160.0


def test_flooding_removes_a_member_as_a_kick_does_without_the_log_line() -> None:
    h = hub()
    alice, bob = joined(h, "alice", "bob")
    assert run(h, ev.Flooded("alice", "excess flood")) == [
        fx.Disconnect(alice, EXIT_OK, "excess flood", Cause.FLOODED),
        fx.Console("disconnected alice from general: excess flood"),
        fx.Left(T, (bob,), "alice", False),
    ]


# ----- sending a file -----


def test_an_offer_names_its_target_or_says_why_not_in_order() -> None:
    h = hub()
    alice, bob = joined(h, "alice", "bob")
    assert run(h, ev.Offer("alice", "bob", "f.txt", True, 7)) == [
        fx.Reschedule(alice),
        fx.OfferDecided(alice.conn, 7, bob),
    ]
    assert run(h, ev.Offer("alice", "zed", "nope.txt", False, 8)) == [
        fx.Reschedule(alice),
        fx.NotHere(T, alice, "zed"),
        fx.NotFound(T, alice, "nope.txt"),
        fx.OfferDecided(alice.conn, 8, None),
    ]
    # Gone meanwhile: answered all the same.
    (decided,) = run(h, ev.Offer("ghost", "bob", "f", True, 9))
    assert isinstance(decided, fx.OfferDecided) and decided.target is None


def test_a_delivered_file_is_told_to_its_sender_and_the_log() -> None:
    h = hub()
    alice, _ = joined(h, "alice", "bob")
    assert run(h, ev.FileDelivered("alice", "bob", "f.txt")) == [
        fx.FileSent(T, alice, "bob", "f.txt")
    ]


def test_every_event_has_its_rule_and_every_effect_a_rendering() -> None:
    from trio_chat import hub as hub_module
    from trio_chat.render import browser, log, terminal

    assert set(hub_module._RULES) == set(ev.EVENTS)
    said = set(typing.get_args(fx.Said))
    # Each effect that says something is rendered for a member or the log;
    # whatever a terminal is told, a browser is told too.
    assert said == set(terminal._RENDER) | set(log._LINE)
    assert set(terminal._RENDER) == set(browser._RENDER)
    assert not said & set(typing.get_args(fx.Control))


# ----- what IRC connections ask for (events.Say, Tell, Leave, ClaimNick) -----


def test_say_is_chat_taken_as_it_is_and_keeps_its_style() -> None:
    h = hub()
    alice, bob = joined(h, "alice", "bob")
    # A line that looks like a command is still chat: IRC sends no commands as text.
    assert run(h, ev.Say("alice", "/quit", ev.ACTION), now=7.0) == [
        fx.Reschedule(alice),
        fx.Chat(T, (alice, bob), "alice", "/quit", ev.ACTION, seq=1, at=7.0),
    ]
    assert alice.afk_deadline == 107.0 and alice.channel is not None
    effects = run(h, ev.Say("bob", "hi", "shouting"))
    assert effects[-1] == fx.Chat(
        T, (alice, bob), "bob", "hi", ev.CHAT, seq=2
    )  # unknown style: chat


def test_a_muted_or_queued_member_cannot_say_or_tell() -> None:
    h = hub(capacity=1)
    alice, carol = joined(h, "alice", "carol")
    run(h, ev.ConsoleLine("/mute general:alice 30"))
    assert run(h, ev.Say("alice", "hi"), now=1.0) == [fx.StillMuted(T, alice, 29)]
    assert run(h, ev.Tell("carol", "alice", "psst")) == [fx.QueuePosition(T, carol, 0)]


def test_tell_is_a_whisper_in_the_members_channel() -> None:
    h = hub()
    alice, bob = joined(h, "alice", "bob")
    assert run(h, ev.Tell("alice", "bob", "psst"))[-1] == fx.Whisper(
        T, bob, "alice", "bob", "psst", sender_member=alice
    )
    assert run(h, ev.Tell("alice", "nobody", "psst"))[-2:] == [
        fx.NotHere(T, alice, "nobody"),
        fx.Whisper(T, None, "alice", "nobody", "psst", sender_member=alice),
    ]


def test_leave_is_quit_announced_to_the_channel() -> None:
    h = hub()
    alice, bob = joined(h, "alice", "bob")
    assert run(h, ev.Leave("alice")) == [
        fx.Reschedule(alice),
        fx.Left(T, (bob,), "alice", True),
        fx.Disconnect(alice, EXIT_OK, "you left the chat", Cause.LEFT),
    ]


def test_an_irc_join_needs_a_name_free_in_every_ascii_case() -> None:
    h = hub()
    joined(h, "alice")
    effects = run(h, ev.Join("irc", "general", "ALICE", via_irc=True))
    assert [type(e) for e in effects] == [fx.CannotConnect, fx.Disconnect]
    assert typing.cast(fx.Disconnect, effects[1]).cause is Cause.NAME_TAKEN
    # A terminal's names are compared as they are (behaviour.md, "Usernames").
    assert isinstance(run(h, ev.Join("native", "general", "ALICE"))[0], fx.Welcome)


def test_a_queued_name_clashes_with_an_irc_join_until_it_leaves_the_queue() -> None:
    h = hub(capacity=1)
    joined(h, "alice")
    run(h, ev.Join("t", "general", "Bob"))  # queued
    bob = h.members["t"]
    effects = run(h, ev.Join("irc", "general", "bob", via_irc=True))
    assert [type(e) for e in effects] == [fx.CannotConnect, fx.Disconnect]
    assert typing.cast(fx.Disconnect, effects[1]).reason == "the name bob is already in general"
    assert run(h, ev.Drop("t")) == []  # nobody waited behind it
    irc = run(h, ev.Join("irc", "general", "bob", via_irc=True))
    assert irc == [
        fx.Welcome(T, h.members["irc"], "general"),
        fx.QueuePosition(T, h.members["irc"], 0),
    ]
    assert bob.channel is None


def test_a_name_promoted_from_the_queue_still_clashes_with_an_irc_join() -> None:
    h = hub(capacity=1)
    joined(h, "alice")
    run(h, ev.Join("t", "general", "Bob"))
    run(h, ev.Input("alice", "/quit"))  # Bob moves from the queue into the channel
    assert h.members["t"].admitted
    effects = run(h, ev.Join("irc", "general", "BOB", via_irc=True))
    assert [type(e) for e in effects] == [fx.CannotConnect, fx.Disconnect]
    # alice's name is free in any case now.
    assert isinstance(run(h, ev.Join("irc2", "general", "ALICE", via_irc=True))[0], fx.Welcome)


def test_two_terminal_names_in_one_case_fold_free_only_when_both_are_gone() -> None:
    h = hub(capacity=1)
    joined(h, "Bob")
    run(h, ev.Join("b2", "general", "bob"))  # terminal names keep their case: queued
    general = h.channels["general"]
    assert general.folded == {"bob": 2}
    run(h, ev.Input("Bob", "/quit"))  # the queued "bob" is admitted
    assert general.folded == {"bob": 1} and list(general.members) == ["bob"]
    assert isinstance(run(h, ev.Join("irc", "general", "BOB", via_irc=True))[1], fx.Disconnect)
    run(h, ev.Drop("b2"))
    assert general.folded == {}
    assert isinstance(run(h, ev.Join("irc", "general", "BOB", via_irc=True))[0], fx.Welcome)


def test_a_channel_counts_its_folded_names_through_every_move() -> None:
    """state.Channel.folded: every name in ``members`` and ``queued_names``,
    folded as IRC folds it, counted; what ``_clash`` looks up."""
    channel = Channel(ChannelConfig("general", 1, 2))

    def folded_by_hand() -> Counter[str]:
        return Counter(fold_nick(name) for name in (*channel.members, *channel.queued_names))

    alice, bob, carol, dave = (Member(n, n, Conn(n)) for n in ("Alice", "bob", "BOB", "dave"))  # type: ignore[arg-type]
    channel.admit(alice)
    channel.admit(bob)
    channel.admit(bob)  # (admitted again: one name still)
    channel.enqueue(carol)
    channel.enqueue(dave)
    assert channel.folded == folded_by_hand() == {"alice": 1, "bob": 2, "dave": 1}
    channel.remove("bob")
    assert channel.folded == folded_by_hand() == {"alice": 1, "bob": 1, "dave": 1}
    assert channel.dequeue() is carol  # promoted: out of the queue, into the channel
    channel.admit(carol)
    assert channel.folded == folded_by_hand() == {"alice": 1, "bob": 1, "dave": 1}
    assert channel.queue == [dave] and channel.queued_names == {"dave"}
    assert channel.dequeue(0) is dave  # left the queue
    channel.remove("Alice")
    channel.remove("BOB")
    assert channel.folded == folded_by_hand() == {}  # no zeros kept
    assert not channel.members and not channel.queue and not channel.queued_names


def nick_answer(effects: list[fx.Effect]) -> tuple[str, bool]:
    (answer,) = effects
    assert isinstance(answer, fx.NickDecided)
    return answer.nick, answer.accepted


def test_nicks_are_first_come_first_served_without_ascii_case() -> None:
    h = hub()
    assert nick_answer(run(h, ev.ClaimNick("c1", "Alice"))) == ("Alice", True)
    assert nick_answer(run(h, ev.ClaimNick("c2", "aLICE"))) == ("aLICE", False)
    # Its holder may change its case, or take another and free the first.
    assert nick_answer(run(h, ev.ClaimNick("c1", "ALICE"))) == ("ALICE", True)
    assert nick_answer(run(h, ev.ClaimNick("c1", "alicia"))) == ("alicia", True)
    assert nick_answer(run(h, ev.ClaimNick("c2", "alice"))) == ("alice", True)
    # A connection's nick is free again when it goes.
    run(h, ev.Drop("c1"))
    assert h.nick_of == {"c2": "alice"} and h.nicks == {"alice": "c2"}
    assert nick_answer(run(h, ev.ClaimNick("c3", "Alicia"))) == ("Alicia", True)


def test_a_queued_terminal_name_is_taken_for_irc_until_it_leaves_the_queue() -> None:
    h = hub(capacity=1)
    joined(h, "alice", "Carol")  # Carol waits in general's queue
    assert nick_answer(run(h, ev.ClaimNick("c1", "carol"))) == ("carol", False)
    run(h, ev.Drop("Carol"))
    assert nick_answer(run(h, ev.ClaimNick("c1", "carol"))) == ("carol", True)


def test_an_irc_member_in_a_channel_does_not_hold_another_case_of_its_nick() -> None:
    # Only its claim does (hub.nicks): taken back in another case it is free.
    h = hub()
    assert nick_answer(run(h, ev.ClaimNick("m", "dave"))) == ("dave", True)
    run(h, ev.Join("m", "general", "dave", via_irc=True))
    assert nick_answer(run(h, ev.ClaimNick("m", "DAVE"))) == ("DAVE", True)
    assert nick_answer(run(h, ev.ClaimNick("other", "Dave"))) == ("Dave", False)


def test_a_file_cannot_go_to_an_irc_member() -> None:
    h = hub()
    (alice,) = joined(h, "alice")
    run(h, ev.Join("irc", "general", "bob", via_irc=True))
    effects = run(h, ev.Offer("alice", "bob", "notes.txt", True, 1))
    assert effects[1:] == [
        fx.Notice(alice, "bob is on IRC, which cannot receive files"),
        fx.OfferDecided(alice.conn, 1, None),
    ]


def test_leave_carries_an_irc_part_or_quit_message() -> None:
    h = hub()
    _, bob = joined(h, "alice", "bob")
    effects = run(h, ev.Leave("alice", "bye everyone", quit=True))
    assert effects[1] == fx.Left(T, (bob,), "alice", True, reason="bye everyone", quit=True)


def test_an_irc_nick_and_a_terminal_name_never_meet_in_any_case() -> None:
    h = hub()
    joined(h, "alice", channel="random")
    # A nick a terminal member holds (in any case) is taken.
    assert nick_answer(run(h, ev.ClaimNick("c1", "ALICE"))) == ("ALICE", False)
    assert nick_answer(run(h, ev.ClaimNick("c1", "bob"))) == ("bob", True)
    # And a terminal name an IRC user holds as its nick cannot join anywhere.
    effects = run(h, ev.Join("t", "general", "Bob"))
    assert [type(e) for e in effects] == [fx.CannotConnect, fx.Disconnect]
    # The IRC user itself joins with its nick, of course.
    assert isinstance(run(h, ev.Join("m", "general", "bob", via_irc=True))[0], fx.Welcome)


def test_tell_keeps_its_style() -> None:
    h = hub()
    alice, bob = joined(h, "alice", "bob")
    assert run(h, ev.Tell("alice", "bob", "waves", ev.ACTION))[-1] == fx.Whisper(
        T, bob, "alice", "bob", "waves", ev.ACTION, sender_member=alice
    )
    (frame,) = terminal.frames(fx.Whisper(T, bob, "alice", "bob", "waves", ev.ACTION))
    assert frame[1].endswith(b"[alice whispers to you: (12:00:00)] * alice waves")


def test_a_sent_whisper_shows_in_the_senders_page_only() -> None:
    """docs/web.md, "whispered": the page shows its own whisper; the
    terminal, the server's log and IRC (echo-message) print what they did."""
    h = hub()
    alice, bob = joined(h, "alice", "bob")
    (whisper,) = [
        e for e in run(h, ev.Input("alice", "/whisper bob psst")) if isinstance(e, fx.Whisper)
    ]
    assert [(who, json_of(frame)) for who, frame in browser.frames(whisper)] == [
        ((bob,), {"event": "whisper", "stamp": T, "sender": "alice", "message": "psst"}),
        ((alice,), {"event": "whispered", "stamp": T, "to": "bob", "message": "psst"}),
    ]
    unsent = fx.Whisper(T, bob, "alice", "bob", "psst")
    assert terminal.frames(whisper) == terminal.frames(unsent)
    assert log.line(whisper) == log.line(unsent)
    # Not here: the NotHere says so, and nothing says it was sent.
    (lost,) = [
        e for e in run(h, ev.Input("alice", "/whisper zed psst")) if isinstance(e, fx.Whisper)
    ]
    assert browser.frames(lost) == []
    # To oneself: once, as a whisper received.
    (own,) = [
        e for e in run(h, ev.Input("alice", "/whisper alice hm")) if isinstance(e, fx.Whisper)
    ]
    assert [json_of(frame)["event"] for _, frame in browser.frames(own)] == ["whisper"]
    action = fx.Whisper(T, bob, "alice", "bob", "waves", ev.ACTION, sender_member=alice)
    assert json_of(browser.frames(action)[1][1])["action"] is True


def json_of(frame: bytes) -> dict[str, object]:
    """An EVENT frame's JSON (wire.py: a 5-byte header, then the payload)."""
    decoded = json.loads(frame[5:])
    assert isinstance(decoded, dict)
    return decoded
