"""Parse client lines and console lines into commands (docs/behaviour.md, "Chatting",
"Client commands" and "The server console").

Pure functions over text: no state, no I/O. A line that names a command with the
wrong number of arguments becomes ``Usage`` (it does nothing for anyone else); a
line that names no command is chat.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .arguments import parse_decimal

if TYPE_CHECKING:
    # (The client parses its own lines here too: it never imports bans.py,
    # and ipaddress with it.)
    from .bans import NameBan, Target


@dataclass(frozen=True)
class Chat:
    message: str


@dataclass(frozen=True)
class Whisper:
    target: str
    message: str


@dataclass(frozen=True)
class Quit:
    pass


@dataclass(frozen=True)
class ListChannels:
    pass


@dataclass(frozen=True)
class Switch:
    channel: str


@dataclass(frozen=True)
class Send:
    target: str
    path: str


@dataclass(frozen=True)
class Usage:
    """A command with the wrong arguments; ``hint`` is for the user's stderr."""

    hint: str


ClientCommand = Chat | Whisper | Quit | ListChannels | Switch | Send | Usage

CLIENT_USAGE = {
    "/whisper": "/whisper <username> <message>",
    "/quit": "/quit",
    "/list": "/list",
    "/switch": "/switch <channel_name>",
    "/send": '/send <username> <file_path> (quote a path with spaces: "my file.txt")',
}


def _usage(command: str) -> Usage:
    return Usage(f"usage: {CLIENT_USAGE[command]}")


def _send(line: str, words: list[str]) -> ClientCommand:
    """/send USER PATH, where PATH may be in shell quotes to hold spaces
    (``/send bob "my notes.txt"``); an unquoted path is taken as typed, so
    ``it's.txt`` still works."""
    if any(quote in line for quote in "'\"\\"):
        try:
            quoted = shlex.split(line)
        except ValueError:
            quoted = []
        if len(quoted) == 3:
            return Send(quoted[1], quoted[2])
    if len(words) == 3:
        return Send(words[1], words[2])
    return _usage("/send")


def parse_client_line(line: str) -> ClientCommand | None:
    """The command a stdin line asks for; None for a line that is all whitespace."""
    line = line.strip()
    words = line.split()
    if not words:
        return None
    head = words[0]
    if head == "/whisper":
        if len(words) < 3:
            return _usage(head)
        # The message keeps its own inner spacing; only the separators go.
        message = line.split(None, 2)[2]
        return Whisper(words[1], message)
    if head == "/quit":
        return Quit() if len(words) == 1 else _usage(head)
    if head == "/list":
        return ListChannels() if len(words) == 1 else _usage(head)
    if head == "/switch":
        return Switch(words[1]) if len(words) == 2 else _usage(head)
    if head == "/send":
        return _send(line, words)
    return Chat(line)


@dataclass(frozen=True)
class Kick:
    channel: str
    user: str


@dataclass(frozen=True)
class Mute:
    channel: str
    user: str
    seconds: int | None  # None: missing, not a positive integer, or over the maximum


@dataclass(frozen=True)
class Empty:
    channel: str


@dataclass(frozen=True)
class Shutdown:
    pass


@dataclass(frozen=True)
class ShowHistory:
    """``/history CHANNEL [N]``: the last lines kept, on the server's stderr."""

    channel: str
    count: int | None  # None: the default (defaults.DEFAULT_CONSOLE_HISTORY)


@dataclass(frozen=True)
class Reload:
    """``/reload``: read the config file (and the TLS files) again; the server
    does it, not the rules (server/reload.py)."""


@dataclass(frozen=True)
class Who:
    """``/who [CHANNEL]``: who is in one channel or every one, on the server's stderr."""

    channel: str | None  # None: every channel


@dataclass(frozen=True)
class Ban:
    """``/ban CHANNEL:USER [SECONDS]`` or ``/ban ADDRESS [SECONDS]`` (bans.py)."""

    target: Target
    seconds: int | None  # None: until /unban
    # An address that reads as CHANNEL:USER too (a channel named ``a::b``):
    # the rules take that reading if the channel is theirs.
    or_name: NameBan | None = None


