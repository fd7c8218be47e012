"""Flood control and per-address limits (docs/security.md, "Flood control", "Per-address
limits"): on trio's MockClock in process, and over loopback sockets."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import trio
import trio.testing

from trio_chat.config import ChannelConfig
from trio_chat.server.admission import AddressGate, address_key
from trio_chat.server.core import Limits
from trio_chat.server.flood import LineLedger, TokenBucket

from .harness import Harness, Peer, chat, eventually, running_server, settle, srv

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


async def reconnect_loop(
    harness: Harness,
    names: Callable[[int], str],
    addresses: Callable[[int], str],
    seconds: float,
    overlap: bool = False,
) -> None:
    """Connect, send a burst's worth of lines, /quit, hang up, again, for
    ``seconds``: each connection asks for a fresh burst. With ``overlap``
    the next connection says hello before the last one has quit (under a
    name with a "_" every other round: two members cannot share one)."""

    def name(n: int) -> str:
        return names(n) + "_" * (n % 2 if overlap else 0)

    burst = Limits().flood_burst
    end = trio.current_time() + seconds
    round_number = 0
    peer = await harness.join(name(round_number), address=addresses(round_number))
    while trio.current_time() < end:
        for i in range(burst):
            await peer.say(f"spam {round_number}.{i}")
        await settle()
        last = peer
        if overlap:
            peer = await harness.join(name(round_number + 1), address=addresses(round_number + 1))
        await last.say("/quit")
        await last.wait_closed()
        if not overlap:
            peer = await harness.join(name(round_number + 1), address=addresses(round_number + 1))
        round_number += 1


@pytest.mark.parametrize(
    ("names", "addresses"),
    [
        (lambda n: "mallory", lambda n: "10.0.0.7"),
        (lambda n: f"mallory{n}", lambda n: "10.0.0.7"),  # the address carries the budget
        (lambda n: "mallory", lambda n: f"10.0.{n // 250}.{n % 250 + 1}"),  # and the name
        (lambda n: f"mallory{n}", lambda n: f"2001:db8::{n + 1:x}"),  # one /64 is one address
    ],
    ids=["same-name-and-address", "new-names", "new-addresses", "one-ipv6-64"],
)
@pytest.mark.parametrize("overlap", [False, True], ids=["one-at-a-time", "overlapping"])
async def test_reconnecting_does_not_refill_the_line_budget(
    autojump_clock: Clock,
    names: Callable[[int], str],
    addresses: Callable[[int], str],
    overlap: bool,
) -> None:
    async with running_server() as harness:
        bob = await harness.join("bob", address="192.0.2.1")
        bob.take()
        seconds = 10.0
        await reconnect_loop(harness, names, addresses, seconds, overlap)
        spam = [line for line in bob.take() if "spam" in line]
        limits = Limits()
        # Without the ledger every connection delivered a whole burst: 10 lines
        # a round, several rounds a second. Two connections open at once each
        # refill at the rate (what --max-per-address bounds), but neither
        # starts with a burst.
        at_once = 2 if overlap else 1
        assert len(spam) <= limits.flood_burst + at_once * limits.flood_rate * (seconds + 1)
        assert len(spam) >= limits.flood_rate * (seconds - 1)  # the rate still holds


async def test_other_addresses_and_names_keep_their_own_budgets(autojump_clock: Clock) -> None:
    async with running_server() as harness:
        bob = await harness.join("bob", address="192.0.2.1")
        bob.take()
        await reconnect_loop(harness, lambda n: "mallory", lambda n: "10.0.0.7", 3.0)
        bob.take()
        # Someone else at once: a whole burst of their own, at once.
        alice = await harness.join("alice", address="10.0.0.8")
        start = trio.current_time()
        for i in range(Limits().flood_burst):
            await alice.say(f"hello {i}")
        times = await arrival_times(bob, Limits().flood_burst, "alice")
        assert times[-1] - start < 0.01


def test_ledger_keeps_what_a_member_left_with_until_it_refills() -> None:
    ledger = LineLedger(burst=10, rate=5.0)
    keys = ("name mallory", "address 10.0.0.7")
    first = ledger.open(keys, now=0.0)
    for _ in range(10):
        assert first.take(0.0) == 0.0
    ledger.close(keys, first, now=0.0)
    # Either key alone finds the spent budget, refilled by the time since.
    assert ledger.open(("name mallory",), now=0.4).level(0.4) == pytest.approx(2.0)
    assert ledger.open(("address 10.0.0.7", "name x"), now=1.0).level(1.0) == pytest.approx(5.0)
    assert ledger.open(("name bob",), now=0.0).level(0.0) == 10.0
    # A member who comes and goes without spending keeps the low budget on file.
    second = ledger.open(keys, now=0.2)
    ledger.close(keys, second, now=0.2)
    assert ledger.open(keys, now=0.2).level(0.2) == pytest.approx(1.0)


def test_ledger_shares_the_budget_of_members_still_connected() -> None:
    ledger = LineLedger(burst=10, rate=5.0)
    first = ledger.open(("address 10.0.0.7", "name a"), now=0.0)
    for _ in range(10):
        first.take(0.0)
    # Connecting again before the first one leaves finds the spent budget too.
    second = ledger.open(("address 10.0.0.7", "name b"), now=0.2)
    assert second.level(0.2) == pytest.approx(1.0)
    third = ledger.open(("address 10.0.0.8", "name a"), now=0.2)
    assert third.level(0.2) == pytest.approx(1.0)
    assert ledger.open(("address 10.0.0.9", "name c"), now=0.2).level(0.2) == 10.0
    for bucket, keys in (
        (first, ("address 10.0.0.7", "name a")),
        (second, ("address 10.0.0.7", "name b")),
        (third, ("address 10.0.0.8", "name a")),
    ):
        ledger.close(keys, bucket, now=5.0)
    assert len(ledger) == 0  # refilled: forgotten


def test_ledger_forgets_refilled_budgets_as_it_grows() -> None:
    ledger = LineLedger(burst=2, rate=1.0)
    for n in range(100_000):
        keys = (f"address {n}",)
        bucket = ledger.open(keys, now=float(n))
        bucket.take(float(n))
        ledger.close(keys, bucket, now=float(n))
    assert len(ledger) <= 2  # only budgets not yet refilled are kept (the last second's)


@pytest.mark.parametrize(
    ("address", "key"),
    [
        ("10.0.0.7", "10.0.0.7"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("2001:db8:1:2::ffff", "2001:db8:1:2::/64"),
        ("fe80::1%eth0", "fe80::/64"),
        ("::ffff:192.0.2.9", "192.0.2.9"),
        ("", ""),
    ],
)
def test_an_address_is_an_ipv4_address_or_an_ipv6_64(address: str, key: str) -> None:
    assert address_key(address) == key


def test_address_gate_counts_ipv6_by_64_prefix() -> None:
    gate = AddressGate(max_open=2)
    assert gate.admit("2001:db8::1", now=0.0)[0]
    assert gate.admit("2001:db8::2", now=0.0)[0]
    ok, line = gate.admit("2001:db8::3", now=0.0)
    assert not ok and line is not None and "2001:db8::/64" in line
    assert gate.admit("2001:db8:0:1::1", now=0.0)[0]  # another /64
    assert gate.admit("127.0.0.2", now=0.0)[0]  # IPv4: one address each
    gate.release("2001:db8::2")
    assert gate.admit("2001:db8::99", now=5.0)[0]  # (the connect rate: 2, then 0.2/s)


CROWDED = [ChannelConfig("general", 41001, 100), ChannelConfig("random", 41002, 100)]


async def test_many_connections_from_one_address_share_its_budget(
    autojump_clock: Clock,
) -> None:
    """45 members from one address flooding at once get the address's shared
    budget together (``flood_address_share`` members' worth), not 45 budgets."""
    limits = Limits(flood_address_share=4)
    async with running_server(channels=CROWDED, limits=limits) as harness:
        bob = await harness.join("bob", address="192.0.2.1")
        flooders = [await harness.join(f"m{i}", address="10.0.0.7") for i in range(45)]
        bob.take()
        seconds = 10.0
        end = trio.current_time() + seconds

        async def flood(peer: Peer) -> None:
            n = 0
            while trio.current_time() < end:
                await peer.say(f"spam {n}")
                n += 1
                await trio.sleep(0.01)

        with trio.move_on_after(seconds):
            async with trio.open_nursery() as nursery:
                for peer in flooders:
                    nursery.start_soon(flood, peer)
        await settle()
        spam = [line for line in bob.take() if "spam" in line]
        share = limits.flood_address_share
        # Before, each of the 45 refilled at the rate on its own: 2,000 lines and more.
        assert len(spam) <= share * (limits.flood_burst + limits.flood_rate * (seconds + 1))
        # Someone from another address still has a whole burst at once.
        alice = await harness.join("alice", address="10.0.0.8")
        start = trio.current_time()
        for i in range(limits.flood_burst):
            await alice.say(f"hello {i}")
        assert (await arrival_times(bob, limits.flood_burst, "alice"))[-1] - start < 0.01


async def test_connections_opened_at_once_share_one_burst(autojump_clock: Clock) -> None:
    """Each says hello before any has spent: the address's shared bucket is
    what stops twenty bursts (a browser's reconnect loop did this)."""
    limits = Limits(flood_address_share=4)
    async with running_server(channels=CROWDED, limits=limits) as harness:
        bob = await harness.join("bob", address="192.0.2.1")
        bob.take()
        peers = [await harness.connect(f"m{i}", address="10.0.0.7") for i in range(20)]
        for peer in peers:
            for i in range(Limits().flood_burst):
                await peer.say(f"spam {i}")
        await settle()
        spam = [line for line in bob.take() if "spam" in line]
        assert len(spam) <= limits.flood_address_share * limits.flood_burst  # 40, not 200
