"""A new cluster inherits the history of the one that ran on its Redis before
(trio_chat/cluster/inherit.py; docs/cluster.md, "History"): the rebuilding
from a snapshot and the log after it, sans-I/O, and the founding node's join
on a real redis-server holding an old cluster's keys."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence

import coredis
import pytest

from trio_chat import events as ev
from trio_chat.cluster import codec, keys, snapshot
from trio_chat.cluster.boot import join_cluster
from trio_chat.cluster.inherit import Rebuilt, Rules, first_snapshot, rebuild
from trio_chat.cluster.link import connect
from trio_chat.config import ChannelConfig
from trio_chat.history import HistoryConfig
from trio_chat.hub import Hub
from trio_chat.text import stamp_at

from .redis_process import RedisProcess

CHANNELS = (ChannelConfig("general", 7001, 5), ChannelConfig("random", 7002, 5))
RULES = Rules(CHANNELS, 300.0, HistoryConfig(lines=10))
WITH_EVENTS = Rules(CHANNELS, 300.0, HistoryConfig(lines=10, events=True))
START_MS = 1_700_000_000_000


class Log:
    """An old cluster's log: entries as nodes append them, with stream ids
    one millisecond apart."""

    def __init__(self) -> None:
        self.entries: list[tuple[bytes, bytes]] = []
        self._seq: dict[int, int] = {}

    def add(self, node: int, event: codec.LogEvent) -> None:
        seq = self._seq[node] = self._seq.get(node, 0) + 1
        self.raw(codec.encode(event, node, seq))

    def raw(self, blob: bytes) -> None:
        self.entries.append((f"{START_MS + len(self.entries)}-0".encode(), blob))

    def applied(self, hub: Hub) -> None:
        """Apply every entry so far to ``hub``, as a replica does."""
        for entry_id, blob in self.entries:
            now = int(entry_id.split(b"-")[0]) / 1000
            event = codec.decode(blob).event
            assert not isinstance(event, codec.NodeGone)
            hub.handle(event, now, stamp_at(now))

    def saved(self, hub: Hub) -> bytes:
        """``hub``'s snapshot as the lowest node saves it, including every entry so far."""
        state = snapshot.ReplicaState(snapshot.dump(hub), dict(self._seq), {})
        return snapshot.saved(self.entries[-1][0], state.dump())


def said(hub: Hub, channel: str = "general") -> list[tuple[str, str]]:
    return [(e.user, e.message) for e in hub.channels[channel].history.entries]


def chat(log: Log, node: int, ref: str, *lines: str) -> None:
    for line in lines:
        log.add(node, ev.Input(ref, line))


def two_members(log: Log) -> None:
    log.add(1, ev.Join("1.1", "general", "alice"))
    log.add(2, ev.Join("2.1", "general", "bob"))


def test_the_snapshot_and_the_log_after_it_make_the_history() -> None:
    log, hub = Log(), RULES.hub()
    two_members(log)
    chat(log, 1, "1.1", "before the snapshot")
    log.applied(hub)
    saved = log.saved(hub)
    applied = len(log.entries)
    chat(log, 2, "2.1", "after it")
    log.add(1, ev.Say("1.1", "waves", style=ev.ACTION))  # (an IRC /me)
    rebuilt = rebuild(RULES, saved, log.entries[applied:])
    assert rebuilt.skipped == 0
    assert said(rebuilt.hub) == [
        ("alice", "before the snapshot"),
        ("bob", "after it"),
        ("alice", "waves"),
    ]
    assert rebuilt.hub.said == 3
    # Each line keeps the time of its log entry.
    ats = [e.at for e in rebuilt.hub.channels["general"].history.entries]
    assert ats == [(START_MS + n) / 1000 for n in (2, 3, 4)]


def test_without_a_snapshot_the_whole_log_is_applied() -> None:
    log = Log()
    two_members(log)
    chat(log, 2, "2.1", "one", "two")
    rebuilt = rebuild(RULES, None, log.entries)
    assert said(rebuilt.hub) == [("bob", "one"), ("bob", "two")]


