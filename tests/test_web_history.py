"""Channel history in the browser (docs/web.md, "History"): the "history"
events a page is sent, and what the page makes of them: each line with its
own stamp and sender, dimmed above "— earlier messages —", and never a line
twice, across reconnects and switches.

The page tests need Chromium, as test_web.py's do (skipped without it).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from trio_websocket import open_websocket_url

from trio_chat import wire
from trio_chat.wire import FrameType

from .irc_peer import SERVER_NAME, IrcPeer
from .peers import WebMember, origin
from .processes import Cluster, cluster, is_stamp, srv
from .test_web import (  # noqa: F401  (the fixture, a page, a line)
    Person,
    browser,
    line,
    shown_lines,
    switch_to,
)

DIVIDER = "— earlier messages —"
ID = re.compile(r"[0-9]+-[0-9]+")
STATIC = Path(__file__).parent.parent / "trio_chat" / "web" / "static"


# ----- the events, without a browser -----


@pytest.fixture
def kept(tmp_path: Path) -> Iterator[Cluster]:
    """A server that keeps 50 lines of each channel, joins and leaves too."""
    options = ("--history", "50", "--history-events")
    with cluster(tmp_path, server_options=options, web=True) as chat:
        yield chat


@asynccontextmanager
async def page_socket(chat: Cluster, name: str) -> AsyncIterator[WebMember]:
    """What a page named ``name`` in general is sent, from its hello on."""
    port = chat.web_ports[0]
    url = f"ws://127.0.0.1:{port}/ws/general"
    async with open_websocket_url(url, extra_headers=origin(port)) as socket:
        member = WebMember(socket)
        await socket.send_message(wire.encode_hello(name))
        yield member


async def live(member: WebMember, event: str, **fields: object) -> str:
    """The next event is ``event`` with ``fields`` and an id: its id."""
    got = await member.next_event()
    assert got.pop("event") == event, got
    assert is_stamp(str(got.pop("stamp"))), got
    ident = got.pop("id")
    assert isinstance(ident, str) and ID.fullmatch(ident), got
    assert got == fields, got
    return ident


async def test_history_comes_before_the_welcome_with_the_ids_of_the_live_lines(
    kept: Cluster,
) -> None:
    chat = kept
    async with page_socket(chat, "early") as early:
        # Nothing kept yet: no history event at all.
        await early.expect("welcome", channel="general", user="early")
        ids = [await live(early, "joined", user="early")]
        chat.server.expect(srv("early has joined the general channel."))
        term = chat.client("term")  # (it is sent the history too: its lines are not read)
        chat.server.expect(srv("term has joined the general channel."))
        ids.append(await live(early, "joined", user="term"))
        term.type("hello <b>there</b>")
        ids.append(await live(early, "chat", sender="term", message="hello <b>there</b>"))
        term.type("/quit")
        assert term.wait_exit() == 0
        ids.append(await live(early, "left", user="term", why="left"))
        chat.server.expect("[term (<time>)] hello <b>there</b>")
        chat.server.expect(srv("term has left the channel."))

        async with page_socket(chat, "late") as late:
            history = await late.next_event()
            await late.expect("welcome", channel="general", user="late")
            ids.append(await live(late, "joined", user="late"))
            ids.append(await live(early, "joined", user="late"))
    assert ids[-1] == ids[-2]  # one line, one id, whoever sees it

    assert history.pop("event") == "history" and history.pop("stamp") == "", history
    assert history.pop("channel") == "general" and history.pop("last") is True, history
    entries = history.pop("entries")
    assert history == {}, history
    assert isinstance(entries, list) and len(entries) == 4, entries
    for entry in entries:
        assert isinstance(entry.pop("at"), float), entry
        assert is_stamp(entry.pop("stamp")), entry
    # The very ids the live events had: what the page remembers to show nothing twice.
    assert entries == [
        {"id": ids[0], "kind": "joined", "user": "early"},
        {"id": ids[1], "kind": "joined", "user": "term"},
        {"id": ids[2], "kind": "said", "user": "term", "message": "hello <b>there</b>"},
        {"id": ids[3], "kind": "left", "user": "term", "why": "left"},
    ]


async def test_a_long_history_comes_in_several_events_the_last_one_said(
    kept: Cluster,
) -> None:
    chat = kept
    term = chat.join("term")
    said = [f"{n:02d} " + "é" * 3000 for n in range(12)]  # 6 KB of UTF-8 each
    term.type(*said)
    for text in said:
        chat.server.expect(f"[term (<time>)] {text}")
    async with page_socket(chat, "late") as late:
        events = [await late.next_event()]
        while "last" not in events[-1]:
            events.append(await late.next_event())
        await late.expect("welcome", channel="general", user="late")
    assert len(events) > 1
    assert all(event["event"] == "history" for event in events)
    assert [event.get("last") for event in events] == [None] * (len(events) - 1) + [True]
    entries = [entry for event in events for entry in event["entries"]]  # type: ignore[attr-defined]
    # The last 50 entries: term's join, then what it said, in order.
    assert [entry.get("message") for entry in entries] == [None, *said]


# ----- the page, with the real server -----


def texts(person: Person) -> list[str]:
    return shown_lines(person.page)


def history_texts(person: Person) -> list[str]:
    return shown_lines(person.page, ".log:not([hidden]) .lines li.history")


def dividers(person: Person, count: int) -> None:
    from playwright.sync_api import expect

    expect(person.page.locator(".log:not([hidden]) .lines li.divider")).to_have_count(
        count, timeout=15_000
    )


def kicked(person: Person, chat: Cluster) -> None:
    """The console kicks the page: it says so, with its Reconnect button."""
    from playwright.sync_api import expect

    chat.server.type(f"/kick general:{person.name}")
    chat.server.expect(srv(f"Kicked {person.name}."))
    expect(person.page.locator("#status")).to_have_text(
        "Disconnected: kicked by the server operator.", timeout=15_000
    )


def reconnected(person: Person, chat: Cluster, times: int) -> None:
    """Press Reconnect, and see the page back in general for the ``times``th time."""
    person.page.get_by_role("button", name="Reconnect").click()
    chat.server.expect(srv(f"{person.name} has joined the general channel."))
    person.sees(srv(f"{person.name} has joined the channel."), count=times)


def test_a_late_page_shows_the_history_once_across_reconnects_and_a_reload(
    browser: Any,  # noqa: F811  (the fixture)
    tmp_path: Path,
) -> None:
    options = ("--history", "50", "--irc-server-name", SERVER_NAME)
    with cluster(tmp_path, server_options=options, irc=True, web=True) as chat:
        term = chat.join("term")
        term.type("hello <b>there</b>")
        chat.server.expect("[term (<time>)] hello <b>there</b>")
        irc = IrcPeer(chat.irc_port(), "ircnick")
        irc.register("ircnick")
        irc.join("#general", "term ircnick")
        chat.server.expect(srv("ircnick has joined the general channel."))
        irc.send("PRIVMSG #general :\x01ACTION waves\x01")
        chat.server.expect("[ircnick (<time>)] * ircnick waves")

        # Joined late: what was said, dimmed, with its stamps and senders; the
        # divider; then the welcome.
        alice = Person(browser, chat.web_url(), "alice")
        chat.server.expect(srv("alice has joined the general channel."))
        alice.sees(srv("alice has joined the channel."))
        shown = texts(alice)
        assert line("[term (<time>)] hello <b>there</b>").match(shown[0]), shown
        assert line("[ircnick (<time>)] * ircnick waves").match(shown[1]), shown
        assert shown[2] == DIVIDER, shown
        assert line(srv("Welcome to the general channel, alice.")).match(shown[3]), shown
        assert history_texts(alice) == shown[:2]
        assert alice.page.locator(".log:not([hidden]) .lines b").count() == 0

        # A line said while the page is here: a reconnect shows nothing again,
        # and no divider (the history comes before the welcome).
        term.type("while you are here")
        alice.sees("[term (<time>)] while you are here")
        chat.server.expect("[term (<time>)] while you are here")
        kicked(alice, chat)
        reconnected(alice, chat, times=2)
        dividers(alice, 1)

        # Lines said while it is away: the reconnected page shows just those.
        kicked(alice, chat)
        term.type("while you were away", "said later")
        chat.server.expect("[term (<time>)] while you were away")
        chat.server.expect("[term (<time>)] said later")
        reconnected(alice, chat, times=3)
        dividers(alice, 2)
        for said in ("hello <b>there</b>", "while you are here", "while you were away"):
            alice.sees(f"[term (<time>)] {said}")
        alice.sees("[term (<time>)] said later")
        alice.sees("[ircnick (<time>)] * ircnick waves")
        assert len(history_texts(alice)) == 4  # the first two, and the last two

        # A reload is a new page, which has shown nothing: all of it, once.
        alice.page.reload()
        alice.name = "alice2"  # (the old page's connection may not be gone yet)
        alice.page.get_by_label("Name").fill(alice.name)
        alice.page.get_by_role("button", name="Join").click()
        passed = chat.server.expect_soon(srv("alice2 has joined the general channel."))
        assert set(passed) <= {srv("alice has left the channel.")}, passed
        alice.sees(srv("alice2 has joined the channel."))
        shown = texts(alice)
        assert [text.partition(")] ")[2] for text in shown[:5]] == [
            "hello <b>there</b>",
            "* ircnick waves",
            "while you are here",
            "while you were away",
            "said later",
        ], shown
        assert shown[5] == DIVIDER, shown
        assert history_texts(alice) == shown[:5]
        assert alice.dialogs == []
        alice.close()
        irc.close()
        chat.shutdown()


# ----- the page against a scripted server: what it makes of odd events -----


def event(name: str, **fields: object) -> bytes:
    return wire.encode_json(FrameType.EVENT, {"event": name, **fields})


def said(ident: str, user: str, message: str, **more: object) -> dict[str, object]:
    return {"id": ident, "at": 1.7e9, "stamp": "10:00:00", "kind": "said", "user": user,
            "message": message, **more}  # fmt: skip


GOOD = [
    said("1-1", "term", "<b>hi</b> <img src=x onerror=alert(1)>"),
    said("2-1", "ircnick", "waves", action=True),
    {"id": "3-1", "at": 1.7e9, "stamp": "10:00:01", "kind": "joined", "user": "bob"},
    {"id": "4-1", "at": 1.7e9, "stamp": "10:00:02", "kind": "left", "user": "bob", "why": "afk"},
]
MALFORMED: list[object] = [
    None,
    "said",
    [1, 2],
    said("", "term", "no id"),
    said("5-1", "term", "a number for an id") | {"id": 5},
    said("6-1", "term", "no time") | {"at": "yesterday"},
    said("7-1", "term", "no stamp") | {"stamp": None},
    said("8-1", "term", "a number for a name") | {"user": 42},
    said("9-1", "term", "an odd action", action="yes"),
    {"id": "10-1", "at": 1.7e9, "stamp": "10:00:03", "kind": "said", "user": "term"},
    {"id": "11-1", "at": 1.7e9, "stamp": "10:00:03", "kind": "left", "user": "bob"},
    {"id": "12-1", "at": 1.7e9, "stamp": "10:00:03", "kind": "shouted", "user": "bob"},
]


class ScriptedServer:
    """Answers the page's WebSocket itself (Playwright's route_web_socket):
    each connection's hello gets the next of ``script``'s answers, and a
    /switch the answer ``switches`` holds for its channel."""

    def __init__(self, page: Any, script: list[list[bytes]], switches: dict[str, list[bytes]]):
        self.script = script
        self.switches = switches
        self.sockets: list[Any] = []
        page.route_web_socket(re.compile(r"^ws://chat\.test/ws/"), self._connected)

    def _connected(self, socket: Any) -> None:
        self.sockets.append(socket)
        socket.on_message(lambda message: self._heard(socket, message))

    def _heard(self, socket: Any, message: str | bytes) -> None:
        assert isinstance(message, bytes), message
        kind, payload = message[4], message[5:].decode()
        if kind == FrameType.HELLO:
            answer = self.script.pop(0)
        elif kind == FrameType.INPUT and payload.startswith("/switch "):
            answer = self.switches[payload.removeprefix("/switch ")]
        else:
            return
        for frame in answer:
            socket.send(frame)


def welcome(channel: str = "general") -> list[bytes]:
    return [
        wire.encode_json(FrameType.CHANNELS, {"channels": ["general", "random"]}),
        event("welcome", stamp="10:01:00", channel=channel, user="alice"),
        event("joined", stamp="10:01:00", user="alice", id=f"{channel}-joined"),
    ]


def history(channel: str, *entries: object, last: bool = True) -> bytes:
    fields: dict[str, object] = {"stamp": "", "channel": channel, "entries": list(entries)}
    if last:
        fields["last"] = True
    return event("history", **fields)


def scripted_page(
    chromium: Any, script: list[list[bytes]], switches: dict[str, list[bytes]]
) -> Any:
    """A page of the chat at chat.test whose files come from the package and
    whose WebSocket is ``ScriptedServer``'s."""
    context = chromium.new_context()
    page = context.new_page()
    scripted = ScriptedServer(page, script, switches)

    def files(route: Any) -> None:
        path = route.request.url.removeprefix("http://chat.test/")
        if path == "channels":
            channels = [{"name": "general", "members": 0, "capacity": 5, "queue": 0}]
            route.fulfill(json=channels)
            return
        name = path.removeprefix("static/") or "index.html"
        types = {
            "html": "text/html",
            "js": "text/javascript",
            "css": "text/css",
            "svg": "image/svg+xml",
        }
        body = (STATIC / name).read_bytes()
        route.fulfill(body=body, content_type=types[name.rpartition(".")[2]])

    page.route("http://chat.test/**", files)
    page.goto("http://chat.test/")
    page.get_by_label("Name").fill("alice")
    page.get_by_label("Channel", exact=True).select_option("general")
    page.get_by_role("button", name="Join").click()
    return page, scripted


