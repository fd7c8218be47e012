"""Hostile and unlucky peers, in process: one member's burst, forged
acknowledgements, hostile text, offer spam and stalled transfers disturb no one
else (docs/security.md, "Limits and the slow-consumer policy"; docs/protocol.md, "What
the server checks"; behaviour.md, "Text from peers")."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import trio
import trio.testing

from trio_chat import wire
from trio_chat.server.core import Limits
from trio_chat.wire import FrameType, SendState

from .harness import (
    Harness,
    Peer,
    RealClient,
    chat,
    eventually,
    real_client,
    running_server,
    settle,
    srv,
)

BURST = 4200  # more frames than an outbox holds
# Backpressure and transfer limits on their own, without flood control's pacing.
NO_FLOOD_CONTROL = Limits(flood_rate=0)


async def test_a_burst_right_after_hello_reaches_every_reader() -> None:
    async with running_server(limits=NO_FLOOD_CONTROL) as harness:
        await burst_reaches_every_reader(harness)


async def test_a_burst_over_loopback_sockets_reaches_every_reader() -> None:
    """The same over real sockets: the path where the server collects lines and
    writes them once per scheduling round, and its writers take over when a
    socket is full."""
    async with running_server(limits=Limits(flood_rate=0, max_per_address=0)) as harness:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        port = listeners[0].socket.getsockname()[1]

        async def handler(stream: trio.SocketStream) -> None:
            await harness.server.handle_connection(stream, "general")

        await harness.nursery.start(trio.serve_listeners, handler, listeners)

        async def connect() -> trio.abc.HalfCloseableStream:
            return await trio.open_tcp_stream("127.0.0.1", port)

        await burst_reaches_every_reader(harness, connect)


async def memory_connection(harness: Harness) -> trio.abc.HalfCloseableStream:
    client_stream, server_stream = trio.testing.memory_stream_pair()
    harness.nursery.start_soon(harness.server.handle_connection, server_stream, "general")
    return client_stream


async def burst_reaches_every_reader(
    harness: Harness,
    connect: Callable[[], Awaitable[trio.abc.HalfCloseableStream]] | None = None,
) -> None:
    async def join(name: str) -> Peer:
        if connect is None:
            return await harness.join(name)
        peer = Peer(name, await connect())
        harness.nursery.start_soon(peer.read_loop)
        await peer.stream.send_all(wire.encode_hello(name))
        await eventually(lambda: f"{name} has joined the channel." in " ".join(peer.lines))
        return peer

    readers = [await join(name) for name in ("alice", "bob", "carol")]
    await eventually(lambda: len(readers[0].lines) >= 4)
    for reader in readers:
        reader.take()
    harness.printed_lines()
    client_stream = await (connect() if connect is not None else memory_connection(harness))
    mallory = Peer("mallory", client_stream)
    harness.nursery.start_soon(mallory.read_loop)
    burst = b"".join(wire.encode_input(f"line {i}") for i in range(BURST))
    await client_stream.send_all(wire.encode_hello("mallory") + burst)  # one write
    everything = [chat("mallory", f"line {i}") for i in range(BURST)]
    await eventually(lambda: all(len(reader.lines) >= BURST + 1 for reader in readers))
    await settle()
    for reader in readers:
        assert not reader.closed
        assert reader.take() == [srv("mallory has joined the channel."), *everything]
    assert not mallory.closed
    assert harness.printed_lines() == [srv("mallory has joined the general channel."), *everything]


def offer(ref: int, target: str, size: int, path: str = "x", readable: bool = True) -> bytes:
    fields = {"ref": ref, "target": target, "path": path, "name": path, "size": size}
    return wire.encode_json(FrameType.SEND_OFFER, {**fields, "readable": readable})


def frames_of(peer: Peer, frame_type: int) -> list[bytes]:
    return [payload for kind, payload in peer.other_frames if kind == frame_type]


async def sender_and_raw_receiver(
    harness: Harness, tmp_path: Path, size: int
) -> tuple[RealClient, Peer, int]:
    """alice (the real client) offers a file of ``size`` to mallory (raw frames)."""
    mallory = await harness.join("mallory")
    alice = await real_client(harness, "alice", str(tmp_path))
    (tmp_path / "big.bin").write_bytes(b"\x07" * size)
    await alice.type("/send mallory big.bin")
    await eventually(lambda: bool(frames_of(mallory, FrameType.FILE_DATA)))
    (incoming,) = frames_of(mallory, FrameType.FILE_INCOMING)
    ident = json.loads(incoming)["id"]
    assert isinstance(ident, int)
    return alice, mallory, ident


@pytest.mark.parametrize("claimed", [2**62, 2**32 - 1])
async def test_forged_acknowledgement_drops_the_receiver_and_tells_the_sender(
    harness: Harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, claimed: int
) -> None:
    monkeypatch.chdir(tmp_path)
    alice, mallory, ident = await sender_and_raw_receiver(harness, tmp_path, 4 * wire.SEND_WINDOW)
    await mallory.send_raw(wire.encode_ack(ident, claimed))  # and never reads again
    await eventually(lambda: mallory.closed)
    with trio.fail_after(10):
        await alice.connection.transfers.wait_sent()
    assert any("broke the protocol" in note and "not delivered" in note for note in alice.notes)
    assert not harness.server.transfers.table.running
    for session in harness.server.sessions:
        assert session.outbox.file_bytes == 0
    assert alice.status is None  # the sender stays


async def test_receiver_cannot_hoard_file_data(
    harness: Harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Acknowledging exactly what was sent, never reading: the window still holds."""
    monkeypatch.chdir(tmp_path)
    _, mallory, ident = await sender_and_raw_receiver(harness, tmp_path, 8 * wire.SEND_WINDOW)
    for _ in range(40):
        session = next(s for s in harness.server.sessions if s.name == "mallory")
        transfer = next(iter(harness.server.transfers.table.running.values()))
        await mallory.send_raw(wire.encode_ack(ident, transfer.delivered))
        await settle()
        assert session.outbox.file_bytes <= wire.SEND_WINDOW + wire.MAX_PAYLOAD
    assert not mallory.closed


