"""Channel history in a cluster, end to end: real nodes, a real redis-server,
real clients that print history lines in their piped form (docs/cluster.md,
"History"; behaviour.md, "Channel history"). History is the hub's, so every
node sends the same; it outlives a node, and, on a Redis that keeps its data,
the whole cluster.

Node i listens on 127.0.0.(2+i), so each test says which node a client reaches.
"""

from __future__ import annotations

import re
import signal
import time
from collections.abc import Sequence
from pathlib import Path

from trio_chat.cluster import keys

from .processes import Cluster, Nodes, Program, cluster, srv

HISTORY = ("--history", "20")
DATED = re.compile(r"\[History (\d{4})-(\d\d)-(\d\d)\] ")


def wait_for_no_leases(chat: Cluster) -> None:
    """Until no node of the cluster holds a lease (generous: leases last 2 s)."""
    assert chat.redis is not None
    deadline = time.monotonic() + 30
    while chat.redis.command("KEYS", f"{keys.LEASES}*"):
        assert time.monotonic() < deadline, "a lease outlived 30 s"
        time.sleep(0.05)


def undated(line: str) -> str:
    """A history line with its date checked and replaced by DATE."""
    match = DATED.match(line)
    if match is None:
        return line
    _, month, day = (int(part) for part in match.groups())
    assert 1 <= month <= 12 and 1 <= day <= 31, line
    return "[History DATE] " + line[match.end() :]


def said(name: str, message: str) -> str:
    return f"[{name} (<time>)] {message}"


def expect_history(program: Program, lines: Sequence[str]) -> None:
    """The next lines are ``lines``, in order, as history."""
    for line in lines:
        got = undated(program.next_line())
        assert got == f"[History DATE] {line}", f"{program.name}: {got!r}"


def enter(
    chat: Cluster, name: str, channel: str, node: int, history: Sequence[str] = ()
) -> Program:
    """Start a client and wait until it is admitted, after ``history``."""
    program = chat.client(name, channel, node=node)
    chat.server.expect_soon(srv(f"{name} has joined the {channel} channel."))
    expect_history(program, history)
    program.expect(srv(f"Welcome to the {channel} channel, {name}."))
    program.expect(srv(f"{name} has joined the channel."))
    return program


def say(speaker: Program, message: str, *listeners: Program) -> str:
    """``speaker`` says ``message``; every listener reads it live. Its line."""
    speaker.type(message)
    line = said(speaker.name, message)
    for listener in (speaker, *listeners):
        listener.expect_soon(line)
    return line


def nodes_of(chat: Cluster) -> Nodes:
    assert isinstance(chat.server, Nodes)
    return chat.server


def test_every_way_into_a_channel_gets_its_history_from_any_node(tmp_path: Path) -> None:
    with cluster(tmp_path, server_options=HISTORY, nodes=2) as chat:
        alice = enter(chat, "alice", "general", node=0)
        # Three of general's five places taken, before anything is said.
        fillers = [enter(chat, f"u{i}", "general", node=0) for i in range(3)]
        general = [say(alice, "first from node 1"), say(alice, "second from node 1")]
        # A late joiner on the other node.
        bob = enter(chat, "bob", "general", node=1, history=general)
        alice.expect(srv("bob has joined the channel."))
        general.append(say(bob, "from node 2", alice))
        # A member queued on node 2 gets the history when a place frees on node 1.
        carol = chat.client("carol", "general", node=1)
        carol.expect(srv("Welcome to the general channel, carol."))
        carol.expect(srv("You are in the waiting queue and there are 0 user(s) ahead of you."))
        alice.type("/quit")
        assert alice.wait_exit() == 0
        expect_history(carol, general)
        carol.expect(srv("carol has joined the channel."))
        bob.expect_soon(srv("carol has joined the channel."))
        # /switch: the other channel's history.
        dave = enter(chat, "dave", "random", node=0)
        random = [say(dave, "in random")]
        bob.type("/switch random")
        expect_history(bob, random)
        bob.expect(srv("Welcome to the random channel, bob."))
        bob.expect(srv("bob has joined the channel."))
        # A reconnect, through the other node: the new client gets it all.
        general.append(say(carol, "while bob was away"))
        bob.type("/quit")
        assert bob.wait_exit() == 0
        again = enter(chat, "bob", "general", node=0, history=general)
        # /empty on one node's console: nobody, on either node, reads what came before.
        console = nodes_of(chat).nodes[1]
        console.type("/empty general")
        console.expect_soon(srv("general has been emptied."))
        for member in (carol, again, *fillers):
            assert member.wait_exit() == 0
        for node, name in ((0, "erin"), (1, "frank")):
            newcomer = enter(chat, name, "general", node=node)
            newcomer.type("/quit")
            assert newcomer.wait_exit() == 0
        enter(chat, "gina", "random", node=1, history=random)
        chat.shutdown()


def test_history_outlives_a_killed_node_and_the_whole_cluster(tmp_path: Path) -> None:
    with cluster(tmp_path, server_options=HISTORY, nodes=2) as chat:
        assert chat.redis is not None
        nodes = nodes_of(chat)
        alice = enter(chat, "alice", "general", node=0)
        bob = enter(chat, "bob", "general", node=1)
        alice.expect(srv("bob has joined the channel."))
        general = [say(alice, "before the kill", bob), say(bob, "me too", alice)]
        # Node 1 dies; a node started later in its place has the history.
        nodes.nodes[0].process.send_signal(signal.SIGKILL)
        nodes.nodes[0].wait_exit()
        alice.wait_exit()
        nodes.nodes[0] = chat.start_node(chat.hosts[0], HISTORY)
        carol = enter(chat, "carol", "general", node=0, history=general)
        general.append(say(carol, "after the kill", bob))
        # Every node stops, and Redis restarts from its append-only file.
        chat.shutdown()
        # The killed node's lease lapses (keys.LEASE_MS) before anyone starts
        # again: until then its cluster counts as alive, and a new node joins it
        # rather than founding one that inherits.
        wait_for_no_leases(chat)
        chat.redis.restart()
        nodes.nodes[:] = [chat.start_node(host, HISTORY) for host in chat.hosts]
        assert "inherited the previous cluster's history: 3 line(s) in 1 channel(s)" in (
            nodes.stderr
        )
        for node, name in ((1, "dave"), (0, "erin")):
            enter(chat, name, "general", node=node, history=general)
        chat.shutdown()
