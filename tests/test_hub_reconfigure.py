"""A reload's rules, sans-I/O (events.Reconfigure; docs/behaviour.md,
"Reloading the config"): each change with members and a queue present,
the exact effects out."""

from __future__ import annotations

from trio_chat import effects as fx
from trio_chat import events as ev
from trio_chat import history as hist
from trio_chat.config import ChannelConfig
from trio_chat.hub import EXIT_OK, EXIT_REFUSED, Hub, Member
from trio_chat.render import log
from trio_chat.state import Cause

T = "12:00:00"
GENERAL = ("general", 1, 2)
RANDOM = ("random", 2, 2)


class Conn:
    def __init__(self, ref: str) -> None:
        self.ref = ref


def hub(history: hist.HistoryConfig = hist.NO_HISTORY) -> Hub:
    channels = [ChannelConfig(*GENERAL), ChannelConfig(*RANDOM)]
    return Hub(channels, connection_for=Conn, history=history)  # type: ignore[arg-type]


def run(h: Hub, event: ev.Event, now: float = 0.0) -> list[fx.Effect]:
    return h.handle(event, now, T)


def joined(h: Hub, *names: str, channel: str = "general") -> list[Member]:
    for name in names:
        run(h, ev.Join(name, channel, name))
    return [h.members[name] for name in names]


def configs(*channels: tuple[str, int, int]) -> list[ChannelConfig]:
    return [ChannelConfig(*c) for c in channels]


def test_the_same_config_changes_nothing() -> None:
    h = hub()
    joined(h, "alice", "bob", "carol")
    effects = run(h, ev.Reconfigure((GENERAL, RANDOM)))
    assert effects == [fx.Reconfigured(configs(GENERAL, RANDOM))]
    assert [m.name for m in h.channels["general"].queue] == ["carol"]


def test_a_new_channel_starts_empty_and_the_order_is_the_new_config_s() -> None:
    h = hub()
    (alice,) = joined(h, "alice")
    lobby = ("lobby", 3, 5)
    effects = run(h, ev.Reconfigure((lobby, RANDOM, GENERAL)))
    assert effects == [fx.Reconfigured(configs(lobby, RANDOM, GENERAL))]
    assert list(h.channels) == ["lobby", "random", "general"]
    assert not h.channels["lobby"].members and not h.channels["lobby"].queue
    # /list follows the new order; alice is where she was.
    listing = run(h, ev.Input("alice", "/list"))[-1]
    assert isinstance(listing, fx.Listing)
    assert [(r.name, r.members, r.capacity, r.queued) for r in listing.rows] == [
        ("lobby", 0, 5, 0),
        ("random", 0, 2, 0),
        ("general", 1, 2, 0),
    ]
    assert alice.channel is h.channels["general"]
    # And it takes members.
    run(h, ev.Join("dave", "lobby", "dave"))
    assert h.members["dave"].admitted


def test_a_larger_capacity_admits_the_queue_in_order_with_the_usual_lines() -> None:
    h = hub()
    alice, bob, carol, dave, erin = joined(h, "alice", "bob", "carol", "dave", "erin")
    effects = run(h, ev.Reconfigure((("general", 1, 4), RANDOM)), now=7.0)
    assert effects == [
        fx.Reschedule(carol),
        fx.Roster(carol, ["alice", "bob", "carol"]),
        fx.Joined(T, (alice, bob, carol), "carol", "general"),
        fx.Reschedule(dave),
        fx.Roster(dave, ["alice", "bob", "carol", "dave"]),
        fx.Joined(T, (alice, bob, carol, dave), "dave", "general"),
        fx.QueuePosition(T, erin, 0),
        fx.Reconfigured(configs(("general", 1, 4), RANDOM)),
    ]
    assert carol.admitted and dave.admitted and not erin.admitted
    assert carol.afk_deadline == 107.0
    lines = [log.line(e) for e in effects if isinstance(e, fx.Joined)]
    assert lines == [
        f"[Server message ({T})] carol has joined the general channel.",
        f"[Server message ({T})] dave has joined the general channel.",
    ]


