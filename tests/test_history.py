"""Channel history: the store (history.py) and the rules that fill it and
send it (hub.py), as effect lists; docs/behaviour.md, "Channel history"."""

from __future__ import annotations

import json

import trio
import trio.testing

from trio_chat import commands as cmd
from trio_chat import effects as fx
from trio_chat import events as ev
from trio_chat import text
from trio_chat.cluster import snapshot
from trio_chat.config import ChannelConfig
from trio_chat.history import (
    ENTRY_OVERHEAD,
    JOINED,
    LEFT,
    SAID,
    SEND_BYTES,
    SEND_LINES,
    Entry,
    History,
    HistoryConfig,
    msgid,
    seq_of,
)
from trio_chat.hub import Hub
from trio_chat.render import browser, terminal
from trio_chat.server.limits import Limits
from trio_chat.wire import FrameDecoder, FrameType, LineKind, decode_history

T = "12:00:00"


class Conn:
    def __init__(self, ref: str) -> None:
        self.ref = ref


def hub(lines: int = 5, capacity: int = 2, events: bool = False, max_bytes: int = 10_000) -> Hub:
    channels = [ChannelConfig("general", 1, capacity), ChannelConfig("random", 2, capacity)]
    config = HistoryConfig(lines, max_bytes, events)
    return Hub(channels, connection_for=Conn, history=config)  # type: ignore[arg-type]


def run(h: Hub, event: ev.Event, now: float = 0.0, wall: float | None = None) -> list[fx.Effect]:
    return h.handle(event, now, T, wall)


def join(h: Hub, name: str, channel: str = "general", now: float = 0.0) -> list[fx.Effect]:
    return run(h, ev.Join(name, channel, name), now)


def said(h: Hub, channel: str = "general") -> list[tuple[str, str, str]]:
    return [(e.kind, e.user, e.message) for e in h.channels[channel].history.entries]


def entry(seq: int, message: str = "x", user: str = "alice", at: float = 0.0) -> Entry:
    return Entry(seq, at, T, SAID, user, message)


# ----- the store -----


def test_the_store_keeps_the_last_lines_within_both_bounds() -> None:
    store = History(HistoryConfig(lines=3, max_bytes=10_000))
    for seq in range(1, 6):
        store.add(entry(seq))
    assert [e.seq for e in store.entries] == [3, 4, 5]
    # The bytes bound: each entry costs its text and ENTRY_OVERHEAD.
    cost = entry(1, "a" * 100).size()
    assert cost == len("alice") + 100 + ENTRY_OVERHEAD
    small = History(HistoryConfig(lines=100, max_bytes=2 * cost))
    for seq in range(1, 4):
        small.add(entry(seq, "a" * 100))
    assert [e.seq for e in small.entries] == [2, 3] and small.size == 2 * cost
    # Bytes are UTF-8's: "é" costs two.
    assert entry(1, "é").size() == len("alice") + 2 + ENTRY_OVERHEAD
    # An entry larger than the whole bound is not kept, and keeps nothing out.
    small.add(entry(4, "a" * 1000))
    assert [e.seq for e in small.entries] == [2, 3]


def test_a_newcomer_gets_the_newest_lines_that_fit_its_outbox() -> None:
    store = History(HistoryConfig(lines=5000, max_bytes=10 * SEND_BYTES))
    for seq in range(1, 3001):
        store.add(entry(seq))
    sent = store.for_newcomer()
    assert [e.seq for e in sent] == list(range(3001 - SEND_LINES, 3001))
    store.clear()
    big = "a" * 4000
    for seq in range(1, 201):
        store.add(entry(seq, big))
    sent = store.for_newcomer()
    assert sum(e.size() for e in sent) <= SEND_BYTES
    assert sent[-1].seq == 200 and len(sent) == SEND_BYTES // entry(1, big).size()
    # Within both bounds: all of it.
    store.clear()
    store.add(entry(1))
    assert store.for_newcomer() == (entry(1),)


def test_selections_by_msgid_and_time_are_in_order_and_bounded() -> None:
    store = History(HistoryConfig(lines=100))
    for seq in range(1, 11):
        store.add(entry(seq, at=1000.0 + seq))
    assert [e.seq for e in store.latest(3)] == [8, 9, 10]
    assert [e.seq for e in store.latest(50)] == list(range(1, 11))
    at = store.index_of(msgid(5, 1005.0))
    assert at == 4
    assert [e.seq for e in store.before(at, 2)] == [3, 4]
    assert [e.seq for e in store.after(at + 1, 2)] == [6, 7]
    assert [e.seq for e in store.around(at, 4)] == [3, 4, 5, 6]
    assert [e.seq for e in store.around(0, 4)] == [1, 2, 3, 4]
    assert store.index_at(1007.5) == 7
    # A msgid is checked whole: the right number with another time is not ours.
    assert store.index_of(msgid(5, 999.0)) is None
    assert store.index_of("garbage") is None and store.index_of("-1") is None
    assert seq_of("12-345") == 12 and seq_of("x-1") is None and seq_of("99") is None


