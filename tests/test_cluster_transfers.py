"""/send across the nodes of a cluster when one of them goes (behaviour.md, "A
cluster of servers"): every file to or from its members is called off at once,
the other end is told as when a sender or target hangs up on one server, and
its data stream leaves Redis.

Real nodes, a real redis-server, real clients (or a raw peer where a test
needs a transfer held at one point); node i listens on 127.0.0.(2+i).
"""

from __future__ import annotations

import json
import re
import signal
import time
from pathlib import Path

import pytest

from trio_chat import wire
from trio_chat.client import files
from trio_chat.cluster import keys, snapshot
from trio_chat.wire import FrameType, SendState

from .peers import RawPeer
from .processes import DEADLINE, Cluster, Program, cluster, srv
from .redis_process import RedisProcess

# Short, so that a member whose transfer was called off is seen to go AFK soon.
AFK = ("--afk-timeout", "3")
# Time enough for a dead node to be noticed (its lease) and then a member to go AFK.
AFTER_A_DEATH = 20.0


def node_number(node: Program) -> int:
    """The number the node took in the cluster, which names its keys in Redis."""
    match = re.search(r"node (\d+), listening", node.stderr)
    assert match, node.stderr
    return int(match.group(1))


def nodes_of(chat: Cluster) -> list[Program]:
    return chat.server.nodes  # type: ignore[union-attr]


def partial_files(directory: Path) -> list[Path]:
    return [p for p in directory.iterdir() if p.name.startswith(files.TEMP_PREFIX)]


def wait_for_partial_file(directory: Path) -> Path:
    """The receiver's temporary file, made when the first bytes arrive."""
    end = time.monotonic() + DEADLINE
    while not (found := partial_files(directory)):
        assert time.monotonic() < end, f"no partial file in {directory}"
        time.sleep(0.001)
    return found[0]


def join_and_count(chat: Cluster, name: str, node: int, members: int) -> None:
    """A new member of node ``node`` sees ``members`` in general: that node's
    replica of the rules agrees. Its /list was logged after that node applied
    everything before its join, so what that node queued for Redis is written."""
    program = chat.join(name, node=node)
    program.type("/list")
    program.expect(f"[Channel] general {members}/5/0.")


def busy_in_snapshot(redis: RedisProcess) -> list[str]:
    """The members that the cluster's latest snapshot has sending or receiving."""
    saved = redis.command("GET", keys.SNAPSHOT)
    if not saved:
        return []
    hub = json.loads(snapshot.replica_state(snapshot.unsaved(saved.encode())[1]).hub)
    return [
        member["name"]
        for channel in hub["channels"].values()
        for member in channel["members"]
        if member["transfers"]
    ]


def wait_for_snapshot_during_the_file(redis: RedisProcess) -> None:
    """Until a snapshot is taken while the file moves (one every 2 s)."""
    end = time.monotonic() + DEADLINE
    while sorted(busy_in_snapshot(redis)) != ["alice", "bob"]:
        assert time.monotonic() < end, "no snapshot taken during the file"
        time.sleep(0.05)


def test_a_senders_node_dies_mid_transfer_and_the_receiver_is_told(tmp_path: Path) -> None:
    size = 64 << 20
    with (tmp_path / "big.bin").open("wb") as big:
        big.truncate(size)
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    with cluster(tmp_path, nodes=2, server_options=AFK) as chat:
        assert chat.redis is not None
        alice = chat.join("alice", node=0)
        bob = chat.client("bob", "general", "--download-dir", str(downloads), node=1)
        chat.server.expect(srv("bob has joined the general channel."))
        alice.expect(srv("bob has joined the channel."))
        alice.type("/send bob big.bin")
        partial = wait_for_partial_file(downloads)
        dead = nodes_of(chat)[0]
        bob.process.send_signal(signal.SIGSTOP)
        try:
            # Stopped, bob acknowledges nothing more, and alice's client stays
            # within a window of what he acknowledged: the file is surely in flight.
            assert partial.stat().st_size + 2 * wire.SEND_WINDOW < size
            # A third node, party to nothing, joins now from a snapshot taken
            # during the file. Its member carol is muted, which freezes her
            # AFK timer: she stays to see what her node makes of bob.
            wait_for_snapshot_during_the_file(chat.redis)
            chat.hosts.append("127.0.0.4")
            nodes_of(chat).append(chat.start_node("127.0.0.4", AFK))
            carol = chat.join("carol", node=2)
            nodes_of(chat)[1].type("/mute general:carol 60")
            carol.expect_soon(srv("You have been muted for 60 seconds."))
            dead.process.kill()
            dead.wait_exit()
        finally:
            bob.process.send_signal(signal.SIGCONT)
        # The same words as when a sender hangs up on one server.
        bob.wait_stderr(
            "big.bin from alice broke off: alice went away before the whole file arrived",
            deadline=AFTER_A_DEATH,
        )
        assert partial_files(downloads) == []
        # His AFK timer runs again: the transfer no longer counts as activity.
        assert bob.wait_exit(deadline=AFTER_A_DEATH) == 0
        assert "disconnected for inactivity" in bob.stderr
        chat.server.expect_soon(srv("bob went AFK."))
        assert list(downloads.iterdir()) == []
        # The third node's replica agrees that bob is no longer busy.
        carol.expect_soon(srv("bob went AFK."))
        # Bob's node, which wrote his acknowledgements to the dead node's
        # stream, has deleted that stream.
        join_and_count(chat, "dave", node=1, members=2)
        assert not chat.redis.exists(keys.data(node_number(dead)))
        nodes_of(chat)[1].type("/shutdown")
        for node in nodes_of(chat)[1:]:
            assert node.wait_exit() == 0


