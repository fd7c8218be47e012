"""Redis faults under a running cluster, end to end: a real redis-server that
stalls (SIGSTOP, then SIGCONT) or crashes without its data (SIGKILL, then a
new one on the same socket), real nodes and clients (README, "Several
processes: a cluster"; behaviour.md, "A cluster of servers")."""

from __future__ import annotations

import signal
import time
from pathlib import Path

from .processes import Cluster, Program, cluster, srv
from .programs import CLIENT, SERVER

STALL = 5.0  # seconds: well past the two-second lease


def chat_both_ways(chat: Cluster, alice: Program, bob: Program, tag: str) -> None:
    alice.type(f"{tag} from alice")
    bob.expect_soon(f"[alice (<time>)] {tag} from alice", deadline=20)
    bob.type(f"{tag} from bob")
    alice.expect_soon(f"[bob (<time>)] {tag} from bob", deadline=20)


def test_a_redis_stall_longer_than_the_lease_drops_nobody(tmp_path: Path) -> None:
    with cluster(tmp_path, nodes=2) as chat:
        assert chat.redis is not None
        first, second = chat.server.nodes  # type: ignore[union-attr]
        alice = chat.join("alice", node=0)
        bob = chat.join("bob", node=1)
        alice.expect(srv("bob has joined the channel."))
        chat.redis.signal(signal.SIGSTOP)
        try:
            time.sleep(STALL)  # the stall itself: nobody can renew a lease meanwhile
            # The first node is the slower of the two to get going again (as it
            # is in some runs by chance): when Redis answers, its lease has lapsed
            # and the second node sees that before it is renewed.
            first.process.send_signal(signal.SIGSTOP)
        finally:
            chat.redis.signal(signal.SIGCONT)
        try:
            second.wait_stderr("Redis is back", deadline=20)
        finally:
            first.process.send_signal(signal.SIGCONT)
        first.wait_stderr("Redis is back", deadline=20)
        # It finds its own lease lapsed, and renews it: nobody took it for dead.
        first.wait_stderr("this node's lease had lapsed", deadline=20)
        chat_both_ways(chat, alice, bob, "after the stall")
        for node in (first, second):
            # The stall was an outage like any other: once when it began, once when it ended.
            assert node.stderr.count("lost Redis") == 1, node.stderr
            assert node.stderr.count("Redis is back") == 1, node.stderr
            assert "no answer within" in node.stderr
            assert "stopped renewing its lease" not in node.stderr
            assert "taken for dead" not in node.stderr
        chat.shutdown()
        for program in (alice, bob):
            assert program.process.returncode == 0


def other_config(chat: Cluster, tmp_path: Path) -> Path:
    """A working directory whose config differs from the cluster's (a capacity)."""
    other = tmp_path / "other"
    other.mkdir()
    config = (tmp_path / "configfile").read_text().replace(" 5\n", " 6\n", 1)
    (other / "configfile").write_text(config)
    return other


def third_node(chat: Cluster, workdir: Path) -> Program:
    assert chat.redis is not None
    host = "127.0.0.4"
    node = Program(
        "third", [SERVER, "configfile", "--redis", chat.redis.url, "--host", host], workdir
    )
    chat.programs.append(node)
    assert node.wait_stderr("listening"), node.stderr
    return node


def join_third(chat: Cluster, third: Program, name: str) -> Program:
    client = Program(
        name, [CLIENT, str(chat.ports["general"]), name, "--host", "127.0.0.4"], chat.workdir
    )
    chat.programs.append(client)
    third.expect(srv(f"{name} has joined the general channel."))
    client.expect(srv(f"Welcome to the general channel, {name}."))
    client.expect(srv(f"{name} has joined the channel."))
    return client


LOST_STATE = "lost the cluster's state"


def test_redis_restarted_without_its_data_stops_the_nodes_with_the_reason(
    tmp_path: Path,
) -> None:
    with cluster(tmp_path, nodes=2, redis_keeps_data=False) as chat:
        assert chat.redis is not None
        alice = chat.join("alice", node=0)
        bob = chat.join("bob", node=1)
        chat.redis.signal(signal.SIGKILL)
        chat.redis.start()  # the same socket, nothing kept
        for node in chat.server.nodes:  # type: ignore[union-attr]
            assert node.wait_exit(deadline=20) == 1
            assert LOST_STATE in node.stderr, node.stderr
        for client in (alice, bob):
            client.wait_exit()
        # The next node founds a new cluster, with its own config: nobody of the old one is left.
        third = third_node(chat, other_config(chat, tmp_path))
        assert "node 1, listening" in third.stderr
        carol = join_third(chat, third, "carol")
        carol.type("a new cluster")
        carol.expect("[carol (<time>)] a new cluster")
        third.expect("[carol (<time>)] a new cluster")
        third.type("/shutdown")
        assert third.wait_exit() == 0
        assert carol.wait_exit() == 0


def test_a_node_that_founds_a_cluster_before_the_old_nodes_notice_is_left_alone(
    tmp_path: Path,
) -> None:
    """The race: Redis lost the state and a third node joined before the old
    nodes saw it (here they are frozen meanwhile). It found no cluster, so it
    founded one; the old nodes write nothing into it and stop when they see it."""
    with cluster(tmp_path, nodes=2, redis_keeps_data=False) as chat:
        assert chat.redis is not None
        old = chat.server.nodes  # type: ignore[union-attr]
        alice = chat.join("alice", node=0)
        bob = chat.join("bob", node=1)
        for node in old:
            node.process.send_signal(signal.SIGSTOP)
        try:
            chat.redis.signal(signal.SIGKILL)
            chat.redis.start()
            third = third_node(chat, other_config(chat, tmp_path))
            carol = join_third(chat, third, "carol")
        finally:
            for node in old:
                node.process.send_signal(signal.SIGCONT)
        alice.type("typed in the old cluster")
        for node in old:
            assert node.wait_exit(deadline=20) == 1
            assert "now holds another cluster" in node.stderr, node.stderr
        for client in (alice, bob):
            client.wait_exit()
        carol.type("still here")
        carol.expect("[carol (<time>)] still here")
        third.expect("[carol (<time>)] still here")  # nothing of the old cluster's came in
        third.type("/shutdown")
        assert third.wait_exit() == 0
        assert carol.wait_exit() == 0
