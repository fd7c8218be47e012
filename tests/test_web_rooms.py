"""One page in several channels, coming back by itself, and notifications
(docs/web.md, "The page"), in a real Chromium against a real server.

Where the page's own timers matter (its backoff), the page runs on
Playwright's clock, paused: a retry happens when the test moves the clock,
never by chance.
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

from .processes import Cluster, cluster, srv
from .programs import SERVER
from .test_web import LOG, Person, browser, line, shown_lines  # noqa: F401  (the fixture)
from .test_web_a11y import PHONE, SCHEMES, serious_violations


def open_channel(person: Person, channel: str) -> None:
    person.page.locator(f'#channels button[data-channel="{channel}"]').click()


def channel_button(person: Person, channel: str) -> Any:
    return person.page.locator(f'#channels button[data-channel="{channel}"]')


def passes_axe(person: Person, where: str) -> None:
    """axe-core finds nothing serious in either scheme, at desktop width and
    at phone width with the channel list open (test_web_a11y.py)."""
    page = person.page
    desktop = page.viewport_size
    bad = []
    for scheme in SCHEMES:
        page.emulate_media(color_scheme=scheme)
        page.set_viewport_size(desktop)
        bad += serious_violations(page, f"{where}, {scheme}")
        page.set_viewport_size(PHONE)
        page.get_by_role("button", name="Channels").click()
        bad += serious_violations(page, f"{where}, {scheme}, phone, channels open")
        page.keyboard.press("Escape")
    page.set_viewport_size(desktop)
    assert bad == [], "\n".join(bad)


def log_of(person: Person, channel: str) -> list[str]:
    """The rows of ``channel``'s log, in view or not."""
    return shown_lines(person.page, f'.lines[data-channel="{channel}"] > li')


def test_one_page_in_several_channels_with_unread_counts_and_queue_places(
    browser: Any,  # noqa: F811  (the fixture)
    tmp_path: Path,
) -> None:
    from playwright.sync_api import expect

    with cluster(tmp_path, web=True) as chat:
        term = chat.join("term")
        helpers = [chat.join(f"h{i}", "help") for i in range(5)]  # help is full
        alice = Person(browser, chat.web_url(), "alice")
        alice.sees(srv("alice has joined the channel."))
        chat.server.expect(srv("alice has joined the general channel."))

        # A second channel from the list: joined too, in view, general still there.
        open_channel(alice, "random")
        alice.sees(srv("Welcome to the random channel, alice."))
        chat.server.expect(srv("alice has joined the random channel."))
        expect(alice.page.locator("#channels li.in")).to_have_count(2)
        expect(channel_button(alice, "random")).to_have_attribute("aria-current", "true")
        expect(alice.page.locator("#where")).to_have_text("random")
        expect(alice.page).to_have_title("random — trio-chat")

        # What is said in general while random is in view: counted there and in the title.
        term.type("hello general", "are you there, alice?")
        chat.server.expect("[term (<time>)] hello general")
        chat.server.expect("[term (<time>)] are you there, alice?")
        expect(channel_button(alice, "general").locator(".unread")).to_have_text("2")
        expect(alice.page).to_have_title("(2) random — trio-chat")
        passes_axe(alice, "two channels, unread lines in one")
        alice.says("only in random")
        chat.server.expect("[alice (<time>)] only in random")

        # Back to general without leaving random: the marker above the unread lines.
        open_channel(alice, "general")
        expect(alice.page.locator("#where")).to_have_text("general")
        expect(channel_button(alice, "general").locator(".unread")).to_have_count(0)
        expect(alice.page).to_have_title("general — trio-chat")
        (first,) = shown_lines(alice.page, f"{LOG} li.marker + li")
        assert line("[term (<time>)] hello general").match(first), first
        expect(alice.page.locator(f"{LOG} li.mention")).to_have_count(1)
        alice.says("in general")
        passed = term.expect_soon("[alice (<time>)] in general")
        assert not any("only in random" in text for text in passed), passed
        assert any(text.endswith("only in random") for text in log_of(alice, "random"))
        assert not any(text.endswith("only in random") for text in log_of(alice, "general"))

        # The member list is the one of the channel in view.
        members = alice.page.locator("#members .who")
        expect(members).to_have_text(["alice (you)", "term"])
        open_channel(alice, "random")
        expect(members).to_have_text(["alice (you)"])

        # A full channel: its live place in the queue in the list.
        open_channel(alice, "help")
        alice.sees(srv("You are in the waiting queue and there are 0 user(s) ahead of you."))
        expect(channel_button(alice, "help").locator(".waiting")).to_have_text("0 ahead")
        expect(alice.page.locator("#status")).to_contain_text("0 ahead of you")
        passes_axe(alice, "waiting in a third channel")
        helpers[0].type("/quit")
        assert helpers[0].wait_exit() == 0
        chat.server.expect_soon(srv("alice has joined the help channel."))
        expect(channel_button(alice, "help").locator(".waiting")).to_have_count(0)
        expect(alice.page.locator("#status")).to_have_text("In help.")
        expect(alice.page.locator("#channels li.in")).to_have_count(3)

        # Leaving one: announced in that channel only; the others stay.
        alice.page.get_by_role("button", name="Leave random").click()
        chat.server.expect(srv("alice has left the channel."))
        expect(alice.page.locator("#channels li.in")).to_have_count(2)
        expect(alice.page.locator('.lines[data-channel="random"]')).to_have_count(0)
        # /quit typed leaves the channel in view, as at a terminal.
        open_channel(alice, "help")
        expect(alice.page.locator("#where")).to_have_text("help")
        alice.says("/quit")
        chat.server.expect(srv("alice has left the channel."))
        expect(alice.page.locator("#channels li.in")).to_have_count(1)
        expect(alice.page.locator("#where")).to_have_text("general")
        term.type("still here")
        chat.server.expect_soon("[term (<time>)] still here")
        alice.sees("[term (<time>)] still here")
        assert alice.problems == [] and alice.dialogs == []
        alice.close()
        chat.shutdown()


