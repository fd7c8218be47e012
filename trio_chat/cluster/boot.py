"""Joining a cluster: check the config against the running cluster's, take a
node number and a lease, and fetch the latest snapshot.

One node joins at a time (a short lock in Redis). If no node of the previous
cluster is alive, or Redis has no epoch (it is new, or lost the cluster's
state and no node of the old cluster has written it back yet), its leftovers
are cleared and this node founds a new cluster: a new epoch, and this node's
config becomes the cluster's. The new cluster keeps the old one's history,
if Redis kept it and the config is the same (inherit.py): the leftovers go
in the same step as its first snapshot is written. Every call has the
deadline of any call to Redis (``keys.CALL_DEADLINE``).
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TypeVar

import coredis
import trio

from . import keys
from .inherit import Rules, inherit

BOOT_LOCK_MS = 10_000
T = TypeVar("T")


class ClusterError(Exception):
    """This node cannot join: the reason is for the operator."""


@dataclass(frozen=True)
class Joined:
    node: int
    token: bytes  # this node's lease holds it: another node's would not
    epoch: bytes  # the cluster's, see keys.EPOCH
    snapshot: bytes | None  # JSON: {"id": ..., "state": ...}
    # For the operator's log: what became of the previous cluster's history.
    note: str | None = None


async def answered(call: Awaitable[T]) -> T:
    """``call``'s reply, or trio.TooSlowError past the deadline of any Redis call."""
    with trio.fail_after(keys.CALL_DEADLINE):
        return await call


async def node_leases(redis: coredis.Redis[bytes]) -> dict[int, bool]:
    """Every node that joined, by number, and whether its lease is still alive."""
    return {
        int(raw): bool(await redis.exists([keys.lease(int(raw))]))
        for raw in await redis.smembers(keys.NODES)
    }


async def _leftovers(redis: coredis.Redis[bytes]) -> list[str]:
    """The keys of a previous cluster (the node counter stays: numbers are never reused)."""
    leftovers = [keys.LOG, keys.SNAPSHOT, keys.APPLIED, keys.NODES, keys.CONFIG]
    leftovers += [keys.EPOCH, keys.RESTORED, keys.TRIMMED]
    async for key in redis.scan_iter(match=keys.PREFIX + "data:*"):
        leftovers.append(key.decode())
    return leftovers


async def join_cluster(redis: coredis.Redis[bytes], rules: Rules) -> Joined:
    """Raises ClusterError for the operator, trio.TooSlowError if Redis stalls."""
    with trio.move_on_after(BOOT_LOCK_MS / 1000) as waiting:
        while not await answered(
            redis.set(keys.BOOT, b"1", condition=coredis.PureToken.NX, px=BOOT_LOCK_MS)
        ):
            await trio.sleep(0.05)
    if waiting.cancelled_caught:
        raise ClusterError("another node has been joining for 10 s; try again")
    try:
        return await _join_locked(redis, rules)
    finally:
        await answered(redis.delete([keys.BOOT]))


async def _join_locked(redis: coredis.Redis[bytes], rules: Rules) -> Joined:
    fingerprint = rules.fingerprint
    note = None
    live = sorted(node for node, alive in (await answered(node_leases(redis))).items() if alive)
    epoch = await answered(redis.get(keys.EPOCH))
    current = await answered(redis.get(keys.CONFIG))
    if epoch is None or not live:
        # No cluster lives here, or Redis lost the state of the one that did
        # and none of its nodes wrote it back yet (they stop when they see
        # another epoch, see link.py): found a new one.
        inheritance = await inherit(redis, rules, current)
        note = inheritance.note
        leftovers = await answered(_leftovers(redis))
        epoch = secrets.token_hex(8).encode() + b":0"
        with trio.fail_after(keys.CALL_DEADLINE):
            # In one step: the old history is in Redis until the new cluster holds it.
            async with redis.pipeline(transaction=True) as pipe:
                pipe.delete(leftovers)
                pipe.set(keys.EPOCH, epoch)
                pipe.set(keys.CONFIG, fingerprint.encode())
                if inheritance.snapshot is not None:
                    pipe.set(keys.SNAPSHOT, inheritance.snapshot)
    elif current is None or current.decode() != fingerprint:
        raise ClusterError(
            "this config differs from the one the running cluster uses "
            f"(nodes {', '.join(map(str, live))}): every node must run the same "
            "channels, --afk-timeout and history options, and the same version of trio-chat; "
            f"the cluster's is {current.decode() if current else 'missing'}"
        )
    # A number whose lease is held belongs to a node that re-registered after
    # Redis lost the cluster's state (link.py): take the next one.
    token = secrets.token_hex(8).encode()
    node = await answered(redis.incr(keys.COUNTER))
    while not await answered(
        redis.set(keys.lease(node), token, condition=coredis.PureToken.NX, px=keys.LEASE_MS)
    ):
        node = await answered(redis.incr(keys.COUNTER))
    with trio.fail_after(keys.CALL_DEADLINE):
        async with redis.pipeline(transaction=False) as pipe:
            pipe.sadd(keys.NODES, [str(node)])
            # Until it has loaded the snapshot, nothing may be trimmed from the log.
            pipe.hset(keys.APPLIED, {str(node): b"0-0"})
    snapshot = await answered(redis.get(keys.SNAPSHOT))
    return Joined(node, token, epoch, snapshot, note)
