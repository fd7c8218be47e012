"""What a new cluster keeps of the one that ran on its Redis before: each
channel's history and the hub's line number (docs/cluster.md, "History").

When no node of the previous cluster is alive, the next node to join founds
a new cluster (boot.py). If Redis kept the old cluster's keys (``appendonly
yes``) and the old config is this one, the founder first rebuilds the old
cluster's hub in a scratch hub: its last snapshot, then the log entries
after it, applied as a replica applies them (replica.py; the rules are
deterministic given the events and their times). The new cluster's first
snapshot then holds what was said and nothing else: no members, queues or
nicks (they went with their nodes), and not closed (a /shutdown ends a
cluster, not its history).

``rebuild`` is sans-I/O; ``inherit`` reads Redis for it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import coredis
import trio

from .. import events as ev
from ..config import ChannelConfig
from ..history import HistoryConfig
from ..hub import Hub
from ..state import Connection
from ..text import stamp_at
from . import codec, keys, snapshot
from .replica import entry_time
from .routes import RemoteConn

# Log entries read from Redis in one call.
READ_BATCH = 1000
# The log entry the first snapshot of a new cluster includes: none.
NO_ENTRY = b"0-0"


@dataclass(frozen=True)
class Rules:
    """What a hub is built from, and every node of a cluster shares."""

    channels: Sequence[ChannelConfig]
    afk_timeout: float
    history: HistoryConfig

    @property
    def fingerprint(self) -> str:
        return keys.fingerprint(self.channels, self.afk_timeout, self.history)

    def hub(self) -> Hub:
        """A scratch hub: its members' connections are stand-ins nothing goes to."""
        return Hub(self.channels, self.afk_timeout, connection_for=_inert, history=self.history)


def _inert(ref: str) -> Connection:
    return RemoteConn(ref, lambda ref: None)


@dataclass(frozen=True)
class Rebuilt:
    hub: Hub
    skipped: int  # log entries that could not be read or applied


def rebuild(rules: Rules, saved: bytes | None, entries: Iterable[tuple[bytes, bytes]]) -> Rebuilt:
    """The old cluster's hub from its snapshot (as ``keys.SNAPSHOT`` holds it;
    None: there was none) and the log entries after it, as (id, blob) pairs.
    A snapshot that cannot be read raises ValueError, KeyError or TypeError;
    an entry is skipped instead, as a replica skips it."""
    hub = rules.hub()
    seen: dict[int, int] = {}  # the last sequence number applied from each node
    pairs: dict[tuple[str, str], int] = {}  # files between members (Replica.pairs)
    if saved is not None:
        state = snapshot.replica_state(snapshot.unsaved(saved)[1])
        snapshot.restore(hub, state.hub)
        seen, pairs = dict(state.seq), dict(state.pairs)
    skipped = 0
    for entry_id, blob in entries:
        try:
            entry = codec.decode(blob)
        except codec.EntryError:
            skipped += 1
            continue
        if entry.seq <= seen.get(entry.node, 0):
            continue  # a retried batch reached Redis twice
        seen[entry.node] = entry.seq
        now = entry_time(entry_id)
        try:
            _replay(hub, pairs, entry.event, now, stamp_at(now))
        except (KeyError, ValueError, TypeError):
            skipped += 1
    return Rebuilt(hub, skipped)