def test_an_entry_reads_back_from_its_list_and_refuses_anything_else() -> None:
    original = Entry(7, 1.5, T, LEFT, "bob", "", "afk")
    assert Entry.from_list(original.as_list()) == original
    for bad in (
        [0, 1.5, T, SAID, "bob", "", "chat"],
        [True, 1.5, T, SAID, "bob", "", "chat"],
        [1, "soon", T, SAID, "bob", "", "chat"],
        [1, 1.5, T, "shouted", "bob", "", "chat"],
        [1, 1.5, T, SAID, 5, "", "chat"],
    ):
        try:
            Entry.from_list(bad)
        except (TypeError, ValueError):
            continue
        raise AssertionError(f"{bad!r} was taken")


# ----- the rules -----


def test_off_by_default_nothing_is_kept_and_nothing_is_sent() -> None:
    h = Hub([ChannelConfig("general", 1, 2)], connection_for=Conn)  # type: ignore[arg-type]
    run(h, ev.Join("alice", "general", "alice"))
    run(h, ev.Input("alice", "hello"))
    effects = run(h, ev.Join("bob", "general", "bob"))
    assert not any(isinstance(e, (fx.History, fx.Recorded)) for e in effects)
    assert len(h.channels["general"].history) == 0
    # Lines are numbered all the same (their ids are the same on every node).
    assert h.said == 1


def test_chat_and_actions_are_kept_whispers_never() -> None:
    h = hub()
    join(h, "alice")
    join(h, "bob")
    run(h, ev.Input("alice", "hello"), wall=1000.0)
    run(h, ev.Input("alice", "/whisper bob a secret"))
    run(h, ev.Tell("bob", "alice", "another secret"))
    run(h, ev.Say("bob", "waves", ev.ACTION))
    assert said(h) == [(SAID, "alice", "hello"), (SAID, "bob", "waves")]
    first = h.channels["general"].history.entries[0]
    assert (first.seq, first.at, first.stamp) == (1, 1000.0, T)
    assert h.channels["general"].history.entries[1].style == ev.ACTION


def test_a_newcomer_gets_the_history_before_its_welcome() -> None:
    h = hub()
    join(h, "alice")
    effects = run(h, ev.Input("alice", "hello"), now=3.0)
    chat = next(e for e in effects if isinstance(e, fx.Chat))
    recorded = next(e for e in effects if isinstance(e, fx.Recorded))
    assert recorded.channel == "general" and recorded.entry.seq == chat.seq == 1
    effects = join(h, "bob", now=4.0)
    bob = h.members["bob"]
    assert effects[:2] == [
        fx.History(bob, "general", (recorded.entry,)),
        fx.Welcome(T, bob, "general"),
    ]
    assert isinstance(effects[-1], fx.Joined)
    assert sum(isinstance(e, fx.History) for e in effects) == 1


def test_a_queued_member_gets_it_on_admission_with_what_was_said_meanwhile() -> None:
    h = hub(capacity=1)
    join(h, "alice")
    run(h, ev.Input("alice", "before"))
    effects = join(h, "bob")
    bob = h.members["bob"]
    # Queued, it is not in the channel yet: nothing of it.
    assert effects == [fx.Welcome(T, bob, "general"), fx.QueuePosition(T, bob, 0)]
    run(h, ev.Input("alice", "while bob waits"))
    effects = run(h, ev.Input("alice", "/quit"))
    history = [e for e in effects if isinstance(e, fx.History)]
    assert len(history) == 1 and history[0].member is bob
    assert [e.message for e in history[0].entries] == ["before", "while bob waits"]
    # Before it is told who is there and its own join.
    kinds = [type(e) for e in effects]
    assert kinds.index(fx.History) < kinds.index(fx.Roster) < kinds.index(fx.Joined)


def test_switching_brings_the_other_channels_history() -> None:
    h = hub()
    join(h, "alice")
    join(h, "carol", channel="random")
    run(h, ev.Input("carol", "in random"))
    run(h, ev.Input("alice", "in general"))
    effects = run(h, ev.Input("alice", "/switch random"))
    alice = h.members["alice"]
    (history,) = [e for e in effects if isinstance(e, fx.History)]
    assert history.member is alice and history.channel == "random"
    assert [e.message for e in history.entries] == ["in random"]
    kinds = [type(e) for e in effects]
    assert kinds.index(fx.History) == kinds.index(fx.Welcome) - 1


