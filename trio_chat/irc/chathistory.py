"""IRCv3 ``CHATHISTORY`` without I/O: a peer's request parsed and checked,
and the entries of a channel's history it selects (docs/irc.md, "History").

Everything a peer sends is a claim to check: a subcommand we know, a
``msgid=`` the history has exactly, a ``timestamp=`` in the one format
``server-time`` writes (``YYYY-MM-DDThh:mm:ss.sssZ``, a real date), a limit
of plain decimal digits. Anything else is a ``Fail``, answered with
``FAIL CHATHISTORY ...`` (the specification's standard replies).

Times compare to the millisecond, as a line's ``time`` tag and msgid show
it (``render.iso_time``, ``history.msgid``): a timestamp a client read off a
line names that line's millisecond, and ``BEFORE``, ``AFTER`` and the other
exclusive bounds leave that millisecond out, not just the line.
"""

from __future__ import annotations

import bisect
import calendar
import re
from collections.abc import Sequence
from dataclasses import dataclass

from ..history import Entry, History, millis

SUBCOMMANDS = ("LATEST", "BEFORE", "AFTER", "AROUND", "BETWEEN", "TARGETS")
# The parameters each subcommand takes after its name (target, references, limit).
_ARITY = {"LATEST": 3, "BEFORE": 3, "AFTER": 3, "AROUND": 3, "BETWEEN": 4, "TARGETS": 3}
# The longest limit read (digits): anything longer is over every maximum anyway.
_LIMIT_DIGITS = 9

_TIMESTAMP = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?Z", re.ASCII
)
# A piece of a line too long for one IRC message: its line's msgid, ".N".
_PIECE = re.compile(r"(.+)\.([2-9]|[1-9]\d{1,3})", re.ASCII)


@dataclass(frozen=True, slots=True)
class ByMsgid:
    msgid: str  # the line's own msgid (a piece's suffix taken off)


@dataclass(frozen=True, slots=True)
class ByTime:
    millis: int  # milliseconds since the epoch, UTC


# ``None``: ``*`` (LATEST: no bound).
Reference = ByMsgid | ByTime | None


@dataclass(frozen=True, slots=True)
class Query:
    subcommand: str  # one of SUBCOMMANDS
    target: str  # as the peer wrote it (not checked here: the caller knows its channels)
    references: tuple[Reference, ...]  # one, or two for BETWEEN and TARGETS
    limit: int  # at least 1, at most the server's maximum


@dataclass(frozen=True, slots=True)
class Fail:
    """A ``FAIL CHATHISTORY CODE`` reply: ``context`` is what it echoes of
    the request (sanitized by the caller), ``description`` its last word."""

    code: str  # INVALID_PARAMS, INVALID_TARGET or MESSAGE_ERROR
    context: tuple[str, ...]
    description: str


def parse_timestamp(text: str) -> int | None:
    """``YYYY-MM-DDThh:mm:ss[.fraction]Z`` as milliseconds since the epoch,
    or None if it is anything else (a date that does not exist included)."""
    match = _TIMESTAMP.fullmatch(text)
    if match is None:
        return None
    year, month, day, hour, minute, second = (int(part) for part in match.groups()[:6])
    if year < 1 or not 1 <= month <= 12 or hour > 23 or minute > 59 or second > 59:
        return None
    if not 1 <= day <= calendar.monthrange(year, month)[1]:
        return None
    fraction = (match.group(7) or "").ljust(3, "0")[:3]
    seconds = calendar.timegm((year, month, day, hour, minute, second))
    return seconds * 1000 + int(fraction)


def line_msgid(msgid: str) -> str:
    """The msgid of the line whose piece ``msgid`` names (render.piece_msgid);
    a line's own msgid unchanged."""
    match = _PIECE.fullmatch(msgid)
    return match.group(1) if match is not None else msgid


def parse_reference(text: str, star: bool = False) -> Reference | Fail:
    """``msgid=...``, ``timestamp=...`` or, with ``star``, ``*``."""
    if star and text == "*":
        return None
    kind, equals, value = text.partition("=")
    kind = kind.lower()
    if equals and kind == "msgid" and value:
        return ByMsgid(line_msgid(value))
    if equals and kind == "timestamp":
        millis = parse_timestamp(value)
        if millis is not None:
            return ByTime(millis)
        return Fail("INVALID_PARAMS", (text,), "Invalid timestamp")
    return Fail("INVALID_PARAMS", (text,), "Invalid message reference")


def parse_limit(text: str, most: int) -> int | None:
    """A limit of plain decimal digits, at least 1; more than ``most`` is ``most``."""
    if not (text.isascii() and text.isdigit()):
        return None
    if len(text) > _LIMIT_DIGITS:
        return most
    limit = int(text)
    return min(limit, most) if limit > 0 else None