HOSTILE_PATH = "\n[Server message (00:00:00)] Kicked alice.\n[alice (00:00:00)] I confess\x1b[2J"


async def test_a_hostile_path_reaches_no_screen_raw(harness: Harness, tmp_path: Path) -> None:
    bob = await real_client(harness, "bob", str(tmp_path))
    mallory = await harness.join("mallory")
    mallory.take()
    harness.printed_lines()
    await mallory.send_raw(offer(1, "bob", 0, HOSTILE_PATH + "\x1b]0;pwn\x07"))
    await eventually(lambda: bool(frames_of(mallory, FrameType.SEND_STATE)))
    (go,) = frames_of(mallory, FrameType.SEND_STATE)
    assert go[4] == SendState.GO
    ident = wire.ID.unpack(go[5:9])[0]
    empty = wire.Checksum().digest()
    await mallory.send_raw(wire.encode_with_id(FrameType.FILE_END, ident, empty))
    await eventually(lambda: "sent" in harness.printed[-1])
    (line,) = harness.printed_lines()
    assert "\n" not in line and "\x1b" not in line and "\x07" not in line
    assert line.startswith(srv("mallory sent \ufffd[Server message (00:00:00)] Kicked alice."))
    you_sent = await mallory.next_line()
    assert you_sent.startswith(srv("You sent \ufffd[Server message"))
    assert "\x1b" not in you_sent and "\n" not in you_sent
    await mallory.send_raw(offer(2, "bob", 0, HOSTILE_PATH, readable=False))
    refused = await mallory.next_line()
    assert refused == srv(
        "\ufffd[Server message (00:00:00)] Kicked alice.\ufffd[alice (00:00:00)] I confess"
        "\ufffd[2J does not exist."
    )
    assert bob.status is None


async def test_an_abort_reason_that_is_not_text_drops_only_its_sender(
    harness: Harness, tmp_path: Path
) -> None:
    bob = await real_client(harness, "bob", str(tmp_path))
    mallory = await harness.join("mallory")
    bob.take()
    await mallory.send_raw(offer(1, "bob", 100))
    await eventually(lambda: bool(frames_of(mallory, FrameType.SEND_STATE)))
    ident = wire.ID.unpack(frames_of(mallory, FrameType.SEND_STATE)[0][5:9])[0]
    await mallory.send_raw(wire.encode_with_id(FrameType.FILE_ABORT, ident, b"\xff\xfe"))
    await eventually(lambda: mallory.closed)
    await bob.type("still here")
    await bob.expect(chat("bob", "still here"))
    assert bob.status is None


