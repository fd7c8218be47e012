"""The cluster's log without Redis: every event through the codec and back,
one log fed to two replicas that must agree, a snapshot taken mid-log that
carries on as the replica it was taken from, and a node that goes ending
every transfer of its members on every replica alike (docs/behaviour.md,
"A cluster of servers").

The replicas here have no connections of their own (they stand for a node
whose members are all elsewhere) and their links never run."""

from __future__ import annotations

import dataclasses
import json

import pytest

from trio_chat import events as ev
from trio_chat.cluster import codec
from trio_chat.cluster.link import Link, LinkHost, connect
from trio_chat.cluster.node import ClusterGateway
from trio_chat.cluster.resp import RespConnection
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
            appends=RespConnection(UNUSED_REDIS),
            reads=RespConnection(UNUSED_REDIS),
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
        log.add(node, ev.Join(f"{node}.1", "general", name))
    log.add(1, ev.TransferStarted("1.1", "2.1"))  # alice (node 1) sends to bob (node 2)
    log.add(3, ev.TransferStarted("3.1", "2.1"))  # and so does carol (node 3)
    observer = replica(4)
    log.apply(observer)
    late = snapshot_after(log, len(log.entries))
    assert busy(observer) == busy(late) == {"alice": 1, "bob": 2, "carol": 1}
    log.add(4, codec.NodeGone(1))  # node 4 took node 1 for dead: alice's file ends
    # Its end from node 1 after all (it lived on): ended already.
    log.add(1, ev.TransferEnded("1.1", "2.1"))
    for applied in range(len(log.entries) - 2, len(log.entries)):
        for rules in (observer, late):
            log.apply(rules, applied, applied + 1)
            assert busy(rules) == {"bob": 1, "carol": 1}
    log.add(3, ev.TransferEnded("3.1", "2.1"))  # carol's file ends as files do
    for rules in (observer, late):
        log.apply(rules, len(log.entries) - 1)
        assert busy(rules) == {"bob": 0, "carol": 0}
        assert rules.replica.pairs == {}


ONE_OF_EACH: list[codec.LogEvent] = [
    ev.Join("1.1", "general", "alice", "192.0.2.1"),
    ev.Join("2.1", "general", "bob"),
    ev.Join("2.2", "general", "Carol", via_irc=True, ident="carol"),
    ev.Input("1.1", "hello ✓"),
    ev.Say("2.2", "waves", ev.ACTION),
    ev.Tell("2.2", "alice", "psst"),
    ev.Leave("2.2", "bye", quit=True),
    ev.ClaimNick("2.3", "Carol"),
    ev.Drop("1.1"),
    ev.AfkDue("1.1"),
    ev.Awake(("1.1", "2.1")),
    ev.Flooded("1.1", "excess flood"),
    ev.ConsoleLine("/kick general:bob"),
    ev.Offer("1.1", "bob", "a file.txt", True, 3),
    ev.TransferStarted("1.1", "2.1"),
    ev.TransferEnded("1.1", "2.1"),
    ev.TransferProgress("2.1"),
    ev.FileDelivered("1.1", "bob", "a file.txt"),
    ev.Reconfigure((("general", 4001, 6), ("lobby", 4004, 5))),
    codec.NodeGone(2),
]


def test_one_of_each_covers_every_event_type() -> None:
    assert {type(e) for e in ONE_OF_EACH} == set(codec.LOG_EVENTS)


@pytest.mark.parametrize("event", ONE_OF_EACH, ids=lambda e: type(e).__name__)
def test_every_event_survives_the_log(event: codec.LogEvent) -> None:
    entry = codec.decode(codec.encode(event, 4, 17))
    assert entry == codec.Entry(4, 17, event)


def test_entries_carry_field_names() -> None:
    blob = codec.encode(ev.Offer("1.1", "bob", "f", False, 3), 1, 2)
    assert json.loads(blob) == {
        "type": "offer",
        "origin": 1,
        "seq": 2,
        "ref": "1.1",
        "target": "bob",
        "path": "f",
        "readable": False,
        "offer": 3,
    }


@pytest.mark.parametrize(
    "blob",
    [
        b"not json",
        b"[]",
        b'{"type": "teleport", "origin": 1, "seq": 1}',
        b'{"type": "drop", "origin": 1, "seq": 1}',
        b'{"type": "drop", "origin": 1, "seq": 1, "ref": 5}',
        b'{"type": "offer", "origin": 1, "seq": 1, "ref": "1.1", "target": "b",'
        b' "path": "p", "readable": 1, "offer": 2}',
        b'{"type": "awake", "origin": 1, "seq": 1, "refs": "1.1"}',
        b'{"type": "drop", "origin": "1", "seq": 1, "ref": "1.1"}',
        b'{"type": "reconfigure", "origin": 1, "seq": 1, "channels": [["a", 1]]}',
        b'{"type": "reconfigure", "origin": 1, "seq": 1, "channels": [["a", "1", 5]]}',
    ],
)
def test_an_entry_this_node_cannot_read_is_refused(blob: bytes) -> None:
    with pytest.raises(codec.EntryError):
        codec.decode(blob)


