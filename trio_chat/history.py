"""A channel's history: the last lines said in it, bounded by count and by bytes.

Sans-I/O, like the rules that fill it (``hub.py``): plain data and plain
methods, so every replica of a cluster holds the same history and tests need
no clock. docs/behaviour.md, "Channel history", says what is kept; the
selections below are what IRC's ``CHATHISTORY`` asks for (docs/irc.md).

Every entry has its ``seq``, the hub's line number: unique and increasing for
as long as the hub's state lives (it travels in snapshots and in the history
file), so it orders entries and names one. ``msgid`` adds the entry's time,
so that an id a client kept from before a restart that lost the history is
never taken for a new line's.
"""

from __future__ import annotations

import bisect
import math
import re
from collections import deque
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass

from .defaults import DEFAULT_HISTORY_BYTES, DEFAULT_HISTORY_LINES
from .events import CHAT, CHAT_STYLES
from .names import username_problem
from .sanitize import clean
from .terminal_io import MAX_INPUT_LINE

# What an entry is (``Entry.kind``).
SAID = "said"  # chat, /me or an IRC notice: ``style`` says which
JOINED = "joined"  # (only with --history-events)
LEFT = "left"  # ``style`` says why: one of LEFT_WHY
# Why someone left (the page's ``why`` says the same).
BY_LEAVING = "left"  # /quit, /switch, flooding
BY_AFK = "afk"
BY_KICK = "kicked"
LEFT_WHY = (BY_LEAVING, BY_AFK, BY_KICK)
KINDS = (SAID, JOINED, LEFT)

# What an entry read back may hold (Entry.from_list): a line number below
# 10**18 (msgids name at most 18 digits, seq_of), a time from 1970 to the end
# of year 9999, an hh:mm:ss stamp, and each kind's styles.
MAX_SEQ = 10**18
LATEST_TIME = 253402300800.0  # 10000-01-01T00:00:00Z
_STAMP = re.compile(r"[0-9]{2}:[0-9]{2}:[0-9]{2}", re.ASCII)
_STYLES: dict[str, Collection[str]] = {SAID: CHAT_STYLES, JOINED: ("",), LEFT: LEFT_WHY}


def valid_time(at: float) -> bool:
    return math.isfinite(at) and 0 <= at < LATEST_TIME


# Bytes an entry costs beyond its text, in the bound: its numbers and stamp.
ENTRY_OVERHEAD = 32
# What one admission sends at most: the newest lines within both bounds. A
# member's outbox holds 4096 frames and 1 MiB (server/limits.py); a history
# this size, rendered for the terminal or the page at its worst (a page's
# JSON escaping every quote), stays well within that (tests/test_history.py),
# and IRC's replay takes what fits its outbox's high-water mark, so no
# newcomer is taken for a client that does not read. The rest stays for
# /history and IRC's CHATHISTORY.
SEND_LINES = 2000
SEND_BYTES = 256 * 1024


@dataclass(frozen=True, slots=True)
class HistoryConfig:
    """How much history each channel keeps (``--history``,
    ``--history-bytes``, ``--history-events``); ``lines`` 0 keeps none."""

    lines: int = DEFAULT_HISTORY_LINES
    max_bytes: int = DEFAULT_HISTORY_BYTES
    events: bool = False  # joins and leaves too

    @property
    def on(self) -> bool:
        return self.lines > 0 and self.max_bytes > 0


NO_HISTORY = HistoryConfig()  # (the default: keep nothing)


@dataclass(frozen=True, slots=True)
class Entry:
    seq: int  # the hub's line number (see the module's docstring)
    at: float  # wall-clock seconds since the epoch, when it was said
    stamp: str  # the hh:mm:ss its live line showed
    kind: str  # SAID, JOINED or LEFT
    user: str  # who said it, joined or left
    message: str = ""  # what was said (SAID)
    style: str = CHAT  # SAID: events.CHAT_STYLES; LEFT: one of LEFT_WHY

    @property
    def msgid(self) -> str:
        return msgid(self.seq, self.at)

    def size(self) -> int:
        """What it counts against the bytes bound."""
        return len(self.user.encode()) + len(self.message.encode()) + ENTRY_OVERHEAD

    def as_list(self) -> list[object]:
        """Its fields as JSON takes them (snapshots, the history file)."""
        return [self.seq, self.at, self.stamp, self.kind, self.user, self.message, self.style]

    @classmethod
    def from_list(cls, fields: Sequence[object]) -> Entry:
        """The inverse of ``as_list``; ValueError or TypeError for anything
        else. What it reads (a history file, a snapshot) is held to what the
        rules themselves keep: a name the rules take, a message as the
        sanitizer leaves it and no longer than a typed line, a time a
        calendar has, so a damaged or forged file cannot reach a terminal or
        an IRC line with anything a live peer could not send."""
        seq, at, stamp, kind, user, message, style = fields
        if not (isinstance(seq, int) and not isinstance(seq, bool) and 0 < seq < MAX_SEQ):
            raise ValueError(f"bad line number {seq!r}")
        if not (isinstance(at, (int, float)) and not isinstance(at, bool) and valid_time(at)):
            raise ValueError(f"bad time {at!r}")
        if not (
            isinstance(stamp, str)
            and isinstance(kind, str)
            and isinstance(user, str)
            and isinstance(message, str)
            and isinstance(style, str)
        ):
            raise TypeError("an entry's texts must be strings")
        if kind not in KINDS:
            raise ValueError(f"unknown entry kind {kind!r}")
        if _STAMP.fullmatch(stamp) is None:
            raise ValueError(f"bad stamp {stamp!r}")
        problem = username_problem(user)
        if problem is not None:
            raise ValueError(f"bad name: {problem}")
        if clean(message) != message or len(message.encode()) > MAX_INPUT_LINE:
            raise ValueError("a message no peer could have sent")
        if style not in _STYLES[kind]:
            raise ValueError(f"bad style {style!r} for {kind}")
        return cls(seq, float(at), stamp, kind, user, message, style)