async def test_offer_spam_takes_few_places_and_no_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Flood control would slow the spam down too; this is about the transfer limits.
    async with running_server(limits=NO_FLOOD_CONTROL) as harness:
        await offer_spam_takes_few_places(harness, tmp_path, monkeypatch)


async def offer_spam_takes_few_places(
    harness: Harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    downloads = tmp_path / "bob"
    downloads.mkdir()
    bob = await real_client(harness, "bob", str(downloads))
    mallory = await harness.join("mallory")
    await mallory.send_raw(b"".join(offer(ref, "bob", 10) for ref in range(1500)))
    await eventually(lambda: len(frames_of(mallory, FrameType.SEND_STATE)) == 1500)
    states = [payload[4] for payload in frames_of(mallory, FrameType.SEND_STATE)]
    limits = Limits()
    assert states.count(SendState.GO) == limits.max_transfers_between_two
    assert list(downloads.iterdir()) == []  # no data yet: no temporary files
    # Someone else can still send bob a file meanwhile.
    monkeypatch.chdir(tmp_path)
    alice = await real_client(harness, "alice", str(tmp_path))
    (tmp_path / "real.txt").write_text("real")
    await alice.type("/send bob real.txt")
    await alice.expect(srv("You sent real.txt to bob."))
    assert [p.name for p in downloads.iterdir()] == ["real.txt"]
    assert not mallory.closed and bob.status is None


async def raw_transfer(harness: Harness, size: int) -> tuple[Peer, Peer, int]:
    """alice offers ``size`` bytes to bob, both speaking raw frames (no threads,
    so trio's MockClock alone decides what time it is)."""
    alice = await harness.join("alice")
    bob = await harness.join("bob")
    await alice.send_raw(offer(1, "bob", size))
    await eventually(lambda: bool(frames_of(alice, FrameType.SEND_STATE)))
    (go,) = frames_of(alice, FrameType.SEND_STATE)
    assert go[4] == SendState.GO
    ident = wire.ID.unpack(go[5:9])[0]
    sent = 0
    while sent < min(size, wire.SEND_WINDOW):
        chunk = b"\x07" * min(wire.CHUNK_SIZE, size - sent)
        await alice.send_raw(wire.encode_with_id(FrameType.FILE_DATA, ident, chunk))
        sent += len(chunk)
    if sent == size:
        await alice.send_raw(wire.encode_with_id(FrameType.FILE_END, ident, b"\0\0\0\0"))
    return alice, bob, ident


async def test_a_stalled_transfer_is_called_off(autojump_clock: trio.testing.MockClock) -> None:
    async with running_server() as harness:
        alice, bob, _ = await raw_transfer(harness, 2 * wire.SEND_WINDOW)
        start = trio.current_time()
        await eventually(lambda: len(frames_of(alice, FrameType.SEND_STATE)) == 2, within=300)
        waited = trio.current_time() - start
        idle = Limits().transfer_idle_timeout
        assert idle <= waited <= 1.25 * idle + 1
        aborted = frames_of(alice, FrameType.SEND_STATE)[1]
        assert aborted[4] == SendState.ABORTED and b"no progress" in aborted
        assert frames_of(bob, FrameType.FILE_ABORT)
        assert not harness.server.transfers.table.running
        assert not alice.closed and not bob.closed


async def test_a_paused_receiver_does_not_make_anyone_afk(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with running_server(afk_timeout=3) as harness:
        alice, bob, ident = await raw_transfer(harness, 100_000)
        await trio.sleep(5)  # the receiver pauses longer than the AFK timeout
        assert not any("went AFK" in line for line in harness.printed)
        await bob.send_raw(wire.encode_ack(ident, 100_000))
        await bob.send_raw(wire.encode_with_id(FrameType.FILE_RESULT, ident, b"\x01saved"))
        await eventually(lambda: srv("You sent x to bob.") in alice.lines)
        assert not any("went AFK" in line for line in harness.printed)
        # Once the file is through, idleness counts again.
        done = trio.current_time()
        await eventually(lambda: srv("bob went AFK.") in harness.printed, within=10)
        assert trio.current_time() - done <= 3.1