def test_a_batch_that_reached_redis_twice_is_applied_once() -> None:
    log = Log()
    two_members(log)
    chat(log, 1, "1.1", "once")
    log.raw(log.entries[-1][1])  # the same node's same sequence number again
    assert said(rebuild(RULES, None, log.entries).hub) == [("alice", "once")]


def test_entries_that_cannot_be_read_or_applied_are_skipped() -> None:
    log = Log()
    two_members(log)
    log.raw(b"not json")
    log.add(1, ev.ClaimNick("y", "carol"))  # not NODE.NUMBER
    # A channel this config lacks (a reload removed it meanwhile): refused.
    log.add(1, ev.Join("1.2", "nowhere", "carol"))
    chat(log, 1, "1.1", "still here")
    rebuilt = rebuild(RULES, None, log.entries)
    assert rebuilt.skipped == 2
    assert "1.2" not in rebuilt.hub.members
    assert said(rebuilt.hub) == [("alice", "still here")]


def test_a_node_that_went_takes_its_members_with_it_as_on_every_replica() -> None:
    log = Log()
    two_members(log)
    chat(log, 2, "2.1", "bye")
    log.add(1, codec.NodeGone(2))
    # Its member's name is free again: it comes back through the other node.
    log.add(1, ev.Join("1.2", "general", "bob"))
    hub = rebuild(WITH_EVENTS, None, log.entries).hub
    kinds = [(e.kind, e.user) for e in hub.channels["general"].history.entries]
    # (A member whose node went leaves silently, as when its connection is lost.)
    assert kinds == [("joined", "alice"), ("joined", "bob"), ("said", "bob"), ("joined", "bob")]
    assert sorted(hub.members) == ["1.1", "1.2"]


def test_an_empty_in_the_log_forgets_what_was_said_before() -> None:
    log = Log()
    two_members(log)
    chat(log, 1, "1.1", "secret")
    log.add(1, ev.ConsoleLine("/empty general"))
    log.add(2, ev.Join("2.2", "general", "carol"))
    chat(log, 2, "2.2", "after")
    assert said(rebuild(RULES, None, log.entries).hub) == [("carol", "after")]


def test_the_first_snapshot_holds_only_the_history_and_the_line_number() -> None:
    log = Log()
    two_members(log)
    log.add(2, ev.Join("2.2", "random", "carol"))
    chat(log, 1, "1.1", "in general")
    chat(log, 2, "2.2", "in random")
    log.add(1, ev.ConsoleLine("/shutdown"))
    old = rebuild(RULES, None, log.entries).hub
    assert old.closed
    fresh = RULES.hub()
    entry_id, state = snapshot.unsaved(first_snapshot(RULES, old))
    assert entry_id == b"0-0"
    replica = snapshot.replica_state(state)
    assert (replica.seq, replica.pairs) == ({}, {})
    snapshot.restore(fresh, replica.hub)
    assert not fresh.closed
    assert fresh.members == {} and fresh.nick_of == {}
    assert all(not c.members and not c.queue for c in fresh.channels.values())
    assert said(fresh) == [("alice", "in general")]
    assert said(fresh, "random") == [("carol", "in random")]
    assert fresh.said == 2
    assert fresh.lines_kept() == 2


# ----- the founding node's join, on a real redis-server -----


@pytest.fixture
def redis_server() -> Iterator[RedisProcess]:
    server = RedisProcess(keep_data=False)
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
async def redis(redis_server: RedisProcess) -> AsyncIterator[coredis.Redis[bytes]]:
    client = connect(redis_server.url)
    async with client:
        yield client


def old_cluster(server: RedisProcess, rules: Rules, entries: Sequence[tuple[bytes, bytes]]) -> None:
    """What a cluster whose every node is gone leaves in Redis: its config,
    epoch, node set and log (no lease)."""
    server.command("SET", keys.CONFIG, rules.fingerprint)
    server.command("SET", keys.EPOCH, "old:0")
    server.command("SADD", keys.NODES, "1")
    for entry_id, blob in entries:
        server.command("XADD", keys.LOG, entry_id.decode(), "x", "old:0", "e", blob.decode())


def inherited(joined_snapshot: bytes | None, rules: Rules = RULES) -> Rebuilt:
    assert joined_snapshot is not None
    return rebuild(rules, joined_snapshot, [])


