"""The server's stdout log: the contract lines the server itself prints."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .. import effects as fx
from .. import text

_LINE: dict[type[Any], Callable[[Any], str | None]] = {
    fx.Joined: lambda e: text.joined_named_channel(e.stamp, e.user, e.channel),
    fx.Left: lambda e: text.left_channel(e.stamp, e.user) if e.logged else None,
    fx.WentAfk: lambda e: text.went_afk(e.stamp, e.user),
    fx.Kicked: lambda e: text.kicked(e.stamp, e.user),
    fx.Chat: lambda e: text.chat_line(e.stamp, e.sender, e.message, e.style),
    fx.Whisper: lambda e: text.whisper_logged(
        e.stamp, e.sender, e.target, text.styled(e.sender, e.message, e.style)
    ),
    fx.NotHere: lambda e: text.not_here(e.stamp, e.user) if e.to is None else None,
    fx.NotFound: lambda e: text.does_not_exist(e.stamp, e.thing) if e.to is None else None,
    fx.Muted: lambda e: text.muted_log(e.stamp, e.member.name, e.seconds),
    fx.NotInChannel: lambda e: text.not_in_channel(e.stamp, e.user, e.channel),
    fx.InvalidMuteTime: lambda e: text.invalid_mute_time(e.stamp),
    fx.Emptied: lambda e: text.emptied(e.stamp, e.channel),
    fx.ChannelRemoved: lambda e: text.channel_removed(e.stamp, e.channel),
    fx.Banned: lambda e: text.banned(e.stamp, e.target, e.seconds),
    fx.Unbanned: lambda e: (
        text.unbanned(e.stamp, e.target) if e.was else text.not_banned(e.stamp, e.target)
    ),
    fx.FileSent: lambda e: text.file_sent(e.stamp, e.sender.name, e.path, e.target),
}


def line(effect: fx.Said) -> str | None:
    """The line the server prints for ``effect``, if any."""
    render = _LINE.get(type(effect))
    return render(effect) if render is not None else None
