"""The history file of a lone server (``--history-file``): its format, reading
it back, and when to rewrite it. No I/O here: the server's side
(server/history_keeper.py) reads and writes, these functions decide.

The file is JSON lines (docs/behaviour.md, "The history file"): a header
naming the format, then one line per entry said and one per /empty, in the
order they happened, so replaying them rebuilds every channel's history
(bounded as the server's own is: a line the bounds forget is dropped).
Appending is all the server does while it runs, so the file grows; it is
rewritten whole (compacted) when it holds much more than the history kept,
after an /empty (whose channel's earlier lines must leave the file), and
before appending to a file whose end is not a whole line of ours.
"""

from __future__ import annotations

import heapq
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from .history import Entry, History, HistoryConfig, valid_time

FORMAT = 1  # what this version writes and reads
HEADER_KEY = "trio-chat-history"
HEADER = json.dumps({HEADER_KEY: FORMAT})
# The file is rewritten once it holds more than twice the lines kept, plus this.
SLACK_LINES = 1024
# No line of ours is longer: a message is at most a typed line (8 KiB of
# UTF-8), which JSON writes in at most three times as many bytes.
MAX_FILE_LINE = 64 * 1024


def header_problem(name: str, first_line: bytes) -> str | None:
    """Why a file whose first line is ``first_line`` is not one this
    version reads, or None. An empty file is a new one."""
    if not first_line:
        return None
    try:
        header = json.loads(first_line)
    except ValueError:
        header = None
    version = header.get(HEADER_KEY) if isinstance(header, dict) else None
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        # Not ours (say a config file named by mistake): never overwrite it.
        return f"{name} is not a trio-chat history file (its first line is not {HEADER})"
    if version > FORMAT:
        return (
            f"{name} was written by a newer trio-chat (format {version}); "
            f"this one reads format {FORMAT}"
        )
    return None


def entry_line(channel: str, entry: Entry) -> str:
    """The line that records ``entry`` said in ``channel`` (without its newline)."""
    return json.dumps({"channel": channel, "entry": entry.as_list()})


def said_line(said: int) -> str:
    """The line that records the hub's last line number, after a rewrite."""
    return json.dumps({"said": said})


def emptied_line(channel: str, at: float) -> str:
    """The line that records an /empty of ``channel`` at ``at``."""
    return json.dumps({"channel": channel, "emptied": at})


def event_line(channel: str, event: Entry | float) -> str:
    """An entry's line or, for a time, an /empty's."""
    if isinstance(event, Entry):
        return entry_line(channel, event)
    return emptied_line(channel, event)


def compacted_lines(
    histories: Iterable[tuple[str, Sequence[Entry]]], said: int = 0
) -> Iterator[str]:
    """The whole file for these channels' entries: its header, the hub's
    last line number (``said``, when there is one: the entries that carried
    the largest may be gone, and numbers must never go back), then every
    entry in the order said (a file that reads as it was appended)."""
    yield HEADER
    if said:
        yield said_line(said)
    streams = [[(entry, name) for entry in entries] for name, entries in histories]
    for entry, name in heapq.merge(*streams, key=_entry_seq):
        yield entry_line(name, entry)


def _entry_seq(item: tuple[Entry, str]) -> int:
    return item[0].seq


@dataclass(slots=True)
class Ledger:
    """What the server knows of its file, to decide when to rewrite it."""

    lines: int = 0  # entry and /empty lines in the file
    # The file has lines it must lose (an /empty's channel's, a dropped
    # channel's), lacks some (a queue dropped while the disk was slow) or
    # does not end in a whole line of ours (or has no header yet).
    stale: bool = True

    def appended(self, lines: int) -> None:
        self.lines += lines

    def rewritten(self, kept: int) -> None:
        """A rewrite with ``kept`` entries is on disk. (Whoever started it
        cleared ``stale`` then: what made the file stale while it ran calls
        for another.)"""
        self.lines = kept

    def due(self, kept: int) -> bool:
        """Whether the next write rewrites the whole file, with ``kept``
        entries in every channel's history; else it appends."""
        return self.stale or self.lines > 2 * kept + SLACK_LINES


