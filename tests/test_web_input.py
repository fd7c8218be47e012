"""The page's message field (docs/web.md, "The page"): Up and Down walk the
lines sent, Tab completes as the terminal client does, Shift+Enter is
refused. In a real Chromium (skipped without it, as test_web.py's tests).
"""

from __future__ import annotations

from typing import Any

from .processes import Cluster, srv
from .test_web import Person, browser, shown_lines, web_chat  # noqa: F401  (the fixtures)

HINT = "#completions"


def joined(chromium: Any, url: str, name: str) -> Person:
    person = Person(chromium, url, name)
    person.sees(srv(f"{name} has joined the channel."))
    return person


def members_shown(person: Person, *names: str) -> None:
    """``names`` are in the member pane, so Tab knows them."""
    from playwright.sync_api import expect

    for name in names:
        button = person.page.locator("#members").get_by_role("button", name=name, exact=True)
        expect(button).to_be_visible()


def typed(person: Person, text: str, *keys: str) -> None:
    page = person.page
    page.get_by_label("Message").fill("")
    page.keyboard.type(text)
    for key in keys:
        page.keyboard.press(key)


def test_up_and_down_walk_the_lines_sent_and_come_back_to_the_draft(
    browser: Any,  # noqa: F811
    web_chat: tuple[Cluster, str],  # noqa: F811
) -> None:
    from playwright.sync_api import expect

    chat, url = web_chat
    alice = joined(browser, url, "alice")
    field = alice.page.get_by_label("Message")
    expect(field).to_be_focused()
    for text in ("first", "second", "second", "third"):
        alice.page.keyboard.type(text)
        alice.page.keyboard.press("Enter")
        expect(field).to_have_value("")
    alice.sees("[alice (<time>)] third")
    alice.page.keyboard.press("Enter")  # an empty line is not kept

    alice.page.keyboard.type("a draft")
    alice.page.keyboard.press("ArrowUp")
    expect(field).to_have_value("third")
    alice.page.keyboard.press("ArrowUp")
    expect(field).to_have_value("second")  # once, though sent twice
    alice.page.keyboard.press("ArrowUp")
    expect(field).to_have_value("first")
    alice.page.keyboard.press("ArrowUp")  # the oldest stays
    expect(field).to_have_value("first")
    alice.page.keyboard.press("ArrowDown")
    expect(field).to_have_value("second")
    alice.page.keyboard.press("ArrowDown")
    expect(field).to_have_value("third")
    alice.page.keyboard.press("ArrowDown")
    expect(field).to_have_value("a draft")
    alice.page.keyboard.press("ArrowDown")
    expect(field).to_have_value("a draft")

    # A recalled line is sent again, as it reads once edited.
    alice.page.keyboard.press("ArrowUp")
    alice.page.keyboard.type(" again")
    alice.page.keyboard.press("Enter")
    alice.sees("[alice (<time>)] third again")
    alice.page.keyboard.press("ArrowUp")
    expect(field).to_have_value("third again")
    assert alice.problems == []
    alice.close()
    chat.shutdown()


def test_tab_completes_names_commands_and_channels(
    browser: Any,  # noqa: F811
    web_chat: tuple[Cluster, str],  # noqa: F811
) -> None:
    from playwright.sync_api import expect

    chat, url = web_chat
    alice = joined(browser, url, "alice")
    bob = joined(browser, url, "bob")
    members_shown(alice, "bob")
    field = alice.page.get_by_label("Message")

    # One match goes in at once, with a space after it, in any case typed.
    typed(alice, "hi B", "Tab")
    expect(field).to_have_value("hi bob ")
    expect(field).to_be_focused()
    typed(alice, "/whisper ", "Tab")
    expect(field).to_have_value("/whisper bob ")  # never one's own name
    typed(alice, "/whisper a", "Tab")
    expect(field).to_have_value("/whisper a")  # nothing to complete: Tab stays
    expect(field).to_be_focused()
    alice.page.keyboard.type("nd more")
    expect(field).to_have_value("/whisper and more")

    typed(alice, "/wh", "Tab")
    expect(field).to_have_value("/whisper ")
    typed(alice, "/L", "Tab")
    expect(field).to_have_value("/list ")
    alice.page.keyboard.press("Enter")
    alice.sees("[Channel] general: 2/5 members, 0 waiting")

    # /switch completes the other channels: random and help, from general.
    typed(alice, "/switch r", "Tab")
    expect(field).to_have_value("/switch random ")
    typed(alice, "/switch g", "Tab")
    expect(field).to_have_value("/switch g")  # not the channel alice is in
    typed(alice, "/switch ", "Tab")
    expect(field).to_have_value("/switch ")
    expect(alice.page.locator(HINT)).to_have_text("random help")
    alice.page.keyboard.press("Tab")
    expect(field).to_have_value("/switch random ")
    alice.page.keyboard.press("Tab")
    expect(field).to_have_value("/switch help ")
    alice.page.keyboard.press("Enter")
    alice.sees(srv("Welcome to the help channel, alice."))
    expect(alice.page.locator(HINT)).to_have_text("")
    assert alice.problems == [] and bob.problems == []
    alice.close()
    bob.close()
    chat.shutdown()


