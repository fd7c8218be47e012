"""Flood control against a peer that reconnects, over real sockets, on one
server and on a cluster whose nodes it alternates between (docs/security.md, "Flood
control"): reconnecting, here or through another node, buys no new burst."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from trio_chat import wire
from trio_chat.wire import FrameType

from .peers import RawPeer
from .processes import DEADLINE, cluster

BURST = 10  # the default --flood-burst
RATE = 5.0  # the default --flood-rate


def wait_closed(peer: RawPeer) -> None:
    """Read until the server hangs up (after its BYE)."""
    peer.sock.settimeout(DEADLINE)
    while True:
        try:
            if not peer.sock.recv(1 << 16):
                return
        except ConnectionResetError:
            return


@pytest.mark.parametrize("pipelined", [False, True], ids=["after-welcome", "pipelined"])
@pytest.mark.parametrize("vary", ["names", "addresses"])
@pytest.mark.parametrize("nodes", [None, 2], ids=["one-server", "2-nodes"])
def test_a_reconnecting_flooder_gets_the_rate_not_a_burst_a_connection(
    tmp_path: Path, nodes: int | None, vary: str, pipelined: bool
) -> None:
    """A new name each time from one address, or one name from a new address
    each time (127.0.0.1 and 127.0.0.2 are two IPv4 addresses: the name
    carries the budget then); its lines sent once welcomed, or right behind
    its hello (on a cluster, before the shared log has answered the hello)."""
    with cluster(tmp_path, nodes=nodes) as chat:
        bob = chat.join("bob", node=0 if nodes else None)
        port = chat.ports["general"]
        hosts = chat.hosts if nodes else ["127.0.0.1"]
        start = time.monotonic()
        for rounds in range(3):
            # Every connection goes to the next node: on a cluster, each one
            # lands where the last one was not.
            host = hosts[rounds % len(hosts)]
            if vary == "names":
                peer = RawPeer(port, f"mallory{rounds}", host, source="127.0.0.1")
            else:
                peer = RawPeer(port, "mallory", host, source=f"127.0.1.{rounds % 250 + 1}")
            if not pipelined:
                peer.next_frame(FrameType.LINE)  # the welcome: a member now
            for i in range(BURST):
                peer.send(wire.encode_input(f"spam {rounds}.{i}"))
            peer.send(wire.encode_input("/quit"))
            wait_closed(peer)
            peer.close()
        elapsed = time.monotonic() - start
        bob.type("/quit")
        assert bob.wait_exit() == 0
        spam = [line for line in bob.rest() if "] spam " in line]
        # Before, every connection delivered its whole burst (10 lines a round,
        # several rounds a second); now the rate holds across connections.
        assert len(spam) <= BURST + RATE * (elapsed + 1), (len(spam), elapsed)
        chat.shutdown()


def closed_at_once(peer: RawPeer) -> bool:
    """Whether the server hangs up without a word (refused before the hello)."""
    try:
        return peer.sock.recv(1 << 16) == b""
    except ConnectionResetError:
        return True


def test_the_per_address_limit_is_the_clusters_not_each_nodes(tmp_path: Path) -> None:
    with cluster(tmp_path, nodes=2, server_options=("--max-per-address", "3")) as chat:
        port = chat.ports["general"]
        first = [RawPeer(port, f"a{i}", chat.hosts[0]) for i in range(2)]
        for peer in first:
            peer.next_frame(FrameType.LINE)  # welcome: members, in the log
        third = RawPeer(port, "b0", chat.hosts[1])
        third.next_frame(FrameType.LINE)
        # Node 2 holds one, node 1 two: a fourth from this address goes,
        # whichever node it reaches.
        for host in chat.hosts:
            assert closed_at_once(RawPeer(port, "b1", host))
        first[0].send(wire.encode_input("/quit"))
        # Once node 2 has seen a0 leave, there is room there again.
        while b"a0 has left the channel." not in third.next_frame(FrameType.LINE):
            pass
        first[0].close()
        fourth = RawPeer(port, "b2", chat.hosts[1])
        fourth.next_frame(FrameType.LINE)
        for peer in (*first[1:], third, fourth):
            peer.close()
        chat.shutdown()
