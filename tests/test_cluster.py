"""Cluster mode end to end: real nodes, a real redis-server, real clients
(docs/cluster.md, "Several processes: a cluster"; behaviour.md, "A cluster of servers").

Node i listens on 127.0.0.(2+i), so each test says which node a client reaches.
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest

from trio_chat import wire
from trio_chat.wire import FrameType

from .peers import RawPeer
from .processes import DEADLINE, Cluster, Program, cluster, srv
from .programs import CLIENT, SERVER, free_ports, run_program

LEASE_SECONDS = 3.0  # the documented bound on noticing a node that died


def queued(name: str, ahead: int) -> str:
    return srv(f"You are in the waiting queue and there are {ahead} user(s) ahead of you.")


def fill(chat: Cluster, node: int, count: int, prefix: str = "u") -> list[Program]:
    return [chat.join(f"{prefix}{i}", node=node) for i in range(count)]


def wait_queued(chat: Cluster, name: str, ahead: int, node: int) -> Program:
    program = chat.client(name, node=node)
    program.expect(srv(f"Welcome to the general channel, {name}."))
    program.expect(queued(name, ahead))
    return program


def test_queue_moves_when_a_place_frees_on_another_node(tmp_path: Path) -> None:
    with cluster(tmp_path, nodes=2) as chat:
        members = fill(chat, 0, 5)
        waiting = wait_queued(chat, "waiting", 0, node=1)
        behind = wait_queued(chat, "behind", 1, node=1)
        members[2].type("/quit")
        assert members[2].wait_exit() == 0
        waiting.expect(srv("waiting has joined the channel."))
        behind.expect(queued("behind", 0))
        members[4].expect(srv("u2 has left the channel."))
        members[4].expect(srv("waiting has joined the channel."))
        chat.shutdown()


def test_whisper_list_and_switch_across_nodes(tmp_path: Path) -> None:
    with cluster(tmp_path, nodes=3) as chat:
        alice = chat.join("alice", node=0)
        bob = chat.join("bob", node=1)
        carol = chat.join("carol", "random", node=2)
        alice.type("/whisper bob over there")
        bob.expect("[alice whispers to you: (<time>)] over there")
        carol.type("/list")
        carol.expect("[Channel] general 2/5/0.")
        carol.expect("[Channel] random 1/5/0.")
        carol.expect("[Channel] help 0/5/0.")
        carol.type("/switch general")
        carol.expect(srv("Welcome to the general channel, carol."))
        carol.expect(srv("carol has joined the channel."))
        for member in (alice, bob):
            member.expect_soon(srv("carol has joined the channel."))
        carol.type("hi from node 3")
        alice.expect("[carol (<time>)] hi from node 3")
        bob.expect("[carol (<time>)] hi from node 3")
        chat.shutdown()
        lines = chat.server.rest()
        assert "[alice whispers to bob: (<time>)] over there" in lines
        assert lines.count("[carol (<time>)] hi from node 3") == 1


def test_console_of_any_node_acts_on_members_anywhere(tmp_path: Path) -> None:
    with cluster(tmp_path, nodes=2) as chat:
        console = chat.server.nodes[1]  # type: ignore[union-attr]
        alice = chat.join("alice", node=0)
        bob = chat.join("bob", node=0)
        helper = chat.join("helper", "help", node=0)
        console.type("/mute general:alice 60")
        console.expect(srv("Muted alice for 60 seconds."))
        alice.expect_soon(srv("You have been muted for 60 seconds."))
        alice.type("can anyone hear me")
        refusal = alice.next_line()
        assert refusal.startswith(srv("You are still muted for ")), refusal
        console.type("/kick general:bob")
        console.expect(srv("Kicked bob."))
        assert bob.wait_exit() == 0
        console.type("/empty help")
        console.expect(srv("help has been emptied."))
        assert helper.wait_exit() == 0
        chat.shutdown()


def test_shutdown_typed_on_one_node_stops_the_cluster(tmp_path: Path) -> None:
    with cluster(tmp_path, nodes=3) as chat:
        clients = [chat.join(f"c{i}", node=i) for i in range(3)]
        chat.server.nodes[2].type("/shutdown")  # type: ignore[union-attr]
        assert chat.server.wait_exit() == 0
        for client in clients:
            assert client.wait_exit() == 0


def test_sigterm_stops_one_node_only(tmp_path: Path) -> None:
    with cluster(tmp_path, nodes=2) as chat:
        leaving = fill(chat, 0, 3, "a")
        staying = fill(chat, 1, 2, "b")
        waiting = wait_queued(chat, "waiting", 0, node=1)
        node = chat.server.nodes[0]  # type: ignore[union-attr]
        node.process.send_signal(signal.SIGTERM)
        assert node.wait_exit() == 0
        for client in leaving:
            client.wait_exit()
        # Their places are free: the queue moves at once.
        waiting.expect(srv("waiting has joined the channel."))
        staying[0].type("still here")
        staying[1].expect_soon("[b0 (<time>)] still here")
        chat.server.nodes[1].type("/shutdown")  # type: ignore[union-attr]
        assert chat.server.nodes[1].wait_exit() == 0  # type: ignore[union-attr]


def test_killed_node_frees_its_places_within_the_lease(tmp_path: Path) -> None:
    with cluster(tmp_path, nodes=2) as chat:
        fill(chat, 1, 4, "gone")
        survivor = chat.join("survivor", node=0)
        waiting = wait_queued(chat, "waiting", 0, node=0)
        node = chat.server.nodes[1]  # type: ignore[union-attr]
        killed_at = time.monotonic()
        node.process.kill()
        waiting.expect(srv("waiting has joined the channel."), deadline=10)
        # (plus a second for the client to hear of it and this test to see it)
        assert time.monotonic() - killed_at < LEASE_SECONDS + 1.0
        survivor.type("carrying on")
        passed = survivor.expect_soon("[survivor (<time>)] carrying on")
        # The members of the dead node left silently, as a client that vanishes does.
        assert passed == [srv("waiting has joined the channel.")]
        chat.server.nodes[0].type("/shutdown")  # type: ignore[union-attr]
        assert chat.server.nodes[0].wait_exit() == 0  # type: ignore[union-attr]


def test_a_frozen_node_is_taken_for_dead_and_drops_its_clients(tmp_path: Path) -> None:
    with cluster(tmp_path, nodes=2) as chat:
        alice = chat.join("alice", node=0)
        frozen = chat.join("frozen", node=1)
        node = chat.server.nodes[1]  # type: ignore[union-attr]
        node.process.send_signal(signal.SIGSTOP)
        try:
            chat.server.nodes[0].wait_stderr("stopped renewing its lease")  # type: ignore[union-attr]
        finally:
            node.process.send_signal(signal.SIGCONT)
        # It finds out it was taken for dead: its client is not left in a chat
        # that no longer counts it.
        assert frozen.wait_exit() == 0
        node.wait_stderr("taken for dead")
        # And it serves again.
        again = chat.join("again", node=1)
        again.type("hello")
        alice.expect_soon("[again (<time>)] hello")
        chat.shutdown()


def wait_until_trimmed(chat: Cluster, kind: str) -> None:
    """Wait (polling Redis, with a deadline) until no entry of ``kind`` is left in the log."""
    assert chat.redis is not None
    end = time.monotonic() + DEADLINE
    while f'"type":"{kind}"' in chat.redis.command("XRANGE", "trio-chat:log", "-", "+"):
        assert time.monotonic() < end, "the log was not trimmed"
        time.sleep(0.1)


def test_a_frozen_node_whose_gone_entry_was_trimmed_stops(tmp_path: Path) -> None:
    """The log is trimmed past a node taken for dead: once it resumes it must
    not read on over the gap (its replica is no longer the cluster's)."""
    with cluster(tmp_path, nodes=2) as chat:
        alice = chat.join("alice", node=0)
        frozen = chat.join("frozen", node=1)
        node = chat.server.nodes[1]  # type: ignore[union-attr]
        node.process.send_signal(signal.SIGSTOP)
        try:
            chat.server.nodes[0].wait_stderr("stopped renewing its lease")  # type: ignore[union-attr]
            # An entry after the "gone" one, so that the next snapshot trims it away.
            alice.type("while frozen")
            chat.server.expect("[alice (<time>)] while frozen")
            wait_until_trimmed(chat, "node_gone")
        finally:
            node.process.send_signal(signal.SIGCONT)
        assert frozen.wait_exit() == 0
        assert node.wait_exit() == 1
        assert "the log was trimmed past this node's position" in node.stderr, node.stderr
        # The other node and its clients carry on.
        carol = chat.join("carol", node=0)
        alice.expect_soon(srv("carol has joined the channel."))
        alice.type("still here")
        carol.expect_soon("[alice (<time>)] still here")
        chat.server.nodes[0].type("/shutdown")  # type: ignore[union-attr]
        assert chat.server.nodes[0].wait_exit() == 0  # type: ignore[union-attr]
        assert alice.wait_exit() == 0


def test_first_node_dies_and_nothing_is_lost(tmp_path: Path) -> None:
    """No node runs the rules for the others: when the first node (the one
    that writes snapshots) dies, members, queue places and mutes elsewhere stay."""
    with cluster(tmp_path, nodes=3) as chat:
        fill(chat, 0, 2, "first")
        members = [chat.join("m1", node=1), chat.join("m2", node=2), chat.join("m3", node=1)]
        waiting = [wait_queued(chat, f"w{i}", i, node=1 + i % 2) for i in range(3)]
        chat.server.nodes[1].type("/mute general:m2 120")  # type: ignore[union-attr]
        members[1].expect_soon(srv("You have been muted for 120 seconds."))
        chat.server.nodes[0].process.kill()  # type: ignore[union-attr]
        # The two places of the dead node go to the first two in the queue, in order.
        waiting[0].expect(srv("w0 has joined the channel."), deadline=10)
        waiting[1].expect_soon(srv("w1 has joined the channel."), deadline=10)
        waiting[2].expect_soon(queued("w2", 0), deadline=10)
        members[1].type("am I still muted")
        members[1].expect_soon(srv("w1 has joined the channel."))
        line = members[1].next_line()
        assert line.startswith(srv("You are still muted for ")), line
        members[0].type("hello")
        members[2].expect_soon("[m1 (<time>)] hello")
        chat.server.nodes[2].type("/shutdown")  # type: ignore[union-attr]
        for node in chat.server.nodes[1:]:  # type: ignore[union-attr]
            assert node.wait_exit() == 0


def test_redis_restart_keeps_clients_and_delivers_what_was_typed(tmp_path: Path) -> None:
    with cluster(tmp_path, nodes=2) as chat:
        assert chat.redis is not None
        alice = chat.join("alice", node=0)
        bob = chat.join("bob", node=1)
        chat.redis.stop()
        alice.type("typed while Redis was away")
        for node in chat.server.nodes:  # type: ignore[union-attr]
            node.wait_stderr("lost Redis")
        chat.redis.start()
        bob.expect("[alice (<time>)] typed while Redis was away", deadline=20)
        for node in chat.server.nodes:  # type: ignore[union-attr]
            node.wait_stderr("Redis is back", deadline=20)
            assert node.stderr.count("lost Redis") == 1
        bob.type("and after")
        alice.expect(srv("bob has joined the channel."))
        alice.expect("[alice (<time>)] typed while Redis was away")
        alice.expect("[bob (<time>)] and after")
        chat.shutdown()
        for program in (alice, bob):
            assert program.process.returncode == 0


def test_an_outage_longer_than_the_afk_timeout_removes_nobody(tmp_path: Path) -> None:
    with cluster(tmp_path, nodes=2, server_options=("--afk-timeout", "3")) as chat:
        assert chat.redis is not None
        alice = chat.join("alice", node=0)
        bob = chat.join("bob", node=1)
        alice.expect(srv("bob has joined the channel."))
        chat.redis.stop()
        time.sleep(4)  # the outage itself: longer than the AFK timeout
        chat.redis.start()
        for node in chat.server.nodes:  # type: ignore[union-attr]
            node.wait_stderr("Redis is back", deadline=20)
        alice.type("back")
        bob.expect("[alice (<time>)] back")  # nobody was removed on recovery
        # And the timers run again from the end of the outage.
        assert alice.wait_exit() == 0
        assert bob.wait_exit() == 0
        for client in (alice, bob):
            assert "disconnected for inactivity" in client.stderr
        chat.shutdown()
        assert sorted(chat.server.rest()) == sorted(
            ["[alice (<time>)] back", srv("alice went AFK."), srv("bob went AFK.")]
        )


def test_a_node_that_joins_later_knows_the_state(tmp_path: Path) -> None:
    with cluster(tmp_path, nodes=1) as chat:
        fill(chat, 0, 5)
        wait_queued(chat, "waiting", 0, node=0)
        chat.hosts.append("127.0.0.3")
        chat.server.nodes.append(chat.start_node("127.0.0.3"))  # type: ignore[union-attr]
        late = chat.client("late", "random", node=1)
        late.expect(srv("Welcome to the random channel, late."))
        late.expect(srv("late has joined the channel."))
        late.type("/list")
        late.expect("[Channel] general 5/5/1.")
        late.expect("[Channel] random 1/5/0.")
        twin = chat.client("u0", node=1)
        twin.expect(srv("Cannot connect to the general channel."))
        assert twin.wait_exit() == 1
        chat.shutdown()


def test_forged_acknowledgement_from_another_node_drops_only_the_receiver(
    tmp_path: Path,
) -> None:
    (tmp_path / "big.bin").write_bytes(b"\0" * (8 * wire.SEND_WINDOW))
    with cluster(tmp_path, nodes=2) as chat:
        alice = chat.join("alice", node=0)
        mallory = RawPeer(chat.ports["general"], "mallory", host=chat.hosts[1])
        alice.expect(srv("mallory has joined the channel."))
        alice.type("/send mallory big.bin")
        incoming = json.loads(mallory.next_frame(FrameType.FILE_INCOMING))
        mallory.next_frame(FrameType.FILE_DATA)
        mallory.send(wire.encode_ack(incoming["id"], 2**62))
        # The relaying node (alice's) finds the lie; mallory's node drops it.
        alice.wait_stderr("broke the protocol")
        assert "big.bin was not delivered" in alice.stderr
        with pytest.raises(AssertionError, match="closed the connection"):
            while True:
                mallory.next_frame(FrameType.FILE_DATA)
        alice.type("still fine")
        alice.expect("[alice (<time>)] still fine")
        mallory.close()
        chat.shutdown()


def test_a_receivers_node_dies_mid_transfer_and_the_sender_is_told(tmp_path: Path) -> None:
    (tmp_path / "big.bin").write_bytes(b"\0" * (8 * wire.SEND_WINDOW))
    with cluster(tmp_path, nodes=2) as chat:
        alice = chat.join("alice", node=0)
        bob = RawPeer(chat.ports["general"], "bob", host=chat.hosts[1])  # never acknowledges
        alice.expect(srv("bob has joined the channel."))
        alice.type("/send bob big.bin")
        bob.next_frame(FrameType.FILE_INCOMING)
        bob.next_frame(FrameType.FILE_DATA)
        chat.server.nodes[1].process.kill()  # type: ignore[union-attr]
        alice.wait_stderr("/send big.bin: bob went away before the whole file arrived", deadline=10)
        bob.close()
        chat.server.nodes[0].type("/shutdown")  # type: ignore[union-attr]
        assert chat.server.nodes[0].wait_exit() == 0  # type: ignore[union-attr]


def test_config_that_differs_is_refused(tmp_path: Path) -> None:
    with cluster(tmp_path, nodes=1) as chat:
        assert chat.redis is not None
        other = tmp_path / "other"
        other.mkdir()
        config = (tmp_path / "configfile").read_text().replace(" 5\n", " 6\n", 1)
        (other / "configfile").write_text(config)
        result = run_program(
            SERVER, "configfile", "--redis", chat.redis.url, "--host", "127.0.0.3", cwd=other
        )
        assert result.returncode == 1
        assert "differs from the one the running cluster uses" in result.stderr
        assert "listening" not in result.stderr
        chat.shutdown()


def test_unreachable_redis_exits_1_before_binding(tmp_path: Path) -> None:
    (tmp_path / "configfile").write_text(
        "channel a 1 5\nchannel b 2 5\nchannel c 3 5\n"  # ports nobody may bind
    )
    result = run_program(
        SERVER, "configfile", "--redis", f"unix://{tmp_path}/none.sock", cwd=tmp_path
    )
    assert result.returncode == 1
    assert "cannot reach Redis" in result.stderr


@pytest.mark.parametrize(
    "url", ["http://localhost", "redis://", "redis://host:port", "redis://h/x", "unix://a/b"]
)
def test_bad_redis_url_exits_1(tmp_path: Path, url: str) -> None:
    (tmp_path / "configfile").write_text("channel a 1 5\nchannel b 2 5\nchannel c 3 5\n")
    result = run_program(SERVER, "configfile", "--redis", url, cwd=tmp_path)
    assert result.returncode == 1
    assert "Redis URL" in result.stderr or "database" in result.stderr or "unix" in result.stderr


@pytest.mark.parametrize("stop", ["/shutdown", "SIGTERM"])
def test_workers_share_the_ports_through_a_private_redis(tmp_path: Path, stop: str) -> None:
    ports = free_ports(3)
    (tmp_path / "configfile").write_text(
        "".join(
            f"channel {name} {port} 5\n"
            for name, port in zip(["general", "random", "help"], ports, strict=True)
        )
    )
    server = Program("workers", [SERVER, "configfile", "--workers", "2"], tmp_path)
    try:
        assert server.wait_stderr("2 workers listening", deadline=30)
        assert server.stderr.count("listening on 127.0.0.1") == 2
        clients = [Program(f"c{i}", [CLIENT, str(ports[0]), f"c{i}"], tmp_path) for i in range(5)]
        # Every client is admitted once, whichever worker the kernel gave it to.
        for i, client in enumerate(clients):
            client.expect(srv(f"Welcome to the general channel, c{i}."))
        assert sorted(server.next_line() for _ in clients) == sorted(
            srv(f"c{i} has joined the general channel.") for i in range(5)
        )
        clients[0].type("to everyone")
        for client in clients[1:]:
            while client.next_line() != "[c0 (<time>)] to everyone":
                pass
        if stop == "SIGTERM":
            server.process.terminate()
        else:
            server.type("/shutdown")
        assert server.wait_exit(deadline=20) == 0
        for client in clients:
            assert client.wait_exit() == 0
        private = next(w for w in server.stderr.split() if "trio-chat-redis-" in w)
        assert not Path(private.removeprefix("unix://")).parent.exists()
    finally:
        if server.process.poll() is None:
            server.process.terminate()  # the workers and their Redis stop with it
            server.process.wait(20)
