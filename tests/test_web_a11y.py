"""The page's accessibility (docs/web.md, "Accessibility"): axe-core finds
nothing serious on the join form or a busy chat, in either colour scheme, at
desktop and at phone width; the page is usable with the keyboard alone, every
focus visible; reduced motion is honoured; the name colours keep their
contrast on every background they are drawn on.

The page tests need Chromium, as test_web.py's do (skipped without it).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from .processes import Cluster, srv
from .test_web import (  # noqa: F401  (the fixtures, a page)
    LOG,
    Person,
    browser,
    web_chat,
)

STYLE = Path(__file__).parent.parent / "trio_chat" / "web" / "static" / "style.css"
SCHEMES = ("light", "dark")
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
BAD = ("serious", "critical")


def serious_violations(page: Any, where: str) -> list[str]:
    """What axe-core finds that is serious or critical; the rest is printed."""
    from axe_playwright_python.sync_playwright import Axe

    found: list[dict[str, Any]] = Axe().run(page).response["violations"]
    bad = []
    for violation in found:
        targets = [(node["target"], node["failureSummary"]) for node in violation["nodes"]]
        said = f"{where}: {violation['id']} ({violation['impact']}) {targets}"
        print(said)
        if violation["impact"] in BAD:
            bad.append(said)
    return bad


def test_the_join_form_passes_axe(
    browser: Any,  # noqa: F811  (the fixture)
    web_chat: tuple[Cluster, str],  # noqa: F811  (the fixture)
) -> None:
    from playwright.sync_api import expect

    chat, url = web_chat
    bad = []
    for scheme in SCHEMES:
        for size in (DESKTOP, PHONE):
            context = browser.new_context(viewport=size, color_scheme=scheme)
            page = context.new_page()
            page.goto(url)
            expect(page.locator("#channel option")).not_to_have_count(0)
            bad += serious_violations(page, f"join form, {scheme}, {size['width']}px")
            context.close()
    assert bad == [], "\n".join(bad)
    chat.shutdown()


def test_a_busy_chat_passes_axe_in_both_schemes_at_both_widths(
    browser: Any,  # noqa: F811  (the fixture)
    web_chat: tuple[Cluster, str],  # noqa: F811  (the fixture)
    tmp_path: Path,
) -> None:
    from playwright.sync_api import expect

    chat, url = web_chat
    term = chat.join("term")
    alice = Person(browser, url, "alice")
    bob = Person(browser, url, "bob")
    alice.sees(srv("bob has joined the channel."))
    # A chat line, a mention with a link, a whisper each way, a listing, a file row.
    alice.says("hello bob")
    bob.says("hi Alice, see https://example.org/page")
    bob.says("/whisper alice psst")
    alice.says("/whisper bob back")
    alice.says("/list")
    term.type("from a terminal")
    (tmp_path / "notes.txt").write_bytes(b"a few bytes\n")
    term.type("/send alice notes.txt")
    alice.sees("[bob whispers to you: (<time>)] psst")
    alice.sees("[alice whispers to bob: (<time>)] back")
    alice.sees("[Channel] general: 3/5 members, 0 waiting")
    expect(alice.page.locator(f"{LOG} a")).to_have_count(1)
    expect(alice.page.locator(f"{LOG} li.mention")).to_have_count(1)
    expect(alice.page.get_by_role("link", name="Save notes.txt")).to_be_visible(timeout=30_000)

    page = alice.page
    page.mouse.move(0, 0)  # no row under the pointer, so no hover colours
    bad = []
    for scheme in SCHEMES:
        page.emulate_media(color_scheme=scheme)
        page.set_viewport_size(DESKTOP)
        expect(page.locator("#members-pane")).to_be_visible()
        bad += serious_violations(page, f"chat, {scheme}, desktop")
        # At phone width the panes are drawers, closed at first, then one open.
        page.set_viewport_size(PHONE)
        expect(page.locator("#members-pane")).to_be_hidden()
        bad += serious_violations(page, f"chat, {scheme}, phone")
        for pane in ("Channels", "Members"):
            page.get_by_role("button", name=pane).click()
            expect(page.locator(f"#{pane.lower()}-pane")).to_be_visible()
            bad += serious_violations(page, f"chat, {scheme}, phone, {pane} open")
            page.keyboard.press("Escape")
            expect(page.locator(f"#{pane.lower()}-pane")).to_be_hidden()
    assert bad == [], "\n".join(bad)
    assert alice.problems == [] and bob.problems == []
    alice.close()
    bob.close()
    chat.shutdown()


def test_the_log_is_a_named_live_region(
    browser: Any,  # noqa: F811  (the fixture)
    web_chat: tuple[Cluster, str],  # noqa: F811  (the fixture)
) -> None:
    from playwright.sync_api import expect

    chat, url = web_chat
    alice = Person(browser, url, "alice")
    log = alice.page.get_by_role("log", name="Chat in general")
    expect(log).to_have_count(1)
    expect(log).to_have_attribute("aria-live", "polite")
    alice.close()
    chat.shutdown()


# Where the focus is, and whether it shows: an outline or a shadow when the
# element matches :focus-visible.
FOCUS = """() => {
  const el = document.activeElement;
  if (!el || el === document.body) return null;
  const s = getComputedStyle(el);
  const outline = s.outlineStyle !== "none" && parseFloat(s.outlineWidth) > 0;
  return {
    what: `${el.tagName.toLowerCase()}#${el.id}.${el.className} ${el.textContent.slice(0, 20)}`,
    visible: el.matches(":focus-visible") && (outline || s.boxShadow !== "none"),
    channel: el.closest("#channels") !== null,
  };
}"""


class Keyboard:
    """One page driven by its keys alone, each focus checked as it comes."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.seen: list[str] = []

    def press(self, key: str) -> dict[str, Any]:
        self.page.keyboard.press(key)
        focus: dict[str, Any] | None = self.page.evaluate(FOCUS)
        assert focus is not None, f"{key}: the focus is lost"
        assert focus["visible"], f"{key}: no visible focus on {focus['what']}"
        self.seen.append(focus["what"])
        return focus

    def until(self, key: str, wanted: str, presses: int = 30) -> dict[str, Any]:
        """Press ``key`` until the focused element matches ``wanted``."""
        for _ in range(presses):
            focus = self.press(key)
            if re.search(wanted, focus["what"]):
                return focus
        raise AssertionError(f"{wanted!r} not reached by {key}: {self.seen}")