def parse(params: Sequence[str], most: int) -> Query | Fail:
    """``CHATHISTORY``'s parameters (after the command) as a query, with
    limits up to ``most`` (ISUPPORT ``CHATHISTORY``)."""
    if not params:
        return Fail("INVALID_PARAMS", ("*",), "Insufficient parameters")
    subcommand = params[0].upper()
    if subcommand not in SUBCOMMANDS:
        return Fail("INVALID_PARAMS", (params[0],), "Unknown command")
    rest = params[1:]
    arity = _ARITY[subcommand]
    if len(rest) < arity:
        return Fail("INVALID_PARAMS", (subcommand,), "Insufficient parameters")
    if len(rest) > arity:
        return Fail("INVALID_PARAMS", (subcommand,), "Too many parameters")
    if subcommand == "TARGETS":
        target, texts = "", rest[:2]
    else:
        target, texts = rest[0], rest[1:-1]
    references: list[Reference] = []
    for text in texts:
        # (``BEFORE *``: before the end, as some clients ask for the latest.)
        reference = parse_reference(text, star=subcommand in ("LATEST", "BEFORE"))
        if isinstance(reference, Fail):
            return Fail(reference.code, (subcommand, *reference.context), reference.description)
        if subcommand == "TARGETS" and not isinstance(reference, ByTime):
            return Fail("INVALID_PARAMS", (subcommand, text), "TARGETS takes timestamps")
        references.append(reference)
    limit = parse_limit(rest[-1], most)
    if limit is None:
        return Fail("INVALID_PARAMS", (subcommand, rest[-1]), "Invalid limit")
    return Query(subcommand, target, tuple(references), limit)


def _millis(entry: Entry) -> int:
    return millis(entry.at)


class _Bounds:
    """Where a reference falls in one history: positions to slice at.
    (A clock that stepped back leaves entries out of time order: a search by
    time then finds some place in them, never an error.)"""

    def __init__(self, history: History) -> None:
        self.entries = history.entries
        self.history = history

    def index(self, reference: ByMsgid) -> int | Fail:
        index = self.history.index_of(reference.msgid)
        if index is None:
            return Fail("MESSAGE_ERROR", (), "Unknown message id")
        return index

    def after(self, reference: Reference) -> int | Fail:
        """The first position after ``reference`` (exclusive)."""
        if reference is None:
            return 0
        if isinstance(reference, ByMsgid):
            index = self.index(reference)
            return index if isinstance(index, Fail) else index + 1
        return bisect.bisect_right(self.entries, reference.millis, key=_millis)

    def before(self, reference: Reference) -> int | Fail:
        """The position just past the last entry before ``reference`` (exclusive)."""
        if reference is None:
            return len(self.entries)
        if isinstance(reference, ByMsgid):
            return self.index(reference)
        return bisect.bisect_left(self.entries, reference.millis, key=_millis)


def select(history: History, query: Query) -> list[Entry] | Fail:
    """The entries ``query`` asks for (not TARGETS), oldest first; a Fail for
    a msgid that names no entry of ``history``."""
    bounds = _Bounds(history)
    entries = history.entries
    limit = query.limit
    first = query.references[0]
    if query.subcommand == "LATEST":
        start = bounds.after(first)
        if isinstance(start, Fail):
            return start
        return history.slice(max(start, len(entries) - limit), len(entries))
    if query.subcommand == "BEFORE":
        stop = bounds.before(first)
        if isinstance(stop, Fail):
            return stop
        return history.before(stop, limit)
    if query.subcommand == "AFTER":
        start = bounds.after(first)
        if isinstance(start, Fail):
            return start
        return history.after(start, limit)
    if query.subcommand == "AROUND":
        if isinstance(first, ByMsgid):
            centre = bounds.index(first)
            if isinstance(centre, Fail):
                return centre
        else:
            centre = bounds.before(first)  # (the first entry at that time or later)
            assert not isinstance(centre, Fail)
        return history.around(centre, limit) if entries else []
    # BETWEEN: forwards if the first reference comes before the second.
    second = query.references[1]
    start, stop = bounds.after(first), bounds.before(second)
    if isinstance(start, Fail):
        return start
    if isinstance(stop, Fail):
        return stop
    if start <= stop:
        return history.slice(start, min(stop, start + limit))
    # Backwards: counted from the first reference, back towards the second.
    low, high = bounds.after(second), bounds.before(first)
    assert not isinstance(low, Fail) and not isinstance(high, Fail)
    return history.slice(max(low, high - limit), high)


def latest_in(history: History, low: int, high: int) -> float | None:
    """TARGETS: the time of ``history``'s latest entry if its millisecond is
    strictly between ``low`` and ``high`` (either order), else None."""
    if not history.entries:
        return None
    latest = history.entries[-1]
    millis = _millis(latest)
    low, high = min(low, high), max(low, high)
    return latest.at if low < millis < high else None
