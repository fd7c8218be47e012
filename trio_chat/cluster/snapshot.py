"""The hub's state as JSON, so a node that joins later starts where the others are.

A member is written with its connection's reference, ``"NODE.NUMBER"``; a
restored hub's members get their connections from the hub's gateway
(``Hub.connection_for``: stand-ins, as the new node has no connections yet).

A replica's state (``replica_state``) wraps the hub's with what the replica
keeps beside it; ``keys.SNAPSHOT`` holds that with the last log entry it
includes (``saved``). Each wraps the JSON inside as it is, an object within
the object, never as a string: escaped again at every level, a history of
quotes would take seven times its size. Text stays UTF-8, not escaped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from .. import bans
from ..config import ChannelConfig
from ..events import NATIVE
from ..history import Entry
from ..hub import Hub, Member
from ..names import fold_nick


def dump(hub: Hub) -> bytes:
    def member(m: Member) -> dict[str, Any]:
        return {
            "name": m.name,
            "ref": m.ref,
            "muted_until": m.muted_until,
            "afk_deadline": m.afk_deadline,
            "transfers": m.transfers,
            "via_irc": m.via_irc,
            "ident": m.ident,
            "address": m.address,
            "protocol": m.protocol,
        }

    return json.dumps(
        {
            "closed": hub.closed,
            "nicks": hub.nick_of,
            "said": hub.said,
            # A reload changes them (events.Reconfigure): a node that joins
            # later replays the log from the channels the snapshot had.
            "config": [[c.name, c.config.port, c.config.capacity] for c in hub.channels.values()],
            # Their ends are on the log's clock, which every node shares:
            # written relative to 0, they are those times themselves.
            "bans": bans.to_rows(hub.bans, 0.0),
            "channels": {
                name: {
                    "members": [member(m) for m in channel.members.values()],
                    "queue": [member(m) for m in channel.queue],
                    "history": [entry.as_list() for entry in channel.history.entries],
                }
                for name, channel in hub.channels.items()
            },
        },
        ensure_ascii=False,
    ).encode()


def restore(hub: Hub, blob: bytes) -> None:
    """Load ``blob`` into a fresh ``hub``."""
    state = json.loads(blob)
    hub.closed = bool(state["closed"])
    hub.said = int(state.get("said", 0))
    for ref, nick in state.get("nicks", {}).items():
        hub.nick_of[str(ref)] = str(nick)
        hub.nicks[fold_nick(str(nick))] = str(ref)
    hub.bans = bans.from_rows(state.get("bans", []), 0.0)
    if "config" in state:
        hub.adopt_channels([ChannelConfig(str(n), int(p), int(c)) for n, p, c in state["config"]])
    members = hub.members
    for name, saved in state["channels"].items():
        channel = hub.channels.get(name)
        if channel is None:
            continue  # the configs were checked to be equal; nothing to put it in
        channel.history.extend(Entry.from_list(fields) for fields in saved.get("history", ()))
        for admitted, key in ((True, "members"), (False, "queue")):
            for fields in saved[key]:
                ref = str(fields["ref"])
                member = Member(
                    ref,
                    fields["name"],
                    hub.connection_for(ref),
                    channel=channel,
                    admitted=admitted,
                    muted_until=float(fields["muted_until"]),
                    afk_deadline=float(fields["afk_deadline"]),
                    transfers=int(fields["transfers"]),
                    via_irc=bool(fields.get("via_irc", False)),
                    ident=str(fields.get("ident", "")),
                    address=_address(fields.get("address")),
                    protocol=str(fields.get("protocol", NATIVE)),
                )
                members[ref] = member
                if admitted:
                    channel.admit(member)
                else:
                    channel.enqueue(member)


def _address(saved: Any) -> str | None:
    return None if saved is None else str(saved)


@dataclass(frozen=True)
class ReplicaState:
    """What a replica (replica.py) saves: the hub, the last sequence number
    applied from each node, and how many files each (sender, receiver) pair
    exchanges."""

    hub: bytes
    seq: dict[int, int]
    pairs: dict[tuple[str, str], int]

    def dump(self) -> bytes:
        rest = json.dumps(
            {"seq": self.seq, "pairs": [[s, r, n] for (s, r), n in self.pairs.items()]}
        ).encode()
        return b'{"hub":' + self.hub + b"," + rest[1:]


def replica_state(blob: bytes) -> ReplicaState:
    """The inverse of ``ReplicaState.dump``: ValueError, KeyError or TypeError
    for anything else."""
    state = json.loads(blob)
    hub = state["hub"]
    if not isinstance(hub, dict):
        raise TypeError("the hub's state is not an object")
    return ReplicaState(
        json.dumps(hub, ensure_ascii=False).encode(),
        {int(k): int(v) for k, v in state["seq"].items()},
        {(str(s), str(r)): int(n) for s, r, n in state["pairs"]},
    )


def saved(entry_id: bytes, state: bytes) -> bytes:
    """A replica's state as ``keys.SNAPSHOT`` holds it, with the last log
    entry it includes."""
    return b'{"id":' + json.dumps(entry_id.decode()).encode() + b',"state":' + state + b"}"


def unsaved(blob: bytes) -> tuple[bytes, bytes]:
    """The inverse of ``saved``: the entry id and the replica's state."""
    fields = json.loads(blob)
    state = fields["state"]
    if not isinstance(state, dict):
        raise TypeError("the replica's state is not an object")
    return str(fields["id"]).encode(), json.dumps(state, ensure_ascii=False).encode()
