"""A node's replica of the hub: the shared log, applied in order.

Every entry of the log, from any node, is decoded (``codec.py``) and handed
to this node's hub with the time Redis gave it, by a table from event type to
handler (``_REPLAY``): most events go to the hub as they are; a few keep
cluster-wide records beside it (who exchanges files, line budgets, members
by address). The hub's effects are carried out by ``ChatServer.apply``: a
member on another node has a stand-in (``routes.RemoteConn``) that ignores
them, and only the node where the event began prints its lines.

When a node goes (it left, or it is taken for dead), every file to or from
its members is called off on every node at once (``_node_gone``): the relays
call off the files to its members as when a receiver hangs up; each node
calls off, for its own receivers, the files the gone node relayed, as when a
sender hangs up; and the log's record of which members exchange files
(``pairs``) ends, on every node alike, the transfers of the other ends, so
their AFK timers count again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Protocol

import trio

from .. import events as ev
from ..effects import Effect
from ..hub import Hub, Member
from ..server.admission import address_key, budget_keys
from ..server.flood import LineLedger, TokenBucket
from ..state import Connection
from ..text import stamp_at
from . import codec, snapshot
from .keys import node_of
from .routes import FileRoutes


class ReplicaHost(Protocol):
    """What the replica needs of its node."""

    number: int
    line_budgets: LineLedger | None  # this server's (None: flood control is off)

    def apply(self, effects: Iterable[Effect], speaking: bool) -> None: ...
    def log(self, text: str) -> None: ...
    def stand_in(self, ref: str) -> Connection: ...
    def confirmed(self, seq: int) -> None: ...
    def lower_line_budget(self, ref: str, tokens: float) -> None: ...
    def forget_progress(self, ref: str) -> None: ...
    def node_gone(self, node: int) -> None: ...


def entry_time(entry_id: bytes) -> float:
    """Redis stream ids begin with the milliseconds of Redis's clock."""
    return int(entry_id.split(b"-", 1)[0]) / 1000


