"""Redis faults under a running cluster, end to end: a real redis-server that
stalls (SIGSTOP, then SIGCONT) or crashes without its data (SIGKILL, then a
new one on the same socket), real nodes and clients (docs/cluster.md, "Several
processes: a cluster"; behaviour.md, "A cluster of servers"). Also a node's
registration when it cannot bind its ports."""

from __future__ import annotations

import signal
import socket
import time
from pathlib import Path

from trio_chat.cluster import keys

from .processes import Cluster, Program, cluster, srv
from .programs import CLIENT, SERVER, run_program
from .redis_process import RedisProcess

STALL = 5.0  # seconds: well past the two-second lease
CHANNELS = ("general", "random", "help")


def chat_both_ways(one: Program, other: Program, tag: str) -> None:
    one.type(f"{tag} from {one.name}")
    other.expect_soon(f"[{one.name} (<time>)] {tag} from {one.name}", deadline=20)
    other.type(f"{tag} from {other.name}")
    one.expect_soon(f"[{other.name} (<time>)] {tag} from {other.name}", deadline=20)


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
        chat_both_ways(alice, bob, "after the stall")
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
    return other_config_of(chat.workdir)


def other_config_of(workdir: Path) -> Path:
    other = workdir / "other"
    other.mkdir()
    config = (workdir / "configfile").read_text().replace(" 5\n", " 6\n", 1)
    (other / "configfile").write_text(config)
    return other


def third_node(chat: Cluster, workdir: Path) -> Program:
    assert chat.redis is not None
    node = Program(
        "third", [SERVER, "configfile", "--redis", chat.redis.url, "--host", "127.0.0.4"], workdir
    )
    chat.programs.append(node)
    node.wait_stderr("listening")  # or its reason to stop
    return node


def join_third(chat: Cluster, third: Program, name: str) -> Program:
    args = [CLIENT, str(chat.ports["general"]), name, "--host", "127.0.0.4"]
    client = Program(name, args, chat.workdir)
    chat.programs.append(client)
    client.expect(srv(f"Welcome to the general channel, {name}."))
    client.expect(srv(f"{name} has joined the channel."))
    return client


RE_REGISTERED = "lost the cluster's state (it restarted without its data?): re-registered"


def test_redis_restarted_without_its_data_the_nodes_re_register(tmp_path: Path) -> None:
    with cluster(tmp_path, nodes=2, redis_keeps_data=False) as chat:
        assert chat.redis is not None
        nodes = chat.server.nodes  # type: ignore[union-attr]
        alice = chat.join("alice", node=0)
        bob = chat.join("bob", node=1)
        alice.expect(srv("bob has joined the channel."))
        chat.redis.signal(signal.SIGKILL)
        chat.redis.start()  # the same socket, nothing kept
        for node in nodes:
            node.wait_stderr(RE_REGISTERED, deadline=20)
        assert sum("and re-published the cluster's state" in node.stderr for node in nodes) == 1
        chat_both_ways(alice, bob, "after the restart")
        # (two nodes' stdouts: in either order)
        assert sorted(chat.server.next_line() for _ in range(2)) == [
            "[alice (<time>)] after the restart from alice",
            "[bob (<time>)] after the restart from bob",
        ]
        # The config is the cluster's again: a node with another one is refused.
        refused = third_node(chat, other_config(chat, tmp_path))
        assert refused.wait_exit() == 1
        assert "differs from the one the running cluster uses" in refused.stderr
        # One with the same config gets a number nobody holds, and the state.
        third = chat.start_node("127.0.0.4")
        assert "node 3, listening" in third.stderr, third.stderr
        chat.hosts.append("127.0.0.4")
        nodes.append(third)
        carol = chat.join("carol", node=2)
        carol.type("/list")
        carol.expect("[Channel] general 3/5/0.")
        for member in (alice, bob):
            member.expect_soon(srv("carol has joined the channel."))
        chat_both_ways(alice, carol, "with the third")
        chat.shutdown()
        # Each line printed once, by the node where it began.
        lines = chat.server.lines
        for line in (
            "[alice (<time>)] after the restart from alice",
            "[bob (<time>)] after the restart from bob",
            "[alice (<time>)] with the third from alice",
            "[carol (<time>)] with the third from carol",
        ):
            assert lines.count(line) == 1, lines
        for client in (alice, bob, carol):
            assert client.process.returncode == 0


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
            third.expect(srv("carol has joined the general channel."))
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


def test_a_node_whose_replica_does_not_match_the_restored_state_stops(
    tmp_path: Path,
) -> None:
    """After Redis lost the state, the first node re-published its replica;
    the second finds that replica has applied the log further than its own
    (as when Redis lost entries only some nodes had read: here the test says
    so in Redis, since a node cannot be kept from reading what Redis sent it
    before it died). The second stops; the first carries on without it."""
    with cluster(tmp_path, nodes=2, redis_keeps_data=False) as chat:
        assert chat.redis is not None
        first, second = chat.server.nodes  # type: ignore[union-attr]
        alice = chat.join("alice", node=0)
        bob = chat.join("bob", node=1)
        alice.expect(srv("bob has joined the channel."))
        second.process.send_signal(signal.SIGSTOP)
        try:
            chat.redis.signal(signal.SIGKILL)
            chat.redis.start()
            first.wait_stderr("and re-published the cluster's state", deadline=20)
            assert chat.redis.command("SET", keys.RESTORED, "1-0") == "OK"
        finally:
            second.process.send_signal(signal.SIGCONT)
        assert second.wait_exit(deadline=20) == 1
        assert "does not match it" in second.stderr, second.stderr
        bob.wait_exit()
        # Its members leave once it has had its time to renew.
        first.wait_stderr("node 2 stopped renewing its lease", deadline=20)
        alice.type("/list")
        alice.expect("[Channel] general 1/5/0.")
        first.type("/shutdown")
        assert first.wait_exit() == 0
        assert alice.wait_exit() == 0


def test_a_node_that_cannot_bind_leaves_the_cluster_at_once(tmp_path: Path) -> None:
    """It joined before binding: it must not stay registered (for a lease) and
    so refuse the next node that brings another config."""
    redis = RedisProcess()
    try:
        taken = socket.socket()
        taken.bind(("127.0.0.5", 0))
        taken.listen()
        port = taken.getsockname()[1]
        (tmp_path / "configfile").write_text(
            "".join(f"channel {name} {port + i} 5\n" for i, name in enumerate(CHANNELS))
        )
        with taken:
            args = [SERVER, "configfile", "--redis", redis.url, "--host", "127.0.0.5"]
            result = run_program(*args, cwd=tmp_path)
        assert result.returncode == 1
        assert "Address already in use" in result.stderr
        assert "Traceback" not in result.stderr, result.stderr
        other = other_config_of(tmp_path)
        node = Program("other", args, other)
        try:
            assert node.wait_stderr("listening"), node.stderr
            assert "node 2, listening" in node.stderr
        finally:
            node.kill()
    finally:
        redis.close()
