"""The server console in process (behaviour.md, "The server console"): /kick,
/mute, /empty and /shutdown."""

from __future__ import annotations

import pytest
import trio

from .harness import STAMP, Harness, Peer, settle, srv


def clear(harness: Harness, *peers: Peer) -> None:
    harness.printed_lines()
    for peer in peers:
        peer.take()


async def test_kick_member(harness: Harness) -> None:
    alice = await harness.join("alice")
    bob = await harness.join("bob")
    clear(harness, alice, bob)
    harness.console("/kick general:bob")
    await settle()
    assert harness.printed_lines() == [srv("Kicked bob.")]
    assert alice.take() == [srv("bob has left the channel.")]
    assert bob.take() == []
    assert bob.closed


async def test_kick_unknown_channel_and_absent_user(harness: Harness) -> None:
    alice = await harness.join("alice")
    await harness.join("bob", "random")
    clear(harness, alice)
    harness.console("/kick nowhere:alice")
    harness.console("/kick general:bob")
    harness.console("/kick general:nobody")
    await settle()
    assert harness.printed_lines() == [
        srv("nowhere does not exist."),
        srv("bob is not in general."),
        srv("nobody is not in general."),
    ]
    assert alice.take() == []


async def test_kick_queued_client_is_not_in_channel(harness: Harness) -> None:
    for i in range(5):
        await harness.join(f"u{i}")
    queued = await harness.join("queued")
    clear(harness, queued)
    harness.console("/kick general:queued")
    await settle()
    assert harness.printed_lines() == [srv("queued is not in general.")]
    assert not queued.closed


async def test_kick_frees_place_for_queue(harness: Harness) -> None:
    members = [await harness.join(f"u{i}") for i in range(5)]
    queued = await harness.join("queued")
    clear(harness, queued, *members)
    harness.console("/kick general:u3")
    await settle()
    assert harness.printed_lines() == [
        srv("Kicked u3."),
        srv("queued has joined the general channel."),
    ]
    assert members[0].take() == [
        srv("u3 has left the channel."),
        srv("queued has joined the channel."),
    ]
    assert queued.take() == [srv("queued has joined the channel.")]


async def test_malformed_console_lines_print_nothing(harness: Harness) -> None:
    alice = await harness.join("alice")
    clear(harness, alice)
    for line in (
        "/kick",
        "/kick general",
        "/kick a:b c",
        "/empty",
        "/empty a b",
        "/shutdown now",
        "hello",
        "/unknown x",
        "   ",
    ):
        harness.console(line)
    await settle()
    assert harness.printed_lines() == []
    assert not alice.closed


@pytest.mark.parametrize(
    "seconds",
    ["0", "-5", "abc", "1.5", "", "31536001", "9" * 31, "4" * 400],
    ids=["zero", "negative", "word", "fraction", "missing", "over-a-year", "31-digits", "400"],
)
async def test_invalid_mute_time(harness: Harness, seconds: str) -> None:
    alice = await harness.join("alice")
    clear(harness, alice)
    harness.console(f"/mute general:alice {seconds}")
    await settle()
    assert harness.printed_lines() == [srv("Invalid mute time.")]
    assert alice.take() == []


async def test_mute_absent_targets(harness: Harness) -> None:
    await harness.join("alice")
    harness.printed_lines()
    harness.console("/mute nowhere:alice 10")
    harness.console("/mute general:bob 10")
    await settle()
    assert harness.printed_lines() == [srv("alice is not here."), srv("bob is not here.")]


async def test_mute_announces_and_refuses_chat_and_whisper(
    harness: Harness, autojump_clock: trio.testing.MockClock
) -> None:
    alice = await harness.join("alice")
    bob = await harness.join("bob")
    clear(harness, alice, bob)
    harness.console("/mute general:alice 10")
    await settle()
    assert harness.printed_lines() == [srv("Muted alice for 10 seconds.")]
    assert alice.take() == [srv("You have been muted for 10 seconds.")]
    assert bob.take() == [srv("alice has been muted for 10 seconds.")]

    await trio.sleep(3.5)
    await alice.say("can you hear me")
    await alice.say("/whisper bob psst")
    await alice.say("/list")
    await settle()
    assert alice.take() == [
        srv("You are still muted for 6 seconds."),
        srv("You are still muted for 6 seconds."),
        "[Channel] general 2/5/0.",
        "[Channel] random 0/5/0.",
        "[Channel] help 0/5/0.",
    ]
    assert bob.take() == []
    assert harness.printed_lines() == []

    await trio.sleep(6.4)  # 0.1 s left: rounds down to 0, reported as 1
    await alice.say("now?")
    await settle()
    assert alice.take() == [srv("You are still muted for 1 seconds.")]

    await trio.sleep(0.1)
    await alice.say("free")
    await settle()
    assert bob.take() == [f"[alice ({STAMP})] free"]


async def test_empty_channel(harness: Harness) -> None:
    members = [await harness.join(f"u{i}") for i in range(5)]
    queued = [await harness.join(f"q{i}") for i in range(2)]
    bystander = await harness.join("other", "random")
    clear(harness, bystander, *members, *queued)
    harness.console("/empty general")
    await settle()
    assert harness.printed_lines() == [
        srv("general has been emptied."),
        srv("q0 has joined the general channel."),
        srv("q1 has joined the general channel."),
    ]
    for member in members:
        assert member.closed and member.take() == []
    # Both move in on the same pass, so q1 is never told it is next in line.
    assert queued[0].take() == [
        srv("q0 has joined the channel."),
        srv("q1 has joined the channel."),
    ]
    assert queued[1].take() == [srv("q1 has joined the channel.")]
    assert bystander.take() == [] and not bystander.closed


async def test_empty_unknown_channel(harness: Harness) -> None:
    harness.console("/empty nowhere")
    await settle()
    assert harness.printed_lines() == [srv("nowhere does not exist.")]


async def test_shutdown_closes_everyone_silently(harness: Harness) -> None:
    members = [await harness.join(f"u{i}") for i in range(6)]
    elsewhere = await harness.join("x", "help")
    clear(harness, elsewhere, *members)
    harness.console("/shutdown")
    await settle()
    assert harness.server.stopped.is_set()
    assert harness.server.hub.closed
    assert harness.printed_lines() == []
    for peer in (*members, elsewhere):
        assert peer.take() == []


async def test_a_year_is_the_longest_mute(harness: Harness) -> None:
    alice = await harness.join("alice")
    clear(harness, alice)
    harness.console("/mute general:alice 31536000")
    await settle()
    assert harness.printed_lines() == [srv("Muted alice for 31536000 seconds.")]