def test_an_irc_member_gets_it_after_its_join_burst() -> None:
    h = hub()
    join(h, "alice")
    run(h, ev.Input("alice", "hello"))
    effects = run(h, ev.Join("irc1", "general", "nick", via_irc=True))
    kinds = [type(e) for e in effects]
    assert kinds.index(fx.Welcome) < kinds.index(fx.Roster) < kinds.index(fx.History)
    assert kinds.index(fx.History) < kinds.index(fx.Joined)


def test_empty_forgets_the_history_so_nobody_reads_what_came_before() -> None:
    h = hub()
    join(h, "alice")
    run(h, ev.Input("alice", "private"))
    effects = run(h, ev.ConsoleLine("/empty general"), wall=50.0)
    assert fx.Forgotten("general", 50.0) in effects
    assert said(h) == []
    effects = join(h, "bob")
    assert not any(isinstance(e, fx.History) for e in effects)


def test_joins_and_leaves_are_kept_only_with_history_events() -> None:
    h = hub(events=True, capacity=3)
    join(h, "alice")
    join(h, "bob")
    join(h, "carol")
    effects = run(h, ev.Input("bob", "/quit"))
    left = next(e for e in effects if isinstance(e, fx.Left))
    run(h, ev.ConsoleLine("/kick general:carol"))
    run(h, ev.Drop("alice"))  # hung up: not announced, not kept
    entries = list(h.channels["general"].history.entries)
    assert [(e.kind, e.user, e.style) for e in entries] == [
        (JOINED, "alice", ""),
        (JOINED, "bob", ""),
        (JOINED, "carol", ""),
        (LEFT, "bob", "left"),
        (LEFT, "carol", "kicked"),
    ]
    assert left.msgid == entries[3].msgid
    # Without the option, only what was said.
    h = hub(capacity=3)
    joined_effects = join(h, "alice")
    assert next(e for e in joined_effects if isinstance(e, fx.Joined)).msgid == ""
    assert said(h) == []


async def test_afk_leaves_are_kept_with_history_events_on_trios_clock(
    autojump_clock: trio.testing.MockClock,
) -> None:
    h = hub(events=True)
    join(h, "alice", now=trio.current_time())
    await trio.sleep(101)
    run(h, ev.AfkDue("alice"), now=trio.current_time())
    assert [(e.kind, e.style) for e in h.channels["general"].history.entries] == [
        (JOINED, ""),
        (LEFT, "afk"),
    ]


def test_line_numbers_and_history_travel_in_snapshots() -> None:
    h = hub()
    join(h, "alice")
    run(h, ev.Input("alice", "one"), wall=10.0)
    run(h, ev.Input("alice", "two"), wall=11.0)
    copy = hub()
    snapshot.restore(copy, snapshot.dump(h))
    assert copy.said == h.said == 2
    assert list(copy.channels["general"].history.entries) == list(
        h.channels["general"].history.entries
    )
    # The next line continues the numbers.
    run(copy, ev.Input("alice", "three"))
    assert copy.channels["general"].history.entries[-1].seq == 3


def test_console_history_prints_the_last_lines_on_stderr() -> None:
    h = hub()
    join(h, "alice")
    for word in ("one", "two", "three"):
        run(h, ev.Input("alice", word), wall=86400.0)
    effects = run(h, ev.ConsoleLine("/history general 2"))
    date = text.history_date(86400.0)
    assert effects == [
        fx.Console(f"[History {date}] [alice ({T})] two"),
        fx.Console(f"[History {date}] [alice ({T})] three"),
    ]
    assert run(h, ev.ConsoleLine("/history nowhere")) == [
        fx.Console("/history: there is no channel nowhere", failed=True)
    ]
    assert run(h, ev.ConsoleLine("/history random")) == [
        fx.Console("/history: nothing said in random is kept")
    ]
    # Not a contract line: only Console effects (the server's stderr).
    assert all(isinstance(e, fx.Console) for e in effects)
    assert cmd.parse_console_line("/history general 0") == cmd.Usage(
        "usage: /history <channel_name> [<lines>]"
    )
    assert cmd.parse_console_line("/history general") == cmd.ShowHistory("general", None)


# ----- how each protocol shows it -----