def test_a_smaller_capacity_keeps_members_and_admits_nobody_until_below_it() -> None:
    h = hub()
    run(h, ev.Reconfigure((("general", 1, 4), RANDOM)))
    alice, bob, carol, dave, erin = joined(h, "alice", "bob", "carol", "dave", "erin")
    assert [m.admitted for m in (alice, bob, carol, dave, erin)] == [True] * 4 + [False]
    effects = run(h, ev.Reconfigure((GENERAL, RANDOM)))
    assert effects == [fx.Reconfigured(configs(GENERAL, RANDOM))]
    assert list(h.channels["general"].members) == ["alice", "bob", "carol", "dave"]
    # Two leave: still at the capacity of 2, nobody is let in.
    run(h, ev.Drop("alice"))
    effects = run(h, ev.Drop("bob"))
    assert effects == [fx.Left(T, (carol, dave), "bob", False, quiet=True)]
    assert not erin.admitted
    # One more: below it, erin comes in.
    effects = run(h, ev.Drop("carol"))
    assert fx.Joined(T, (dave, erin), "erin", "general") in effects
    assert erin.admitted


def test_a_removed_channel_s_members_and_queue_go_with_the_reason() -> None:
    h = hub()
    alice, bob, carol = joined(h, "alice", "bob", "carol", channel="random")
    (dave,) = joined(h, "dave")
    effects = run(h, ev.Reconfigure((GENERAL, ("lobby", 3, 5))))
    reason = "the operator removed the channel random"
    assert effects == [
        fx.Disconnect(alice, EXIT_OK, reason, Cause.EMPTIED),
        fx.Disconnect(bob, EXIT_OK, reason, Cause.EMPTIED),
        fx.Disconnect(carol, EXIT_OK, reason, Cause.EMPTIED),
        fx.ChannelRemoved(T, "random"),
        fx.Reconfigured(configs(GENERAL, ("lobby", 3, 5))),
    ]
    assert log.line(effects[3]) == f"[Server message ({T})] random has been removed."  # type: ignore[arg-type]
    assert list(h.channels) == ["general", "lobby"]
    assert all(m.channel is None for m in (alice, bob, carol))
    assert dave.channel is h.channels["general"]
    # Their connections' drops follow, silently.
    for ref in ("alice", "bob", "carol"):
        assert run(h, ev.Drop(ref)) == []
    assert set(h.members) == {"dave"}


def test_a_removed_channel_s_history_is_forgotten() -> None:
    h = hub(hist.HistoryConfig(10, 10_000, False))
    joined(h, "alice", channel="random")
    run(h, ev.Input("alice", "hello"), now=1.0)
    effects = run(h, ev.Reconfigure((GENERAL, ("lobby", 3, 5))), now=2.0)
    assert fx.Forgotten("random", 2.0) in effects
    # Put back later, it starts with nothing.
    run(h, ev.Reconfigure((GENERAL, RANDOM)))
    assert not h.channels["random"].history.entries


def test_a_moved_channel_keeps_its_members_and_queue() -> None:
    h = hub()
    *_, carol = joined(h, "alice", "bob", "carol")
    effects = run(h, ev.Reconfigure((("general", 9, 2), RANDOM)))
    assert effects == [fx.Reconfigured(configs(("general", 9, 2), RANDOM))]
    general = h.channels["general"]
    assert general.config.port == 9
    assert list(general.members) == ["alice", "bob"] and general.queue == [carol]


def test_a_hello_to_a_channel_removed_meanwhile_is_refused() -> None:
    h = hub()
    run(h, ev.Reconfigure((GENERAL, ("lobby", 3, 5))))
    effects = run(h, ev.Join("x", "random", "xavier"))
    (refusal,) = effects
    assert isinstance(refusal, fx.Disconnect)
    assert refusal.status == EXIT_REFUSED and refusal.cause is Cause.REFUSED
    assert refusal.reason == "refused: there is no channel random any more"
    assert "x" not in h.members


def test_reload_on_the_console_is_the_server_s_not_the_rules() -> None:
    from trio_chat import commands as cmd

    assert cmd.parse_console_line("/reload") == cmd.Reload()
    assert cmd.parse_console_line("/reload now") == cmd.Usage("usage: /reload")
    assert run(hub(), ev.ConsoleLine("/reload")) == []
