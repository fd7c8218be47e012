"""The terminal protocol's rendering: effects as LINE frames of contract lines.

Each frame carries the line exactly as a client prints it (``text.py`` spells
every one), with its ``LineKind`` and subject (docs/protocol.md) so that a
client knows what the line is about without reading it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from .. import effects as fx
from .. import text
from ..history import JOINED, SAID
from ..state import Member
from ..wire import HISTORY_END_FRAME, LineKind, encode_history, encode_line

Frames = list[tuple[Sequence[Member], bytes]]

_SERVER = LineKind.SERVER


def _one(member: Member | None, line: str, kind: LineKind = _SERVER, subject: str = "") -> Frames:
    if member is None:
        return []  # for the operator: the log renders it
    return [((member,), encode_line(kind, line, subject))]


def _many(audience: Sequence[Member], kind: LineKind, line: str, subject: str) -> Frames:
    if not audience:
        return []
    return [(audience, encode_line(kind, line, subject))]


def _listing(e: fx.Listing) -> Frames:
    return [
        (
            (e.member,),
            encode_line(
                LineKind.LISTING,
                text.channel_listing(row.name, row.members, row.capacity, row.queued),
                row.name,
            ),
        )
        for row in e.rows
    ]


def _muted(e: fx.Muted) -> Frames:
    frames = _one(e.member, text.you_are_muted(e.stamp, e.seconds))
    if e.others:
        line = text.user_muted(e.stamp, e.member.name, e.seconds)
        frames.append((e.others, encode_line(_SERVER, line, e.member.name)))
    return frames


def _history(e: fx.History) -> Frames:
    """Each line as it was shown live, with its day; then the end of them.
    None for a client of protocol /2, which would not know the frames
    (server/session.py)."""
    if not getattr(e.member.conn, "reads_history", True):
        return []
    frames: list[bytes] = []
    day_start, day_end, date = 0.0, 0.0, ""
    for entry in e.entries:
        if entry.kind == SAID:
            kind = LineKind.CHAT
        else:
            kind = LineKind.JOINED if entry.kind == JOINED else LineKind.LEFT
        if not day_start <= entry.at < day_end:
            date = text.history_date(entry.at)
            day_start, day_end = text.day_of(entry.at)
        frames.append(encode_history(kind, date, text.entry_line(entry), entry.user))
    frames.append(HISTORY_END_FRAME)
    # One piece for the outbox: a thousand lines cost it one entry.
    return [((e.member,), b"".join(frames))]


_RENDER: dict[type[Any], Callable[[Any], Frames]] = {
    fx.Welcome: lambda e: _one(e.member, text.welcome(e.stamp, e.channel, e.member.name)),
    fx.CannotConnect: lambda e: _one(e.member, text.cannot_connect(e.stamp, e.channel)),
    fx.QueuePosition: lambda e: _one(
        e.member, text.queue_position(e.stamp, e.ahead), LineKind.QUEUED
    ),
    fx.Joined: lambda e: _many(
        e.audience, LineKind.JOINED, text.joined_channel(e.stamp, e.user), e.user
    ),
    fx.Left: lambda e: (
        []
        if e.quiet
        else _many(e.audience, LineKind.LEFT, text.left_channel(e.stamp, e.user), e.user)
    ),
    fx.WentAfk: lambda e: _many(e.audience, LineKind.LEFT, text.went_afk(e.stamp, e.user), e.user),
    fx.Kicked: lambda e: _many(
        e.audience, LineKind.LEFT, text.left_channel(e.stamp, e.user), e.user
    ),
    fx.Chat: lambda e: _many(
        e.audience, LineKind.CHAT, text.chat_line(e.stamp, e.sender, e.message, e.style), e.sender
    ),
    fx.Whisper: lambda e: _one(
        e.receiver,
        text.whisper_received(e.stamp, e.sender, text.styled(e.sender, e.message, e.style)),
        LineKind.WHISPER,
        e.sender,
    ),
    fx.NotHere: lambda e: _one(e.to, text.not_here(e.stamp, e.user)),
    fx.NotFound: lambda e: _one(e.to, text.does_not_exist(e.stamp, e.thing)),
    fx.CannotSwitch: lambda e: _one(e.member, text.cannot_switch(e.stamp, e.channel)),
    fx.StillMuted: lambda e: _one(e.member, text.still_muted(e.stamp, e.seconds)),
    fx.Listing: _listing,
    fx.Muted: _muted,
    fx.FileSent: lambda e: _one(e.sender, text.you_sent(e.stamp, e.path, e.target)),
    fx.History: _history,
}


def frames(effect: fx.Said) -> Frames:
    """The LINE frames ``effect`` sends, each with its recipients, in order."""
    render = _RENDER.get(type(effect))
    return render(effect) if render is not None else []