def test_the_page_skips_malformed_entries_and_shows_each_line_once_per_channel(
    browser: Any,  # noqa: F811  (the fixture)
) -> None:
    from playwright.sync_api import expect

    new = said("13-1", "term", "new since")
    elsewhere = said("1-1", "carol", "the same id in another channel")
    script = [
        # In two events, the malformed entries between the good ones.
        [
            history("general", GOOD[0], *MALFORMED[:6], GOOD[1], last=False),
            history("general", GOOD[2], *MALFORMED[6:], GOOD[3]),
            *welcome(),
        ],
        # After a reconnect: one entry is new, one was shown live (its id).
        [history("general", *GOOD, new, said("general-joined", "x", "seen live")), *welcome()],
        # Nothing new: no divider.
        [history("general", *GOOD, new), *welcome()],
    ]
    switches = {
        "random": [history("random", elsewhere), *welcome("random")],
        "general": [history("general", *GOOD, new), *welcome()],
    }
    page, scripted = scripted_page(browser, script, switches)
    lines = page.locator(".log:not([hidden]) .lines li")
    welcomed = lines.filter(has_text="Welcome to the general channel, alice.")
    expect(welcomed).to_have_count(1, timeout=15_000)
    expect(lines).to_have_count(7)
    assert shown_lines(page) == [
        "[term (10:00:00)] <b>hi</b> <img src=x onerror=alert(1)>",
        "[ircnick (10:00:00)] * ircnick waves",
        "[Server message (10:00:01)] bob has joined the channel.",
        "[Server message (10:00:02)] bob went AFK.",
        DIVIDER,
        "[Server message (10:01:00)] Welcome to the general channel, alice.",
        "[Server message (10:01:00)] alice has joined the channel.",
    ]
    assert page.locator(".log:not([hidden]) .lines li.history").count() == 4
    assert page.locator(".log:not([hidden]) .lines li.divider").count() == 1
    assert page.locator(".log:not([hidden]) .lines b, .log:not([hidden]) .lines img").count() == 0
    assert "2023" in (
        page.locator(".log:not([hidden]) .lines li.history").first.get_attribute("title") or ""
    )

    # The server drops the connection: the log stays, and Reconnect shows
    # only what is new in the history sent again.
    # It comes back by itself.
    for turn in (1, 2):
        scripted.sockets[-1].close()
        expect(page.locator("#status")).to_contain_text("The connection to the server was lost.")
        expect(welcomed).to_have_count(1 + turn, timeout=15_000)
    shown = shown_lines(page)
    assert shown[7:] == [
        "[term (10:00:00)] new since",
        DIVIDER,
        "[Server message (10:01:00)] Welcome to the general channel, alice.",
        "[Server message (10:01:00)] alice has joined the channel.",
        # (the third connection's history had nothing new)
        "[Server message (10:01:00)] Welcome to the general channel, alice.",
        "[Server message (10:01:00)] alice has joined the channel.",
    ], shown

    # Each channel has its own lines: an id shown in general is new in random,
    # and back in general nothing is shown again.
    switch_to(page, "random")
    expect(lines.filter(has_text="Welcome to the random channel")).to_have_count(1)
    switch_to(page, "general")
    expect(welcomed).to_have_count(4, timeout=15_000)
    assert shown_lines(page)[13:] == [
        "[carol (10:00:00)] the same id in another channel",
        DIVIDER,
        "[Server message (10:01:00)] Welcome to the random channel, alice.",
        "[Server message (10:01:00)] alice has joined the channel.",
        "[Server message (10:01:00)] Welcome to the general channel, alice.",
        "[Server message (10:01:00)] alice has joined the channel.",
    ]
    assert script == []  # every connection came
    page.context.close()
