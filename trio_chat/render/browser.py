"""The web page's rendering: effects as EVENT frames of JSON, one per effect.

The page (``web/static/render.js``, ``connection.js``) shows each event itself and follows the
channel from the fields (who is in it, its place in the queue, a mute), so it
never reads a contract line. Every event has ``event`` (its name here) and
``stamp``; docs/web.md lists the fields.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from .. import effects as fx
from ..events import ACTION
from ..history import BY_AFK, BY_KICK, BY_LEAVING, JOINED, SAID, Entry, msgid
from ..state import Member
from ..wire import FrameType, encode_json

Frames = list[tuple[Sequence[Member], bytes]]


def _event(name: str, stamp: str, **fields: object) -> bytes:
    return encode_json(FrameType.EVENT, {"event": name, "stamp": stamp, **fields})


def _one(member: Member | None, frame: bytes) -> Frames:
    return [] if member is None else [((member,), frame)]


def _many(audience: Sequence[Member], frame: bytes) -> Frames:
    return [(audience, frame)] if audience else []


def _muted(e: fx.Muted) -> Frames:
    # One event for all: the page tells "you" from the name.
    return [
        ((e.member, *e.others), _event("muted", e.stamp, user=e.member.name, seconds=e.seconds))
    ]


def _chat(e: fx.Chat) -> Frames:
    ident = msgid(e.seq, e.at) if e.seq else ""
    return _many(e.audience, _said("chat", e.stamp, e.sender, e.message, e.style, ident))


def _said(event: str, stamp: str, sender: str, message: str, style: str, ident: str = "") -> bytes:
    """A chat or whisper event; an IRC user's /me is marked (docs/irc.md);
    a line said in a channel has its id (history.msgid)."""
    fields: dict[str, object] = {"sender": sender, "message": message}
    if style == ACTION:
        fields["action"] = True
    if ident:
        fields["id"] = ident
    return _event(event, stamp, **fields)


def _whisper(e: fx.Whisper) -> Frames:
    """To the receiver; and, if it reached one, to the sender as
    ``whispered`` with whom it went to, so that the sender's page shows its
    own whisper (a whisper to oneself arrives once, as a whisper)."""
    frames = _one(e.receiver, _said("whisper", e.stamp, e.sender, e.message, e.style))
    if e.receiver is not None and e.sender_member not in (None, e.receiver):
        fields: dict[str, object] = {"to": e.target, "message": e.message}
        if e.style == ACTION:
            fields["action"] = True
        frames += _one(e.sender_member, _event("whispered", e.stamp, **fields))
    return frames


def _left(stamp: str, user: str, why: str, ident: str) -> bytes:
    if ident:
        return _event("left", stamp, user=user, why=why, id=ident)
    return _event("left", stamp, user=user, why=why)


def _entry(entry: Entry) -> dict[str, object]:
    """One history entry as the page reads it (docs/web.md, "history")."""
    fields: dict[str, object] = {
        "id": entry.msgid,
        "at": entry.at,
        "stamp": entry.stamp,
        "kind": entry.kind,
        "user": entry.user,
    }
    if entry.kind == SAID:
        fields["message"] = entry.message
        if entry.style == ACTION:
            fields["action"] = True
    elif entry.kind != JOINED:
        fields["why"] = entry.style
    return fields


# What one history event's entries may count, so that every event stays far
# below wire.MAX_PAYLOAD: its text as UTF-8 (not escaped, ``_history_event``),
# where only a quote or a backslash takes two bytes, and each entry's fields.
_HISTORY_EVENT_BYTES = 48 * 1024


def _history_event(channel: str, entries: list[dict[str, object]], last: bool) -> bytes:
    fields: dict[str, object] = {"event": "history", "stamp": "", "channel": channel}
    fields["entries"] = entries
    if last:
        fields["last"] = True
    return encode_json(FrameType.EVENT, fields, escaped=False)


def _history(e: fx.History) -> Frames:
    """The entries in events of a bounded size, oldest first; the last one
    says so (``"last": true``), and the page draws its divider then."""
    frames: Frames = []
    member = (e.member,)
    batch: list[dict[str, object]] = []
    counted = 0
    for entry in e.entries:
        cost = entry.size() * 2 + 128
        if batch and counted + cost > _HISTORY_EVENT_BYTES:
            frames.append((member, _history_event(e.channel, batch, last=False)))
            batch, counted = [], 0
        batch.append(_entry(entry))
        counted += cost
    frames.append((member, _history_event(e.channel, batch, last=True)))
    return frames


_RENDER: dict[type[Any], Callable[[Any], Frames]] = {
    fx.Welcome: lambda e: _one(
        e.member, _event("welcome", e.stamp, channel=e.channel, user=e.member.name)
    ),
    fx.CannotConnect: lambda e: _one(
        e.member, _event("cannot_connect", e.stamp, channel=e.channel)
    ),
    fx.QueuePosition: lambda e: _one(e.member, _event("queued", e.stamp, ahead=e.ahead)),
    fx.Joined: lambda e: _many(
        e.audience,
        _event("joined", e.stamp, user=e.user, id=e.msgid)
        if e.msgid
        else _event("joined", e.stamp, user=e.user),
    ),
    fx.Left: lambda e: (
        [] if e.quiet else _many(e.audience, _left(e.stamp, e.user, BY_LEAVING, e.msgid))
    ),
    fx.WentAfk: lambda e: _many(e.audience, _left(e.stamp, e.user, BY_AFK, e.msgid)),
    fx.Kicked: lambda e: _many(e.audience, _left(e.stamp, e.user, BY_KICK, e.msgid)),
    fx.Chat: _chat,
    fx.Whisper: _whisper,
    fx.NotHere: lambda e: _one(e.to, _event("not_here", e.stamp, user=e.user)),
    fx.NotFound: lambda e: _one(e.to, _event("not_found", e.stamp, thing=e.thing)),
    fx.CannotSwitch: lambda e: _one(e.member, _event("cannot_switch", e.stamp, channel=e.channel)),
    fx.StillMuted: lambda e: _one(e.member, _event("still_muted", e.stamp, seconds=e.seconds)),
    fx.Listing: lambda e: _one(
        e.member,
        _event(
            "listing",
            e.stamp,
            channels=[
                {"name": r.name, "members": r.members, "capacity": r.capacity, "queued": r.queued}
                for r in e.rows
            ],
        ),
    ),
    fx.Muted: _muted,
    fx.FileSent: lambda e: _one(e.sender, _event("sent", e.stamp, path=e.path, to=e.target)),
    fx.History: _history,
}


def frames(effect: fx.Said) -> Frames:
    """The EVENT frames ``effect`` sends, each with its recipients, in order."""
    render = _RENDER.get(type(effect))
    return render(effect) if render is not None else []