def test_a_file_announced_but_not_begun_is_called_off_when_the_senders_node_dies(
    tmp_path: Path,
) -> None:
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    with cluster(tmp_path, nodes=2, server_options=AFK) as chat:
        assert chat.redis is not None
        bob = chat.client("bob", "general", "--download-dir", str(downloads), node=1)
        chat.server.expect(srv("bob has joined the general channel."))
        mallory = RawPeer(chat.ports["general"], "mallory", host=chat.hosts[0])
        bob.expect_soon(srv("mallory has joined the channel."))
        offer = {"ref": 1, "target": "bob", "path": "x", "name": "x.bin", "size": 1000}
        mallory.send(wire.encode_json(FrameType.SEND_OFFER, {**offer, "readable": True}))
        assert mallory.next_frame(FrameType.SEND_STATE)[4] == SendState.GO
        bob.wait_stderr("receiving x.bin")
        dead = nodes_of(chat)[0]
        dead.process.kill()
        dead.wait_exit()
        bob.wait_stderr(
            "x.bin from mallory broke off: mallory went away before the whole file arrived",
            deadline=AFTER_A_DEATH,
        )
        assert bob.wait_exit(deadline=AFTER_A_DEATH) == 0
        assert "disconnected for inactivity" in bob.stderr
        assert list(downloads.iterdir()) == []
        mallory.close()
        chat.server.expect_soon(srv("bob went AFK."))
        join_and_count(chat, "carol", node=1, members=1)
        assert not chat.redis.exists(keys.data(node_number(dead)))
        nodes_of(chat)[1].type("/shutdown")
        assert nodes_of(chat)[1].wait_exit() == 0


@pytest.mark.parametrize(
    ("stop", "size"),
    [
        (signal.SIGKILL, 8 * wire.SEND_WINDOW),
        # It leaves while the sender's node is held up (stopped): that node
        # learns of it only after the leaver has deleted its own keys.
        (signal.SIGTERM, 8 * wire.SEND_WINDOW),
        # All sent (nothing to send), the receiver's answer still to come.
        (signal.SIGKILL, 0),
    ],
    ids=["killed", "left", "killed-before-the-answer"],
)
def test_a_receivers_node_goes_and_the_sender_is_told_and_its_stream_deleted(
    tmp_path: Path, stop: signal.Signals, size: int
) -> None:
    (tmp_path / "big.bin").write_bytes(b"\0" * size)
    with cluster(tmp_path, nodes=2, server_options=AFK) as chat:
        assert chat.redis is not None
        alice = chat.join("alice", node=0)
        bob = RawPeer(chat.ports["general"], "bob", host=chat.hosts[1])  # never acknowledges
        alice.expect(srv("bob has joined the channel."))
        alice.type("/send bob big.bin")
        bob.next_frame(FrameType.FILE_INCOMING)
        bob.next_frame(FrameType.FILE_DATA if size else FrameType.FILE_END)
        gone = nodes_of(chat)[1]
        held_up = nodes_of(chat)[0] if stop == signal.SIGTERM else None
        if held_up is not None:
            held_up.process.send_signal(signal.SIGSTOP)
        try:
            gone.process.send_signal(stop)
            gone.wait_exit()
        finally:
            if held_up is not None:
                held_up.process.send_signal(signal.SIGCONT)
        alice.wait_stderr(
            "/send big.bin: bob went away before the whole file arrived", deadline=AFTER_A_DEATH
        )
        bob.close()
        # Typed after alice's node called the file off: by the time it comes
        # back, what that node queued for Redis before it is written.
        alice.type("still here")
        alice.expect_soon("[alice (<time>)] still here")
        assert not chat.redis.exists(keys.data(node_number(gone)))
        assert alice.wait_exit(deadline=AFTER_A_DEATH) == 0
        assert "disconnected for inactivity" in alice.stderr
        nodes_of(chat)[0].type("/shutdown")
        assert nodes_of(chat)[0].wait_exit() == 0
