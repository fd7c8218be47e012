"""Inactivity (behaviour.md, "Inactivity (AFK)") on trio's MockClock: AFK fires
exactly on time, mutes freeze it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import trio
import trio.testing

from .harness import Harness, Peer, chat, running_server, settle, srv

AFK = srv("alice went AFK.")


@pytest.fixture
async def timed() -> AsyncIterator[Harness]:
    async with running_server() as running:
        yield running


# pytest-trio takes the clock only from a test's own arguments, so every test
# here names autojump_clock itself.
Clock = trio.testing.MockClock


async def keep_active(peer: Peer) -> None:
    """Make ``peer`` type something every 10 s so only the test's subject idles."""
    while True:
        await trio.sleep(10)
        await peer.say("/list")


async def start(harness: Harness) -> tuple[Peer, Peer, float]:
    """alice idles, bob stays active and watches for alice's AFK line."""
    alice = await harness.join("alice")
    bob = await harness.join("bob")
    harness.nursery.start_soon(keep_active, bob)
    bob.take()
    alice.take()
    harness.printed_lines()
    return alice, bob, trio.current_time()


async def until_afk(bob: Peer) -> float:
    while True:
        line = await bob.next_line()
        if line == AFK:
            return trio.current_time()


async def test_afk_fires_at_exactly_the_timeout(timed: Harness, autojump_clock: Clock) -> None:
    alice, bob, joined = await start(timed)
    assert await until_afk(bob) == joined + 100
    assert timed.printed_lines() == [AFK]
    await settle()
    assert alice.closed and alice.take() == []


async def test_afk_not_before_timeout(timed: Harness, autojump_clock: Clock) -> None:
    alice, _bob, joined = await start(timed)
    await trio.sleep_until(joined + 99.999)
    await settle()
    assert timed.printed_lines() == []
    assert not alice.closed


async def test_activity_resets_afk(timed: Harness, autojump_clock: Clock) -> None:
    alice, bob, joined = await start(timed)
    await trio.sleep(60)
    await alice.say("/list")
    assert await until_afk(bob) == joined + 160


async def test_queued_time_does_not_count(timed: Harness, autojump_clock: Clock) -> None:
    members = [await timed.join(f"u{i}") for i in range(5)]
    for member in members[1:]:
        timed.nursery.start_soon(keep_active, member)
    alice = await timed.join("alice")
    await trio.sleep(50)
    await members[0].say("/quit")
    await settle()
    admitted = trio.current_time()
    assert timed.printed_lines()[-1] == srv("alice has joined the general channel.")
    assert await until_afk(members[1]) == admitted + 100
    await settle()
    assert alice.closed


async def test_mute_freezes_afk_timer(timed: Harness, autojump_clock: Clock) -> None:
    alice, bob, joined = await start(timed)
    await trio.sleep(30)  # 70 s of AFK left
    timed.console("/mute general:alice 20")
    await trio.sleep(5)
    await alice.say("typing while muted does not count")
    assert await until_afk(bob) == joined + 30 + 20 + 70


async def test_mute_expires_and_activity_resets(timed: Harness, autojump_clock: Clock) -> None:
    alice, bob, joined = await start(timed)
    timed.console("/mute general:alice 10")
    await trio.sleep(10)
    await alice.say("back")
    await settle()
    assert chat("alice", "back") in bob.take()
    assert await until_afk(bob) == joined + 10 + 100


async def test_afk_frees_place_for_queue(timed: Harness, autojump_clock: Clock) -> None:
    await timed.join("alice")
    for i in range(4):
        timed.nursery.start_soon(keep_active, await timed.join(f"u{i}"))
    waiting = await timed.join("waiting")
    waiting.take()
    timed.printed_lines()
    start_time = trio.current_time()
    assert await waiting.next_line() == srv("waiting has joined the channel.")
    assert trio.current_time() == start_time + 100
    assert timed.printed_lines() == [AFK, srv("waiting has joined the general channel.")]
