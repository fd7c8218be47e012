"""A node's replica of the rules applying the cluster's log, in process: a
node that goes ends every transfer of its members on every replica alike,
snapshots included (behaviour.md, "A cluster of servers").

The replicas here have no connections of their own (they stand for a node
whose members are all elsewhere) and their links never run.
"""

from __future__ import annotations

import json
from typing import Any

from trio_chat.cluster.link import Link, connect
from trio_chat.cluster.node import ClusterRules
from trio_chat.hub import Hub
from trio_chat.server.core import ChatServer

from .harness import CHANNELS

UNUSED_REDIS = "redis://127.0.0.1:1"  # never connected to: the links never run


def replica(node: int) -> ClusterRules:
    hub = Hub(CHANNELS, afk_timeout=100)
    server = ChatServer(hub, out=lambda line: None, log=lambda text: None)
    link = Link(
        UNUSED_REDIS,
        node,
        token=b"token",
        epoch=b"cluster:1",
        fingerprint="config",
        log=lambda text: None,
        commands=connect(UNUSED_REDIS),
        reads=connect(UNUSED_REDIS),
    )
    rules = ClusterRules(server, hub, node, link)
    server.rules = rules
    return rules


class Log:
    """Entries as nodes write them, numbered per node, stamped one ms apart."""

    def __init__(self) -> None:
        self.entries: list[tuple[bytes, bytes]] = []
        self._seq: dict[int, int] = {}

    def add(self, node: int, kind: str, **fields: Any) -> None:
        self._seq[node] = self._seq.get(node, 0) + 1
        event = {"k": kind, "n": node, "q": self._seq[node], **fields}
        entry_id = f"{1_000_000 + len(self.entries)}-0".encode()
        self.entries.append((entry_id, json.dumps(event).encode()))

    def apply(self, rules: ClusterRules, start: int = 0, end: int | None = None) -> None:
        for entry_id, blob in self.entries[start:end]:
            rules.apply_log(entry_id, blob)


def busy(rules: ClusterRules) -> dict[str, int]:
    return {m.name: m.transfers for m in rules.members.values()}


def snapshot_after(log: Log, count: int) -> ClusterRules:
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
        log.add(node, "join", c=f"{node}.1", ch="general", u=name)
    log.add(1, "xs", c=["1.1", "2.1"])  # alice (node 1) sends to bob (node 2)
    log.add(3, "xs", c=["3.1", "2.1"])  # and so does carol (node 3)
    observer = replica(4)
    log.apply(observer)
    late = snapshot_after(log, len(log.entries))
    assert busy(observer) == busy(late) == {"alice": 1, "bob": 2, "carol": 1}
    log.add(4, "gone", g=1)  # node 4 took node 1 for dead: alice's file ends
    # An "xe" for it from node 1 after all (it lived on): ended already.
    log.add(1, "xe", c=["1.1", "2.1"])
    for applied in range(len(log.entries) - 2, len(log.entries)):
        for rules in (observer, late):
            log.apply(rules, applied, applied + 1)
            assert busy(rules) == {"bob": 1, "carol": 1}
    log.add(3, "xe", c=["3.1", "2.1"])  # carol's file ends as files do
    for rules in (observer, late):
        log.apply(rules, len(log.entries) - 1)
        assert busy(rules) == {"bob": 0, "carol": 0}
        assert rules.pairs == {}
