"""Flood control against a peer that reconnects, over real sockets, on one
server and on a cluster whose nodes it alternates between (README, "Flood
control"): reconnecting, here or through another node, buys no new burst."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from trio_chat import wire
from trio_chat.wire import FrameType

from .processes import DEADLINE, cluster
from .test_e2e_faults import RawPeer

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


@pytest.mark.parametrize("vary", ["names", "addresses"])
@pytest.mark.parametrize("nodes", [None, 2], ids=["one-server", "2-nodes"])
def test_a_reconnecting_flooder_gets_the_rate_not_a_burst_a_connection(
    tmp_path: Path, nodes: int | None, vary: str
) -> None:
    """A new name each time from one address, or one name from a new address
    each time (127.0.0.1 and 127.0.0.2 are two IPv4 addresses: the name
    carries the budget then)."""
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