def restart(chat: Cluster, options: tuple[str, ...]) -> None:
    """The server again, on the same ports (configfile and the web port)."""
    web = ("--web", f"127.0.0.1:{chat.web_ports[0]}")
    again = chat._spawn("server", [SERVER, "configfile", *web, *options])
    assert again.wait_stderr("listening"), again.stderr
    chat.server = again


def test_the_page_comes_back_by_itself_after_a_restart_but_not_after_a_kick_or_shutdown(
    browser: Any,  # noqa: F811  (the fixture)
    tmp_path: Path,
) -> None:
    from playwright.sync_api import expect

    options = ("--state-dir", "state", "--history", "50")
    with cluster(tmp_path, server_options=options, web=True) as chat:
        sockets: list[Any] = []

        def paused_clock(page: Any) -> None:
            page.on("websocket", lambda socket: sockets.append(socket))
            page.clock.install()

        alice = Person(browser, chat.web_url(), "alice", prepare=paused_clock)
        alice.page.clock.pause_at(alice.page.evaluate("Date.now()") + 1000)
        chat.server.expect(srv("alice has joined the general channel."))
        open_channel(alice, "random")
        chat.server.expect(srv("alice has joined the random channel."))
        term = chat.join("term")
        term.type("before the restart")
        open_channel(alice, "general")
        alice.sees("[term (<time>)] before the restart")

        # The server goes (a restart: SIGTERM, then a new process).
        chat.server.process.send_signal(signal.SIGTERM)
        assert chat.server.wait_exit() == 0
        expect(alice.page.locator("#status")).to_contain_text(
            "The connection to the server was lost. Reconnecting in 1 s"
        )
        expect(alice.page.locator("#status")).to_have_class("reconnecting")
        expect(channel_button(alice, "general").locator(".trouble")).to_have_text("reconnecting…")
        term.wait_exit()
        restart(chat, options)
        term = chat.client("term")
        chat.server.expect(srv("term has joined the general channel."))
        term.type("said while you were away")
        chat.server.expect("[term (<time>)] said while you were away")

        # The page's retry comes: back in both channels under its name, with
        # what it missed, and nothing twice.
        alice.page.clock.run_for(1000)
        back = sorted(chat.server.next_line() for _ in range(2))  # in either order
        assert back == [srv(f"alice has joined the {c} channel.") for c in ("general", "random")]
        open_channel(alice, "general")
        alice.sees("[term (<time>)] said while you were away")
        alice.sees("[term (<time>)] before the restart")
        alice.sees(srv("Welcome to the general channel, alice."), count=2)
        expect(alice.page.locator("#status")).to_have_text("In general.")
        expect(alice.page.get_by_role("button", name="Reconnect")).to_be_hidden()

        # Kicked from one channel: it says so and stays out, the other goes on.
        chat.server.type("/kick random:alice")
        chat.server.expect(srv("Kicked alice."))
        open_channel(alice, "random")
        expect(alice.page.locator("#status")).to_have_text(
            "Disconnected: kicked by the server operator."
        )
        opened = len(sockets)
        alice.page.clock.run_for(120_000)
        term.type("after the kick")
        open_channel(alice, "general")
        alice.sees("[term (<time>)] after the kick")
        assert len(sockets) == opened  # no retry
        open_channel(alice, "random")
        expect(alice.page.get_by_role("button", name="Reconnect")).to_be_visible()

        # The operator's /shutdown: said, and not retried.
        chat.server.type("/shutdown")
        assert chat.server.wait_exit() == 0
        open_channel(alice, "general")
        expect(alice.page.locator("#status")).to_have_text(
            "Disconnected: the server was shut down by the operator."
        )
        alice.page.clock.run_for(120_000)
        expect(channel_button(alice, "general").locator(".trouble")).to_have_text("ended")
        assert len(sockets) == opened
        # (axe waits on timers: with the clock running again, nothing is left to retry.)
        alice.page.clock.resume()
        passes_axe(alice, "disconnected from two channels")
        assert alice.problems == [] and alice.dialogs == []
        alice.close()