def _replay(
    hub: Hub, pairs: dict[tuple[str, str], int], event: codec.LogEvent, now: float, stamp: str
) -> None:
    """One entry, as replica.py's table replays it as far as the hub is
    concerned (the rest is about connections, which are gone)."""
    if isinstance(event, codec.NodeGone):
        gone = event.node
        for pair in [p for p in pairs if gone in (keys.node_of(p[0]), keys.node_of(p[1]))]:
            for _ in range(pairs.pop(pair)):
                hub.handle(ev.TransferEnded(*pair), now, stamp)
        # Its members leave as if each hung up, and its IRC connections'
        # nicks are free again.
        for ref in [r for r in hub.members if keys.node_of(r) == gone]:
            hub.handle(ev.Drop(ref), now, stamp)
        for ref in [r for r in hub.nick_of if keys.node_of(r) == gone]:
            hub.handle(ev.Drop(ref), now, stamp)
        return
    if isinstance(event, ev.TransferStarted):
        pair = (event.sender, event.receiver)
        ends = [hub.members.get(ref) for ref in pair]
        if any(end is None or end.channel is None for end in ends):
            return
        pairs[pair] = pairs.get(pair, 0) + 1
    elif isinstance(event, ev.TransferEnded):
        pair = (event.sender, event.receiver)
        count = pairs.pop(pair, 0)
        if count == 0:
            return
        if count > 1:
            pairs[pair] = count - 1
    hub.handle(event, now, stamp)


def first_snapshot(rules: Rules, old: Hub) -> bytes:
    """The new cluster's first snapshot (as ``keys.SNAPSHOT`` holds it): only
    ``old``'s history and line number."""
    hub = rules.hub()
    hub.said = old.said
    for name, channel in old.channels.items():
        hub.channels[name].history.extend(channel.history.entries)
    state = snapshot.ReplicaState(snapshot.dump(hub), {}, {})
    return snapshot.saved(NO_ENTRY, state.dump())


@dataclass(frozen=True)
class Inheritance:
    snapshot: bytes | None  # the new cluster's first (None: it starts empty)
    note: str | None  # for the operator's log (None: nothing to say)


NOTHING = Inheritance(None, None)


async def inherit(
    redis: coredis.Redis[bytes], rules: Rules, old_config: bytes | None
) -> Inheritance:
    """What a new cluster with ``rules`` keeps of the previous one, whose
    config was ``old_config`` (None: Redis holds no previous cluster).
    Every call has the deadline of any call to Redis; trio.TooSlowError past it."""
    if old_config is None:
        return NOTHING
    if old_config.decode() != rules.fingerprint:
        if not keys.kept_history(old_config.decode()):
            return NOTHING
        return Inheritance(
            None,
            "the previous cluster's history is dropped: its config differs from this "
            f"one's (it was {old_config.decode()})",
        )
    if not rules.history.on:
        return NOTHING
    with trio.fail_after(keys.CALL_DEADLINE):
        saved = await redis.get(keys.SNAPSHOT)
    try:
        after = snapshot.unsaved(saved)[0] if saved is not None else None
        rebuilt = rebuild(rules, saved, await _log_after(redis, after))
    except (ValueError, KeyError, TypeError) as error:
        return Inheritance(None, f"the previous cluster's history is dropped: {error!r}")
    old = rebuilt.hub
    if old.said == 0:
        return NOTHING  # nothing was ever said
    channels = sum(1 for channel in old.channels.values() if channel.history.entries)
    note = (
        f"inherited the previous cluster's history: {old.lines_kept()} line(s) "
        f"in {channels} channel(s)"
    )
    if rebuilt.skipped:
        note += f" ({rebuilt.skipped} log entries could not be read or applied)"
    return Inheritance(first_snapshot(rules, old), note)


async def _log_after(redis: coredis.Redis[bytes], after: bytes | None) -> list[tuple[bytes, bytes]]:
    """The log's entries after ``after`` (None: all), as (id, blob) pairs."""
    start = b"-" if after is None else b"(" + after
    entries: list[tuple[bytes, bytes]] = []
    while True:
        with trio.fail_after(keys.CALL_DEADLINE):
            batch = await redis.xrange(keys.LOG, start, b"+", count=READ_BATCH)
        for entry in batch:
            entries.append((_raw(entry.identifier), _raw(entry.field_values.get(b"e", b""))))
        if len(batch) < READ_BATCH:
            return entries
        start = b"(" + _raw(batch[-1].identifier)


def _raw(value: str | bytes) -> bytes:
    # (bytes, as the connection does not decode replies: boot's callers' ``link.connect``)
    return value.encode() if isinstance(value, str) else value