@pytest.mark.parametrize("scheme", SCHEMES)
def test_a_session_with_the_keyboard_alone_shows_every_focus(
    browser: Any,  # noqa: F811  (the fixture)
    web_chat: tuple[Cluster, str],  # noqa: F811  (the fixture)
    scheme: str,
) -> None:
    """Desktop width (test_web.py does the phone's drawers with clicks)."""
    from playwright.sync_api import expect

    chat, url = web_chat
    chat.join("term", "random")  # someone in the member list to move to
    context = browser.new_context(viewport=DESKTOP, color_scheme=scheme)
    page = context.new_page()
    page.goto(url)
    keys = Keyboard(page)
    expect(page.get_by_label("Name")).to_be_focused()
    page.keyboard.type("keys")
    keys.until("Tab", r"^select#channel")
    keys.until("Shift+Tab", r"^input#name")
    keys.press("Tab")
    page.keyboard.press("ArrowDown")  # the next channel, with the list closed
    expect(page.get_by_label("Channel", exact=True)).to_have_value("random")
    keys.until("Tab", r"^button.* Join")
    keys.press("Enter")
    chat.server.expect(srv("keys has joined the random channel."))
    expect(page.get_by_label("Message")).to_be_focused()
    page.keyboard.type("only keys")
    keys.press("Enter")
    chat.server.expect("[keys (<time>)] only keys")

    # The members pane: closed and opened again from its button, with Space.
    toggle = page.locator("#show-members")
    keys.until("Shift+Tab", r"^button#show-members")
    keys.press("Space")
    expect(toggle).to_have_attribute("aria-expanded", "false")
    expect(page.locator("#members-pane")).to_be_hidden()
    keys.press("Space")
    expect(toggle).to_have_attribute("aria-expanded", "true")
    expect(page.locator("#members-pane")).to_be_visible()
    # Into the member list and out again, to the message field.
    keys.until("Tab", r"^input#message")
    keys.until("Tab", r"^button.*who.* term", presses=5)
    keys.until("Shift+Tab", r"^input#message")

    # The channel list, and a second channel joined from it with Enter: the
    # list is drawn anew with the focus where it was.
    focus = keys.until("Shift+Tab", r"^button.*chan.*general")
    assert focus["channel"], focus
    keys.until("Tab", r"^button.*chan.*random")
    keys.until("Shift+Tab", r"^button.*chan.*general")
    keys.press("Enter")
    chat.server.expect(srv("keys has joined the general channel."))
    expect(page.locator('#channels [data-channel="general"]')).to_be_focused()
    expect(page.locator("#channels li.in")).to_have_count(2)

    # At phone width the members drawer opens from the keyboard and Escape closes it.
    page.set_viewport_size(PHONE)
    expect(page.locator("#members-pane")).to_be_hidden()
    keys.until("Shift+Tab", r"^button#show-members")
    keys.press("Enter")
    expect(page.locator("#members-pane")).to_be_visible()
    assert page.evaluate("document.activeElement.closest('#members-pane') !== null")
    keys.press("Escape")
    expect(page.locator("#members-pane")).to_be_hidden()
    expect(toggle).to_be_focused()
    context.close()
    chat.shutdown()