# Records what the page does with notifications (a test cannot see the
# desktop's), and keeps the real permission.
NOTIFICATIONS = """(() => {
  window.asked = 0;
  window.notes = [];
  const Real = window.Notification;
  class Recorded {
    constructor(title, options) { window.notes.push([title, options?.body ?? ""]); }
    addEventListener() {}
    close() {}
    static get permission() { return Real.permission; }
    static requestPermission() { window.asked++; return Real.requestPermission(); }
  }
  window.Notification = Recorded;
})()"""

HIDDEN = """() => {
  Object.defineProperty(document, "hidden", { value: true, configurable: true });
  Object.defineProperty(document, "visibilityState", { value: "hidden", configurable: true });
  document.dispatchEvent(new Event("visibilitychange"));
}"""


def test_notifications_are_asked_for_on_a_click_and_come_for_whispers_and_mentions(
    browser: Any,  # noqa: F811  (the fixture)
    tmp_path: Path,
) -> None:
    from playwright.sync_api import expect

    with cluster(tmp_path, web=True) as chat:
        term = chat.join("term")
        url = chat.web_url()
        asking = Person(browser, url, "asking", prepare=lambda p: p.add_init_script(NOTIFICATIONS))
        chat.server.expect(srv("asking has joined the general channel."))
        button = asking.page.get_by_role("button", name="Notify me")
        expect(button).to_be_visible()
        assert asking.page.evaluate("window.asked") == 0  # never on load
        button.click()
        asking.page.wait_for_function("window.asked === 1")

        def granted(page: Any) -> None:
            page.context.grant_permissions(["notifications"], origin=url.rstrip("/"))
            page.add_init_script(NOTIFICATIONS)

        alice = Person(browser, url, "alice", prepare=granted)
        chat.server.expect(srv("alice has joined the general channel."))
        expect(alice.page.get_by_role("button", name="Notify me")).to_be_hidden()
        # Seen: nothing pops up.
        alice.page.evaluate("window.dispatchEvent(new Event('focus'))")
        term.type("/whisper alice while you look")
        alice.sees("[term whispers to you: (<time>)] while you look")
        alice.page.evaluate(HIDDEN)
        term.type("a line for everyone", "/whisper alice psst", "alice: look at this")
        alice.sees("[term (<time>)] alice: look at this")
        assert alice.page.evaluate("window.notes") == [
            ["term whispers", "psst"],
            ["term in general", "alice: look at this"],
        ]
        assert alice.page.evaluate("window.asked") == 0
        asking.close()
        alice.close()
        chat.shutdown()


def test_joins_and_leaves_can_be_hidden_and_the_choice_is_kept(
    browser: Any,  # noqa: F811  (the fixture)
    tmp_path: Path,
) -> None:
    from playwright.sync_api import expect

    with cluster(tmp_path, web=True) as chat:
        alice = Person(browser, chat.web_url(), "alice")
        chat.server.expect(srv("alice has joined the general channel."))
        term = chat.join("term")
        alice.sees(srv("term has joined the channel."))
        quiet = alice.page.get_by_role("button", name="Hide joins")
        expect(quiet).to_have_attribute("aria-pressed", "false")
        quiet.click()
        expect(quiet).to_have_attribute("aria-pressed", "true")
        joined = alice.page.locator(f'{LOG} li[data-event="joined"]')
        expect(joined).to_have_count(2)  # alice's own and term's, there but not shown
        for row in joined.all():
            expect(row).to_be_hidden()
        term.type("a line stays", "/quit")
        alice.sees("[term (<time>)] a line stays")
        expect(alice.page.locator(f'{LOG} li[data-event="left"]')).to_be_hidden()
        expect(alice.page.locator(f"{LOG} li", has_text="Welcome to")).to_be_visible()

        # The next page of this browser keeps the choice (the chat is hidden
        # behind its join form, the button with it).
        again = alice.context.new_page()
        again.goto(chat.web_url())
        expect(again.locator("#quiet")).to_have_attribute("aria-pressed", "true")
        alice.close()
        chat.shutdown()