def millis(at: float) -> int:
    """A moment to the millisecond, as every id and time tag names it (the
    msgid, IRC's server-time, CHATHISTORY's timestamps): truncated alike."""
    return int(at * 1000)


def msgid(seq: int, at: float) -> str:
    """The id of line ``seq`` said at ``at``: what IRC's msgid tag and the
    page's events carry, live and in history alike."""
    return f"{seq}-{millis(at)}"


def seq_of(msgid: str) -> int | None:
    """The line number a msgid names, or None if it is not one of ours."""
    seq, dash, _ = msgid.partition("-")
    if not dash or not seq.isascii() or not seq.isdigit() or len(seq) > 18:
        return None
    return int(seq)


class History:
    """One channel's entries, oldest first, within ``config``'s bounds."""

    def __init__(self, config: HistoryConfig) -> None:
        self.config = config
        self.entries: deque[Entry] = deque()
        self.size = 0  # what the entries count against the bytes bound

    def __len__(self) -> int:
        return len(self.entries)

    def add(self, entry: Entry) -> None:
        """Keep ``entry``; forget the oldest while over either bound. An entry
        larger than the whole bytes bound is not kept at all."""
        cost = entry.size()
        if cost > self.config.max_bytes:
            return
        entries = self.entries
        entries.append(entry)
        self.size += cost
        while len(entries) > self.config.lines or self.size > self.config.max_bytes:
            self.size -= entries.popleft().size()

    def extend(self, entries: Iterable[Entry]) -> None:
        for entry in entries:
            self.add(entry)

    def clear(self) -> None:
        self.entries.clear()
        self.size = 0

    # ----- selections, oldest first, at most ``limit`` entries -----

    def for_newcomer(self) -> tuple[Entry, ...]:
        """What an admission sends: the newest entries within SEND_LINES and
        SEND_BYTES (all of them, when the history is within both)."""
        entries = self.entries
        if len(entries) <= SEND_LINES and self.size <= SEND_BYTES:
            return tuple(entries)
        taken = 0
        start = len(entries)
        while start > 0 and len(entries) - start < SEND_LINES:
            cost = entries[start - 1].size()
            if taken + cost > SEND_BYTES:
                break
            taken += cost
            start -= 1
        return tuple(entries[i] for i in range(start, len(entries)))

    def latest(self, limit: int) -> list[Entry]:
        entries = self.entries
        count = min(limit, len(entries))
        return [entries[i] for i in range(len(entries) - count, len(entries))]

    def index_of(self, msgid: str) -> int | None:
        """Where the entry with exactly this msgid is, or None."""
        seq = seq_of(msgid)
        if seq is None:
            return None
        at = bisect.bisect_left(self.entries, seq, key=_seq)
        if at < len(self.entries) and self.entries[at].msgid == msgid:
            return at
        return None

    def index_at(self, moment: float) -> int:
        """Where the first entry said at ``moment`` or later is."""
        return bisect.bisect_left(self.entries, moment, key=_at)

    def before(self, index: int, limit: int) -> list[Entry]:
        """The ``limit`` entries just before position ``index``."""
        start = max(0, index - limit)
        return self.slice(start, index)

    def after(self, index: int, limit: int) -> list[Entry]:
        """The ``limit`` entries from position ``index`` on."""
        return self.slice(index, min(len(self.entries), index + limit))

    def around(self, index: int, limit: int) -> list[Entry]:
        """``limit`` entries with position ``index`` in their middle."""
        start = max(0, min(index - limit // 2, len(self.entries) - limit))
        return self.slice(start, min(len(self.entries), start + limit))

    def slice(self, start: int, stop: int) -> list[Entry]:
        """The entries from position ``start`` up to ``stop``, within what there is."""
        entries = self.entries
        return [entries[i] for i in range(max(0, start), min(stop, len(entries)))]


def _seq(entry: Entry) -> int:
    return entry.seq


def _at(entry: Entry) -> float:
    return entry.at
