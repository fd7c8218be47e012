"""The history file (--history-file; behaviour.md, "The history file"): its
format and replay (history_file.py, sans-I/O), when it is rewritten, and the
server's keeper that writes it in batches (server/history_keeper.py), on
trio's MockClock where the batches' timing matters."""

from __future__ import annotations

import io
import json
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import pytest
import trio
import trio.testing

from trio_chat import effects as fx
from trio_chat import history_file
from trio_chat.config import ChannelConfig
from trio_chat.history import SAID, Entry, HistoryConfig
from trio_chat.history_file import (
    HEADER,
    MAX_FILE_LINE,
    SLACK_LINES,
    Ledger,
    compacted_lines,
    emptied_line,
    entry_line,
    header_problem,
    replay,
)
from trio_chat.hub import Hub
from trio_chat.server import history_keeper
from trio_chat.server.core import ChatServer
from trio_chat.server.history_keeper import (
    BATCH_INTERVAL,
    BIG_BATCH,
    FileWriter,
    HistoryFileKeeper,
    Record,
    keeping_history,
)

CHANNELS = ("general", "random", "help")
CONFIG = HistoryConfig(lines=5)
NAME = "history.jsonl"


def said(seq: int, message: str = "", user: str = "alice", at: float = 0.0) -> Entry:
    return Entry(seq, at or 1_700_000_000.0 + seq, "12:00:00", SAID, user, message or f"line {seq}")


def file_lines(*lines: str) -> list[bytes]:
    """A file's lines after its header, as reading the file gives them."""
    return [f"{line}\n".encode() for line in lines]


def replayed(
    lines: Iterable[bytes], config: HistoryConfig = CONFIG, channels: Sequence[str] = CHANNELS
) -> history_file.Replayed:
    return replay(lines, NAME, channels, config)


def kept(result: history_file.Replayed, channel: str = "general") -> list[int]:
    return [entry.seq for entry in result.histories[channel].entries]


# ----- the header -----


def test_the_header_names_the_format() -> None:
    assert json.loads(HEADER) == {"trio-chat-history": 1}
    assert header_problem(NAME, f"{HEADER}\n".encode()) is None
    assert header_problem(NAME, b"") is None  # an empty file is a new one


def test_a_file_from_the_future_is_refused() -> None:
    assert header_problem(NAME, b'{"trio-chat-history": 2}\n') == (
        "history.jsonl was written by a newer trio-chat (format 2); this one reads format 1"
    )


@pytest.mark.parametrize(
    "first",
    [
        b"channel general 7000 5\n",
        b'{"trio-chat-history": "1"}\n',
        b'{"trio-chat-history": 0}\n',
        b'{"trio-chat-history": true}\n',
        b'{"channel": "general", "emptied": 1.0}\n',
        b"\xff\xfe\n",
    ],
)
def test_a_file_not_ours_is_refused(first: bytes) -> None:
    assert header_problem(NAME, first) == (
        "history.jsonl is not a trio-chat history file "
        '(its first line is not {"trio-chat-history": 1})'
    )


# ----- replay -----


def test_a_good_file_replays_into_each_channel() -> None:
    result = replayed(
        file_lines(
            entry_line("general", said(1)),
            entry_line("random", said(2, user="bob")),
            entry_line("general", said(3)),
        )
    )
    assert kept(result) == [1, 3]
    assert list(result.histories["random"].entries) == [said(2, user="bob")]
    assert kept(result, "help") == []
    assert result.said == 3
    assert result.problems == []
    assert result.ledger == Ledger(lines=3, stale=False)


def test_an_entry_round_trips_exactly() -> None:
    entry = Entry(
        7, 1_700_000_123.456789, "01:02:03", SAID, "zoë", 'héllo \u200d "there"', "action"
    )
    result = replayed(file_lines(entry_line("general", entry)))
    assert list(result.histories["general"].entries) == [entry]


