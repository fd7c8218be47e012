"""A node's traffic with Redis: append, read, lease, liveness, snapshots.

Every task here outlives a Redis outage: a failed call is retried with
backoff, the outage is logged once when it begins and once when it ends, and
meanwhile the node keeps its clients (what they type waits, in order, and
readers pause once too much waits). A node whose lease lapses is taken for
dead by the others; after an outage nobody is taken for dead until every
node has had time to renew its lease.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import coredis
import coredis.exceptions
import trio

from . import keys
from .boot import node_leases

if TYPE_CHECKING:
    from .node import ClusterRules

T = TypeVar("T")
BATCH = 1000
READ_BLOCK_MS = 1000
APPLY_BETWEEN_YIELDS = 32
SNAPSHOT_EVERY = 2.0
# Backoff between retries while Redis is away.
FIRST_RETRY = 0.05
LAST_RETRY = 2.0
FAILURES = (coredis.exceptions.RedisError, OSError, trio.BrokenResourceError)


def id_key(entry_id: bytes | str) -> tuple[int, int]:
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


def connect(url: str) -> coredis.Redis[bytes]:
    return coredis.Redis.from_url(url, decode_responses=False, connect_timeout=5.0)


class Link:
    def __init__(
        self,
        url: str,
        node: int,
        log: Callable[[str], None],
        commands: coredis.Redis[bytes],
        reads: coredis.Redis[bytes],
    ) -> None:
        self.url = url
        self.node = node
        self.log = log
        self.redis = commands
        self._reads = reads  # blocking reads get their own connection
        # Entries to append, in order; None deletes the key instead.
        self._out: list[tuple[str, dict[bytes, bytes] | None]] = []
        self._sending = 0
        self._wake = trio.Event()
        self._recovered = trio.Event()
        self.skew = 0.0  # Redis's clock minus ours
        self.down_since: float | None = None
        self.healthy_since = trio.current_time()
        self.data_id = b"0-0"
        self.rules: ClusterRules | None = None
        self._declared: dict[int, float] = {}
        self._last_snapshot = b""
        self._snapshot_time = -SNAPSHOT_EVERY

    # ----- what the node uses -----

    def send(self, key: str, fields: dict[bytes, bytes]) -> None:
        self._out.append((key, fields))
        self._wake.set()

    def delete(self, key: str) -> None:
        """Delete ``key`` once everything sent before is in Redis."""
        self._out.append((key, None))
        self._wake.set()

    def pending(self) -> int:
        return len(self._out)

    def redis_now(self) -> float:
        return time.time() + self.skew

    async def flush(self) -> None:
        """Wait until everything sent so far is in Redis."""
        while self._out:
            await trio.sleep(0.01)

    # ----- failures -----

    async def _retrying(self, what: Callable[[], Awaitable[T]]) -> T:
        delay = FIRST_RETRY
        while True:
            try:
                result = await what()
            except FAILURES as error:
                if self.down_since is None:
                    self.down_since = trio.current_time()
                    self.log(
                        f"lost Redis at {self.url} ({error}); clients stay connected, "
                        "retrying with backoff"
                    )
                # Another task's success ends every task's wait.
                with trio.move_on_after(delay):
                    await self._recovered.wait()
                delay = min(delay * 2, LAST_RETRY)
                continue
            if self.down_since is not None:
                self.log(
                    f"Redis is back after {trio.current_time() - self.down_since:.1f} s; "
                    "carrying on"
                )
                self.down_since = None
                self.healthy_since = trio.current_time()
                self._recovered.set()
                self._recovered = trio.Event()
                if self.rules is not None:
                    self.rules.outage_over()
            return result

    # ----- the tasks -----

    async def run(self, rules: ClusterRules) -> None:
        self.rules = rules
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._write_loop)
            nursery.start_soon(self._read_loop)
            nursery.start_soon(self._lease_loop)

    async def _write_loop(self) -> None:
        assert self.rules is not None
        while True:
            await self._wake.wait()
            self._wake = trio.Event()
            while self._out:
                batch = self._out[:BATCH]

                async def append(
                    batch: list[tuple[str, dict[bytes, bytes] | None]] = batch,
                ) -> None:
                    async with self.redis.pipeline(transaction=False) as pipe:
                        for key, fields in batch:
                            if fields is None:
                                pipe.delete([key])
                            else:
                                pipe.xadd(key, fields)

                # A retry after a half-sent pipeline repeats entries: their
                # sequence numbers let readers skip the repeats.
                await self._retrying(append)
                del self._out[: len(batch)]
                if not self.rules.backlogged:
                    self.rules.room_again()

    async def _read_loop(self) -> None:
        rules = self.rules
        assert rules is not None
        data_key = keys.data(self.node)
        while True:
            streams: dict[str | bytes, str | bytes] = {
                keys.LOG: rules.applied_id,
                data_key: self.data_id,
            }

            async def read(streams: dict[str | bytes, str | bytes] = streams) -> Any:
                return await self._reads.xread(streams, count=BATCH, block=READ_BLOCK_MS)

            result = await self._retrying(read)
            if not result:
                continue
            done: list[bytes] = []
            for stream, entries in result.items():
                if stream == keys.LOG.encode():
                    for index, entry in enumerate(entries, start=1):
                        rules.apply_log(entry.identifier, entry.field_values.get(b"e", b""))
                        if index % APPLY_BETWEEN_YIELDS == 0:
                            # Let the flush write what is decided so far, and
                            # the sessions pass on what their members typed.
                            await trio.lowlevel.checkpoint()
                else:
                    for entry in entries:
                        fields = entry.field_values
                        rules.apply_data(fields.get(b"h", b"{}"), fields.get(b"f", b""))
                        self.data_id = entry.identifier
                        done.append(entry.identifier)
            if done:
                # Only this node reads its data stream: what it read can go.
                async def forget(done: list[bytes] = done) -> None:
                    await self.redis.xdel(data_key, done)

                await self._retrying(forget)
            await trio.lowlevel.checkpoint()

    async def _lease_loop(self) -> None:
        rules = self.rules
        assert rules is not None
        while True:
            await self._retrying(self._renew)
            await self._retrying(self._check_others)
            if trio.current_time() - self._snapshot_time >= SNAPSHOT_EVERY:
                self._snapshot_time = trio.current_time()
                await self._retrying(self._snapshot)
            await trio.sleep(keys.RENEW_EVERY)

    async def _renew(self) -> None:
        assert self.rules is not None
        before = time.time()
        # Raw TIME: coredis 6.9's parsed TIME reads the microseconds as milliseconds.
        reply: list[bytes] = await self.redis.eval("return redis.call('TIME')")  # type: ignore[assignment]
        after = time.time()
        self.skew = int(reply[0]) + int(reply[1]) / 1e6 - (before + after) / 2
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.set(keys.lease(self.node), b"1", px=keys.LEASE_MS)
            pipe.sadd(keys.NODES, [str(self.node)])
            pipe.hset(keys.APPLIED, {str(self.node): self.rules.applied_id})

    async def _live_nodes(self) -> list[int]:
        leases = await node_leases(self.redis)
        return sorted(node for node, alive in leases.items() if alive or node == self.node)

    async def _check_others(self) -> None:
        """Log a 'gone' event for each node whose lease lapsed: its members leave."""
        assert self.rules is not None
        now = trio.current_time()
        # After an outage the others need a renewal period to show they live.
        if now - self.healthy_since < keys.LEASE_MS / 1000 + 2 * keys.RENEW_EVERY:
            return
        for node, alive in (await node_leases(self.redis)).items():
            if node == self.node or alive:
                continue
            if now - self._declared.get(node, -1e9) < 2.0:
                continue
            self._declared[node] = now
            self.log(f"node {node} stopped renewing its lease: its clients leave the chat")
            self.rules.node_gone(node)
            await self.redis.srem(keys.NODES, [str(node)])
            await self.redis.hdel(keys.APPLIED, [str(node)])

    async def _snapshot(self) -> None:
        """The lowest-numbered live node saves the state now and then, and trims
        the log up to what every live node has applied."""
        assert self.rules is not None
        live = await self._live_nodes()
        applied_id = self.rules.applied_id
        if not live or live[0] != self.node or applied_id == self._last_snapshot:
            return
        blob = json.dumps({"id": applied_id.decode(), "state": self.rules.dump().decode()}).encode()
        await self.redis.set(keys.SNAPSHOT, blob)
        self._last_snapshot = applied_id
        positions = await self.redis.hgetall(keys.APPLIED)
        oldest = min(
            [id_key(applied_id)] + [id_key(v) for k, v in positions.items() if int(k) in live]
        )
        if oldest > (0, 0):
            await self.redis.xtrim(
                keys.LOG,
                trim_strategy=coredis.PureToken.MINID,
                threshold=f"{oldest[0]}-{oldest[1]}",  # type: ignore[arg-type]
            )

    async def leave(self) -> None:
        """This node stops: its members leave at once rather than when its lease lapses."""
        assert self.rules is not None
        self.rules.node_gone(self.node)
        with trio.move_on_after(2.0):
            await self.flush()
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.delete([keys.lease(self.node), keys.data(self.node)])
                pipe.srem(keys.NODES, [str(self.node)])
                pipe.hdel(keys.APPLIED, [str(self.node)])