def test_several_matches_share_their_start_then_tab_cycles_them(
    browser: Any,  # noqa: F811
    web_chat: tuple[Cluster, str],  # noqa: F811
) -> None:
    from playwright.sync_api import expect

    chat, url = web_chat
    people = [joined(browser, url, name) for name in ("carol", "bobby", "bobcat")]
    carol = people[0]
    members_shown(carol, "bobby", "bobcat")
    field = carol.page.get_by_label("Message")
    hint = carol.page.locator(HINT)
    expect(hint).to_have_attribute("role", "status")
    expect(hint).to_have_attribute("aria-live", "polite")

    typed(carol, "thanks b", "Tab")
    expect(field).to_have_value("thanks bob")  # what they share
    expect(hint).to_have_text("bobby bobcat")
    carol.page.keyboard.press("Tab")
    expect(field).to_have_value("thanks bobby ")
    expect(hint.locator(".chosen")).to_have_text("bobby")
    carol.page.keyboard.press("Tab")
    expect(field).to_have_value("thanks bobcat ")
    carol.page.keyboard.press("Tab")
    expect(field).to_have_value("thanks bobby ")  # round again
    carol.page.keyboard.press("Shift+Tab")
    expect(field).to_have_value("thanks bobcat ")
    carol.page.keyboard.type("!")
    expect(field).to_have_value("thanks bobcat !")
    expect(hint).to_have_text("")  # typing ends the completion

    # The commands too: /s is /send or /switch.
    typed(carol, "/s", "Tab")
    expect(field).to_have_value("/s")
    expect(hint).to_have_text("/send /switch")
    carol.page.keyboard.press("Shift+Tab")  # back from the start: the last one
    expect(field).to_have_value("/switch ")
    assert all(person.problems == [] for person in people)
    for person in people:
        person.close()
    chat.shutdown()


def test_shift_enter_is_refused_with_a_hint(
    browser: Any,  # noqa: F811
    web_chat: tuple[Cluster, str],  # noqa: F811
) -> None:
    from playwright.sync_api import expect

    chat, url = web_chat
    term = chat.join("term")
    alice = joined(browser, url, "alice")
    term.expect(srv("alice has joined the channel."))
    field = alice.page.get_by_label("Message")
    hint = alice.page.locator(HINT)

    typed(alice, "one", "Shift+Enter")
    expect(hint).to_have_text("One line per message: press Enter to send.")
    expect(field).to_have_value("one")
    alice.page.keyboard.type(" line")
    expect(hint).to_have_text("")  # gone once typing goes on
    alice.page.keyboard.press("Enter")
    # Lines come in order: had Shift+Enter sent "one", it would be here first.
    term.expect("[alice (<time>)] one line")
    alice.sees("[alice (<time>)] one line")
    assert not any(text.endswith("] one") for text in shown_lines(alice.page))
    assert alice.problems == []
    alice.close()
    chat.shutdown()


def test_tab_in_an_empty_field_moves_the_focus(
    browser: Any,  # noqa: F811
    web_chat: tuple[Cluster, str],  # noqa: F811
) -> None:
    from playwright.sync_api import expect

    chat, url = web_chat
    alice = joined(browser, url, "alice")
    field = alice.page.get_by_label("Message")
    expect(field).to_be_focused()
    alice.page.keyboard.press("Tab")
    expect(alice.page.get_by_role("button", name="Send", exact=True)).to_be_focused()
    alice.page.keyboard.press("Shift+Tab")
    expect(field).to_be_focused()
    assert alice.problems == []
    alice.close()
    chat.shutdown()
