"""The browser client in a real headless Chromium, driven by Playwright, with
terminal clients in the same channel (docs/web.md).

Without Chromium these tests are skipped (install it with
`apt-get install chromium`); with TRIO_CHAT_REQUIRE_BROWSER=1 a missing
browser fails them instead, as in CI.
"""

from __future__ import annotations

import os
import re
import shutil
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.common import sha256

from .processes import Cluster, cluster, srv
from .programs import free_ports

STAMP = r"\(\d\d:\d\d:\d\d\)"
SCREENSHOT = os.environ.get("TRIO_CHAT_SCREENSHOT")
# The log of the channel in view (each channel the page is in has its own).
LOG = ".log:not([hidden]) .lines"


def chromium_path() -> str | None:
    for candidate in ("chromium", "chromium-browser", "/usr/bin/chromium"):
        found = shutil.which(candidate)
        if found:
            return found
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    path = chromium_path()
    if path is None:
        reason = "no Chromium found: install it with `apt-get install chromium`"
        if os.environ.get("TRIO_CHAT_REQUIRE_BROWSER") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=path,
            args=[
                "--no-sandbox",  # as root, as CI runs
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        yield launched
        launched.close()


# Each row of the page's log (``.log:not([hidden]) .lines li``) as the line a terminal prints for
# it, made from the row's parts: its kind, sender, time and text (render.js).
# So the tests check the same facts as before the page drew its own rows.
ROWS_AS_LINES = """(rows) => rows.map((li) => {
  const time = li.querySelector(":scope > time")?.textContent ?? "";
  const body = li.querySelector(":scope > .text")?.cloneNode(true);
  body?.querySelector(":scope > .tag")?.remove();
  const text = (body?.textContent ?? "").replace(/^ /u, "");
  const { sender, to } = li.dataset;
  const said = li.classList.contains("action") ? `* ${text}` : text;
  switch (li.dataset.kind) {
    case "msg": return `[${sender} (${time})] ${said}`;
    case "whisper": return `[${sender} whispers to ${to ? `${to}:` : "you:"} (${time})] ${said}`;
    case "server": return `[Server message (${time})] ${text}`;
    case "listing": return `[Channel] ${text}`;
    default: return li.textContent;
  }
})"""


def shown_lines(page: Any, rows: str = f"{LOG} li") -> list[str]:
    return [str(text) for text in page.locator(rows).evaluate_all(ROWS_AS_LINES)]


def open_channel(page: Any, channel: str) -> None:
    """Press a channel in the channel list: the page joins it too, or shows
    it if it is in it (at phone width, open the list first)."""
    page.locator(f'#channels button[data-channel="{channel}"]').click()


def switch_to(page: Any, channel: str) -> None:
    """Type ``/switch CHANNEL``: out of the channel in view, into that one."""
    page.get_by_label("Message").fill(f"/switch {channel}")
    page.get_by_label("Message").press("Enter")


def line(pattern: str) -> re.Pattern[str]:
    """A chat line with any stamp where ``pattern`` has ``(<time>)``."""
    return re.compile("^" + re.escape(pattern).replace(re.escape("(<time>)"), STAMP) + "$")


class Person:
    """One browser page of the chat."""

    def __init__(
        self,
        browser: Any,
        url: str,
        name: str,
        channel: str = "general",
        prepare: Callable[[Any], None] | None = None,
    ) -> None:
        """``prepare``: called with the page before it loads (a clock, a script)."""
        self.name = name
        self.context = browser.new_context(accept_downloads=True)
        self.page = self.context.new_page()
        if prepare is not None:
            prepare(self.page)
        self.dialogs: list[str] = []  # an alert() would mean HTML ran as code
        self.page.on("dialog", self._dialog)
        # What the console would complain of: a script error, a file not found (404).
        self.problems: list[str] = []
        self.page.on("pageerror", lambda error: self.problems.append(str(error)))
        self.page.on("response", self._answered)
        self.page.goto(url)
        self.page.get_by_label("Name").fill(name)
        self.page.get_by_label("Channel", exact=True).select_option(channel)
        self.page.get_by_role("button", name="Join").click()

    def _answered(self, answer: Any) -> None:
        if answer.status >= 400:
            self.problems.append(f"{answer.status} {answer.url}")

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def sees(self, pattern: str, count: int = 1, deadline: float = 15) -> None:
        """``count`` rows of the log read as ``pattern`` (ROWS_AS_LINES), soon."""
        wanted = line(pattern)
        give_up = time.monotonic() + deadline
        while True:
            shown = shown_lines(self.page)
            if sum(1 for text in shown if wanted.match(text)) == count:
                return
            if time.monotonic() > give_up:
                raise AssertionError(f"{self.name} shows {count} of {pattern!r}? {shown}")
            self.page.wait_for_timeout(50)

    def says(self, text: str) -> None:
        self.page.get_by_label("Message").fill(text)
        self.page.get_by_role("button", name="Send", exact=True).click()

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def web_chat(tmp_path: Path) -> Iterator[tuple[Cluster, str]]:
    (port,) = free_ports(1)
    with cluster(tmp_path, server_options=("--web", str(port))) as chat:
        yield chat, f"http://127.0.0.1:{port}/"


def test_browsers_and_a_terminal_share_a_channel(
    browser: Any, web_chat: tuple[Cluster, str], tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    chat, url = web_chat
    term = chat.join("term")
    alice = Person(browser, url, "alice")
    alice.sees(srv("Welcome to the general channel, alice."))
    alice.sees(srv("alice has joined the channel."))
    chat.server.expect(srv("alice has joined the general channel."))
    bob = Person(browser, url, "bob")
    bob.sees(srv("bob has joined the channel."))
    chat.server.expect(srv("bob has joined the general channel."))
    term.expect(srv("alice has joined the channel."))
    term.expect(srv("bob has joined the channel."))

    # Chat both ways, with HTML shown as text.
    injection = "hello <img src=x onerror=alert(1)> <b>bold</b>"
    alice.says(injection)
    term.expect(f"[alice (<time>)] {injection}")
    bob.sees(f"[alice (<time>)] {injection}")
    assert (
        bob.page.locator(".log:not([hidden]) .lines img, .log:not([hidden]) .lines b").count() == 0
    )
    chat.server.expect(f"[alice (<time>)] {injection}")
    term.type("hi browsers")
    alice.sees("[term (<time>)] hi browsers")
    bob.sees("[term (<time>)] hi browsers")
    chat.server.expect("[term (<time>)] hi browsers")

    # Whisper by clicking a member's name.
    alice.page.locator("#members").get_by_role("button", name="bob", exact=True).click()
    expect(alice.page.get_by_label("Message")).to_have_value("/whisper bob ")
    alice.page.get_by_label("Message").press("End")
    alice.page.get_by_label("Message").type("psst")
    alice.page.get_by_label("Message").press("Enter")
    bob.sees("[alice whispers to you: (<time>)] psst")
    chat.server.expect("[alice whispers to bob: (<time>)] psst")
    alice.sees("[alice whispers to bob: (<time>)] psst")  # in the sender's own log too

    bob.says("/list")
    bob.sees("[Channel] general: 3/5 members, 0 waiting")
    bob.sees("[Channel] random: 0/5 members, 0 waiting")
    # The channel list has every channel's figures, the one bob is in marked.
    expect(bob.page.locator('#channels [data-channel="general"]')).to_contain_text("3/5")
    expect(bob.page.locator('#channels [data-channel="general"]')).to_have_attribute(
        "aria-current", "true"
    )
    expect(bob.page.locator('#channels [data-channel="random"]')).to_contain_text("0/5")

    # A full channel: the next browser waits, then gets the place a terminal frees.
    extra = [chat.join("t2"), chat.join("t3")]
    carol = Person(browser, url, "carol")
    carol.sees(srv("You are in the waiting queue and there are 0 user(s) ahead of you."))
    expect(carol.page.locator("#status")).to_contain_text("0 ahead of you")
    extra[1].type("/quit")
    assert extra[1].wait_exit() == 0
    carol.sees(srv("carol has joined the channel."))
    chat.server.expect(srv("t3 has left the channel."))
    chat.server.expect(srv("carol has joined the general channel."))

    # A second channel from the page's list: carol is in both, one member in each.
    open_channel(carol.page, "random")
    carol.sees(srv("Welcome to the random channel, carol."))
    chat.server.expect(srv("carol has joined the random channel."))
    expect(carol.page.locator("#channels li.in")).to_have_count(2)
    expect(carol.page.locator('#channels [data-channel="random"]')).to_have_attribute(
        "aria-current", "true"
    )
    # /switch typed keeps its meaning: out of random, into help.
    switch_to(carol.page, "help")
    carol.sees(srv("Welcome to the help channel, carol."))
    carol.sees(srv("carol has joined the channel."), count=2)
    chat.server.expect(srv("carol has left the channel."))
    chat.server.expect(srv("carol has joined the help channel."))
    expect(carol.page.locator("#channels li.in")).to_have_count(2)  # general and help

    # A file from a browser to a terminal, and back.
    upload = tmp_path / "upload"
    upload.mkdir()
    (upload / "from-browser.bin").write_bytes(os.urandom(5 * 1024 * 1024))
    with alice.page.expect_file_chooser() as chooser:
        alice.page.get_by_role("button", name="Send a file to term").click()
    chooser.value.set_files(str(upload / "from-browser.bin"))
    chat.server.expect(srv("alice sent from-browser.bin to term."), deadline=30)
    alice.sees(srv("You sent from-browser.bin to term."))
    assert sha256(tmp_path / "from-browser.bin") == sha256(upload / "from-browser.bin")

    (tmp_path / "from-term.bin").write_bytes(os.urandom(5 * 1024 * 1024))
    term.type("/send bob from-term.bin")
    chat.server.expect(srv("term sent from-term.bin to bob."), deadline=30)
    # Its row has the size and how much of it came.
    expect(bob.page.locator("#transfers li")).to_contain_text("5.0 MiB of 5.0 MiB · 100%")
    with bob.page.expect_download() as download:
        bob.page.get_by_role("link", name="Save from-term.bin").click()
    saved = tmp_path / "downloaded.bin"
    download.value.save_as(saved)
    assert sha256(saved) == sha256(tmp_path / "from-term.bin")

    alice.page.screenshot(path=str(tmp_path / "chat.png"))
    if SCREENSHOT:
        alice.page.screenshot(path=SCREENSHOT)

    # Kicked from the console: said on the page, with a way back.
    chat.server.type("/kick general:bob")
    chat.server.expect(srv("Kicked bob."))
    expect(bob.page.locator("#status")).to_have_text(
        "Disconnected: kicked by the server operator.", timeout=15_000
    )
    expect(bob.page.get_by_role("button", name="Reconnect")).to_be_visible()
    assert alice.dialogs == [] and bob.dialogs == []
    assert alice.problems == [] and bob.problems == [] and carol.problems == []
    for person in (alice, bob, carol):
        person.close()
    chat.shutdown()


def test_the_log_groups_lines_makes_links_and_marks_mentions(
    browser: Any, web_chat: tuple[Cluster, str]
) -> None:
    from playwright.sync_api import expect

    chat, url = web_chat
    term = chat.join("term")
    alice = Person(browser, url, "alice")
    bob = Person(browser, url, "bob")
    alice.sees(srv("bob has joined the channel."))
    hostile = '<a href="javascript:alert(1)">js</a> javascript:alert(2) hey Alice!'
    term.type("first", "see http://example.org/x?y=1.", hostile)
    alice.sees(f"[term (<time>)] {hostile}")
    rows = alice.page.locator('.log:not([hidden]) .lines li.msg[data-sender="term"]')
    expect(rows).to_have_count(3)
    # One sender's lines in a row: the name shown once, the same colour on every page.
    assert [row.get_attribute("class") for row in rows.all()] == [
        "msg",
        "msg cont",
        "msg cont mention",  # "Alice!": alice's own name, in any case
    ]
    colour = rows.first.locator(".who").get_attribute("class")
    assert colour is not None and re.fullmatch(r"who c\d", colour), colour
    bob.sees(f"[term (<time>)] {hostile}")
    assert (
        bob.page.locator(
            '.log:not([hidden]) .lines li.msg[data-sender="term"] .who'
        ).first.get_attribute("class")
        == colour
    )
    # An http(s) URL is a link that opens apart from the page; peer HTML stays text.
    link = alice.page.locator(".log:not([hidden]) .lines a")
    expect(link).to_have_count(1)
    assert link.get_attribute("href") == "http://example.org/x?y=1"
    assert link.get_attribute("rel") == "noopener noreferrer"
    assert link.get_attribute("target") == "_blank"
    assert link.text_content() == "http://example.org/x?y=1"
    assert rows.nth(1).locator(".text").text_content() == "see http://example.org/x?y=1."
    # Another sender starts a new group.
    bob.says("me too")
    alice.sees("[bob (<time>)] me too")
    expect(alice.page.locator('.log:not([hidden]) .lines li.msg[data-sender="bob"]')).to_have_class(
        "msg"
    )

    # Away from the tab: the title counts what came.
    alice.page.evaluate("window.dispatchEvent(new Event('blur'))")
    term.type("while you look away", "and again")
    alice.sees("[term (<time>)] and again")
    expect(alice.page).to_have_title("(2) general — trio-chat")
    # A "new" marker above the first of them.
    expect(alice.page.locator(".log:not([hidden]) .lines li.marker")).to_have_count(1)
    (first,) = shown_lines(alice.page, ".log:not([hidden]) .lines li.marker + li")
    assert line("[term (<time>)] while you look away").match(first), first
    alice.page.evaluate("window.dispatchEvent(new Event('focus'))")
    expect(alice.page).to_have_title("general — trio-chat")
    assert alice.dialogs == [] and bob.dialogs == []
    assert alice.problems == [] and bob.problems == []
    alice.close()
    bob.close()
    chat.shutdown()


def test_the_icon_and_the_modules_are_served(web_chat: tuple[Cluster, str]) -> None:
    """No 404 for /favicon.ico; each module with a JavaScript type (nosniff)."""
    chat, url = web_chat
    for path, kind in [
        ("favicon.ico", "image/svg+xml"),
        ("static/favicon.svg", "image/svg+xml"),
        ("static/main.js", "text/javascript"),
        ("static/render.js", "text/javascript"),
    ]:
        with urllib.request.urlopen(url + path, timeout=15) as answer:
            assert answer.status == 200
            assert answer.headers["content-type"].startswith(kind), (path, answer.headers)
            assert b"<svg" in answer.read() or kind != "image/svg+xml"
    chat.shutdown()


def test_taken_name_is_refused_with_the_reason(browser: Any, web_chat: tuple[Cluster, str]) -> None:
    from playwright.sync_api import expect

    chat, url = web_chat
    chat.join("alice")
    twin = Person(browser, url, "alice")
    expect(twin.page.locator("#join-error")).to_contain_text("the name alice is already in general")
    bad = Person(browser, url, "no:colons")
    expect(bad.page.locator("#join-error")).to_contain_text("no spaces and no ':'")
    twin.close()
    bad.close()
    chat.shutdown()


def test_a_ban_shows_in_the_page_and_keeps_it_out(
    browser: Any, web_chat: tuple[Cluster, str]
) -> None:
    """docs/behaviour.md, "/ban, /unban and /bans": a banned name is refused with the reason;
    a page from a newly banned address is disconnected, told why, and a
    new one from there is refused."""
    from playwright.sync_api import expect

    chat, url = web_chat
    chat.server.type("/ban general:mallory")
    chat.server.expect(srv("Banned general:mallory until unbanned."))
    mallory = Person(browser, url, "mallory")
    expect(mallory.page.locator("#join-error")).to_contain_text(
        "refused: mallory is banned from general"
    )
    alice = Person(browser, url, "alice")
    chat.server.expect(srv("alice has joined the general channel."))
    chat.server.type("/ban 127.0.0.1")
    chat.server.expect(srv("Banned 127.0.0.1 until unbanned."))
    expect(alice.page.locator("#status")).to_have_text(
        "Disconnected: your address was banned by the server operator.", timeout=15_000
    )
    late = Person(browser, url, "bob")
    expect(late.page.locator("#join-error")).to_contain_text(
        "refused: your address is banned from this server"
    )
    for person in (mallory, alice, late):
        person.close()
    chat.shutdown()


def test_usable_at_phone_width_with_the_keyboard_alone_in_the_dark(
    browser: Any, web_chat: tuple[Cluster, str]
) -> None:
    from playwright.sync_api import expect

    chat, url = web_chat
    context = browser.new_context(viewport={"width": 360, "height": 640}, color_scheme="dark")
    page = context.new_page()
    page.goto(url)
    expect(page.get_by_label("Name")).to_be_focused()
    # Each label right above its own control, not left at the end of a line.
    for label, control in [("label[for=name]", "#name"), ("label[for=channel]", "#channel")]:
        above, below = page.locator(label).bounding_box(), page.locator(control).bounding_box()
        gap = below["y"] - (above["y"] + above["height"])
        assert 0 <= gap < 12 and abs(above["x"] - below["x"]) < 2, (label, above, below)
    page.keyboard.type("thumbs")
    page.keyboard.press("Tab")  # to the channel list
    page.keyboard.press("Tab")  # to Join
    page.keyboard.press("Enter")
    chat.server.expect(srv("thumbs has joined the general channel."))
    expect(page.get_by_label("Message")).to_be_focused()
    page.keyboard.type("typed on a phone")
    page.keyboard.press("Enter")
    chat.server.expect("[thumbs (<time>)] typed on a phone")
    # The member list is a drawer, opened by its button and closed by its close button.
    members = page.locator("#members-pane")
    expect(members).to_be_hidden()
    page.get_by_role("button", name="Members").click()
    expect(members.get_by_role("button", name="thumbs (you)")).to_be_visible()
    page.keyboard.press("Enter")  # on the close button, which has the focus
    expect(members).to_be_hidden()
    expect(page.get_by_role("button", name="Members")).to_be_focused()
    page.get_by_role("button", name="Channels").click()
    expect(page.locator('#channels [data-channel="general"]')).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.locator("#channels-pane")).to_be_hidden()
    # Nothing wider than the screen, and the dark colours of prefers-color-scheme.
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    background = page.evaluate("getComputedStyle(document.documentElement).backgroundColor")
    assert background == "rgb(21, 21, 21)", background
    context.close()
    chat.shutdown()
