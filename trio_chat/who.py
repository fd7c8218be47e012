"""The console's ``/who [CHANNEL]``: one line per member (docs/behaviour.md,
"The server console"), sans-I/O.

A member's idle time is what its AFK timer has counted (behaviour.md,
"Inactivity (AFK)"), read from the hub's deadline: since it last did
something, frozen while it is muted; a queued member's timer does not run.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from . import effects as fx
from .state import Channel, Member

# What /who says where a member has no such thing: no address (an in-memory
# stream), no node (a lone server), no idle time (queued).
NONE = "-"


def node_of(ref: str) -> str:
    """The node number in a cluster's reference ``NODE.NUMBER``; NONE for a
    lone server's plain number."""
    node, dot, _ = ref.partition(".")
    return node if dot else NONE


def idle_seconds(member: Member, now: float, afk_timeout: float) -> int | None:
    """Whole seconds its AFK timer has counted; None while it is queued."""
    if not member.admitted or math.isinf(member.afk_deadline):
        return None
    # While muted, the deadline is the mute's end plus what was left: the
    # timer resumes from there.
    left = member.afk_deadline - max(now, member.muted_until)
    return max(0, math.floor(afk_timeout - left))


def member_line(
    channel: Channel, member: Member, place: int | None, now: float, afk_timeout: float
) -> str:
    """``place``: 1 for the first in the queue; None when admitted."""
    idle = idle_seconds(member, now, afk_timeout)
    fields = [
        "/who:",
        channel.name,
        member.name,
        member.protocol,
        member.address or NONE,
        "node",
        node_of(member.ref),
        "idle",
        NONE if idle is None else f"{idle}s",
        "admitted" if place is None else f"queued {place}",
    ]
    if member.muted(now):
        fields.append(f"muted {max(1, math.floor(member.muted_until - now))}s")
    return " ".join(fields)


def who(
    channels: Iterable[Channel], name: str | None, now: float, afk_timeout: float
) -> list[fx.Console]:
    """The answer to ``/who`` (``name`` None: every channel) or ``/who NAME``."""
    every = list(channels)
    if name is not None:
        chosen = [c for c in every if c.name == name]
        if not chosen:
            return [fx.Console(f"/who: there is no channel {name}", failed=True)]
    else:
        chosen = every
    lines = [
        fx.Console(member_line(channel, member, place, now, afk_timeout))
        for channel in chosen
        for member, place in _everyone(channel)
    ]
    if not lines:
        where = chosen[0].name if name is not None else "any channel"
        lines.append(fx.Console(f"/who: nobody is in {where}"))
    return lines


def _everyone(channel: Channel) -> Iterable[tuple[Member, int | None]]:
    """Its members in join order, then its queue in order, with their places."""
    for member in channel.members.values():
        yield member, None
    for index, member in enumerate(channel.queue):
        yield member, index + 1
