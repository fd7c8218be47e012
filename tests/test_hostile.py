"""A broken or hostile peer loses its own connection and disturbs no one else."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from trio_chat import wire
from trio_chat.wire import FrameType

from .harness import Harness, Peer, chat, running_server, settle, srv


async def bystanders(harness: Harness) -> tuple[Peer, Peer]:
    alice = await harness.join("alice")
    bob = await harness.join("bob")
    alice.take()
    bob.take()
    harness.printed_lines()
    return alice, bob


async def still_fine(harness: Harness, alice: Peer, bob: Peer) -> None:
    await alice.say("still fine")
    await settle()
    assert bob.take() == [chat("alice", "still fine")]
    assert harness.printed_lines() == [chat("alice", "still fine")]


BAD_BYTES = {
    "random bytes": b"\xde\xad\xbe\xef" * 40,
    "oversize frame": wire.HEADER.pack(wire.MAX_PAYLOAD + 1, FrameType.INPUT),
    "invalid utf-8": wire.encode(FrameType.INPUT, b"\xff\xfe\xfd"),
    "unknown frame type": wire.encode(99, b"x"),
    "second hello": wire.encode_hello("again"),
    "line over limit": wire.encode(FrameType.INPUT, b"x" * (wire.MAX_LINE_BYTES + 1)),
    # Only the header of these: refused before a byte of the payload is read.
    "huge line announced": wire.HEADER.pack(wire.MAX_PAYLOAD, FrameType.INPUT),
    "huge offer announced": wire.HEADER.pack(wire.MAX_CONTROL_PAYLOAD + 1, FrameType.SEND_OFFER),
    "huge acknowledgement announced": wire.HEADER.pack(
        wire.MAX_CONTROL_PAYLOAD + 1, FrameType.FILE_ACK
    ),
}


@pytest.mark.parametrize("case", list(BAD_BYTES), ids=list(BAD_BYTES))
async def test_member_sending_garbage_is_dropped_silently(harness: Harness, case: str) -> None:
    alice, bob = await bystanders(harness)
    mallory = await harness.join("mallory")
    alice.take()
    bob.take()
    harness.printed_lines()
    await mallory.send_raw(BAD_BYTES[case])
    await settle()
    assert mallory.closed
    assert harness.printed_lines() == []
    assert alice.take() == [] and bob.take() == []
    await still_fine(harness, alice, bob)
    # The name is free again: the drop removed mallory from the channel.
    assert (await harness.join("mallory")).take()[0] == srv(
        "Welcome to the general channel, mallory."
    )


@pytest.mark.parametrize(
    "hello",
    [
        b"\x00\x00\x00\x05\x01hi",  # truncated, then EOF
        wire.encode(FrameType.INPUT, b"no hello first"),
        wire.encode(FrameType.HELLO, b"http/1.1 alice"),
        wire.encode(FrameType.HELLO, wire.PROTOCOL.encode() + b" "),
        wire.encode(FrameType.HELLO, wire.PROTOCOL.encode() + b" has space"),
        wire.encode(FrameType.HELLO, wire.PROTOCOL.encode() + b" a:b"),
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    ],
)
async def test_bad_hello_is_refused_without_a_trace(harness: Harness, hello: bytes) -> None:
    alice, bob = await bystanders(harness)
    client_stream, server_stream = trio.testing.memory_stream_pair()
    harness.nursery.start_soon(harness.server.handle_connection, server_stream, "general")
    peer = Peer("mallory", client_stream)
    harness.nursery.start_soon(peer.read_loop)
    await client_stream.send_all(hello)
    await client_stream.send_eof()
    await settle()
    assert peer.closed and peer.lines == []
    assert harness.printed_lines() == []
    await still_fine(harness, alice, bob)


async def test_silent_connection_is_dropped_after_hello_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with running_server() as harness:
        client_stream, server_stream = trio.testing.memory_stream_pair()
        harness.nursery.start_soon(harness.server.handle_connection, server_stream, "general")
        peer = Peer("silent", client_stream)
        harness.nursery.start_soon(peer.read_loop)
        await peer.wait_closed()
        assert trio.current_time() == pytest.approx(10.0)
        assert harness.printed_lines() == []
