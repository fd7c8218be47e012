"""Joining a cluster: check the config against the running cluster's, take a
node number and a lease, and fetch the latest snapshot.

One node joins at a time (a short lock in Redis). If no node of the previous
cluster is alive, its leftovers are cleared and this node's config becomes
the cluster's.
"""

from __future__ import annotations

from dataclasses import dataclass

import coredis
import trio

from . import keys

BOOT_LOCK_MS = 10_000


class ClusterError(Exception):
    """This node cannot join: the reason is for the operator."""


@dataclass(frozen=True)
class Joined:
    node: int
    snapshot: bytes | None  # JSON: {"id": ..., "state": ...}


async def node_leases(redis: coredis.Redis[bytes]) -> dict[int, bool]:
    """Every node that joined, by number, and whether its lease is still alive."""
    return {
        int(raw): bool(await redis.exists([keys.lease(int(raw))]))
        for raw in await redis.smembers(keys.NODES)
    }


async def _clear_leftovers(redis: coredis.Redis[bytes]) -> None:
    leftovers = [keys.LOG, keys.SNAPSHOT, keys.APPLIED, keys.NODES, keys.CONFIG]
    async for key in redis.scan_iter(match=keys.PREFIX + "data:*"):
        leftovers.append(key.decode())
    await redis.delete(leftovers)


async def join_cluster(redis: coredis.Redis[bytes], fingerprint: str) -> Joined:
    with trio.move_on_after(BOOT_LOCK_MS / 1000) as waiting:
        while not await redis.set(keys.BOOT, b"1", condition=coredis.PureToken.NX, px=BOOT_LOCK_MS):
            await trio.sleep(0.05)
    if waiting.cancelled_caught:
        raise ClusterError("another node has been joining for 10 s; try again")
    try:
        live = sorted(node for node, alive in (await node_leases(redis)).items() if alive)
        current = await redis.get(keys.CONFIG)
        if not live:
            await _clear_leftovers(redis)
            await redis.set(keys.CONFIG, fingerprint.encode())
        elif current is None:
            await redis.set(keys.CONFIG, fingerprint.encode())
        elif current.decode() != fingerprint:
            raise ClusterError(
                "this config differs from the one the running cluster uses "
                f"(nodes {', '.join(map(str, live))}): every node must run the same "
                "channels and --afk-timeout, and the same version of trio-chat; "
                f"the cluster's is {current.decode()}"
            )
        node = await redis.incr(keys.COUNTER)
        async with redis.pipeline(transaction=False) as pipe:
            pipe.set(keys.lease(node), b"1", px=keys.LEASE_MS)
            pipe.sadd(keys.NODES, [str(node)])
            # Until it has loaded the snapshot, nothing may be trimmed from the log.
            pipe.hset(keys.APPLIED, {str(node): b"0-0"})
        snapshot = await redis.get(keys.SNAPSHOT)
    finally:
        await redis.delete([keys.BOOT])
    return Joined(node, snapshot)
