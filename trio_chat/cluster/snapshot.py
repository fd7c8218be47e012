"""The hub's state as JSON, so a node that joins later starts where the others are.

A member is written with its connection's reference, ``"NODE.NUMBER"``; a
restored hub's members get their connections from the hub's gateway
(``Hub.connection_for``: stand-ins, as the new node has no connections yet).
"""

from __future__ import annotations

import json
from typing import Any

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
        }

    return json.dumps(
        {
            "closed": hub.closed,
            "nicks": hub.nick_of,
            "said": hub.said,
            "channels": {
                name: {
                    "members": [member(m) for m in channel.members.values()],
                    "queue": [member(m) for m in channel.queue],
                    "history": [entry.as_list() for entry in channel.history.entries],
                }
                for name, channel in hub.channels.items()
            },
        }
    ).encode()


def restore(hub: Hub, blob: bytes) -> None:
    """Load ``blob`` into a fresh ``hub``."""
    state = json.loads(blob)
    hub.closed = bool(state["closed"])
    hub.said = int(state.get("said", 0))
    for ref, nick in state.get("nicks", {}).items():
        hub.nick_of[str(ref)] = str(nick)
        hub.nicks[fold_nick(str(nick))] = str(ref)
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
                )
                members[ref] = member
                if admitted:
                    channel.admit(member)
                else:
                    channel.queue.append(member)
                    channel.queued_names.add(member.name)