@dataclass(slots=True)
class Replayed:
    """What a history file held, bounded as the server's history is."""

    histories: dict[str, History]
    said: int = 0  # the largest line number read: the hub's numbers go on from there
    problems: list[str] = field(default_factory=list)
    ledger: Ledger = field(default_factory=Ledger)
    damaged: bool = False  # reading stopped at a line that is not ours


class _Corrupt(Exception):
    pass


def replay(
    lines: Iterable[bytes],
    name: str,
    channels: Iterable[str],
    config: HistoryConfig,
    first_number: int = 2,
) -> Replayed:
    """Rebuild each of ``channels``' history from the lines of the file
    ``name`` after its header (``first_number`` is the first one's number,
    for reports). Reading stops at the first line that is not a whole,
    well-formed line of ours: what came before it is kept and reported."""
    result = Replayed({channel: History(config) for channel in channels})
    histories = result.histories
    last_seq: dict[str, int] = {}
    dropped: dict[str, int] = {}  # entries of channels not in the config
    whole = True  # the last line read ended in its newline
    cleared = False  # an /empty left lines in the file that it cleared
    for number, raw in enumerate(lines, first_number):
        try:
            parsed = _parse(raw)
            if isinstance(parsed, int):
                result.said = max(result.said, parsed)
                result.ledger.lines += 1
                whole = raw.endswith(b"\n")
                continue
            channel, event = parsed
            if isinstance(event, Entry):
                if event.seq <= last_seq.get(channel, 0):
                    raise _Corrupt(
                        f"line number {event.seq} after {last_seq[channel]} in {channel}"
                    )
                last_seq[channel] = event.seq
        except _Corrupt as error:
            kept = sum(len(history) for history in histories.values())
            result.problems.append(
                f"{name}: line {number} is corrupt ({error}); "
                f"keeping the {kept} {'entry' if kept == 1 else 'entries'} before it"
            )
            result.damaged = True
            whole = False
            break
        result.ledger.lines += 1
        whole = raw.endswith(b"\n")
        history = histories.get(channel)
        if isinstance(event, Entry):
            result.said = max(result.said, event.seq)
            if history is None:
                dropped[channel] = dropped.get(channel, 0) + 1
            else:
                history.add(event)
        elif history is not None:
            history.clear()
            cleared = True
    for channel, count in dropped.items():
        result.problems.append(
            f"{name}: channel {channel!r} is not in the config: "
            f"dropping its {count} {'entry' if count == 1 else 'entries'}"
        )
    result.ledger.stale = not whole or cleared or bool(dropped)
    return result


def _parse(raw: bytes) -> tuple[str, Entry | float] | int:
    """A line's channel and its entry, or the time of its /empty; or a
    rewrite's last line number."""
    if len(raw) > MAX_FILE_LINE:
        raise _Corrupt(f"longer than {MAX_FILE_LINE} bytes")
    if not raw.endswith(b"\n"):
        # The last line may be whole yet lack its newline; if not, it was cut.
        try:
            return _parse_text(raw)
        except _Corrupt:
            raise _Corrupt("cut short") from None
    return _parse_text(raw[:-1])


def _parse_text(raw: bytes) -> tuple[str, Entry | float] | int:
    try:
        record = json.loads(raw.decode())
    except UnicodeDecodeError:
        raise _Corrupt("not UTF-8") from None
    except json.JSONDecodeError as error:
        raise _Corrupt(f"not JSON: {error.msg} at column {error.colno}") from None
    if isinstance(record, dict) and set(record) == {"said"}:
        said = record["said"]
        if isinstance(said, int) and not isinstance(said, bool) and said >= 0:
            return said
        raise _Corrupt(f"a bad line number {said!r}")
    if not isinstance(record, dict) or not isinstance(record.get("channel"), str):
        raise _Corrupt("not an object with a channel")
    channel: str = record["channel"]
    if set(record) == {"channel", "entry"}:
        fields = record["entry"]
        if not isinstance(fields, list):
            raise _Corrupt("its entry is not a list")
        try:
            return channel, Entry.from_list(fields)
        except (ValueError, TypeError) as error:
            raise _Corrupt(f"a bad entry: {error}") from None
    if set(record) == {"channel", "emptied"}:
        at = record["emptied"]
        if isinstance(at, (int, float)) and not isinstance(at, bool) and valid_time(at):
            return channel, float(at)
        raise _Corrupt(f"a bad time {at!r}")
    raise _Corrupt("neither an entry nor an /empty")