def test_the_bounds_apply_and_the_line_numbers_go_on() -> None:
    result = replayed(file_lines(*(entry_line("general", said(seq)) for seq in range(1, 11))))
    assert kept(result) == [6, 7, 8, 9, 10]  # --history 5
    assert result.said == 10
    # The file's extra lines count, for when it is rewritten.
    assert result.ledger.lines == 10
    small = HistoryConfig(lines=5, max_bytes=2 * said(1).size())
    assert kept(
        replayed(file_lines(*(entry_line("general", said(s)) for s in (1, 2, 3))), small)
    ) == [
        2,
        3,
    ]


def test_a_line_cut_in_its_middle_is_reported_and_the_prefix_kept() -> None:
    last = entry_line("general", said(3)).encode()
    lines = [*file_lines(entry_line("general", said(1)), entry_line("general", said(2)))]
    result = replayed([*lines, last[: len(last) // 2]])
    assert kept(result) == [1, 2]
    assert result.said == 2
    assert result.problems == [
        "history.jsonl: line 4 is corrupt (cut short); keeping the 2 entries before it"
    ]
    assert result.ledger == Ledger(lines=2, stale=True)  # rewritten before appending


def test_a_whole_last_line_without_its_newline_is_kept() -> None:
    last = entry_line("general", said(2)).encode()
    result = replayed([*file_lines(entry_line("general", said(1))), last])
    assert kept(result) == [1, 2]
    assert result.problems == []
    assert result.ledger.stale  # appending would glue a line onto it


def test_a_corrupt_line_in_the_middle_ends_the_replay() -> None:
    result = replayed(
        file_lines(
            entry_line("general", said(1)),
            '{"channel": "general", "entry": [2, 1.0, "12:00:00", "said"',
            entry_line("general", said(3)),
        )
    )
    assert kept(result) == [1]
    assert result.said == 1
    assert result.problems == [
        "history.jsonl: line 3 is corrupt (not JSON: Expecting ',' delimiter at column 60); "
        "keeping the 1 entry before it"
    ]
    assert result.ledger == Ledger(lines=1, stale=True)


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (
            '{"channel": "general", "entry": [0, 1.0, "", "said", "a", "m", "chat"]}',
            "a bad entry: bad line number 0",
        ),
        (
            '{"channel": "general", "entry": [2, 1.0, "", "sang", "a", "m", "chat"]}',
            "a bad entry: unknown entry kind 'sang'",
        ),
        (
            '{"channel": "general", "entry": [2, 1.0, "", "said"]}',
            "a bad entry: not enough values to unpack (expected 7, got 4)",
        ),
        ('{"channel": "general", "entry": {"seq": 2}}', "its entry is not a list"),
        ('{"channel": "general", "emptied": "now"}', "a bad time 'now'"),
        ('{"channel": 7, "emptied": 1.0}', "not an object with a channel"),
        ('["general", 1.0]', "not an object with a channel"),
        ('{"channel": "general", "said": "hi"}', "neither an entry nor an /empty"),
        (
            '{"channel": "general", "entry": [1, 1.0, "00:00:01", "said", "a", "m", "chat"]}',
            "line number 1 after 1 in general",
        ),
        # What no live peer could have sent is not taken from a file either.
        (
            '{"channel": "general", "entry": [2, Infinity, "00:00:01", "said", "a", "m", "chat"]}',
            "a bad entry: bad time inf",
        ),
        (
            '{"channel": "general", "entry": [2, -1, "00:00:01", "said", "a", "m", "chat"]}',
            "a bad entry: bad time -1",
        ),
        (
            '{"channel": "general", "entry": [1000000000000000000, 1.0, "00:00:01", "said", '
            '"a", "m", "chat"]}',
            "a bad entry: bad line number 1000000000000000000",
        ),
        (
            '{"channel": "general", "entry": [2, 1.0, "soon", "said", "a", "m", "chat"]}',
            "a bad entry: bad stamp 'soon'",
        ),
        (
            '{"channel": "general", "entry": [2, 1.0, "00:00:01", "said", "a b", "m", "chat"]}',
            "a bad entry: bad name: the username contains whitespace",
        ),
        (
            '{"channel": "general", "entry": [2, 1.0, "00:00:01", "said", "a", "x\\r\\nQUIT", '
            '"chat"]}',
            "a bad entry: a message no peer could have sent",
        ),
        (
            '{"channel": "general", "entry": [2, 1.0, "00:00:01", "said", "a", "m", "shout"]}',
            "a bad entry: bad style 'shout' for said",
        ),
        ('{"channel": "general", "emptied": Infinity}', "a bad time inf"),
        ("", "not JSON: Expecting value at column 1"),
    ],
)
def test_what_is_corrupt(line: str, reason: str) -> None:
    result = replayed(file_lines(entry_line("general", said(1)), line))
    assert result.problems == [
        f"history.jsonl: line 3 is corrupt ({reason}); keeping the 1 entry before it"
    ]


def test_a_line_not_utf8_is_corrupt() -> None:
    result = replayed([b'{"channel": "g\xffeneral", "emptied": 1.0}\n'])
    assert result.problems == [
        "history.jsonl: line 2 is corrupt (not UTF-8); keeping the 0 entries before it"
    ]


def test_a_channel_not_in_the_config_is_reported_and_dropped() -> None:
    result = replayed(
        file_lines(
            entry_line("general", said(1)),
            entry_line("gone", said(2)),
            entry_line("gone", said(3)),
            entry_line("gone", said(4)),
        )
    )
    assert set(result.histories) == set(CHANNELS)
    assert kept(result) == [1]
    # Its line numbers were given all the same: they are never given again.
    assert result.said == 4
    assert result.problems == [
        "history.jsonl: channel 'gone' is not in the config: dropping its 3 entries"
    ]
    assert result.ledger.stale  # its lines leave the file


def test_an_empty_clears_what_came_before_it() -> None:
    result = replayed(
        file_lines(
            entry_line("general", said(1)),
            entry_line("random", said(2)),
            emptied_line("general", 1_700_000_003.0),
            entry_line("general", said(4)),
        )
    )
    assert kept(result) == [4]
    assert kept(result, "random") == [2]
    assert result.said == 4
    # What it cleared is still in the file: rewritten before anything else.
    assert result.ledger == Ledger(lines=4, stale=True)


def test_entries_from_the_future_are_kept() -> None:
    """A clock that went back after they were said: they are still what was said."""
    entry = said(1, at=4_000_000_000.0)
    result = replayed(file_lines(entry_line("general", entry)))
    assert list(result.histories["general"].entries) == [entry]


# ----- rewriting -----


def test_a_rewritten_file_holds_the_entries_in_the_order_said() -> None:
    histories = [("general", [said(1), said(4)]), ("random", [said(2), said(3)]), ("help", [])]
    lines = list(compacted_lines(histories))
    assert lines[0] == HEADER
    assert [json.loads(line)["entry"][0] for line in lines[1:]] == [1, 2, 3, 4]
    result = replayed(file_lines(*lines[1:]))
    assert kept(result) == [1, 4]
    assert kept(result, "random") == [2, 3]
    assert result.ledger == Ledger(lines=4, stale=False)


def test_when_the_file_is_rewritten() -> None:
    ledger = Ledger()
    assert ledger.due(kept=0)  # a new file: its header first
    ledger.stale = False  # (the keeper, as it starts the rewrite)
    ledger.rewritten(kept=10)
    assert ledger == Ledger(lines=10, stale=False)
    assert not ledger.due(kept=10)
    ledger.appended(2 * 10 + SLACK_LINES - 10)
    assert not ledger.due(kept=10)  # twice what is kept, and the slack
    ledger.appended(1)
    assert ledger.due(kept=10)
    ledger.rewritten(kept=10)
    ledger.stale = True  # an /empty
    assert ledger.due(kept=10)


# ----- the keeper (server/history_keeper.py) -----


class RecordingWriter(FileWriter):
    """What the keeper asks of the file, kept instead of written."""

    def __init__(self) -> None:
        super().__init__(NAME)
        self.writes: list[tuple[str, list[str]]] = []
        self.failure: OSError | None = None
        self.removal_failure: OSError | None = None
        self.said = 0
        self.during: Callable[[], object] | None = None

    def append(self, events: Sequence[Record]) -> None:
        self._check()
        self.writes.append(("append", [history_file.event_line(c, e) for c, e in events]))

    def rewrite(self, histories: Iterable[tuple[str, Sequence[Entry]]], said: int = 0) -> None:
        """(The entries only: the header and the line number are the real
        writer's, tested with it.)"""
        self._check()
        self.writes.append(("rewrite", list(compacted_lines(histories))[1:]))
        self.said = said

    def remove(self) -> None:
        self._check_removal()
        self.writes.append(("remove", []))

    def _check_removal(self) -> None:
        if self.removal_failure is not None:
            raise self.removal_failure

    def _check(self) -> None:
        if self.during is not None:
            during, self.during = self.during, None
            during()  # (what the rules do while the thread writes)
        if self.failure is not None:
            raise self.failure

    def take(self) -> list[tuple[str, list[str]]]:
        writes, self.writes = self.writes, []
        return writes


async def next_batch() -> None:
    """Wait an interval and until the keeper has written what it had then
    (its own wait may end at the same moment as ours)."""
    await trio.sleep(BATCH_INTERVAL)
    await trio.testing.wait_all_tasks_blocked()


async def inline(work: Callable[[], None]) -> None:
    """The keeper's writes, in this thread: the MockClock sees every wait."""
    work()


class Kept:
    """A hub keeping history, its keeper writing batches to a RecordingWriter."""

    def __init__(self, nursery: trio.Nursery, ledger: Ledger | None = None) -> None:
        self.hub = Hub(
            [ChannelConfig(name, 7000 + i, 5) for i, name in enumerate(CHANNELS)], history=CONFIG
        )
        self.writer = RecordingWriter()
        self.logged: list[str] = []
        self.keeper = HistoryFileKeeper(
            self.hub,
            self.writer,
            Ledger(stale=False) if ledger is None else ledger,
            self.logged.append,
            run_sync=inline,
        )
        self.seq = 0
        nursery.start_soon(self.keeper.write_batches)

    def say(self, channel: str = "general") -> str:
        """A line said, as the hub keeps it and tells the keeper: its line."""
        self.seq += 1
        entry = said(self.seq)
        self.hub.channels[channel].history.add(entry)
        self.keeper.recorded(channel, entry)
        return entry_line(channel, entry)

    def empty(self, channel: str = "general") -> None:
        self.hub.channels[channel].history.clear()
        self.keeper.forgotten(channel, 1_700_000_000.0)


async def test_lines_are_written_in_batches_at_most_once_an_interval(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with trio.open_nursery() as nursery:
        kept = Kept(nursery)
        await trio.testing.wait_all_tasks_blocked()
        assert kept.writer.take() == []  # nothing to write
        first = kept.say()
        await trio.testing.wait_all_tasks_blocked()
        assert kept.writer.take() == [("append", [first])]  # the first at once
        start = trio.current_time()
        second, third = kept.say(), kept.say()
        await trio.sleep(BATCH_INTERVAL * 0.9)
        assert kept.writer.take() == []
        await trio.sleep_until(start + BATCH_INTERVAL)
        await trio.testing.wait_all_tasks_blocked()
        assert kept.writer.take() == [("append", [second, third])]
        nursery.cancel_scope.cancel()


async def test_a_big_batch_does_not_wait_for_the_interval(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with trio.open_nursery() as nursery:
        kept = Kept(nursery)
        kept.say()
        await trio.testing.wait_all_tasks_blocked()
        kept.writer.take()
        start = trio.current_time()
        lines = [kept.say() for _ in range(BIG_BATCH)]
        await trio.testing.wait_all_tasks_blocked()
        assert kept.writer.take() == [("append", lines)]
        assert trio.current_time() == start
        nursery.cancel_scope.cancel()


async def test_an_empty_rewrites_the_file_in_the_next_batch(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with trio.open_nursery() as nursery:
        kept = Kept(nursery)
        kept.say()
        await trio.testing.wait_all_tasks_blocked()
        kept.writer.take()
        kept.say()
        elsewhere = kept.say("random")
        kept.empty()
        await next_batch()
        # Nothing said in general before the /empty is left in the file.
        assert kept.writer.take() == [("rewrite", [elsewhere])]
        later = kept.say()
        await next_batch()
        assert kept.writer.take() == [("append", [later])]
        nursery.cancel_scope.cancel()


async def test_a_stale_file_is_rewritten_at_once(autojump_clock: trio.testing.MockClock) -> None:
    async with trio.open_nursery() as nursery:
        kept = Kept(nursery, ledger=Ledger())  # say a file that was missing
        await trio.testing.wait_all_tasks_blocked()
        assert kept.writer.take() == [("rewrite", [])]
        nursery.cancel_scope.cancel()


async def test_a_file_much_larger_than_the_history_is_rewritten(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with trio.open_nursery() as nursery:
        kept = Kept(nursery, ledger=Ledger(lines=SLACK_LINES + 4, stale=False))
        lines = [kept.say() for _ in range(3)]
        await trio.testing.wait_all_tasks_blocked()
        # 3 more lines than twice the 3 kept and the slack.
        assert kept.writer.take() == [("rewrite", lines)]
        nursery.cancel_scope.cancel()


async def test_a_queue_too_long_is_dropped_for_a_rewrite(
    autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(history_keeper, "QUEUE_LIMIT", 4)
    monkeypatch.setattr(history_keeper, "BIG_BATCH", 100)
    async with trio.open_nursery() as nursery:
        kept = Kept(nursery)
        kept.say()
        await trio.testing.wait_all_tasks_blocked()
        kept.writer.take()
        for _ in range(5):
            kept.say()  # (the fourth fills the queue: it goes)
        await next_batch()
        rewrite = kept.writer.take()
        assert rewrite == [("rewrite", [entry_line("general", said(s)) for s in range(2, 7)])]
        nursery.cancel_scope.cancel()


async def test_close_writes_what_is_queued_at_once(autojump_clock: trio.testing.MockClock) -> None:
    async with trio.open_nursery() as nursery:
        kept = Kept(nursery)
        kept.say()
        await trio.testing.wait_all_tasks_blocked()
        kept.writer.take()
        start = trio.current_time()
        line = kept.say()
        nursery.cancel_scope.cancel()
    await kept.keeper.close()
    assert kept.writer.take() == [("append", [line])]
    assert trio.current_time() == start


async def test_a_write_error_is_reported_once_and_history_stays_in_memory(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with trio.open_nursery() as nursery:
        kept = Kept(nursery)
        kept.writer.failure = OSError(28, "No space left on device")
        kept.say()
        await trio.testing.wait_all_tasks_blocked()
        for _ in range(3):
            kept.say()
            await next_batch()
        assert kept.logged == [
            "cannot write the history file history.jsonl: No space left on device; "
            "the history is kept in memory only"
        ]
        assert len(kept.hub.channels["general"].history) == 4
        # An /empty tries the file again: its lines must not come back. It
        # cannot be rewritten, so it goes.
        kept.empty()
        await next_batch()
        assert kept.writer.take() == [("remove", [])]
        assert kept.logged[1:] == [
            "removed the history file history.jsonl: it could not be rewritten "
            "without the lines an /empty forgot"
        ]
        del kept.logged[1:]
        kept.writer.failure = None
        elsewhere = kept.say("random")
        kept.empty()
        await next_batch()
        assert kept.writer.take() == [("rewrite", [elsewhere])]
        assert kept.logged[1:] == ["the history file history.jsonl is written again"]
        line = kept.say()
        await next_batch()
        assert kept.writer.take() == [("append", [line])]
        nursery.cancel_scope.cancel()


async def test_an_empty_during_a_failing_write_still_leaves_nothing_behind(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with trio.open_nursery() as nursery:
        kept = Kept(nursery)
        kept.writer.failure = OSError(28, "No space left on device")
        kept.say()
        kept.writer.during = kept.empty  # while that append fails
        await next_batch()
        await next_batch()
        # The rewrite the /empty asks for fails too: the file goes.
        assert kept.writer.take() == [("remove", [])]
        assert len(kept.logged) == 2 and kept.logged[1].startswith("removed the history file")
        nursery.cancel_scope.cancel()


async def test_an_empty_during_a_rewrite_asks_for_another(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with trio.open_nursery() as nursery:
        kept = Kept(nursery, Ledger())  # a new file: the first write rewrites it
        secret = kept.say()
        kept.writer.during = kept.empty
        await next_batch()
        await next_batch()
        # The first rewrite had the line (taken before the /empty); the next
        # one, right after, has not.
        assert kept.writer.take() == [("rewrite", [secret]), ("rewrite", [])]
        nursery.cancel_scope.cancel()


# ----- on disk -----


def read_back(path: Path) -> history_file.Replayed:
    with path.open("rb") as file:
        assert header_problem(str(path), file.readline()) is None
        return replay(file, str(path), CHANNELS, CONFIG)


def test_a_rewrite_keeps_the_line_number_and_the_files_permissions(tmp_path: Path) -> None:
    path = tmp_path / NAME
    writer = FileWriter(str(path))
    # The entries that had the largest numbers are gone (an /empty): the
    # number is kept all the same, so ids never go back after a restart.
    writer.rewrite([("general", [said(1)])], said=9)
    assert read_back(path).said == 9
    assert os.stat(path).st_mode & 0o777 == 0o600  # what people said: the owner's
    os.chmod(path, 0o640)
    writer.rewrite([("general", [said(1)])], said=10)
    assert os.stat(path).st_mode & 0o777 == 0o640


def test_a_damaged_file_is_kept_as_it_was_beside_its_good_beginning(tmp_path: Path) -> None:
    path = tmp_path / NAME
    writer = FileWriter(str(path))
    writer.rewrite([("general", [said(1), said(2)])])
    original = path.read_bytes()
    damaged = original + b'{"channel": "general", "entr'
    path.write_bytes(damaged)
    hub = Hub([ChannelConfig(name, 7000 + i, 5) for i, name in enumerate(CHANNELS)], history=CONFIG)
    with path.open("rb") as source:
        source.readline()
        replayed = history_keeper.load(hub, str(path), source)
    assert replayed.damaged
    assert replayed.problems[-1] == f"the damaged {path} is kept as it was in {path}.corrupt"
    assert (tmp_path / f"{NAME}.corrupt").read_bytes() == damaged


def test_the_writer_appends_and_rewrites(tmp_path: Path) -> None:
    path = tmp_path / NAME
    writer = FileWriter(str(path))
    writer.rewrite([("general", [said(1)])])
    writer.append([("general", said(2)), ("random", said(3)), ("general", 1_700_000_004.0)])
    writer.append([("general", said(5))])
    result = read_back(path)
    assert kept(result) == [5]
    assert kept(result, "random") == [3]
    assert result.ledger == Ledger(lines=5, stale=True)
    writer.rewrite([("general", [said(5)]), ("random", [said(3)])])
    writer.close()
    assert read_back(path).ledger == Ledger(lines=2, stale=False)
    assert path.read_text().count("\n") == 3
    assert sorted(tmp_path.iterdir()) == [path]  # no .tmp left


def test_a_failed_rewrite_leaves_the_file_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / NAME
    writer = FileWriter(str(path))
    writer.rewrite([("general", [said(1)])])
    before = path.read_bytes()

    def disk_full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space"):
        writer.rewrite([("general", [said(1), said(2)])])
    assert path.read_bytes() == before
    assert sorted(tmp_path.iterdir()) == [path]  # its room given back


async def test_keeping_history_replays_then_writes_everything_at_the_end(tmp_path: Path) -> None:
    path = tmp_path / NAME
    path.write_text(
        "".join(
            f"{line}\n"
            for line in (
                HEADER,
                entry_line("general", said(1)),
                entry_line("general", said(2)),
                entry_line("gone", said(9)),
            )
        )
    )
    hub = Hub([ChannelConfig(name, 7000 + i, 5) for i, name in enumerate(CHANNELS)], history=CONFIG)
    logged: list[str] = []
    server = ChatServer(hub, log=logged.append, out=lambda line: None)
    source = path.open("rb")
    source.readline()
    async with keeping_history(server, str(path), source) as keeper:
        assert server.history_keeper is keeper
        assert hub.said == 9
        assert [entry.seq for entry in hub.channels["general"].history.entries] == [1, 2]
        assert logged == [f"{path}: channel 'gone' is not in the config: dropping its 1 entry"]
        entry = said(10)
        hub.channels["random"].history.add(entry)
        server.apply([fx.Recorded("random", entry)])
    result = read_back(path)
    assert kept(result) == [1, 2]
    assert kept(result, "random") == [10]
    assert result.problems == []  # the dropped channel left with the rewrite at the start
    assert source.closed


async def test_keeping_history_creates_a_missing_file(tmp_path: Path) -> None:
    path = tmp_path / NAME
    hub = Hub([ChannelConfig(name, 7000 + i, 5) for i, name in enumerate(CHANNELS)], history=CONFIG)
    server = ChatServer(hub, log=lambda text: None, out=lambda line: None)
    async with keeping_history(server, str(path), None):
        pass
    assert path.read_text() == f"{HEADER}\n"


def test_reading_stops_where_the_file_cannot_be_read() -> None:
    class Failing(io.BytesIO):
        def readline(self, size: int | None = -1, /) -> bytes:
            line = super().readline(size)
            if not line:
                raise OSError(5, "Input/output error")
            return line

    hub = Hub([ChannelConfig(name, 7000 + i, 5) for i, name in enumerate(CHANNELS)], history=CONFIG)
    source = Failing(b"".join(file_lines(entry_line("general", said(1)))))
    result = history_keeper.load(hub, NAME, source)
    assert result.problems == [
        "cannot read the rest of history.jsonl: Input/output error; keeping what was read before it"
    ]
    assert result.ledger.stale
    history_keeper.restore(hub, result)
    assert hub.said == 1
    assert [entry.seq for entry in hub.channels["general"].history.entries] == [1]


# ----- what the server is given as its file (server/cli.py) -----


def test_only_a_regular_file_in_a_writable_directory_is_taken(tmp_path: Path) -> None:
    from trio_chat.server.cli import open_history_file

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)  # (would hang the start: opening it waits for a writer)
    assert open_history_file(str(fifo)) == (
        None,
        f"cannot read the history file {fifo}: not a regular file",
    )
    assert open_history_file("/dev/zero")[1] == (
        "cannot read the history file /dev/zero: not a regular file"
    )
    missing = tmp_path / "nowhere" / "history.jsonl"
    assert open_history_file(str(missing)) == (
        None,
        f"cannot create the history file {missing}: there is no directory {missing.parent}",
    )
    assert open_history_file(str(tmp_path / "new.jsonl")) == (None, None)  # created later


def test_a_line_longer_than_any_of_ours_is_corrupt(tmp_path: Path) -> None:
    path = tmp_path / NAME
    FileWriter(str(path)).rewrite([("general", [said(1)])])
    with path.open("ab") as file:
        file.write(b'{"channel": "general", "entry": "' + b"x" * (3 * MAX_FILE_LINE) + b"\n")
    hub = Hub([ChannelConfig(name, 7000 + i, 5) for i, name in enumerate(CHANNELS)], history=CONFIG)
    with path.open("rb") as source:
        source.readline()
        replayed = history_keeper.load(hub, str(path), source)
    assert replayed.problems[0] == (
        f"{path}: line 3 is corrupt (longer than {MAX_FILE_LINE} bytes); "
        "keeping the 1 entry before it"
    )


async def test_a_file_cut_short_while_it_is_kept_is_rewritten(tmp_path: Path) -> None:
    path = tmp_path / NAME
    writer = FileWriter(str(path))
    writer.rewrite([("general", [said(1)])])
    writer.append([("general", said(2))])
    path.write_bytes(b"")  # someone cut it: appending would leave no header
    with pytest.raises(history_keeper.FileShrank):
        writer.append([("general", said(3))])
    assert path.read_bytes() == b""  # untouched: the keeper rewrites it instead


def test_a_link_to_the_file_stays_a_link_and_the_file_is_rewritten(tmp_path: Path) -> None:
    real = tmp_path / "real.jsonl"
    link = tmp_path / "link.jsonl"
    writer = FileWriter(str(real))
    writer.rewrite([("general", [said(1, "before the /empty")])])
    link.symlink_to(real)
    FileWriter(str(link)).rewrite([("general", [])])
    assert link.is_symlink()
    assert "before the /empty" not in real.read_text()
