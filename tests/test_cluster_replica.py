"""A node's replica of the rules applying the cluster's log, in process: a
node that goes ends every transfer of its members on every replica alike,
snapshots included (behaviour.md, "A cluster of servers").

The replicas here have no connections of their own (they stand for a node
whose members are all elsewhere) and their links never run.
"""

from __future__ import annotations

from trio_chat import events
from trio_chat.cluster import codec
from trio_chat.cluster.link import Link, LinkHost, connect
from trio_chat.cluster.node import ClusterGateway
from trio_chat.hub import Hub
from trio_chat.server.core import ChatServer

from .harness import CHANNELS

UNUSED_REDIS = "redis://127.0.0.1:1"  # never connected to: the links never run


def replica(node: int) -> ClusterGateway:
    hub = Hub(CHANNELS, afk_timeout=100)
    server = ChatServer(hub, out=lambda line: None, log=lambda text: None)

    def link_for(host: LinkHost) -> Link:
        return Link(
            UNUSED_REDIS,
            node,
            token=b"token",
            epoch=b"cluster:1",
            fingerprint="config",
            log=lambda text: None,
            commands=connect(UNUSED_REDIS),
            reads=connect(UNUSED_REDIS),
            host=host,
        )

    rules = ClusterGateway(server, hub, node, link_for)
    server.gateway = rules
    return rules


class Log:
    """Entries as nodes write them, numbered per node, stamped one ms apart."""

    def __init__(self) -> None:
        self.entries: list[tuple[bytes, bytes]] = []
        self._seq: dict[int, int] = {}

    def add(self, node: int, event: codec.LogEvent) -> None:
        self._seq[node] = self._seq.get(node, 0) + 1
        entry_id = f"{1_000_000 + len(self.entries)}-0".encode()
        self.entries.append((entry_id, codec.encode(event, node, self._seq[node])))

    def apply(self, rules: ClusterGateway, start: int = 0, end: int | None = None) -> None:
        for entry_id, blob in self.entries[start:end]:
            rules.apply_log(entry_id, blob)


def busy(rules: ClusterGateway) -> dict[str, int]:
    return {m.name: m.transfers for m in rules.members.values()}


def snapshot_after(log: Log, count: int) -> ClusterGateway:
    """A replica begun from the snapshot a node saved after ``count`` entries."""
    saver = replica(6)
    for entry_id, blob in log.entries[:count]:
        saver.apply_log(entry_id, blob)
    rules = replica(5)
    rules.load(log.entries[count - 1][0], saver.dump())
    return rules


async def test_a_gone_node_ends_its_members_transfers_on_every_replica() -> None:
    log = Log()
    for node, name in ((1, "alice"), (2, "bob"), (3, "carol")):
        log.add(node, events.Join(f"{node}.1", "general", name))
    log.add(1, events.TransferStarted("1.1", "2.1"))  # alice (node 1) sends to bob (node 2)
    log.add(3, events.TransferStarted("3.1", "2.1"))  # and so does carol (node 3)
    observer = replica(4)
    log.apply(observer)
    late = snapshot_after(log, len(log.entries))
    assert busy(observer) == busy(late) == {"alice": 1, "bob": 2, "carol": 1}
    log.add(4, codec.NodeGone(1))  # node 4 took node 1 for dead: alice's file ends
    # Its end from node 1 after all (it lived on): ended already.
    log.add(1, events.TransferEnded("1.1", "2.1"))
    for applied in range(len(log.entries) - 2, len(log.entries)):
        for rules in (observer, late):
            log.apply(rules, applied, applied + 1)
            assert busy(rules) == {"bob": 1, "carol": 1}
    log.add(3, events.TransferEnded("3.1", "2.1"))  # carol's file ends as files do
    for rules in (observer, late):
        log.apply(rules, len(log.entries) - 1)
        assert busy(rules) == {"bob": 0, "carol": 0}
        assert rules.replica.pairs == {}
