"""The README's and docs/web.md's pictures of the browser client, made anew.

    python contrib/screenshots.py [OUTDIR]

Starts a real server with --web, two terminal clients and a second page,
has them talk (a chat, a link, a mention, a whisper, a file with its
thumbnail, unread lines in another channel), then saves alice's page at
desktop and phone width in the light and the dark scheme:
OUTDIR/web-{desktop,phone}-{light,dark}.png (OUTDIR defaults to docs/).
Needs the test extra (Playwright) and Debian's chromium.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import free_ports, wait_until_accepting  # noqa: E402

BIN = Path(sys.executable).parent
DESKTOP = {"width": 1280, "height": 760}
PHONE = {"width": 390, "height": 760}


def picture(width: int = 96, height: int = 64) -> bytes:
    """A small PNG (green bars on a dark ground), the file bob sends."""
    rows = b"".join(
        b"\x00"
        + b"".join(
            bytes((40, 200, 90))
            if (x // 12) % 2 and y > height - 8 - (x * 5) % 48
            else bytes((30, 34, 40))
            for x in range(width)
        )
        for y in range(height)
    )

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


class Terminal:
    """A terminal client, typed into from here."""

    def __init__(self, port: int, name: str, workdir: Path) -> None:
        self.process = subprocess.Popen(
            [str(BIN / "trio-chat-client"), str(port), name],
            cwd=workdir,
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def type(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line.encode() + b"\n")
        self.process.stdin.flush()


def until(server: subprocess.Popen[bytes], *texts: str) -> None:
    """Read the server's stdout until a line has ended with each of ``texts``."""
    assert server.stdout is not None
    waiting = set(texts)
    while waiting:
        line = server.stdout.readline().decode().rstrip("\n")
        waiting = {text for text in waiting if not line.endswith(text)}


def join(browser: Any, url: str, name: str, channel: str = "general") -> Any:
    context = browser.new_context(viewport=DESKTOP, accept_downloads=True)
    page = context.new_page()
    page.goto(url)
    page.get_by_label("Name").fill(name)
    page.get_by_label("Channel", exact=True).select_option(channel)
    page.get_by_role("button", name="Join").click()
    page.get_by_label("Message").wait_for()
    return page


def say(page: Any, text: str) -> None:
    page.get_by_label("Message").fill(text)
    page.get_by_label("Message").press("Enter")


def seen(page: Any, text: str) -> None:
    page.locator(".log:not([hidden]) .lines li", has_text=text).last.wait_for()


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs"
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    with tempfile.TemporaryDirectory() as scratch, sync_playwright() as playwright:
        workdir = Path(scratch)
        general, random, help_, web = free_ports(4)
        (workdir / "configfile").write_text(
            f"channel general {general} 8\nchannel random {random} 8\nchannel help {help_} 5\n"
        )
        server = subprocess.Popen(
            [str(BIN / "trio-chat-server"), "configfile", "--web", str(web), "--history", "50"],
            cwd=workdir,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        wait_until_accepting(web, server)
        (workdir / "build-status.png").write_bytes(picture())
        browser = playwright.chromium.launch(
            executable_path=chromium,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        url = f"http://127.0.0.1:{web}/"
        bob = Terminal(general, "bob", workdir)
        dana = Terminal(random, "dana", workdir)
        until(server, "bob has joined the general channel.", "dana has joined the random channel.")
        bob.type("morning! the release notes are up: https://example.org/notes/0.3")
        alice = join(browser, url, "alice")
        carol = join(browser, url, "carol")
        seen(alice, "carol has joined")
        say(carol, "nice, reading them now")
        bob.type("alice, can you look at the build status?")
        seen(alice, "build status")
        bob.type("/send alice build-status.png")
        alice.get_by_role("link", name="Save build-status.png").wait_for()
        with alice.expect_download():
            alice.get_by_role("link", name="Save build-status.png").click()
        alice.locator(".thumb img").wait_for()
        say(alice, "on it. looks green to me")
        say(carol, "/whisper alice lunch at 12?")
        seen(alice, "lunch at 12?")
        say(alice, "/whisper carol yes!")
        alice.locator('#channels button[data-channel="random"]').click()
        seen(alice, "Welcome to the random channel")
        alice.locator('#channels button[data-channel="general"]').click()
        dana.type("anyone up for a game tonight?")
        dana.type("8pm, the usual place")
        alice.locator('#channels button[data-channel="random"] .unread').wait_for()
        say(alice, "/list")
        seen(alice, "help: 0/5")
        alice.get_by_label("Message").fill("/whisper ca")
        alice.get_by_label("Message").press("Tab")
        alice.locator("#message").blur()
        alice.mouse.move(640, 20)  # over the top bar: no row shows its hover
        alice.locator("#transfers li").wait_for(state="detached")  # (finished rows go)
        for scheme in ("light", "dark"):
            alice.emulate_media(color_scheme=scheme)
            alice.set_viewport_size(DESKTOP)
            alice.screenshot(path=str(out / f"web-desktop-{scheme}.png"))
            alice.set_viewport_size(PHONE)
            alice.screenshot(path=str(out / f"web-phone-{scheme}.png"))
        browser.close()
        assert server.stdin is not None
        server.stdin.write(b"/shutdown\n")
        server.stdin.close()
        server.wait(timeout=30)
        for terminal in (bob, dana):
            terminal.process.wait(timeout=30)
    print(f"saved web-{{desktop,phone}}-{{light,dark}}.png in {out}")


if __name__ == "__main__":
    main()
