"""Slow consumers, connection limits and churn: the server holds up (docs/security.md,
"Limits and the slow-consumer policy")."""

from __future__ import annotations

import contextlib
import gc
import os
import tracemalloc
from collections.abc import Awaitable, Callable
from pathlib import Path

import trio
import trio.testing

from trio_chat import wire
from trio_chat.server.core import Limits

from .harness import Harness, chat, eventually, real_client, running_server, settle, srv


async def test_member_that_stops_reading_is_dropped_alone(
    autojump_clock: trio.testing.MockClock,
) -> None:
    limits = Limits(outbox_bytes=64 * 1024, flood_rate=0)  # alice sends 2000 lines at once
    async with running_server(limits=limits) as harness:
        alice = await harness.join("alice")
        bob = await harness.join("bob")
        # A lockstep stream gives no buffering: a peer that never reads blocks
        # the server's writer, as a stalled TCP peer would.
        client_stream, server_stream = trio.testing.lockstep_stream_pair()
        harness.nursery.start_soon(harness.server.handle_connection, server_stream, "general")
        await client_stream.send_all(wire.encode_hello("sloth"))
        await settle()
        assert "sloth" in harness.server.hub.channels["general"].members
        alice.take()
        bob.take()
        for i in range(2000):
            await alice.say(f"message {i} " + "x" * 40)
        await eventually(lambda: sum(line.startswith("[alice (") for line in bob.lines) == 2000)
        assert "sloth" not in harness.server.hub.channels["general"].members
        assert len(harness.server.sessions) == 2
        lines = bob.take()
        assert [line for line in lines if "message" in line] == [
            chat("alice", f"message {i} " + "x" * 40) for i in range(2000)
        ]
        # Dropped silently, like any lost connection.
        assert srv("sloth has left the channel.") not in lines


async def test_connections_over_the_limit_are_closed_at_once() -> None:
    async with running_server(limits=Limits(max_connections=3)) as harness:
        peers = [await harness.join(f"u{i}") for i in range(3)]
        extra = await harness.connect("extra")
        await settle()
        assert extra.closed and extra.lines == []
        await peers[0].say("/quit")
        await settle()
        again = await harness.join("again")
        assert again.take()[0] == srv("Welcome to the general channel, again.")


async def test_hostile_sender_ignoring_the_window_is_dropped(harness: Harness) -> None:
    bob = await harness.join("bob")
    mallory = await harness.join("mallory")
    size = 4 * wire.SEND_WINDOW
    offer = {"ref": 1, "target": "bob", "path": "x", "name": "x", "size": size, "readable": True}
    await mallory.send_raw(wire.encode_json(wire.FrameType.SEND_OFFER, offer))
    await settle()
    (_, go), *_ = [f for f in mallory.other_frames if f[0] == wire.FrameType.SEND_STATE]
    ident = wire.ID.unpack(go[5:9])[0]
    chunk = b"\0" * wire.CHUNK_SIZE
    with contextlib.suppress(trio.ClosedResourceError, trio.BrokenResourceError):
        for _ in range(size // wire.CHUNK_SIZE):  # bob acknowledges nothing
            await mallory.send_raw(wire.encode_with_id(wire.FrameType.FILE_DATA, ident, chunk))
            await settle()
    await settle()
    assert mallory.closed
    assert not bob.closed


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def test_churn_returns_to_baseline() -> None:
    """Thousands of connects and disconnects over loopback leave nothing behind."""
    # All from one address: without the per-address limit, which would refuse
    # most, and with a line budget that never holds anyone back (the budgets
    # are still opened and filed for every connection: their ledger must not
    # keep anything either), else the 1,000 /quit lines would take the
    # address's rate: minutes.
    generous = Limits(max_per_address=0, flood_burst=10_000, flood_rate=10_000.0)
    async with running_server(limits=generous) as harness:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        port = listeners[0].socket.getsockname()[1]
        await harness.nursery.start(trio.serve_listeners, _handler(harness), listeners)
        anchor = await harness.join("anchor", "help")  # stays through the churn
        await settle()
        assert harness.server.line_budgets is not None  # flood control is on
        baseline = open_fds()
        gc.collect()
        tracemalloc.start()
        memory_before = tracemalloc.get_traced_memory()[0]
        hub = harness.server.hub

        async def one(i: int) -> None:
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            await stream.send_all(wire.encode_hello(f"c{i}"))
            if i % 3 == 0:
                await stream.send_all(wire.encode_input("/quit"))
                while await stream.receive_some(65536):
                    pass
            elif i % 3 == 1:
                await stream.send_all(b"\xff" * 10)  # garbage: dropped by the server
                while True:
                    try:
                        if not await stream.receive_some(65536):
                            break
                    except trio.BrokenResourceError:
                        break
            await stream.aclose()

        for start in range(0, 3000, 100):
            async with trio.open_nursery() as nursery:
                for i in range(start, start + 100):
                    nursery.start_soon(one, i)
            with trio.fail_after(10):
                while len(harness.server.sessions) > 1:
                    await trio.sleep(0.01)
        await settle()
        assert len(harness.server.sessions) == 1
        assert list(hub.channels["help"].members) == ["anchor"]
        assert not hub.channels["general"].members
        assert all(not c.queue and not c.queued_names for c in hub.channels.values())
        assert not harness.server.transfers.table.running
        assert open_fds() == baseline
        harness.forget_printed()  # the test's own record of server stdout
        gc.collect()
        leaked = tracemalloc.get_traced_memory()[0] - memory_before
        tracemalloc.stop()
        assert leaked < 512 * 1024, f"{leaked} bytes still allocated after the churn"
        await anchor.hang_up()


def _handler(harness: Harness) -> Callable[[trio.SocketStream], Awaitable[None]]:
    async def handler(stream: trio.SocketStream) -> None:
        await harness.server.handle_connection(stream, "general")

    return handler


async def test_thousands_of_silent_connections_time_out(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with running_server() as harness:
        alice = await harness.join("alice")
        bob = await harness.join("bob")
        silent = []
        for _ in range(2000):
            client_stream, server_stream = trio.testing.memory_stream_pair()
            harness.nursery.start_soon(harness.server.handle_connection, server_stream, "general")
            silent.append(client_stream)
        await settle()
        assert len(harness.server.sessions) == 2002
        await alice.say("hello through the crowd")
        await settle()
        assert bob.take()[-1] == chat("alice", "hello through the crowd")
        await trio.sleep(10)  # the hello timeout
        await settle()
        assert len(harness.server.sessions) == 2
        assert harness.printed_lines()[-1] == chat("alice", "hello through the crowd")


async def test_client_turned_away_by_a_full_server_exits_1(tmp_path: Path) -> None:
    async with running_server(limits=Limits(max_connections=1)) as harness:
        await harness.join("alice")
        bob = await real_client(harness, "bob", str(tmp_path))
        assert bob.status == 1
        assert bob.printed == []
        assert any("before letting us in" in note for note in bob.notes)
