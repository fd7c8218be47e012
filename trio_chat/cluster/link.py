"""A node's traffic with Redis: append, read, lease, liveness, snapshots.

Every task here outlives a Redis outage: a failed call is retried with
backoff, the outage is logged once when it begins and once when it ends, and
meanwhile the node keeps its clients (what they type waits, in order, and
readers pause once too much waits). A call that gets no answer within its
deadline (``keys.CALL_DEADLINE``; a blocking read's block time more) counts
as a failure: a stalled Redis is an outage, logged and ridden out the same
way. A node whose lease lapses is taken for dead by the others, but only on
evidence from a time in which every node could renew (``liveness.py``).

A node never applies the log with a gap. The log is trimmed only up to what
every joined node has applied, so it can pass only a node that another took
for dead and forgot (``scripts.SNAPSHOT``), which records the last entry it
trimmed. A node that finds that entry newer than its own position (after a
read, or at a renewal, which then does not renew its lease) has missed
entries for good: it stops with status 1, its clients dropped as when a node
is taken for dead, and a fresh start brings it back from the latest snapshot
(docs/behaviour.md, "A cluster of servers", says why it stops rather than
start over in place). So a node taken for dead either reads its own "gone"
entry, and drops its clients, or finds the log trimmed past it, and stops.

Every write checks the cluster's epoch in the same atomic step
(``scripts.py``), and every entry read must carry it. If Redis lost the
cluster's state (a restart without its data), the first node to see it
writes it back with the next generation of the epoch: its config, a number
above every node it knows, its replica as the snapshot, and the log entry
that replica includes. Each other node takes its place again if its replica
has applied the log exactly as far (so the replicas agree) and its number is
free; else it stops (status 1) with the reason. A node that stays appends
again its own entries that it had not yet seen in the log (Redis may have
lost them). If another cluster was founded there meanwhile, this node stops
rather than mix two clusters.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, NamedTuple, Protocol, TypeVar

import coredis
import coredis.exceptions
import trio

from ..server.counts import RedisCounts
from ..server.logs import WARNING, as_log
from . import keys, scripts, snapshot
from .boot import node_leases
from .liveness import Liveness
from .resp import RespConnection


class LinkHost(Protocol):
    """The node this link serves (node.ClusterGateway): what the link reads
    and applies, and whom it tells what happens to the cluster."""

    @property
    def applied_id(self) -> bytes: ...  # the last log entry applied
    @property
    def members(self) -> dict[str, Any]: ...  # the hub's, by reference
    @property
    def log_seq(self) -> dict[int, int]: ...
    @property
    def data_seq(self) -> dict[int, int]: ...
    @property
    def log_backlogged(self) -> bool: ...

    unconfirmed: dict[int, bytes]  # its own entries not yet seen in the log
    leaving: bool

    def apply_log(self, entry_id: bytes, blob: bytes) -> None: ...
    def apply_data(self, header: bytes, frame: bytes) -> None: ...
    def dump(self) -> bytes: ...
    def outage_over(self) -> None: ...
    def cluster_lost(self, reason: str) -> None: ...
    def fell_behind(self, reason: str) -> None: ...
    def room_again(self) -> None: ...
    def announce_gone(self, node: int) -> None: ...


T = TypeVar("T")
BATCH = 1000
# An append is one script, which Redis runs without serving anyone else: a
# batch stops growing at this many bytes (file chunks are 256 KiB each).
BATCH_BYTES = 4 * 1024 * 1024
READ_BLOCK_MS = 1000
APPLY_BETWEEN_YIELDS = 32
SNAPSHOT_EVERY = 2.0
# Backoff between retries while Redis is away.
FIRST_RETRY = 0.05
LAST_RETRY = keys.RENEW_EVERY  # so that a Redis that is back is seen within a renewal or so
FAILURES = (coredis.exceptions.RedisError, OSError, trio.BrokenResourceError)
# How long a node that stops waits for what it sent to reach Redis.
FLUSH_ON_LEAVE = 2.0


class StateLost(Exception):
    """Redis no longer holds this node's cluster: the reason is for the operator."""


class EpochMoved(Exception):
    """The epoch is not this node's any more: the lease loop finds out why."""

    def __init__(self, epoch: bytes | None = None) -> None:
        super().__init__()
        self.epoch = epoch  # as the renewal found it (None: gone)


