"""/send in process (behaviour.md, "/send"): outcomes, content, naming, broken
transfers, chat flow."""

from __future__ import annotations

import os
import resource
from pathlib import Path

import pytest
import trio

from trio_chat import wire
from trio_chat.client import files
from trio_chat.client.transfers import Transfers
from trio_chat.server.core import Limits
from trio_chat.wire import FrameType

from .harness import (
    Harness,
    RealClient,
    chat,
    eventually,
    real_client,
    running_server,
    settle,
    srv,
)


@pytest.fixture
def dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    sender_dir = tmp_path / "alice"
    receiver_dir = tmp_path / "bob"
    sender_dir.mkdir()
    receiver_dir.mkdir()
    monkeypatch.chdir(sender_dir)  # the sender's paths resolve against its cwd
    return sender_dir, receiver_dir


async def pair(harness: Harness, dirs: tuple[Path, Path]) -> tuple[RealClient, RealClient]:
    alice = await real_client(harness, "alice", str(dirs[0]))
    bob = await real_client(harness, "bob", str(dirs[1]))
    alice.take()
    harness.printed_lines()
    return alice, bob


def crc(data: bytes) -> bytes:
    checksum = wire.Checksum()
    checksum.update(data)
    return checksum.digest()


async def announce(transfers: Transfers, ident: int, name: str, size: int) -> None:
    """As the server tells a receiver that a file from "m" is coming."""
    await transfers.on_incoming(
        wire.encode_json(
            FrameType.FILE_INCOMING, {"id": ident, "sender": "m", "name": name, "size": size}
        )[5:]
    )


def received(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in directory.iterdir()}


async def send_and_wait(
    harness: Harness, alice: RealClient, typed: str, target: str = "bob"
) -> None:
    await alice.type(f"/send {target} {typed}")
    await alice.expect(srv(f"You sent {typed} to {target}."))
    assert harness.printed_lines() == [srv(f"alice sent {typed} to {target}.")]


@pytest.mark.parametrize(
    "content",
    [
        b"hello\n",
        b"",
        bytes(range(256)) * 3,
        os.urandom(5 * wire.SEND_WINDOW + 123),
        # Sizes at the edges of a chunk, a window (one read-ahead set), two.
        os.urandom(wire.CHUNK_SIZE),
        os.urandom(wire.CHUNK_SIZE + 1),
        os.urandom(wire.SEND_WINDOW),
        os.urandom(2 * wire.SEND_WINDOW - 1),
    ],
    ids=[
        "text",
        "empty",
        "every-byte",
        "several-windows",
        "one-chunk",
        "chunk-and-a-byte",
        "one-window",
        "two-windows-short-of-a-byte",
    ],
)
async def test_file_arrives_byte_identical(
    harness: Harness, dirs: tuple[Path, Path], content: bytes
) -> None:
    alice, bob = await pair(harness, dirs)
    (dirs[0] / "data.bin").write_bytes(content)
    await send_and_wait(harness, alice, "data.bin")
    assert received(dirs[1]) == {"data.bin": content}
    assert bob.take() == []  # the receiver's stdout shows nothing


