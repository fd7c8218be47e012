"""Files in the browser page (docs/web.md, "The page"): a file dropped on the
log and sent through the chooser, Cancel on both sides of a transfer, the
"Received files" list with Save and Forget, and a thumbnail for an image.

A real server and real terminal clients; a peer that stalls is a page whose
frames of some types are held back (``hold``), so "mid-stream" is a state the
test waits for, not a race it hopes to win. Needs Chromium, as test_web.py.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import Any

from bench.common import sha256
from trio_chat.wire import FrameType

from .processes import Cluster, srv
from .test_web import LOG, Person, browser, web_chat  # noqa: F401  (the fixtures)

# The page's frames of the given types go nowhere but into a queue (after
# the first ``passing`` of them), until released in order or forgotten. The
# page sends one frame per message, so byte 4 of each is its frame type.
HOLD = """([types, passing]) => {
  if (!window.gate) {
    const send = WebSocket.prototype.send;
    WebSocket.prototype.send = function (data) {
      const gate = window.gate;
      if (gate.types.has(data[4])) {
        if (gate.passing > 0) gate.passing--;
        else { gate.held.push([this, data]); return; }
      }
      return send.call(this, data);
    };
    window.releaseHeld = () => {
      const { held } = window.gate;
      window.gate = { types: new Set(), held: [], passing: 0 };
      for (const [socket, data] of held) send.call(socket, data);
    };
  }
  window.gate = { types: new Set(types), held: [], passing };
}"""

# A File of ``size`` bytes from a fixed pseudo-random sequence, kept as window.made.
MAKE_FILE = """([name, size, seed]) => {
  const bytes = new Uint8Array(size);
  let x = seed >>> 0;
  for (let i = 0; i < size; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    bytes[i] = x >>> 24;
  }
  window.made = new File([bytes], name);
}"""

DIGEST = """async () => {
  const digest = await crypto.subtle.digest("SHA-256", await window.made.arrayBuffer());
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}"""

# Drag events over ``selector``, carrying window.made (or, for "text", a text).
DRAG = """([selector, types, carried]) => {
  const data = new DataTransfer();
  if (carried === "text") data.setData("text/plain", "just words");
  else data.items.add(window.made);
  const target = document.querySelector(selector);
  // Each entry: whether the page took the event (called preventDefault).
  return types.map((type) => !target.dispatchEvent(
    new DragEvent(type, { bubbles: true, cancelable: true, dataTransfer: data })));
}"""

# Whether an image loads from ``url`` (img-src allows blob:, connect-src does not).
LOADS = """(url) => new Promise((done) => {
  const image = new Image();
  image.onload = () => done(true);
  image.onerror = () => done(false);
  image.src = url;
})"""


def hold(person: Person, *types: FrameType, passing: int = 0) -> None:
    person.page.evaluate(HOLD, [[int(t) for t in types], passing])


def drop_on(person: Person, selector: str, name: str, size: int, seed: int = 1) -> None:
    person.page.evaluate(MAKE_FILE, [name, size, seed])
    person.page.evaluate(DRAG, [selector, ["dragenter", "dragover", "drop"], "file"])


def png(width: int = 2, height: int = 2) -> bytes:
    """A real PNG, red pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def test_a_file_dropped_on_the_log_goes_to_whom_the_chooser_says(
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
    page = alice.page

    # While files are dragged over the log it is outlined; a text drag is not taken.
    page.evaluate(MAKE_FILE, ["dropped.bin", 1536 * 1024, 7])
    assert page.evaluate(DRAG, [LOG, ["dragenter", "dragover"], "file"]) == [False, True]
    expect(page.locator("#log-pane")).to_have_class("drop-target")
    page.evaluate(DRAG, [LOG, ["dragleave"], "file"])
    expect(page.locator("#log-pane")).not_to_have_class("drop-target")
    assert page.evaluate(DRAG, [LOG, ["dragenter", "dragover", "drop"], "text"]) == [
        False,
        False,
        False,
    ]
    expect(page.locator("#log-pane")).not_to_have_class("drop-target")
    bob_item = "#members li:has(button[aria-label='Send a file to bob'])"
    assert page.evaluate(DRAG, [bob_item, ["dragover", "drop"], "text"]) == [False, False]
    expect(page.locator("#transfers li")).to_have_count(0)

    # Dropped with no one named: a chooser of the others, focused, for the keyboard.
    page.evaluate(DRAG, [LOG, ["dragenter", "dragover", "drop"], "file"])
    expect(page.locator("#log-pane")).not_to_have_class("drop-target")
    chooser = page.get_by_label("Send dropped.bin (1.5 MiB) to:")
    expect(chooser).to_be_focused()
    assert chooser.locator("option").all_text_contents() == ["bob", "term"]
    page.keyboard.press("Escape")  # never mind
    expect(page.locator("#transfers li")).to_have_count(0)
    expect(page.get_by_label("Message")).to_be_focused()

    page.evaluate(DRAG, ["#log-pane", ["dragenter", "dragover", "drop"], "file"])
    page.get_by_role("button", name="Do not send dropped.bin").click()
    expect(page.locator("#transfers li")).to_have_count(0)

    page.evaluate(DRAG, [LOG, ["dragenter", "dragover", "drop"], "file"])
    chooser.select_option("term")
    page.locator("#transfers").get_by_role("button", name="Send", exact=True).click()
    chat.server.expect_soon(srv("alice sent dropped.bin to term."), deadline=30)
    alice.sees(srv("You sent dropped.bin to term."))
    expect(page.locator("#transfers li")).to_contain_text("delivered")
    assert sha256(tmp_path / "dropped.bin") == page.evaluate(DIGEST)
    assert term.wait_stderr("received dropped.bin (1.5 MiB) from alice")

    # A whisper begun to bob: a file dropped on the log is bob's at once.
    page.locator("#members").get_by_role("button", name="bob", exact=True).click()
    drop_on(alice, LOG, "to-bob.bin", 300 * 1024, seed=3)
    chat.server.expect_soon(srv("alice sent to-bob.bin to bob."), deadline=30)
    received = bob.page.get_by_role("list", name="Received files").locator("li")
    expect(received).to_contain_text("to-bob.bin")
    expect(received).to_contain_text("300.0 KiB from alice")
    with bob.page.expect_download() as download:
        bob.page.get_by_role("link", name="Save to-bob.bin").click()
    download.value.save_as(tmp_path / "got.bin")
    assert sha256(tmp_path / "got.bin") == page.evaluate(DIGEST)
    assert alice.problems == [] and bob.problems == []
    for person in (alice, bob):
        person.close()
    chat.shutdown()


def test_cancel_a_file_being_sent(
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
    rows = alice.page.locator("#transfers li")

    # To a terminal, mid-stream: 1 MiB of 40 MiB goes out, then the page's data waits.
    hold(alice, FrameType.FILE_DATA, passing=4)
    drop_on(alice, LOG, "big.bin", 40 * 1024 * 1024)
    alice.page.get_by_label("Send big.bin (40.0 MiB) to:").select_option("term")
    alice.page.locator("#transfers").get_by_role("button", name="Send", exact=True).click()
    expect(rows).to_contain_text("1.0 MiB of 40.0 MiB", timeout=30_000)
    assert term.wait_stderr("receiving big.bin (40.0 MiB) from alice")
    alice.page.get_by_role("button", name="Cancel big.bin").click()
    expect(rows).to_contain_text("cancelled")
    expect(rows.get_by_role("button", name="Cancel big.bin")).to_have_count(0)
    assert term.wait_stderr("big.bin from alice broke off: cancelled by the sender")
    assert not (tmp_path / "big.bin").exists()

    # To a page that acknowledges nothing: the window's 4 MiB, and no more.
    hold(alice)  # (what it held is forgotten)
    hold(bob, FrameType.FILE_ACK)
    drop_on(alice, LOG, "huge.bin", 40 * 1024 * 1024)
    alice.page.get_by_label("Send huge.bin (40.0 MiB) to:").select_option("bob")
    alice.page.locator("#transfers").get_by_role("button", name="Send", exact=True).click()
    bob_row = bob.page.locator("#transfers li")
    expect(bob_row).to_contain_text("4.0 MiB of 40.0 MiB", timeout=30_000)
    alice.page.get_by_role("button", name="Cancel huge.bin").click()
    expect(rows.filter(has_text="huge.bin")).to_contain_text("cancelled")
    expect(bob_row).to_contain_text("not received: cancelled by the sender")
    expect(bob_row.get_by_role("button")).to_have_count(0)

    # Cancelled before the server gave it an id: it is called off when the id comes.
    hold(alice, FrameType.SEND_OFFER)
    drop_on(alice, LOG, "early.bin", 1024 * 1024)
    alice.page.get_by_label("Send early.bin (1.0 MiB) to:").select_option("term")
    alice.page.locator("#transfers").get_by_role("button", name="Send", exact=True).click()
    alice.page.get_by_role("button", name="Cancel early.bin").click()
    expect(rows.filter(has_text="early.bin")).to_contain_text("cancelled")
    alice.page.evaluate("window.releaseHeld()")
    assert term.wait_stderr("early.bin from alice broke off: cancelled by the sender")
    assert not (tmp_path / "early.bin").exists()

    # Nothing stuck: the next file goes through.
    drop_on(alice, LOG, "after.bin", 1000)
    alice.page.get_by_label("Send after.bin (1000 bytes) to:").select_option("term")
    alice.page.locator("#transfers").get_by_role("button", name="Send", exact=True).click()
    chat.server.expect_soon(srv("alice sent after.bin to term."), deadline=30)
    assert sha256(tmp_path / "after.bin") == alice.page.evaluate(DIGEST)
    assert alice.problems == [] and bob.problems == []
    for person in (alice, bob):
        person.close()
    chat.shutdown()


def test_cancel_a_file_being_received(
    browser: Any,  # noqa: F811  (the fixture)
    web_chat: tuple[Cluster, str],  # noqa: F811  (the fixture)
    tmp_path: Path,
) -> None:
    from playwright.sync_api import expect

    chat, url = web_chat
    term = chat.join("term")
    bob = Person(browser, url, "bob")
    term.expect(srv("bob has joined the channel."))
    hold(bob, FrameType.FILE_ACK)  # so the terminal stops at its window
    (tmp_path / "big.bin").write_bytes(b"x" * (20 * 1024 * 1024))
    term.type("/send bob big.bin")
    row = bob.page.locator("#transfers li")
    expect(row).to_contain_text("4.0 MiB of 20.0 MiB", timeout=30_000)
    bob.page.get_by_role("button", name="Cancel big.bin").click()
    expect(row).to_contain_text("cancelled")
    expect(row.get_by_role("button")).to_have_count(0)
    assert term.wait_stderr("/send big.bin: bob could not save big.bin: cancelled by the receiver")
    expect(bob.page.get_by_role("list", name="Received files")).to_have_count(0)

    # The page still takes the next file.
    bob.page.evaluate("window.releaseHeld()")
    (tmp_path / "small.bin").write_bytes(b"y" * 5000)
    term.type("/send bob small.bin")
    chat.server.expect_soon(srv("term sent small.bin to bob."), deadline=30)
    received = bob.page.get_by_role("list", name="Received files").locator("li")
    expect(received).to_have_count(1)
    expect(received).to_contain_text("small.bin")
    assert bob.problems == []
    bob.close()
    chat.shutdown()


def test_received_files_stay_saveable_until_forgotten_and_images_show(
    browser: Any,  # noqa: F811  (the fixture)
    web_chat: tuple[Cluster, str],  # noqa: F811  (the fixture)
    tmp_path: Path,
) -> None:
    from playwright.sync_api import expect

    chat, url = web_chat
    term = chat.join("term")
    bob = Person(browser, url, "bob")
    term.expect(srv("bob has joined the channel."))
    # The bytes decide what is an image, not the name.
    (tmp_path / "looks.png").write_bytes(b"not an image at all\n" * 50)
    (tmp_path / "real.bin").write_bytes(png())
    term.type("/send bob looks.png")
    chat.server.expect_soon(srv("term sent looks.png to bob."), deadline=30)
    term.type("/send bob real.bin")
    chat.server.expect_soon(srv("term sent real.bin to bob."), deadline=30)
    received = bob.page.get_by_role("list", name="Received files").locator("li")
    expect(received).to_have_count(2)
    expect(received.nth(0)).to_contain_text("looks.png")
    expect(received.nth(0)).to_contain_text("1000 bytes from term")
    expect(received.nth(1)).to_contain_text("real.bin")
    # The transfer rows go after a while; the received files stay.
    expect(bob.page.locator("#transfers li")).to_have_count(0, timeout=30_000)
    expect(received).to_have_count(2)

    for attempt in range(2):  # Save works again
        with bob.page.expect_download() as download:
            bob.page.get_by_role("link", name="Save looks.png").click()
        saved = tmp_path / f"looks-{attempt}"
        download.value.save_as(saved)
        assert sha256(saved) == sha256(tmp_path / "looks.png")
    expect(bob.page.locator(".received img")).to_have_count(0)

    expect(received.nth(1).locator("img")).to_have_count(0)  # only once saved
    with bob.page.expect_download() as download:
        bob.page.get_by_role("link", name="Save real.bin").click()
    download.value.save_as(tmp_path / "real-saved")
    assert (tmp_path / "real-saved").read_bytes() == png()
    thumbnail = bob.page.get_by_role("img", name="real.bin")
    expect(thumbnail).to_be_visible()
    source = str(thumbnail.get_attribute("src"))
    assert source.startswith("blob:") and source == bob.page.get_by_role(
        "link", name="Save real.bin"
    ).get_attribute("href")
    bob.page.wait_for_function("document.querySelector('.received img').naturalWidth === 2")
    width = thumbnail.evaluate("(image) => image.getBoundingClientRect().width")
    root = bob.page.evaluate("parseFloat(getComputedStyle(document.documentElement).fontSize)")
    assert 0 < width <= 12 * root
    with bob.page.expect_download():  # and again
        bob.page.get_by_role("link", name="Save real.bin").click()
    expect(bob.page.locator(".received img")).to_have_count(1)

    # Forget lets the file go: its row, and its blob.
    bob.page.get_by_role("button", name="Forget looks.png").click()
    expect(received).to_have_count(1)
    assert bob.page.evaluate(LOADS, source) is True
    bob.page.get_by_role("button", name="Forget real.bin").click()
    expect(bob.page.get_by_role("list", name="Received files")).to_have_count(0)
    expect(bob.page.get_by_text("Received files")).to_have_count(0)
    assert bob.page.evaluate(LOADS, source) is False
    assert bob.problems == []
    bob.close()
    chat.shutdown()