def story() -> Log:
    """A busy log from three nodes: joins, a queue, chat, a file, a mute, a kick, a node gone."""
    log = Log()
    for ref, name in (("1.1", "alice"), ("2.1", "bob"), ("3.1", "carol"), ("1.2", "dave")):
        log.add(int(ref[0]), ev.Join(ref, "general", name, f"198.51.100.{ref[0]}"))
    log.add(2, ev.Join("2.2", "general", "erin"))
    log.add(1, ev.Input("1.1", "hello all"))
    log.add(2, ev.Input("2.1", "/whisper alice hi"))
    log.add(1, ev.Offer("1.1", "bob", "f.txt", True, 1))
    log.add(1, ev.TransferStarted("1.1", "2.1"))
    log.add(3, ev.ConsoleLine("/mute general:carol 30"))
    log.add(3, ev.Input("3.1", "still here?"))
    log.add(1, ev.TransferProgress("2.1"))
    log.add(2, ev.Input("2.1", "/switch random"))
    # A reload: general grows (the queue comes in), random goes, lobby is new.
    log.add(1, ev.Reconfigure((("lobby", 4004, 5), ("general", 4001, 8), ("help", 4003, 5))))
    log.add(2, ev.Join("2.3", "lobby", "frank"))
    log.add(2, ev.Drop("2.1"))  # bob's connection, closed with random, ends
    log.add(1, ev.ConsoleLine("/kick general:alice"))
    log.add(1, ev.TransferEnded("1.1", "2.1"))
    log.add(1, ev.Drop("1.1"))
    log.add(3, ev.AfkDue("3.1"))
    log.add(2, codec.NodeGone(1))
    log.add(3, ev.Input("3.1", "/list"))
    return log


def state(rules: object) -> tuple[object, ...]:
    """What a replica holds, comparable across replicas."""
    hub = rules.hub  # type: ignore[attr-defined]
    return (
        {
            name: (
                list(channel.members),
                [m.name for m in channel.queue],
                sorted(channel.queued_names),
            )
            for name, channel in hub.channels.items()
        },
        {
            ref: (m.name, m.channel and m.channel.name, m.admitted, m.muted_until, m.transfers)
            for ref, m in hub.members.items()
        },
        rules.replica.pairs,  # type: ignore[attr-defined]
        rules.replica.log_seq,  # type: ignore[attr-defined]
    )


async def test_two_replicas_fed_one_log_agree_at_every_entry() -> None:
    log = story()
    first, second = replica(8), replica(9)
    for index in range(len(log.entries)):
        log.apply(first, index, index + 1)
        log.apply(second, index, index + 1)
        assert state(first) == state(second), f"after entry {index}"
    assert busy(first) == {"carol": 0, "erin": 0, "frank": 0}


async def test_a_retried_entry_is_applied_once() -> None:
    log = story()
    once, twice = replica(8), replica(9)
    log.apply(once)
    log.apply(twice, 0, 6)
    twice.apply_log(b"999-0", log.entries[5][1])  # the same entry again, later
    log.apply(twice, 6)
    assert state(once) == state(twice)


@pytest.mark.parametrize("count", [1, 5, 9, 11, 12, 13, 17])
async def test_a_replica_from_a_snapshot_carries_on_as_its_source(count: int) -> None:
    log = story()
    source = replica(8)
    log.apply(source, 0, count)
    late = snapshot_after(log, count)
    assert json.loads(late.dump()) == json.loads(source.dump())
    log.apply(source, count)
    log.apply(late, count)
    assert state(late) == state(source)


def test_every_event_field_is_a_json_value() -> None:
    for event in ONE_OF_EACH:
        for field in dataclasses.fields(event):
            value = getattr(event, field.name)
            assert isinstance(value, str | int | bool | tuple | type(None)), field


async def test_a_file_to_someone_who_left_counts_on_no_replica() -> None:
    """A member kicked (or gone) before its transfer's start reached the log is
    known to the live replicas until its drop, but not to a snapshot: neither
    counts the file, so their AFK decisions stay the same."""
    log = Log()
    log.add(1, ev.Join("1.1", "general", "alice"))
    log.add(2, ev.Join("2.1", "general", "bob"))
    log.add(1, ev.Offer("1.1", "bob", "f.txt", True, 1))
    log.add(3, ev.ConsoleLine("/kick general:bob"))
    late = snapshot_after(log, len(log.entries))
    log.add(1, ev.TransferStarted("1.1", "2.1"))
    log.add(1, ev.AfkDue("1.1"))
    live = replica(8)
    log.apply(live)
    log.apply(late, len(log.entries) - 2)
    assert state(live)[0] == state(late)[0]
    assert live.hub.members["1.1"].transfers == late.hub.members["1.1"].transfers == 0


async def test_an_entry_this_node_cannot_apply_is_skipped_and_the_log_goes_on() -> None:
    rules = replica(8)
    said: list[str] = []
    rules.server.log = said.append
    entries = [
        # A channel this config lacks (a reload removed it meanwhile): refused.
        codec.encode(ev.Join("1.1", "nowhere", "alice"), 1, 1),
        codec.encode(ev.Join("x", "general", "bob"), 1, 2),  # not NODE.NUMBER
        b'{"type": ["join"], "origin": 1, "seq": 3}',
        codec.encode(ev.Join("1.4", "general", "carol"), 1, 4),
        codec.encode(ev.ClaimNick("y", "nick"), 1, 5),  # not NODE.NUMBER
    ]
    for index, blob in enumerate(entries):
        rules.apply_log(f"{1_000_000 + index}-0".encode(), blob)
    assert [m.name for m in rules.hub.members.values()] == ["carol"]
    assert len(said) == 3 and all("skipping a log entry" in line for line in said)
    assert "1.1" not in rules.hub.members