async def test_path_resolves_like_a_shell(
    harness: Harness, dirs: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    alice, _ = await pair(harness, dirs)
    (dirs[0] / "sub").mkdir()
    (dirs[0] / "sub" / "notes.txt").write_text("deep")
    monkeypatch.setenv("HOME", str(dirs[0]))
    await send_and_wait(harness, alice, "sub/../sub/notes.txt")
    await send_and_wait(harness, alice, "~/sub/notes.txt")
    assert received(dirs[1]) == {"notes.txt": b"deep", "notes (1).txt": b"deep"}


async def test_error_lines_in_documented_order(harness: Harness, dirs: tuple[Path, Path]) -> None:
    alice, bob = await pair(harness, dirs)
    (dirs[0] / "real.txt").write_text("x")
    (dirs[0] / "folder").mkdir()
    await alice.type(
        "/send nobody real.txt",
        "/send bob missing.txt",
        "/send nobody missing.txt",
        "/send bob folder",
        "after",
    )
    await alice.expect(srv("nobody is not here."))
    await alice.expect(srv("missing.txt does not exist."))
    await alice.expect(srv("nobody is not here."))
    await alice.expect(srv("missing.txt does not exist."))
    await alice.expect(srv("folder does not exist."))
    await alice.expect(chat("alice", "after"))
    assert harness.printed_lines() == [chat("alice", "after")]
    assert received(dirs[1]) == {}
    assert bob.take() == [chat("alice", "after")]


async def test_queued_sender_and_queued_target_are_not_here(
    harness: Harness, dirs: tuple[Path, Path]
) -> None:
    alice, _ = await pair(harness, dirs)
    for i in range(3):
        await harness.join(f"u{i}")
    queued = await real_client(harness, "queued", str(dirs[1]))
    (dirs[0] / "f.txt").write_text("x")
    await alice.type("/send queued f.txt")
    await alice.expect(srv("u0 has joined the channel."))
    await alice.expect(srv("u1 has joined the channel."))
    await alice.expect(srv("u2 has joined the channel."))
    await alice.expect(srv("queued is not here."))
    await queued.type("/send alice f.txt")
    await queued.expect(srv("alice is not here."))


async def test_name_collision_never_overwrites(harness: Harness, dirs: tuple[Path, Path]) -> None:
    alice, _ = await pair(harness, dirs)
    (dirs[1] / "report.txt").write_text("mine")
    (dirs[0] / "report.txt").write_text("theirs")
    await send_and_wait(harness, alice, "report.txt")
    await send_and_wait(harness, alice, "report.txt")
    assert received(dirs[1]) == {
        "report.txt": b"mine",
        "report (1).txt": b"theirs",
        "report (2).txt": b"theirs",
    }


@pytest.mark.parametrize(
    ("claimed", "saved"),
    [
        ("../escape.txt", "escape.txt"),
        ("/etc/passwd", "passwd"),
        ("..\\..\\win.txt", "win.txt"),
        ("a\x00b.txt", "ab.txt"),
        ("..", files.FALLBACK_NAME),
        ("", files.FALLBACK_NAME),
        (".hidden", "hidden"),
        ("x" * 300, "x" * files.MAX_NAME_BYTES),
    ],
)
def test_safe_file_name(claimed: str, saved: str) -> None:
    assert files.safe_file_name(claimed) == saved


async def test_hostile_name_in_frame_stays_in_download_dir(
    harness: Harness, dirs: tuple[Path, Path]
) -> None:
    """A peer claiming a path as the file name still lands inside the directory."""
    _, bob = await pair(harness, dirs)
    payload = b"owned"
    bob_transfers = bob.connection.transfers
    for ident, claimed in enumerate(["../../evil", "/tmp/evil", "sub/dir/evil", "ev\x00il"], 1):
        await bob_transfers.on_incoming(
            wire.encode_json(
                FrameType.FILE_INCOMING,
                {"id": ident, "sender": "mallory", "name": claimed, "size": len(payload)},
            )[5:]
        )
        await bob_transfers.on_data(wire.ID.pack(ident) + payload)
        await bob_transfers.on_end(wire.ID.pack(ident) + crc(payload))
    assert sorted(received(dirs[1])) == ["evil", "evil (1)", "evil (2)", "evil (3)"]
    assert not (dirs[1].parent / "evil").exists()


async def test_damaged_file_is_not_saved(harness: Harness, dirs: tuple[Path, Path]) -> None:
    _, bob = await pair(harness, dirs)
    transfers = bob.connection.transfers
    await announce(transfers, 7, "x.bin", 3)
    await transfers.on_data(wire.ID.pack(7) + b"abc")
    await transfers.on_end(wire.ID.pack(7) + crc(b"abd"))
    assert received(dirs[1]) == {}


async def test_chat_flows_during_transfer(harness: Harness, dirs: tuple[Path, Path]) -> None:
    alice, bob = await pair(harness, dirs)
    content = os.urandom(20 * wire.SEND_WINDOW)
    (dirs[0] / "big.bin").write_bytes(content)
    await alice.type("/send bob big.bin")
    # Wait until the receiver has part of the file, but not all of it.
    with trio.fail_after(10):
        while not bob.connection.transfers._incoming:
            await trio.sleep(0)
    await bob.type("chatting while it streams")
    await alice.type("me too")
    await alice.expect(chat("bob", "chatting while it streams"))
    await alice.expect(chat("alice", "me too"))
    assert bob.connection.transfers._incoming, "the chat overtook the file"
    await alice.expect(srv("You sent big.bin to bob."))
    assert received(dirs[1]) == {"big.bin": content}


async def test_sender_vanishing_leaves_no_file(harness: Harness, dirs: tuple[Path, Path]) -> None:
    _, bob = await pair(harness, dirs)
    mallory = await harness.connect("mallory")
    await settle()
    offer = {
        "ref": 1,
        "target": "bob",
        "path": "x",
        "name": "x.bin",
        "size": 1000,
        "readable": True,
    }
    await mallory.send_raw(wire.encode_json(FrameType.SEND_OFFER, offer))
    await mallory.send_raw(wire.encode_with_id(FrameType.FILE_DATA, 1, b"partial"))
    with trio.fail_after(10):
        while not any(dirs[1].iterdir()):
            await trio.sleep(0.01)
    await mallory.hang_up()
    with trio.fail_after(10):
        while any(dirs[1].iterdir()):
            await trio.sleep(0.01)
    assert bob.take() == [srv("mallory has joined the channel.")]
    assert harness.printed_lines()[-1:] != [srv("mallory sent x to bob.")]


async def test_receiver_vanishing_aborts_the_sender(
    harness: Harness, dirs: tuple[Path, Path]
) -> None:
    alice, _ = await pair(harness, dirs)
    mallory = await harness.connect("mallory")
    await settle()
    (dirs[0] / "big.bin").write_bytes(os.urandom(4 * wire.SEND_WINDOW))
    await alice.type("/send mallory big.bin")
    with trio.fail_after(10):
        while FrameType.FILE_INCOMING not in [t for t, _ in mallory.other_frames]:
            await trio.sleep(0.01)
    await mallory.hang_up()
    with trio.fail_after(10):
        await alice.connection.transfers.wait_sent()
    await alice.type("/list")
    await alice.expect(srv("mallory has joined the channel."))
    await alice.expect("[Channel] general 2/5/0.")
    assert not any("sent" in line for line in harness.printed_lines())


async def test_kicked_receiver_mid_transfer_keeps_no_partial(
    harness: Harness, dirs: tuple[Path, Path]
) -> None:
    alice, bob = await pair(harness, dirs)
    (dirs[0] / "big.bin").write_bytes(os.urandom(10 * wire.SEND_WINDOW))
    await alice.type("/send bob big.bin")
    with trio.fail_after(10):
        while not bob.connection.transfers._incoming:
            await trio.sleep(0)
    harness.console("/kick general:bob")
    with trio.fail_after(10):
        await alice.connection.transfers.wait_sent()
        while bob.status is None:
            await trio.sleep(0.01)
    assert received(dirs[1]) == {}
    assert srv("You sent big.bin to bob.") not in alice.take()


async def test_file_over_server_limit_is_refused_on_stderr(dirs: tuple[Path, Path]) -> None:
    async with running_server(limits=Limits(max_file_size=10)) as harness:
        alice, _ = await pair(harness, dirs)
        (dirs[0] / "big.txt").write_bytes(b"x" * 11)
        (dirs[0] / "ok.txt").write_bytes(b"x" * 10)
        await alice.type("/send bob big.txt")
        with trio.fail_after(10):
            await alice.connection.transfers.wait_sent()
        await send_and_wait(harness, alice, "ok.txt")
        assert received(dirs[1]) == {"ok.txt": b"x" * 10}
        assert any("at most 10 bytes" in note for note in alice.notes)


async def test_a_pseudo_file_of_unknown_size_is_refused(
    harness: Harness, dirs: tuple[Path, Path]
) -> None:
    if not Path("/proc/cpuinfo").exists():
        pytest.skip("no /proc here")
    alice, _ = await pair(harness, dirs)
    await alice.type("/send bob /proc/cpuinfo")
    await alice.expect(srv("/proc/cpuinfo does not exist."))
    assert any("size is unknown" in note for note in alice.notes)
    assert received(dirs[1]) == {}


async def test_a_quoted_path_may_hold_spaces(harness: Harness, dirs: tuple[Path, Path]) -> None:
    alice, _ = await pair(harness, dirs)
    (dirs[0] / "my notes.txt").write_text("spaced")
    (dirs[0] / "it's.txt").write_text("apostrophe")
    await alice.type('/send bob "my notes.txt"')
    await alice.expect(srv("You sent my notes.txt to bob."))
    assert harness.printed_lines() == [srv("alice sent my notes.txt to bob.")]
    await send_and_wait(harness, alice, "it's.txt")
    assert received(dirs[1]) == {"my notes.txt": b"spaced", "it's.txt": b"apostrophe"}


async def test_a_file_that_grows_while_sent_is_not_reported_sent(
    harness: Harness, dirs: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    alice, _ = await pair(harness, dirs)
    path = dirs[0] / "log.txt"
    path.write_bytes(b"x" * 100)
    local = files.open_for_sending(str(path))
    assert local.handle is not None
    with path.open("ab") as grow:
        grow.write(b"more")  # after the size was taken for the offer
    monkeypatch.setattr(files, "open_for_sending", lambda typed: local)
    await alice.type("/send bob log.txt")
    # The client says so on stderr once it has called the transfer off.
    await eventually(lambda: any("grew while being sent" in note for note in alice.notes))
    await settle()
    assert srv("You sent log.txt to bob.") not in alice.take()
    assert received(dirs[1]) == {}


async def test_the_receiver_acknowledges_a_quarter_window_at_a_time_and_the_end(
    harness: Harness, dirs: tuple[Path, Path]
) -> None:
    _, bob = await pair(harness, dirs)
    transfers = bob.connection.transfers
    sent: list[bytes] = []

    async def record(frame: bytes | memoryview) -> None:
        sent.append(bytes(frame))

    transfers._send = record
    quarter = wire.SEND_WINDOW // 4
    size = 3 * quarter + 10
    content = os.urandom(size)
    await announce(transfers, 9, "q.bin", size)
    for start in range(0, size, wire.CHUNK_SIZE):
        await transfers.on_data(wire.ID.pack(9) + content[start : start + wire.CHUNK_SIZE])
    await transfers.writes_done()
    acks = [
        wire.decode_ack(memoryview(frame)[5:])[1]
        for frame in sent
        if frame[4] == FrameType.FILE_ACK
    ]
    # Fewer wakeups for everyone, and the sender's window never closes.
    assert acks == [quarter, 2 * quarter, 3 * quarter, size]
    await transfers.on_end(wire.ID.pack(9) + crc(content))
    assert received(dirs[1]) == {"q.bin": content}


async def test_a_disk_that_fills_mid_file_keeps_no_partial_and_tells_the_sender(
    harness: Harness, dirs: tuple[Path, Path]
) -> None:
    alice, bob = await pair(harness, dirs)
    (dirs[0] / "big.bin").write_bytes(os.urandom(3 * wire.SEND_WINDOW))
    # A real failing write, as on a full disk: files may not grow past one
    # window (Python ignores SIGXFSZ, so the write fails with EFBIG).
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (wire.SEND_WINDOW, hard))
    try:
        await alice.type("/send bob big.bin")
        await eventually(lambda: any("cannot write" in note for note in bob.notes))
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    await eventually(lambda: any("could not save big.bin" in note for note in alice.notes))
    await settle()
    assert received(dirs[1]) == {}
    assert srv("You sent big.bin to bob.") not in alice.take()


async def test_chunks_that_arrive_together_past_the_size_keep_no_partial(
    harness: Harness, dirs: tuple[Path, Path]
) -> None:
    _, bob = await pair(harness, dirs)
    transfers = bob.connection.transfers
    await announce(transfers, 5, "x.bin", 4)
    # Handled as one batch: the third chunk runs past the size.
    await transfers.on_data(
        wire.ID.pack(5) + b"ab", wire.ID.pack(5) + b"c", wire.ID.pack(5) + b"de"
    )
    await transfers.on_data(wire.ID.pack(5) + b"d")  # ignored: the transfer is off
    await settle()
    assert received(dirs[1]) == {}
    assert any("more data than announced" in note for note in bob.notes)