def id_key(entry_id: bytes | str) -> tuple[int, int]:
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


class StreamEntry(NamedTuple):
    identifier: bytes
    field_values: dict[bytes, bytes]


def stream_entries(reply: Any) -> dict[bytes, list[StreamEntry]]:
    """XREAD's reply (nil, or each stream's name and entries) by stream."""
    if reply is None:
        return {}
    found: dict[bytes, list[StreamEntry]] = {}
    try:
        for name, entries in reply:
            found[name] = [
                StreamEntry(identifier, dict(zip(values[::2], values[1::2], strict=True)))
                for identifier, values in entries
            ]
    except (TypeError, ValueError):  # not what a Redis answers: a failure, retried
        raise coredis.exceptions.ConnectionError(
            "Redis answered XREAD with something other than stream entries"
        ) from None
    return found


def connect(url: str) -> coredis.Redis[bytes]:
    return coredis.Redis.from_url(url, decode_responses=False, connect_timeout=keys.CONNECT_TIMEOUT)


class Link:
    def __init__(
        self,
        url: str,
        node: int,
        token: bytes,
        epoch: bytes,
        fingerprint: str,
        log: Callable[[str], None],
        commands: coredis.Redis[bytes],
        appends: RespConnection,
        reads: RespConnection,
        host: LinkHost,
    ) -> None:
        self.url = url
        self.node = node
        self.token = token  # what this node's lease holds
        self.epoch = epoch
        self.fingerprint = fingerprint  # the config, written back if Redis loses it
        self.log = as_log(log)  # (the server's, with event names for JSON logs)
        self.redis = commands
        # The calls made for every line, each loop's own (resp.py says why);
        # the blocking read needs one to itself anyway.
        self._appends = appends
        self._reads = reads
        # Entries to append, in order; None deletes the key instead.
        self._out: list[tuple[str, dict[bytes, bytes] | None]] = []
        self._sending = 0
        self._wake = trio.Event()
        self._recovered = trio.Event()
        self.skew = 0.0  # Redis's clock minus ours
        self.down_since: float | None = None
        self.counts = RedisCounts()  # outages and round trips, for --metrics
        self.liveness = Liveness(trio.current_time())
        self.lost: str | None = None  # why this node stopped, if Redis lost its cluster
        # Why this node stopped, if the log was trimmed past its position.
        self.behind: str | None = None
        self.data_id = b"0-0"
        self.host = host
        self._last_snapshot = b""
        self._forgetting: list[int] = []  # nodes taken for dead, still in Redis's set
        self._seen_nodes: set[int] = set()  # every node a renewal saw
        self._last_alive: set[int] = set()  # the nodes alive at the last renewal
        # While this node takes its place again, it applies nothing more.
        self._restoring = False
        self._epoch_changed = trio.Event()
        self._out_version = 0  # moves on when the queue is rebuilt

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
        """Wait until everything sent so far is in Redis (or can never be)."""
        while self._out and self.lost is None:
            await trio.sleep(0.01)

    # ----- failures -----

    async def _retrying(
        self, what: Callable[[], Awaitable[T]], deadline: float = keys.CALL_DEADLINE
    ) -> T:
        delay = FIRST_RETRY
        while True:
            try:
                # fail_after, without its generator-based context manager:
                # this runs for every line.
                with trio.CancelScope(deadline=trio.current_time() + deadline) as scope:
                    result = await what()
                if scope.cancelled_caught:
                    raise trio.TooSlowError
            except StateLost as lost:
                self._answered()  # Redis answered, with the news
                self._lose(str(lost))
                await trio.sleep_forever()
            except EpochMoved:
                self._answered()
                raise
            except (*FAILURES, trio.TooSlowError) as error:
                if self.down_since is None:
                    self.down_since = trio.current_time()
                    self.counts.outages += 1
                    why = str(error) or f"no answer within {deadline:g} s"
                    self.log(
                        f"lost Redis at {self.url} ({why}); clients stay connected, "
                        "retrying with backoff",
                        event="redis_down",
                        level=WARNING,
                        url=self.url,
                        reason=why,
                    )
                # Another task's success ends every task's wait.
                with trio.move_on_after(delay):
                    await self._recovered.wait()
                delay = min(delay * 2, LAST_RETRY)
                continue
            self._answered()
            return result

    def _answered(self) -> None:
        if self.down_since is None:
            return
        now = trio.current_time()
        self.log(
            f"Redis is back after {now - self.down_since:.1f} s; carrying on",
            event="redis_up",
            url=self.url,
            down_seconds=round(now - self.down_since, 3),
        )
        self.down_since = None
        # Nobody could renew meanwhile: every node gets time to before any is taken for dead.
        self.liveness.outage_over(now)
        self._recovered.set()
        self._recovered = trio.Event()
        self.host.outage_over()

    def _lose(self, reason: str) -> None:
        if self.lost is not None:
            return
        self.lost = reason
        self.host.cluster_lost(reason)

    def _another_cluster(self) -> str:
        return (
            f"Redis at {self.url} now holds another cluster (a node founded one after "
            "Redis lost this one's state): stopping this node; start it again to join it"
        )

    async def _next_epoch(self, since: bytes) -> None:
        """Wait until the lease loop has taken this node's place again under
        another epoch than ``since`` (or stopped the node: then forever)."""
        while self.epoch == since or self._restoring:
            await self._epoch_changed.wait()

    # ----- Redis lost the cluster's state -----

    async def _take_place_again(self, current: bytes | None) -> None:
        host = self.host
        self._restoring = True  # from now on the read loop applies nothing
        ident, generation = keys.epoch_parts(self.epoch)
        lost = f"Redis at {self.url} lost the cluster's state (it restarted without its data?)"
        while True:
            if current is None:
                new = ident + b":" + str(generation + 1).encode()
                applied = host.applied_id
                written = await self._retrying(partial(self._restore, new, applied))
                if written == 1:
                    self._adopt(
                        new,
                        f"{lost}: re-registered as node {self.node} and re-published the "
                        f"cluster's state as of the log entry {applied.decode()}",
                    )
                    return
                current = bytes(written)
                continue
            their_ident, their_generation = keys.epoch_parts(current)
            if their_ident != ident or their_generation <= generation:
                self._lose(self._another_cluster())
                await trio.sleep_forever()
            outcome = await self._retrying(partial(self._rejoin, current))
            if outcome == 1:
                self._adopt(
                    current,
                    f"{lost}: re-registered as node {self.node}; another node re-published "
                    "the cluster's state, and this node's replica agrees with it",
                )
                return
            if outcome == -3:
                current = await self._retrying(partial(self.redis.get, keys.EPOCH))
                continue
            if outcome == -2:
                why = "another node took this node's number meanwhile"
            else:
                why = (
                    "another node re-published the cluster's state, and this node's "
                    "replica does not match it (Redis lost log entries that only some "
                    "nodes had applied)"
                )
            self._lose(f"{lost}: {why}: stopping this node; start it again to rejoin")
            await trio.sleep_forever()

    def _owners(self) -> set[int]:
        """The nodes that lived at the last renewal or have members: each must
        re-register in time or be taken for dead."""
        host = self.host
        return self._last_alive | {keys.node_of(ref) for ref in host.members}

    def _highest_node(self) -> int:
        """The highest node number this one knows of: from renewals, the log, the members."""
        host = self.host
        known = self._seen_nodes | set(host.log_seq) | set(host.data_seq) | self._owners()
        return max(known | {self.node})

    async def _restore(self, epoch: bytes, applied: bytes) -> Any:
        host = self.host
        blob = snapshot.saved(applied, host.dump())
        ms, seq = id_key(applied)
        return await self.redis.eval(
            scripts.RESTORE,
            [
                keys.EPOCH,
                keys.CONFIG,
                keys.COUNTER,
                keys.SNAPSHOT,
                keys.RESTORED,
                keys.NODES,
                keys.APPLIED,
                keys.lease(self.node),
                keys.LOG,
            ],
            [
                epoch,
                self.fingerprint,
                self._highest_node(),
                blob,
                applied,
                keys.LEASE_MS,
                self.node,
                f"{ms}-{seq + 1}",
                self.token,
                *sorted(self._owners() - {self.node}),
            ],
        )

    async def _rejoin(self, epoch: bytes) -> Any:
        return await self.redis.eval(
            scripts.REJOIN,
            [
                keys.EPOCH,
                keys.RESTORED,
                keys.COUNTER,
                keys.lease(self.node),
                keys.NODES,
                keys.APPLIED,
            ],
            [
                epoch,
                self.host.applied_id,
                self._highest_node(),
                keys.LEASE_MS,
                self.node,
                self.token,
            ],
        )

    def _adopt(self, epoch: bytes, line: str) -> None:
        """This node has its place in the cluster again, under ``epoch``."""
        host = self.host
        self.log(line)
        self.epoch = epoch
        self._restoring = False
        # Nobody could renew while the state was lost: time for all before any is taken for dead.
        self.liveness.outage_over(trio.current_time())
        # Redis may have lost what this node appended and had not seen in the log yet.
        again: list[tuple[str, dict[bytes, bytes]]] = [
            (keys.LOG, {b"e": blob}) for blob in host.unconfirmed.values()
        ]
        self._out = again + [entry for entry in self._out if entry[0] != keys.LOG]
        self._out_version += 1
        self._wake.set()
        self._epoch_changed.set()
        self._epoch_changed = trio.Event()

    # ----- the tasks -----

    async def run(self) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._write_loop)
            nursery.start_soon(self._read_loop)
            nursery.start_soon(self._lease_loop)
            nursery.start_soon(self._snapshot_loop)

    async def _write_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake = trio.Event()
            while self._out:
                batch = self._next_batch()
                version = self._out_version
                epoch = self.epoch

                async def append(
                    batch: list[tuple[str, dict[bytes, bytes] | None]] = batch,
                    epoch: bytes = epoch,
                ) -> None:
                    streams: list[str] = [keys.EPOCH]
                    args: list[bytes | str | int] = [epoch]
                    for key, fields in batch:
                        streams.append(key)
                        if fields is None:
                            args.append(scripts.DELETE)
                            continue
                        args.append(len(fields))
                        for name, value in fields.items():
                            args += (name, value)
                    written = await self._appends.call(
                        b"EVAL", scripts.APPEND, len(streams), *streams, *args
                    )
                    if written == scripts.LOST:
                        raise EpochMoved

                # A retry after a call that timed out may repeat entries (Redis
                # may still run the first): their sequence numbers let readers
                # skip the repeats.
                try:
                    await self._retrying(append)
                except EpochMoved:
                    await self._next_epoch(epoch)  # which rebuilds the queue
                    continue
                if version == self._out_version:  # (else the batch is queued again)
                    del self._out[: len(batch)]
                if not self.host.log_backlogged:
                    self.host.room_again()

    def _next_batch(self) -> list[tuple[str, dict[bytes, bytes] | None]]:
        """The first entries waiting: at most BATCH, and BATCH_BYTES unless one alone is more."""
        size = 0
        for count, (_, fields) in enumerate(self._out[:BATCH]):
            if fields is not None:
                size += sum(len(name) + len(value) for name, value in fields.items())
            if size > BATCH_BYTES and count > 0:
                return self._out[:count]
        return self._out[:BATCH]

    async def _read_loop(self) -> None:
        host = self.host
        data_key = keys.data(self.node)
        while True:
            streams: dict[str | bytes, str | bytes] = {
                keys.LOG: host.applied_id,
                data_key: self.data_id,
            }

            epoch = self.epoch

            async def read(
                streams: dict[str | bytes, str | bytes] = streams, epoch: bytes = epoch
            ) -> tuple[dict[bytes, list[StreamEntry]], bytes | None]:
                # XREAD passes over trimmed entries without a word. The GET
                # queued behind it runs when it has answered: a trim that had
                # passed this node's position by then shows.
                reply, trimmed = await self._reads.pipeline(
                    [
                        (
                            *(b"XREAD", b"COUNT", BATCH, b"BLOCK", READ_BLOCK_MS, b"STREAMS"),
                            *streams,
                            *streams.values(),
                        ),
                        (b"GET", keys.TRIMMED),
                    ]
                )
                result = stream_entries(reply)
                for entries in result.values():
                    for entry in entries:
                        tag = entry.field_values.get(keys.EPOCH_FIELD)
                        self._check_tag(tag, epoch)
                return result, trimmed if keys.LOG.encode() in result else None

            try:
                # A blocking read answers within its block time, plus a call's deadline.
                result, trimmed = await self._retrying(
                    read, READ_BLOCK_MS / 1000 + keys.CALL_DEADLINE
                )
            except EpochMoved:
                await self._next_epoch(epoch)
                continue
            if self._trimmed_past(trimmed, streams[keys.LOG]):
                await trio.sleep_forever()  # (the node stops)
            if not result:
                continue
            done: list[bytes] = []

            def current(epoch: bytes = epoch) -> bool:
                """Not while the node takes its place again: what is applied now
                stays; nor once it fell behind the trimmed log: it stops."""
                return not self._restoring and self.epoch == epoch and self.behind is None

            for stream, entries in result.items():
                if stream == keys.LOG.encode():
                    for index, entry in enumerate(entries, start=1):
                        if not current():
                            break
                        host.apply_log(entry.identifier, entry.field_values.get(b"e", b""))
                        if index % APPLY_BETWEEN_YIELDS == 0:
                            # Let the flush write what is decided so far, and
                            # the sessions pass on what their members typed.
                            await trio.lowlevel.checkpoint()
                else:
                    for entry in entries:
                        if not current():
                            break
                        fields = entry.field_values
                        host.apply_data(fields.get(b"h", b"{}"), fields.get(b"f", b""))
                        self.data_id = entry.identifier
                        done.append(entry.identifier)
            if done:
                # Only this node reads its data stream: what it read can go.
                async def forget(done: list[bytes] = done) -> None:
                    await self.redis.xdel(data_key, done)

                await self._retrying(forget)
            if self.behind is not None:
                await trio.sleep_forever()
            if not current():
                await self._next_epoch(epoch)
            await trio.lowlevel.checkpoint()

    def _trimmed_past(self, trimmed: bytes | str | None, position: bytes | str) -> bool:
        """Whether the log was trimmed past ``position`` (entries this node has
        not applied are gone): if so, this node stops."""
        if self.behind is not None:
            return True
        if not trimmed or id_key(trimmed) <= id_key(position):
            return False
        text = trimmed.decode() if isinstance(trimmed, bytes) else trimmed
        where = position.decode() if isinstance(position, bytes) else position
        self.behind = (
            f"the log was trimmed past this node's position (it applied up to {where}; "
            f"entries up to {text} are gone): another node took it for dead while it "
            "did not renew its lease (paused, or cut off from Redis?), and its replica "
            "can no longer follow the cluster's: stopping this node; start it again to rejoin"
        )
        self.host.fell_behind(self.behind)
        return True

    def _check_tag(self, tag: bytes | None, epoch: bytes) -> None:
        """An entry tagged ``tag`` was read under ``epoch``: may it be applied?"""
        if tag == epoch:
            return
        ident, generation = keys.epoch_parts(epoch)
        tag_ident, tag_generation = keys.epoch_parts(tag) if tag is not None else (b"", -1)
        if tag_ident == ident and tag_generation > generation:
            raise EpochMoved  # written after another node wrote the state back
        raise StateLost(self._another_cluster())

    async def _lease_loop(self) -> None:
        host = self.host
        renewed_at = trio.current_time()  # (boot.py took the lease just now)
        while True:
            try:
                had_lease, joined, trimmed, leases = await self._retrying(self._renew)
            except EpochMoved as moved:
                await self._take_place_again(moved.epoch)
                renewed_at = trio.current_time()
                continue
            self._seen_nodes.update(leases)
            self._last_alive = {node for node, alive in leases.items() if alive}
            now = trio.current_time()
            self.liveness.renewed(now)
            if self._trimmed_past(trimmed, host.applied_id):
                await trio.sleep_forever()  # (the node stops)
            if not joined and not host.leaving:
                # Another node took this one for dead and forgot it, after
                # appending a "gone" entry for it. Not trimmed past (just
                # checked, and this renewal holds the trimming back from now
                # on): this node applies that entry in order, and drops its
                # clients then.
                self.log(
                    f"this node's lease had lapsed (not renewed for {now - renewed_at:.1f} s) "
                    "and another node took it for dead: renewed it; its clients go as it "
                    "reads that in the log"
                )
            elif not had_lease or now - renewed_at > keys.LEASE_MS / 1000:
                # (A call that timed out may have found the lease lapsed as Redis
                # ran it later, unheard: the time since the last renewal heard of tells too.)
                # Nobody may have noticed (Redis was away for everyone): the log
                # says whether another node took this one for dead.
                self.log(
                    f"this node's lease had lapsed (not renewed for {now - renewed_at:.1f} s); "
                    "renewed it: its clients stay unless another node took it for dead"
                )
            renewed_at = now
            for node, alive in sorted(leases.items()):
                if node == self.node or alive or not self.liveness.may_declare(node, now):
                    continue
                self.log(f"node {node} stopped renewing its lease: its clients leave the chat")
                host.announce_gone(node)
                # Forgotten in Redis by the next renewal: one call a renewal, so
                # that this node renews on schedule while it declares others dead.
                self._forgetting.append(node)
            await trio.sleep(keys.RENEW_EVERY)

    async def _renew(self) -> tuple[bool, bool, bytes, dict[int, bool]]:
        """Renew this node's lease; whether it was still there, whether this
        node was still joined, the last entry trimmed from the log, and every
        joined node's lease, alive or not, as Redis saw them in the same instant."""
        before = time.time()
        reply: list[Any] = await self.redis.eval(  # type: ignore[assignment]
            scripts.RENEW,
            [keys.EPOCH, keys.lease(self.node), keys.NODES, keys.APPLIED, keys.TRIMMED],
            [
                self.epoch,
                keys.LEASE_MS,
                self.node,
                self.host.applied_id,
                keys.LEASES,
                self.token,
                *self._forgetting,
            ],
        )
        self._forgetting.clear()
        after = time.time()
        self.counts.round_trips.observe(max(after - before, 0.0))
        # Raw TIME: coredis 6.9's parsed TIME reads the microseconds as milliseconds.
        self.skew = int(reply[0]) + int(reply[1]) / 1e6 - (before + after) / 2
        if reply[2] == -1:
            raise EpochMoved(reply[3])
        pairs = reply[5:]
        leases = {int(n): bool(a) for n, a in zip(pairs[::2], pairs[1::2], strict=True)}
        return bool(reply[2]), bool(reply[3]), bytes(reply[4]), leases

    async def _live_nodes(self) -> list[int]:
        leases = await node_leases(self.redis)
        return sorted(node for node, alive in leases.items() if alive or node == self.node)

    async def _snapshot_loop(self) -> None:
        while True:
            epoch = self.epoch
            try:
                await self._retrying(self._snapshot)
            except EpochMoved:
                await self._next_epoch(epoch)
                continue
            await trio.sleep(SNAPSHOT_EVERY)

    async def _snapshot(self) -> None:
        """The lowest-numbered live node saves the state now and then, and trims
        the log up to what every joined node has applied (``scripts.SNAPSHOT``)."""
        if self.behind is not None:
            return
        live = await self._live_nodes()
        applied_id = self.host.applied_id
        if not live or live[0] != self.node or applied_id == self._last_snapshot:
            return
        blob = snapshot.saved(applied_id, self.host.dump())
        saved = await self.redis.eval(
            scripts.SNAPSHOT,
            [keys.EPOCH, keys.SNAPSHOT, keys.LOG, keys.NODES, keys.APPLIED, keys.TRIMMED],
            [self.epoch, blob, self.node, applied_id],
        )
        if saved == scripts.LOST:
            raise EpochMoved
        if saved == scripts.SKIPPED:
            return  # forgotten, or behind the trimmed log: the other loops find out
        if saved == scripts.HELD_BACK:
            # Another node's position kept the log: the same state is saved
            # again next time, so that the log is trimmed once that node
            # catches up or is forgotten, even if nothing new comes (else a
            # quiet cluster would keep a dead node's part of the log).
            return
        self._last_snapshot = applied_id

    async def leave(self) -> None:
        """This node stops: its members leave at once rather than when its lease
        lapses. (Also when it could not bind its ports: then run() never ran.)"""
        self.host.announce_gone(self.node)
        with trio.move_on_after(FLUSH_ON_LEAVE):
            await self.flush()
        if self.lost is not None:
            return  # nothing of this cluster is left in Redis to clean up
        with trio.move_on_after(keys.CALL_DEADLINE):
            try:
                mine = [keys.lease(self.node), keys.data(self.node)]
                await self.redis.eval(
                    scripts.FORGET_NODE,
                    [keys.EPOCH, keys.NODES, keys.APPLIED, *mine],
                    [self.epoch, self.node],
                )
            except FAILURES as error:
                self.log(f"could not remove this node from Redis as it stopped ({error})")
