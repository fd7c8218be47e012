"""The text of every stdout line (docs/behaviour.md, "Every stdout line"), and the
``hh:mm:ss`` stamp.

Nothing else in the project spells out a contract line: the server formats with
these functions and the client prints what the server formatted.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from .events import ACTION
from .history import BY_AFK, JOINED, SAID, Entry

Stamp = Callable[[], str]
STAMP_FORMAT = "%H:%M:%S"


def wall_clock_stamp() -> str:
    """The server's local wall-clock time as 24-hour ``hh:mm:ss``."""
    return time.strftime(STAMP_FORMAT)


def stamp_at(seconds: float) -> str:
    """The stamp of a given moment (a cluster's log entry), as ``wall_clock_stamp``."""
    return time.strftime(STAMP_FORMAT, time.localtime(seconds))


def server_message(stamp: str, body: str) -> str:
    return f"[Server message ({stamp})] {body}"


# behaviour.md, "Joining and the waiting queue".
def welcome(stamp: str, channel: str, user: str) -> str:
    return server_message(stamp, f"Welcome to the {channel} channel, {user}.")


def queue_position(stamp: str, ahead: int) -> str:
    return server_message(stamp, queue_position_body(ahead))


def queue_position_body(ahead: int) -> str:
    """(Also what an IRC user is told, in a NOTICE.)"""
    return f"You are in the waiting queue and there are {ahead} user(s) ahead of you."


def joined_channel(stamp: str, user: str) -> str:
    return server_message(stamp, f"{user} has joined the channel.")


def joined_named_channel(stamp: str, user: str, channel: str) -> str:
    return server_message(stamp, f"{user} has joined the {channel} channel.")


def cannot_connect(stamp: str, channel: str) -> str:
    return server_message(stamp, f"Cannot connect to the {channel} channel.")


# behaviour.md, "Chatting" and "Client commands".
def chat(stamp: str, user: str, message: str) -> str:
    return f"[{user} ({stamp})] {message}"


def styled(user: str, message: str, style: str) -> str:
    """A message as its lines show it: an IRC user's action (``/me waves``)
    reads ``* user waves`` (docs/irc.md, "What maps to what"); a notice reads
    as any message."""
    return f"* {user} {message}" if style == ACTION else message


def chat_line(stamp: str, user: str, message: str, style: str) -> str:
    return chat(stamp, user, styled(user, message, style))


def whisper_received(stamp: str, sender: str, message: str) -> str:
    return f"[{sender} whispers to you: ({stamp})] {message}"


def whisper_logged(stamp: str, sender: str, target: str, message: str) -> str:
    return f"[{sender} whispers to {target}: ({stamp})] {message}"


def not_here(stamp: str, user: str) -> str:
    return server_message(stamp, f"{user} is not here.")


def left_channel(stamp: str, user: str) -> str:
    return server_message(stamp, f"{user} has left the channel.")


def channel_listing(channel: str, current: int, capacity: int, queued: int) -> str:
    return f"[Channel] {channel} {current}/{capacity}/{queued}."


def does_not_exist(stamp: str, thing: str) -> str:
    return server_message(stamp, f"{thing} does not exist.")


def cannot_switch(stamp: str, channel: str) -> str:
    return server_message(stamp, f"Cannot switch to the {channel} channel.")


def you_sent(stamp: str, path: str, target: str) -> str:
    return server_message(stamp, f"You sent {path} to {target}.")


def file_sent(stamp: str, sender: str, path: str, target: str) -> str:
    return server_message(stamp, f"{sender} sent {path} to {target}.")


# behaviour.md, "The server console" and "Inactivity (AFK)".
def not_in_channel(stamp: str, user: str, channel: str) -> str:
    return server_message(stamp, f"{user} is not in {channel}.")


def kicked(stamp: str, user: str) -> str:
    return server_message(stamp, f"Kicked {user}.")


def invalid_mute_time(stamp: str) -> str:
    return server_message(stamp, "Invalid mute time.")


def muted_log(stamp: str, user: str, seconds: int) -> str:
    return server_message(stamp, f"Muted {user} for {seconds} seconds.")


def you_are_muted(stamp: str, seconds: int) -> str:
    return server_message(stamp, you_are_muted_body(seconds))


def user_muted(stamp: str, user: str, seconds: int) -> str:
    return server_message(stamp, user_muted_body(user, seconds))


def still_muted(stamp: str, seconds: int) -> str:
    return server_message(stamp, still_muted_body(seconds))


# The bodies of those three lines, which IRC users get without the frame.
def you_are_muted_body(seconds: int) -> str:
    return f"You have been muted for {seconds} seconds."


def user_muted_body(user: str, seconds: int) -> str:
    return f"{user} has been muted for {seconds} seconds."


def still_muted_body(seconds: int) -> str:
    return f"You are still muted for {seconds} seconds."


def emptied(stamp: str, channel: str) -> str:
    return server_message(stamp, f"{channel} has been emptied.")


def channel_removed(stamp: str, channel: str) -> str:
    return server_message(stamp, f"{channel} has been removed.")


# docs/behaviour.md, "/ban, /unban and /bans": ``target`` is CHANNEL:USER, an address or a network.
def banned(stamp: str, target: str, seconds: int | None) -> str:
    how_long = "until unbanned" if seconds is None else f"for {seconds} seconds"
    return server_message(stamp, f"Banned {target} {how_long}.")


def unbanned(stamp: str, target: str) -> str:
    return server_message(stamp, f"Unbanned {target}.")


def not_banned(stamp: str, target: str) -> str:
    return server_message(stamp, f"{target} is not banned.")


def went_afk(stamp: str, user: str) -> str:
    return server_message(stamp, f"{user} went AFK.")


# docs/behaviour.md, "Channel history".
HISTORY_DIVIDER = "— earlier messages —"  # at a terminal, below the history shown dimmed
DATE_FORMAT = "%Y-%m-%d"


def history_date(seconds: float) -> str:
    """The server's local date of a moment, as history lines show it."""
    return time.strftime(DATE_FORMAT, time.localtime(seconds))


def day_of(seconds: float) -> tuple[float, float]:
    """Where the server's local day of a moment begins and ends (seconds
    since the epoch), so that lines of one day share their date."""
    local = time.localtime(seconds)
    start = time.mktime((*local[:3], 0, 0, 0, 0, 0, -1))
    end = time.mktime((local[0], local[1], local[2] + 1, 0, 0, 0, 0, 0, -1))
    return start, end


def history_line(date: str, line: str) -> str:
    """A line from before the member came, as a piped client prints it (and
    the server's /history): its live line behind the day it was said."""
    return f"[History {date}] {line}"


def entry_line(entry: Entry) -> str:
    """The line a history entry showed when it was live, with its own stamp."""
    kind = entry.kind
    if kind == SAID:
        return chat_line(entry.stamp, entry.user, entry.message, entry.style)
    if kind == JOINED:
        return joined_channel(entry.stamp, entry.user)
    if entry.style == BY_AFK:
        return went_afk(entry.stamp, entry.user)
    return left_channel(entry.stamp, entry.user)


def entry_history_line(entry: Entry) -> str:
    return history_line(history_date(entry.at), entry_line(entry))