def test_reduced_motion_stills_the_drawers(
    browser: Any,  # noqa: F811  (the fixture)
    web_chat: tuple[Cluster, str],  # noqa: F811  (the fixture)
) -> None:
    from playwright.sync_api import expect

    chat, url = web_chat
    context = browser.new_context(viewport=PHONE, reduced_motion="reduce")
    page = context.new_page()
    page.goto(url)
    page.get_by_label("Name").fill("still")
    page.get_by_role("button", name="Join").click()
    chat.server.expect(srv("still has joined the general channel."))
    page.get_by_role("button", name="Members").click()
    expect(page.locator("#members-pane")).to_be_visible()
    for selector in ("#channels-pane", "#members-pane", ".lines", "html"):
        motion = page.locator(selector).evaluate(
            """(el) => { const s = getComputedStyle(el); return [
              s.transitionDuration, s.animationName, s.animationDuration, s.scrollBehavior]; }"""
        )
        assert motion == ["0s", "none", "0s", "auto"], (selector, motion)
    context.close()
    chat.shutdown()


# ----- the name colours, from the style sheet itself -----


def scheme_colours(scheme: str) -> dict[str, str]:
    """The custom properties of one scheme (the dark block overrides the light)."""
    text = STYLE.read_text()
    light = text.split("@media (prefers-color-scheme: dark)")[0]
    blocks = [light] if scheme == "light" else [light, text.split("prefers-color-scheme: dark")[1]]
    colours: dict[str, str] = {}
    for block in blocks:
        body = block.split(":root {", 1)[1].split("}", 1)[0]
        colours.update(re.findall(r"--([\w-]+):\s*(#[0-9a-fA-F]{3,6})\b", body))
    return colours


def luminance(colour: str) -> float:
    if len(colour) == 4:  # #abc is #aabbcc
        colour = "#" + "".join(digit * 2 for digit in colour[1:])

    def channel(part: str) -> float:
        c = int(part, 16) / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(colour[i : i + 2]) for i in (1, 3, 5))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(one: str, two: str) -> float:
    high, low = sorted((luminance(one), luminance(two)), reverse=True)
    return (high + 0.05) / (low + 0.05)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_every_text_colour_meets_aa_on_every_background(scheme: str) -> None:
    """Each text colour on each background it can be drawn on: a row's own, a
    mention's or a whisper's, and :hover's (which wins over the other two)."""
    colours = scheme_colours(scheme)
    texts = [f"c{i}" for i in range(10)] + ["fg", "muted", "server", "accent", "error", "mention"]
    backgrounds = ["bg", "pane", "hover", "mention-bg", "whisper-bg", "field"]
    pairs = [(text, back) for text in texts for back in backgrounds]
    pairs += [("whisper", "whisper-bg"), ("whisper", "hover"), ("on-accent", "accent")]
    low = [
        f"--{text} on --{back}: {contrast(colours[text], colours[back]):.2f}"
        for text, back in pairs
        if contrast(colours[text], colours[back]) < 4.5
    ]
    assert low == [], "\n".join(low)