@dataclass(frozen=True)
class Unban:
    target: Target
    or_name: NameBan | None = None  # as Ban's


@dataclass(frozen=True)
class ListBans:
    """``/bans``: every ban in force, on the server's stderr."""


ConsoleCommand = (
    Kick | Mute | Empty | ShowHistory | Shutdown | Reload | Who | Ban | Unban | ListBans | Usage
)

CONSOLE_USAGE = {
    "/kick": "/kick <channel_name>:<username>",
    "/mute": "/mute <channel_name>:<username> <seconds>",
    "/empty": "/empty <channel_name>",
    "/history": "/history <channel_name> [<lines>]",
    "/shutdown": "/shutdown",
    "/who": "/who [<channel_name>]",
    "/ban": "/ban <channel_name>:<username>|<address>[/<bits>] [<seconds>]",
    "/unban": "/unban <channel_name>:<username>|<address>[/<bits>]",
    "/bans": "/bans",
    "/reload": "/reload",
}


def _console_usage(command: str) -> Usage:
    return Usage(f"usage: {CONSOLE_USAGE[command]}")


# The longest mute, and timed ban: a year. Longer is an invalid mute time
# (behaviour.md, "/mute"), and a usage error for /ban (which can go without
# an end instead).
MAX_MUTE_SECONDS = 365 * 24 * 60 * 60


def mute_seconds(text: str) -> int | None:
    """A plain positive integer of at most MAX_MUTE_SECONDS, or None."""
    value = parse_decimal(text) if len(text) <= 12 else None
    return value if value is not None and 0 < value <= MAX_MUTE_SECONDS else None


def _ban_target(text: str) -> tuple[Target | None, NameBan | None]:
    """What /ban and /unban name, and its CHANNEL:USER reading if that is
    another (bans.py is imported only for them)."""
    from .bans import AddressBan, name_reading, parse_target

    target = parse_target(text)
    return target, name_reading(text) if isinstance(target, AddressBan) else None


def parse_console_line(line: str) -> ConsoleCommand | None:
    """The console command a server stdin line asks for; None for blank lines."""
    words = line.split()
    if not words:
        return None
    head = words[0]
    if head == "/kick" and len(words) == 2:
        # Usernames never contain ':', channel names may: split at the last one.
        channel, colon, user = words[1].rpartition(":")
        if colon:
            return Kick(channel, user)
    elif head == "/mute" and len(words) in (2, 3):
        channel, colon, user = words[1].rpartition(":")
        if colon:
            seconds = mute_seconds(words[2]) if len(words) == 3 else None
            return Mute(channel, user, seconds)
    elif head == "/empty" and len(words) == 2:
        return Empty(words[1])
    elif head == "/history" and len(words) in (2, 3):
        count = parse_decimal(words[2]) if len(words) == 3 and len(words[2]) <= 9 else None
        if len(words) == 2 or (count is not None and count > 0):
            return ShowHistory(words[1], count)
    elif head == "/shutdown" and len(words) == 1:
        return Shutdown()
    elif head == "/reload" and len(words) == 1:
        return Reload()
    elif head == "/who" and len(words) <= 2:
        return Who(words[1] if len(words) == 2 else None)
    elif head == "/ban" and len(words) in (2, 3):
        target, or_name = _ban_target(words[1])
        seconds = mute_seconds(words[2]) if len(words) == 3 else None
        if target is not None and (len(words) == 2 or seconds is not None):
            return Ban(target, seconds, or_name)
    elif head == "/unban" and len(words) == 2:
        target, or_name = _ban_target(words[1])
        if target is not None:
            return Unban(target, or_name)
    elif head == "/bans" and len(words) == 1:
        return ListBans()
    if head in CONSOLE_USAGE:
        return _console_usage(head)
    return Usage(
        f"unknown console command {head[:40]!r}; commands: " + ", ".join(CONSOLE_USAGE.values())
    )