def test_the_terminal_gets_each_line_as_it_was_then_the_end() -> None:
    h = hub(events=True)
    join(h, "alice")
    run(h, ev.Input("alice", "hello"), wall=0.0)
    run(h, ev.Say("alice", "waves", ev.ACTION), wall=0.0)
    effects = join(h, "bob")
    history = next(e for e in effects if isinstance(e, fx.History))
    ((recipients, joined_frames),) = terminal.frames(history)
    assert recipients == (h.members["bob"],)  # every frame in one piece
    frames = FrameDecoder().feed(joined_frames)
    date = text.history_date(0.0)
    decoded = [decode_history(frame.payload) for frame in frames[:-1]]
    assert decoded == [
        (LineKind.JOINED, "alice", date, text.joined_channel(T, "alice")),
        (LineKind.CHAT, "alice", date, f"[alice ({T})] hello"),
        (LineKind.CHAT, "alice", date, f"[alice ({T})] * alice waves"),
    ]
    assert frames[-1].type == FrameType.HISTORY_END


def test_the_browser_gets_entries_with_their_ids_and_a_last_event() -> None:
    h = hub()
    join(h, "alice")
    effects = run(h, ev.Input("alice", "hello"), wall=2.0)
    live = next(e for e in effects if isinstance(e, fx.Chat))
    ((_, live_frame),) = browser.frames(live)
    effects = join(h, "bob")
    history = next(e for e in effects if isinstance(e, fx.History))
    ((_, frame),) = browser.frames(history)
    event = json.loads(frame[5:])
    live_event = json.loads(live_frame[5:])
    assert event["event"] == "history" and event["last"] is True
    assert event["entries"] == [
        {
            "id": live_event["id"],
            "at": 2.0,
            "stamp": T,
            "kind": SAID,
            "user": "alice",
            "message": "hello",
        }
    ]


def test_a_long_history_goes_to_the_browser_in_bounded_events() -> None:
    h = hub(lines=1000, max_bytes=10 * 1024 * 1024)
    join(h, "alice")
    for _ in range(300):
        run(h, ev.Input("alice", "é" * 300))
    effects = join(h, "bob")
    history = next(e for e in effects if isinstance(e, fx.History))
    frames = browser.frames(history)
    assert len(frames) > 1
    assert all(len(frame) < 200 * 1024 for _, frame in frames)
    events = [json.loads(frame[5:]) for _, frame in frames]
    assert [e.get("last", False) for e in events] == [False] * (len(events) - 1) + [True]
    assert sum(len(e["entries"]) for e in events) == 300


def test_a_snapshot_holds_the_history_at_about_its_own_size() -> None:
    """JSON within JSON as objects, text as UTF-8: quotes are not escaped
    again at every level (cluster/snapshot.py)."""
    for text_said in ("a" * 100, "漢" * 100, '"\\' * 50):
        h = hub(lines=10_000, max_bytes=64 * 1024)
        join(h, "alice")
        while h.channels["general"].history.size < 60 * 1024:
            run(h, ev.Say("alice", text_said))
        state = snapshot.ReplicaState(snapshot.dump(h), {1: 5}, {}).dump()
        blob = snapshot.saved(b"1-0", state)
        assert len(blob) < 2 * h.channels["general"].history.size, text_said[:2]
        entry_id, state_again = snapshot.unsaved(blob)
        copy = hub(lines=10_000, max_bytes=64 * 1024)
        snapshot.restore(copy, snapshot.replica_state(state_again).hub)
        assert entry_id == b"1-0"
        assert list(copy.channels["general"].history.entries) == list(
            h.channels["general"].history.entries
        )


def test_the_most_one_admission_sends_fits_a_newcomers_outbox() -> None:
    """history.SEND_LINES and SEND_BYTES at their worst, rendered for the
    terminal and the page: within the outbox's hard limits with room left
    for the welcome, the roster and what the channel says meanwhile."""
    limits = Limits()
    for text_said, count in (
        ('"' * 60, SEND_LINES),
        ('"\\\\' * 2000, 100),
        ("漢" * 40, SEND_LINES),
    ):
        h = hub(lines=100_000, max_bytes=100 * SEND_BYTES)
        join(h, "a" * 32)
        for _ in range(count * 2):
            run(h, ev.Say("a" * 32, text_said))
        effects = join(h, "bob")
        history = next(e for e in effects if isinstance(e, fx.History))
        assert sum(e.size() for e in history.entries) <= SEND_BYTES
        for render in (terminal.frames, browser.frames):
            frames = render(history)
            size = sum(len(frame) for _, frame in frames)
            assert size < limits.outbox_bytes * 0.8, (render, text_said[:2], size)
            assert len(frames) < limits.outbox_frames // 4
