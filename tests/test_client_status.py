"""The terminal's status bar, from the lines a client gets (client/status.py)."""

from __future__ import annotations

from trio_chat import text
from trio_chat.client.status import Progress, Status
from trio_chat.wire import LineKind

STAMP = "12:00:00"


def welcomed(channel: str = "general") -> Status:
    status = Status("alice")
    status.learn(text.welcome(STAMP, channel, "alice"), LineKind.SERVER, "")
    return status


def test_nothing_known_before_the_welcome() -> None:
    assert Status("alice").render([]) == " connecting…"
    assert welcomed().render([]) == " general · joining…"


def test_admitted_members_follow_the_roster_and_the_lines() -> None:
    status = welcomed()
    status.set_members(["bob", "alice"])
    status.learn(text.joined_channel(STAMP, "alice"), LineKind.JOINED, "alice")
    assert status.render([]) == " general · 2 members"
    status.learn(text.channel_listing("general", 2, 5, 0), LineKind.LISTING, "general")
    status.learn(text.channel_listing("random", 0, 7, 0), LineKind.LISTING, "random")
    assert status.render([]) == " general · 2/5 members"
    status.learn(text.joined_channel(STAMP, "carol"), LineKind.JOINED, "carol")
    status.learn(text.left_channel(STAMP, "bob"), LineKind.LEFT, "bob")
    status.learn(text.left_channel(STAMP, "bob"), LineKind.LEFT, "bob")  # (counted once)
    assert status.render([]) == " general · 2/5 members"
    # One who left silently: a /list answer says how many there are.
    status.learn(text.channel_listing("general", 1, 5, 0), LineKind.LISTING, "general")
    assert status.render([]) == " general · 1/5 members"


def test_queued_shows_the_place_then_a_switch_starts_again() -> None:
    status = welcomed()
    status.learn(text.channel_listing("general", 5, 5, 1), LineKind.LISTING, "general")
    status.learn(text.channel_listing("random", 0, 7, 0), LineKind.LISTING, "random")
    status.learn(text.queue_position(STAMP, 1), LineKind.QUEUED, "")
    assert status.render([]) == " general · queued, 1 ahead · 5/5 members"
    status.learn(text.queue_position(STAMP, 0), LineKind.QUEUED, "")
    assert status.render([]) == " general · queued, 0 ahead · 5/5 members"
    status.learn(text.welcome(STAMP, "random", "alice"), LineKind.SERVER, "")
    status.set_members(["alice"])
    status.learn(text.joined_channel(STAMP, "alice"), LineKind.JOINED, "alice")
    assert status.render([]) == " random · 1/7 members"


def test_someone_elses_welcome_changes_nothing() -> None:
    status = welcomed()
    status.learn(text.welcome(STAMP, "random", "bob"), LineKind.SERVER, "")  # (a chat line)
    assert status.channel == "general"


def test_transfers_in_flight_and_what_a_waiting_one_says() -> None:
    status = welcomed()
    waiting = Progress("notes.txt -> bob", 0, 100, waiting="waiting for bob…", peer="bob")
    moving = Progress("carol: a.bin", 0, 300)
    moving.move(100)
    assert waiting.render() == "notes.txt -> bob: waiting for bob…"
    assert moving.render().startswith("carol: a.bin [######              ]  33% of 300 B")
    assert status.render([waiting, moving]) == " general · joining… · 2 transfers 25%"
    waiting.move(50)
    assert waiting.render().startswith("notes.txt -> bob [##########          ]  50%")


def test_peer_text_is_cleaned() -> None:
    status = welcomed("gen\x1b[2Jeral")
    assert "\x1b" not in status.render([Progress("eve\x1b]0;x: f", 1, 2)])
    assert "\x1b" not in Progress("eve\x1b]0;x: f", 1, 2).render()
