"""The cluster's Lua scripts (trio_chat/cluster/scripts.py) on a real
redis-server: the log is trimmed past a node only once another node took it
for dead and forgot it, the last entry trimmed is recorded, and a node behind
it is neither renewed nor allowed to save a snapshot (docs/cluster.md, "Faults" of the
cluster section)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from trio_chat.cluster import keys, scripts

from .redis_process import RedisProcess

EPOCH = "cluster:0"


@pytest.fixture
def redis() -> Iterator[RedisProcess]:
    server = RedisProcess(keep_data=False)
    try:
        server.command("SET", keys.EPOCH, EPOCH)
        yield server
    finally:
        server.close()


def renew(redis: RedisProcess, node: int, applied: str, *forget: int) -> None:
    lease = keys.lease(node)
    renew_keys = [keys.EPOCH, lease, keys.NODES, keys.APPLIED, keys.TRIMMED]
    arguments = [EPOCH, str(keys.LEASE_MS), str(node), applied, keys.LEASES, "token"]
    redis.command("EVAL", scripts.RENEW, "5", *renew_keys, *arguments, *(str(n) for n in forget))


def snapshot(redis: RedisProcess, node: int, applied: str) -> str:
    snapshot_keys = [keys.EPOCH, keys.SNAPSHOT, keys.LOG, keys.NODES, keys.APPLIED, keys.TRIMMED]
    return redis.command(
        "EVAL",
        scripts.SNAPSHOT,
        "6",
        *snapshot_keys,
        EPOCH,
        f"state at {applied}",
        str(node),
        applied,
    )


def append(redis: RedisProcess, count: int) -> list[str]:
    return [redis.command("XADD", keys.LOG, "*", "e", str(i)) for i in range(count)]


def joined(redis: RedisProcess, node: int) -> bool:
    return redis.command("SISMEMBER", keys.NODES, str(node)) == "1"


def two_nodes_one_lapsed(redis: RedisProcess) -> list[str]:
    """Node 1 applied the whole log, node 2 only its first entry, and node 2's lease lapsed."""
    ids = append(redis, 5)
    renew(redis, 1, ids[4])
    renew(redis, 2, ids[0])
    redis.command("DEL", keys.lease(2))
    return ids


def test_the_log_is_trimmed_past_a_lapsed_node_only_once_it_is_forgotten(
    redis: RedisProcess,
) -> None:
    ids = two_nodes_one_lapsed(redis)
    # Saved, but node 2's position holds the log back: node 1 must try again
    # even if it applies nothing more (link.py).
    assert snapshot(redis, 1, ids[4]) == str(scripts.HELD_BACK)
    assert redis.command("XLEN", keys.LOG) == "5"  # node 2 may still come back
    assert not redis.exists(keys.TRIMMED)
    renew(redis, 1, ids[4], 2)  # node 1 took node 2 for dead
    assert not joined(redis, 2)
    assert snapshot(redis, 1, ids[4]) == "1"
    assert redis.command("XLEN", keys.LOG) == "1"
    assert redis.command("GET", keys.TRIMMED) == ids[3]


def test_a_node_behind_the_trimmed_log_is_not_renewed_and_saves_nothing(
    redis: RedisProcess,
) -> None:
    ids = two_nodes_one_lapsed(redis)
    renew(redis, 1, ids[4], 2)
    assert snapshot(redis, 1, ids[4]) == "1"
    renew(redis, 2, ids[0])  # node 2 comes back, behind the trimmed entry
    assert not redis.exists(keys.lease(2))
    assert not joined(redis, 2)
    assert snapshot(redis, 2, ids[0]) == str(scripts.SKIPPED)
    assert redis.command("GET", keys.SNAPSHOT) == f"state at {ids[4]}"


def test_a_node_that_renewed_before_it_was_forgotten_stays_joined(redis: RedisProcess) -> None:
    ids = two_nodes_one_lapsed(redis)
    renew(redis, 2, ids[0])  # back before node 1's renewal forgets it
    renew(redis, 1, ids[4], 2)
    assert joined(redis, 2)
    assert snapshot(redis, 1, ids[4]) == str(scripts.HELD_BACK)
    assert redis.command("XLEN", keys.LOG) == "5"  # its entries stay for it to read