class Replica:
    def __init__(self, host: ReplicaHost, hub: Hub, routes: FileRoutes) -> None:
        self.host = host
        self.hub = hub
        self.routes = routes
        hub.connection_for = host.stand_in
        # (sender, receiver) references -> the files between them, from the
        # log's transfer_started and transfer_ended: every node keeps the same.
        self.pairs: dict[tuple[str, str], int] = {}
        # The last sequence number applied from each node.
        self.log_seq: dict[int, int] = {}
        self.applied_id = b"0-0"
        # Every member's line budget as the log sees it (in log time), so that
        # a member who reconnects through another node, or someone from the
        # same address or with the same name, starts from what was spent
        # through any node (flood.LineLedger; docs/security.md, "Flood control").
        local_budgets = host.line_budgets
        self._budgets = (
            LineLedger(local_budgets.burst, local_budgets.rate)
            if local_budgets is not None
            else None
        )
        self._budget_of: dict[str, tuple[tuple[str, ...], TokenBucket]] = {}
        self._log_now = 0.0  # the time of the entry being applied
        # Other nodes' members by address (admission.address_key), for the
        # per-address limit: it is the cluster's, not each node's.
        self._address_of: dict[str, str] = {}
        self._elsewhere: dict[str, int] = {}

    @property
    def members(self) -> dict[str, Member]:
        return self.hub.members

    def connected_elsewhere(self, address: str) -> int:
        return self._elsewhere.get(address, 0)

    # ----- snapshots -----

    def load(self, entry_id: bytes, blob: bytes) -> None:
        """Start from a snapshot taken after ``entry_id``."""
        state = snapshot.replica_state(blob)
        snapshot.restore(self.hub, state.hub)
        self.log_seq = state.seq
        self.pairs = state.pairs
        self.applied_id = entry_id

    def dump(self) -> bytes:
        return snapshot.ReplicaState(snapshot.dump(self.hub), self.log_seq, self.pairs).dump()

    # ----- the log, in order -----

    def apply_log(self, entry_id: bytes, blob: bytes) -> None:
        self.applied_id = entry_id
        try:
            entry = codec.decode(blob)
        except codec.EntryError as error:
            self.host.log(f"skipping a log entry {entry_id!r} this node cannot read: {error}")
            return
        if entry.seq <= self.log_seq.get(entry.node, 0):
            return  # a retried batch reached Redis twice
        self.log_seq[entry.node] = entry.seq
        # The node that appended the entry speaks its lines (ChatServer.apply).
        speaking = entry.node == self.host.number
        if speaking:
            self.host.confirmed(entry.seq)
        now = entry_time(entry_id)
        self._log_now = now
        handler = _REPLAY.get(type(entry.event), Replica._to_hub)
        try:
            handler(self, entry.event, now, stamp_at(now), speaking)
        except (KeyError, ValueError, TypeError) as error:
            # Written by a node, so trusted; still, one bad entry (a channel
            # this config lacks, a malformed reference) must not stop this one.
            self.host.log(f"skipping a log entry {entry_id!r} this node cannot apply: {error!r}")

    def _to_hub(self, event: ev.Event, now: float, stamp: str, speaking: bool) -> None:
        self.host.apply(self.hub.handle(event, now, stamp), speaking)

    def _join(self, event: ev.Join, now: float, stamp: str, speaking: bool) -> None:
        ref = event.ref
        self.routes.gone_nodes.discard(node_of(ref))
        effects = self.hub.handle(event, now, stamp)
        if ref in self.hub.members:
            address = event.address
            # An IRC connection counts once, by its nick (_claim_nick), however
            # many channels it is in.
            if address is not None and not speaking and not event.via_irc:
                self._count_elsewhere(ref, address)
            if self._budgets is not None:
                keys = budget_keys(event.username, address)
                bucket = self._budgets.open(keys, now)
                self._budget_of[ref] = (keys, bucket)
                if speaking:
                    # Before the join's answer lets its first line through.
                    self.host.lower_line_budget(ref, bucket.level(now))
        self.host.apply(effects, speaking)

    def _count_elsewhere(self, ref: str, address: str) -> None:
        key = self._address_of[ref] = address_key(address)
        self._elsewhere[key] = self._elsewhere.get(key, 0) + 1

    def _claim_nick(self, event: ev.ClaimNick, now: float, stamp: str, speaking: bool) -> None:
        """An IRC connection on another node is one connection from its
        address, from its registration until it goes."""
        effects = self.hub.handle(event, now, stamp)
        ref, address = event.ref, event.address
        accepted = self.hub.nick_of.get(ref) == event.nick
        if accepted and address is not None and not speaking and ref not in self._address_of:
            self._count_elsewhere(ref, address)
        self.host.apply(effects, speaking)

    def _spend_line(self, ref: str, now: float) -> None:
        """A line of ``ref``'s, in the log's budget (its own node held it back
        already, so there is a token unless clocks disagree a little)."""
        budget = self._budget_of.get(ref)
        if budget is not None:
            budget[1].take(now)
        # Another node's member: the members from its address here share
        # what is left of the address's budget.
        address = self._address_of.get(ref)
        local = self.host.line_budgets
        if address is not None and local is not None:
            local.charge_address(address, trio.current_time())

    def _input(
        self, event: ev.Input | ev.Say | ev.Tell, now: float, stamp: str, speaking: bool
    ) -> None:
        """A line a member typed (on a terminal, a page or IRC): it spends
        from the log's budget for its name and address."""
        self._spend_line(event.ref, now)
        self._to_hub(event, now, stamp, speaking)

    def _offer(self, event: ev.Offer, now: float, stamp: str, speaking: bool) -> None:
        self._spend_line(event.ref, now)
        self._to_hub(event, now, stamp, speaking)

    def _drop(self, event: ev.Drop, now: float, stamp: str, speaking: bool) -> None:
        member = self.hub.members.get(event.ref)
        effects = self.hub.handle(event, now, stamp)
        if member is not None:
            self.forget(event.ref, member)
        else:
            self._forget_address(event.ref)  # (an IRC connection's own reference)
        self.host.apply(effects, speaking)

    def _drop_gone(self, ref: str, now: float, stamp: str, speaking: bool) -> None:
        """A member of a node that went: its leaving is told before its files
        are called off."""
        member = self.hub.members.get(ref)
        self.host.apply(self.hub.handle(ev.Drop(ref), now, stamp), speaking)
        if member is not None:
            self.forget(ref, member)

    def _transfer_started(
        self, event: ev.TransferStarted, now: float, stamp: str, speaking: bool
    ) -> None:
        pair = (event.sender, event.receiver)
        ends = [self.hub.members.get(ref) for ref in pair]
        if any(end is None or end.channel is None for end in ends):
            # One end left first: its relay calls the file off, and that
            # transfer_ended finds nothing counted either. (Left, not only
            # gone: a snapshot knows only the members still in a channel.)
            return
        self.pairs[pair] = self.pairs.get(pair, 0) + 1
        self._to_hub(event, now, stamp, speaking)

    def _transfer_ended(
        self, event: ev.TransferEnded, now: float, stamp: str, speaking: bool
    ) -> None:
        pair = (event.sender, event.receiver)
        count = self.pairs.get(pair, 0)
        if count == 0:
            return  # not counted, or ended already when a node went
        if count > 1:
            self.pairs[pair] = count - 1
        else:
            del self.pairs[pair]
        self._to_hub(event, now, stamp, speaking)

    def _node_gone(self, event: codec.NodeGone, now: float, stamp: str, speaking: bool) -> None:
        """A node left (or its lease lapsed): its members go, as if each hung
        up, and with them every file to or from them, wherever the other end is."""
        gone = event.node
        for pair in [p for p in self.pairs if gone in (node_of(p[0]), node_of(p[1]))]:
            ended = ev.TransferEnded(*pair)
            for _ in range(self.pairs.pop(pair)):
                self._to_hub(ended, now, stamp, speaking)
        self.routes.node_gone(gone)
        for ref in [r for r in self.hub.members if node_of(r) == gone]:
            self._drop_gone(ref, now, stamp, speaking)
        # Its IRC connections' nicks are free again.
        for ref in [r for r in self.hub.nick_of if node_of(r) == gone]:
            self._drop(ev.Drop(ref), now, stamp, speaking)
        self.host.node_gone(gone)

    def forget(self, ref: str, member: Member) -> None:
        """The member behind ``ref`` left the hub: call off its files."""
        self.host.forget_progress(ref)
        budget = self._budget_of.pop(ref, None)
        if budget is not None and self._budgets is not None:
            self._budgets.close(*budget, self._log_now)
        self._forget_address(ref)
        self.routes.member_left(member)

    def _forget_address(self, ref: str) -> None:
        address = self._address_of.pop(ref, None)
        if address is not None:
            left = self._elsewhere[address] - 1
            if left:
                self._elsewhere[address] = left
            else:
                del self._elsewhere[address]


# How each event of the log is replayed; any other goes to the hub as it is.
_REPLAY: dict[type[Any], Callable[[Replica, Any, float, str, bool], None]] = {
    ev.Join: Replica._join,
    ev.Input: Replica._input,
    ev.Say: Replica._input,
    ev.Tell: Replica._input,
    ev.ClaimNick: Replica._claim_nick,
    ev.Offer: Replica._offer,
    ev.Drop: Replica._drop,
    ev.TransferStarted: Replica._transfer_started,
    ev.TransferEnded: Replica._transfer_ended,
    codec.NodeGone: Replica._node_gone,
}