async def test_a_founding_node_inherits_the_snapshot_and_the_log_after_it(
    redis_server: RedisProcess, redis: coredis.Redis[bytes]
) -> None:
    log, hub = Log(), RULES.hub()
    two_members(log)
    chat(log, 1, "1.1", "in the snapshot")
    log.applied(hub)
    saved = log.saved(hub)
    chat(log, 2, "2.1", "in the log")
    log.add(1, codec.NodeGone(1))
    old_cluster(redis_server, RULES, log.entries)
    redis_server.command("SET", keys.SNAPSHOT, saved.decode())
    joined = await join_cluster(redis, RULES)
    assert joined.epoch != b"old:0"
    assert joined.note == "inherited the previous cluster's history: 2 line(s) in 1 channel(s)"
    seeded = inherited(joined.snapshot).hub
    assert said(seeded) == [("alice", "in the snapshot"), ("bob", "in the log")]
    assert seeded.members == {}
    # The old cluster's keys are gone; its history is in the new one's snapshot.
    assert redis_server.command("XLEN", keys.LOG) == "0"
    assert redis_server.command("SMEMBERS", keys.NODES) == str(joined.node)
    assert redis_server.command("GET", keys.SNAPSHOT) == joined.snapshot.decode()  # type: ignore[union-attr]


async def test_the_next_founder_inherits_what_the_first_inherited(
    redis_server: RedisProcess, redis: coredis.Redis[bytes]
) -> None:
    log = Log()
    two_members(log)
    chat(log, 1, "1.1", "long ago")
    old_cluster(redis_server, RULES, log.entries)
    first = await join_cluster(redis, RULES)
    # That cluster's only node dies before anyone says anything more.
    redis_server.command("DEL", keys.lease(first.node))
    second = await join_cluster(redis, RULES)
    assert second.epoch != first.epoch
    assert said(inherited(second.snapshot).hub) == [("alice", "long ago")]
    assert inherited(second.snapshot).hub.said == 1


async def test_another_config_drops_the_old_history_and_says_so(
    redis_server: RedisProcess, redis: coredis.Redis[bytes]
) -> None:
    log = Log()
    two_members(log)
    chat(log, 1, "1.1", "gone with the config")
    old_cluster(redis_server, RULES, log.entries)
    other = Rules(CHANNELS, 300.0, HistoryConfig(lines=20))
    joined = await join_cluster(redis, other)
    assert joined.snapshot is None
    assert joined.note is not None
    assert joined.note.startswith(
        "the previous cluster's history is dropped: its config differs from this one's"
    )
    assert redis_server.command("XLEN", keys.LOG) == "0"


async def test_nothing_is_said_when_there_was_no_history(
    redis_server: RedisProcess, redis: coredis.Redis[bytes]
) -> None:
    off = Rules(CHANNELS, 300.0, HistoryConfig())
    log = Log()
    two_members(log)
    chat(log, 1, "1.1", "not kept")
    old_cluster(redis_server, off, log.entries)
    joined = await join_cluster(redis, off)
    assert (joined.snapshot, joined.note) == (None, None)
    # A config that changes from no history to some has nothing to drop either.
    redis_server.command("DEL", keys.lease(joined.node))
    joined = await join_cluster(redis, RULES)
    assert (joined.snapshot, joined.note) == (None, None)


async def test_an_unreadable_snapshot_drops_the_history_and_says_so(
    redis_server: RedisProcess, redis: coredis.Redis[bytes]
) -> None:
    old_cluster(redis_server, RULES, [])
    redis_server.command("SET", keys.SNAPSHOT, "{not json")
    joined = await join_cluster(redis, RULES)
    assert joined.snapshot is None
    assert joined.note is not None
    assert joined.note.startswith("the previous cluster's history is dropped: ")


async def test_a_node_joining_a_live_cluster_inherits_nothing(
    redis_server: RedisProcess, redis: coredis.Redis[bytes]
) -> None:
    first = await join_cluster(redis, RULES)
    second = await join_cluster(redis, RULES)
    assert second.epoch == first.epoch
    assert (second.snapshot, second.note) == (None, None)
