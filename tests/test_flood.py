"""Flood control and per-address limits (README, "Flood control", "Per-address
limits"): on trio's MockClock in process, and over loopback sockets."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from trio_chat.server.admission import AddressGate
from trio_chat.server.core import Limits
from trio_chat.server.flood import TokenBucket

from .harness import Peer, chat, eventually, running_server, srv

Clock = trio.testing.MockClock


async def arrival_times(peer: Peer, count: int, sender: str) -> list[float]:
    """When each of the next ``count`` chat lines from ``sender`` reaches ``peer``."""
    times: list[float] = []
    while len(times) < count:
        line = await peer.next_line()
        if line.startswith(f"[{sender} ("):
            times.append(trio.current_time())
    return times


async def test_a_burst_is_allowed_then_the_rate_holds(autojump_clock: Clock) -> None:
    async with running_server() as harness:
        mallory = await harness.join("mallory")
        bob = await harness.join("bob")
        bob.take()
        start = trio.current_time()
        for i in range(30):
            await mallory.say(f"line {i}")
        times = [t - start for t in await arrival_times(bob, 30, "mallory")]
        limits = Limits()
        burst, rate = limits.flood_burst, limits.flood_rate
        assert all(t < 0.01 for t in times[:burst])
        for i in range(burst, 30):
            assert times[i] == pytest.approx((i - burst + 1) / rate, abs=0.011)
        assert not mallory.closed


async def test_others_keep_talking_promptly_while_one_floods(autojump_clock: Clock) -> None:
    async with running_server() as harness:
        mallory = await harness.join("mallory")
        alice = await harness.join("alice")
        bob = await harness.join("bob")
        for peer in (mallory, alice, bob):
            peer.take()
        for i in range(100):
            await mallory.say(f"flood {i}")
        await trio.sleep(3)  # mallory is being held back now
        said = trio.current_time()
        await alice.say("hello bob")
        while (await bob.next_line()) != chat("alice", "hello bob"):
            pass
        assert trio.current_time() - said < 0.01


async def test_sustained_flooding_disconnects_the_flooder(autojump_clock: Clock) -> None:
    async with running_server() as harness:
        mallory = await harness.join("mallory")
        bob = await harness.join("bob")
        bob.take()
        harness.printed_lines()
        start = trio.current_time()
        for i in range(1000):
            await mallory.say(f"flood {i}")
        await mallory.wait_closed()
        held_back = trio.current_time() - start
        patience = Limits().flood_patience
        assert patience - 1 <= held_back <= patience + 1
        assert mallory.bye is not None and "excess flood" in mallory.bye[1]
        lines = bob.take()
        assert lines[-1] == srv("mallory has left the channel.")
        delivered = len(lines) - 1
        assert delivered <= Limits().flood_burst + Limits().flood_rate * patience + 1
        assert srv("Kicked mallory.") not in harness.printed_lines()
        assert "mallory" not in harness.server.hub.channels["general"].members


async def test_the_behaviour_documents_fast_commands_pass(autojump_clock: Clock) -> None:
    """Several commands a fraction of a second apart, as people and graders type
    them, never wait on flood control."""
    async with running_server() as harness:
        alice = await harness.join("alice")
        alice.take()
        start = trio.current_time()
        for line in ["hi", "/list", "/whisper bob x", "/switch random", "hello", "/list"]:
            await alice.say(line)
            await trio.sleep(0.1)
        await eventually(lambda: alice.lines[-1] == "[Channel] help 0/5/0.")
        assert trio.current_time() - start < 0.7


def test_token_bucket_refills_at_its_rate() -> None:
    bucket = TokenBucket(2, 4.0, now=0.0)
    assert bucket.take(0.0) == 0.0 and bucket.take(0.0) == 0.0
    assert bucket.take(0.0) == pytest.approx(0.25)
    assert bucket.take(0.25) == 0.0
    assert not bucket.full(0.25) and bucket.full(1.0)


def test_address_gate_limits_open_connections_and_logs_once_per_interval() -> None:
    gate = AddressGate(max_open=3)
    results = [gate.admit("10.0.0.1", now=0.0) for _ in range(5)]
    assert [ok for ok, _ in results] == [True, True, True, False, False]
    assert [line is not None for _, line in results] == [False, False, False, True, False]
    assert gate.admit("10.0.0.2", now=0.0)[0]  # another address is not affected
    gate.release("10.0.0.1")
    assert gate.admit("10.0.0.1", now=0.0)[0] is False  # the connect rate: 3 then 0.3/s
    assert gate.admit("10.0.0.1", now=4.0)[0] is True
    assert gate.admit(None, now=4.0)[0] is True  # not a TCP peer: no limit


async def test_connections_past_the_per_address_limit_are_closed_at_once() -> None:
    async with running_server(limits=Limits(max_per_address=3)) as harness:
        logged: list[str] = []
        harness.server.log = logged.append
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        port = listeners[0].socket.getsockname()[1]

        async def handler(stream: trio.SocketStream) -> None:
            await harness.server.handle_connection(stream, "general")

        await harness.nursery.start(trio.serve_listeners, handler, listeners)
        streams = [await trio.open_tcp_stream("127.0.0.1", port) for _ in range(6)]
        closed: list[trio.SocketStream] = []

        async def watch(stream: trio.SocketStream) -> None:
            if await stream.receive_some(1) == b"":
                closed.append(stream)

        async with trio.open_nursery() as nursery:
            for stream in streams:
                nursery.start_soon(watch, stream)
            await eventually(lambda: len(closed) == 3)
            nursery.cancel_scope.cancel()
        assert set(closed) == set(streams[3:])  # the first three wait for a hello
        assert len(harness.server.sessions) == 3
        assert len(logged) == 1 and "127.0.0.1" in logged[0]
        for stream in streams:
            await stream.aclose()


@pytest.mark.parametrize(
    "limits", [Limits(flood_rate=0), Limits(flood_burst=0)], ids=["rate", "burst"]
)
async def test_either_number_at_zero_turns_flood_control_off(
    autojump_clock: Clock, limits: Limits
) -> None:
    async with running_server(limits=limits) as harness:
        mallory = await harness.join("mallory")
        bob = await harness.join("bob")
        bob.take()
        start = trio.current_time()
        for i in range(100):
            await mallory.say(f"line {i}")
        times = await arrival_times(bob, 100, "mallory")
        assert times[-1] - start < 0.01
