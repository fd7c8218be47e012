"""The client at a terminal: in a pseudo-terminal, driven by pexpect against a real
server, and the prompt machinery in process on a pty of its own."""

from __future__ import annotations

import os
import pty
import termios
import threading
from pathlib import Path

import pexpect
import pytest
import trio
from prompt_toolkit.formatted_text import FormattedText

from trio_chat.client.terminal import TerminalUI
from trio_chat.wire import LineKind

from .processes import Cluster, cluster, srv
from .programs import CLIENT

TIMEOUT = 15


def terminal_client(chat: Cluster, name: str, **env: str) -> pexpect.spawn:
    child = pexpect.spawn(
        CLIENT,
        [str(chat.ports["general"]), name],
        cwd=str(chat.workdir),
        env={**os.environ, "TERM": "xterm", **env},
        dimensions=(24, 100),
        encoding="utf-8",
        timeout=TIMEOUT,
    )
    chat.server.expect(srv(f"{name} has joined the general channel."))
    child.expect_exact(f"{name} has joined the channel.")
    return child


def expect_on_screen(child: pexpect.spawn, text: str) -> None:
    """Wait for ``text``, answering prompt_toolkit's cursor-position requests as a
    real terminal would (it shows the bottom toolbar only once it knows)."""
    while child.expect_exact([text, "\x1b[6n"]) == 1:
        child.send("\x1b[1;1R")


def test_typing_survives_incoming_lines(tmp_path: Path) -> None:
    with cluster(tmp_path) as chat:
        alice = terminal_client(chat, "alice")
        alice.send("typing in progre")
        alice.expect_exact("typing in progre")
        bob = chat.join("bob")
        bob.type("interrupting you")
        alice.expect_exact("interrupting you")
        alice.send("ss\r")
        chat.server.expect("[bob (<time>)] interrupting you")
        chat.server.expect("[alice (<time>)] typing in progress")
        bob.expect("[bob (<time>)] interrupting you")
        bob.expect("[alice (<time>)] typing in progress")
        alice.sendcontrol("d")  # Ctrl-D leaves as /quit does
        alice.expect(pexpect.EOF)
        alice.close()
        assert alice.exitstatus == 0
        chat.server.expect(srv("alice has left the channel."))
        chat.shutdown()


def test_tab_completes_commands_channels_and_names(tmp_path: Path) -> None:
    with cluster(tmp_path) as chat:
        chat.join("bob")
        alice = terminal_client(chat, "alice")
        alice.send("/wh\t")
        alice.expect_exact("/whisper")
        alice.send(" b\t")
        alice.expect_exact("bob")
        alice.send(" psst\r")
        chat.server.expect("[alice whispers to bob: (<time>)] psst")
        (tmp_path / "report-2026.txt").write_text("numbers")
        alice.send("/send bob rep\t")
        alice.expect_exact("report-2026.txt")
        alice.send("\r")
        chat.server.expect(srv("alice sent report-2026.txt to bob."))
        alice.send("/sw\t")
        alice.expect_exact("/switch")
        alice.send(" ra\t")
        alice.expect_exact("random")
        alice.send("\r")
        chat.server.expect(srv("alice has left the channel."))
        chat.server.expect(srv("alice has joined the random channel."))
        alice.sendcontrol("c")  # Ctrl-C leaves too
        alice.expect(pexpect.EOF)
        alice.close()
        assert alice.exitstatus == 0
        chat.server.expect(srv("alice has left the channel."))
        chat.shutdown()


def test_help_is_local_and_no_color_is_respected(tmp_path: Path) -> None:
    with cluster(tmp_path) as chat:
        alice = terminal_client(chat, "alice", NO_COLOR="1")
        alice.send("/help\r")
        alice.expect_exact("/switch CHANNEL")
        alice.send("plain\r")
        alice.expect_exact("[alice (")
        chat.server.expect("[alice (<time>)] plain")  # /help never reached the server
        assert "\x1b[3" not in (alice.before or "")
        alice.sendcontrol("d")
        alice.expect(pexpect.EOF)
        chat.shutdown()


def test_history_is_dimmed_above_the_divider(tmp_path: Path) -> None:
    with cluster(tmp_path, server_options=("--history", "10")) as chat:
        bob = chat.join("bob")
        bob.type("said before alice came")
        chat.server.expect("[bob (<time>)] said before alice came")
        alice = terminal_client(chat, "alice")
        # (terminal_client waited for the join: the history and divider came before.)
        before = alice.before or ""
        line = before.index("said before alice came")
        divider = before.index("— earlier messages —")
        welcome = before.index("Welcome to the general channel, alice.")
        assert line < divider < welcome
        # Dim (SGR 2) where the history line starts; the prefix is not shown.
        assert "\x1b[0;2m" in before[:line] or "\x1b[2m" in before[:line], repr(before[:line])
        assert "[History" not in before
        # Its sender is a name Tab knows.
        alice.send("/whisper b\t")
        alice.expect_exact("bob")
        alice.send(" hi\r")
        chat.server.expect("[alice whispers to bob: (<time>)] hi")
        alice.sendcontrol("d")
        alice.expect(pexpect.EOF)
        chat.shutdown()


@pytest.mark.parametrize("name", ["bob"])
def test_kicked_terminal_client_exits_and_restores(tmp_path: Path, name: str) -> None:
    with cluster(tmp_path) as chat:
        client = terminal_client(chat, name)
        chat.server.type(f"/kick general:{name}")
        chat.server.expect(srv(f"Kicked {name}."))
        client.expect(pexpect.EOF)
        client.close()
        assert client.exitstatus == 0
        chat.shutdown()


def test_send_shows_progress_on_both_terminals(tmp_path: Path) -> None:
    payload = tmp_path / "movie.bin"
    with payload.open("wb") as file:
        for _ in range(64):
            file.write(os.urandom(1 << 20))
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    with cluster(tmp_path) as chat:
        rita = pexpect.spawn(
            CLIENT,
            [str(chat.ports["general"]), "rita", "--download-dir", str(downloads)],
            cwd=str(tmp_path),
            env={**os.environ, "TERM": "xterm"},
            dimensions=(24, 120),
            encoding="utf-8",
            timeout=TIMEOUT,
        )
        chat.server.expect(srv("rita has joined the general channel."))
        sam = terminal_client(chat, "sam")
        for child in (rita, sam):  # let both renderers learn their height first
            child.expect_exact("\x1b[6n")
            child.send("\x1b[1;1R")
        sam.send("/send rita movie.bin\r")
        expect_on_screen(sam, "movie.bin -> rita [")
        expect_on_screen(rita, "sam: movie.bin [")
        expect_on_screen(sam, "You sent movie.bin to rita.")
        chat.server.expect(srv("sam sent movie.bin to rita."))
        for child in (sam, rita):
            child.sendcontrol("d")
            child.expect(pexpect.EOF)
        chat.shutdown()
    assert (downloads / "movie.bin").read_bytes() == payload.read_bytes()


def test_piped_output_is_plain_bytes(tmp_path: Path) -> None:
    """Off a terminal: exactly the contract lines, no colour, no prompt."""
    with cluster(tmp_path) as chat:
        alice = chat.join("alice")
        alice.type("/help", "/list")
        alice.expect("[alice (<time>)] /help")  # /help is chat when piped
        for listing in ("general 1/5/0", "random 0/5/0", "help 0/5/0"):
            # Before the shutdown, which closes connections without flushing them.
            alice.expect(f"[Channel] {listing}.")
        chat.shutdown()
        assert alice.process.stdout is not None
    raw = b"\n".join(line.encode() for line in alice.lines) + b"\n"
    assert b"\x1b" not in raw and b"> " not in raw
    assert alice.lines == [
        srv("Welcome to the general channel, alice."),
        srv("alice has joined the channel."),
        "[alice (<time>)] /help",
        "[Channel] general 1/5/0.",
        "[Channel] random 0/5/0.",
        "[Channel] help 0/5/0.",
    ]


class CtrlDWhilePrinting(TerminalUI):
    """Types Ctrl-D at the exact moment an incoming line is being printed above
    the prompt, and records whether the terminal was in canonical (cooked) mode
    then: in cooked mode the tty turns that Ctrl-D into an end of file nobody
    reads, and the client never leaves."""

    def __init__(self, master: int, slave: int) -> None:
        super().__init__("alice", stdin=os.fdopen(slave, "r"), stdout=os.fdopen(os.dup(slave), "w"))
        self.master = master
        self.slave = slave
        self.canonical_while_printing: list[bool] = []

    def _render(self, texts: list[FormattedText]) -> None:
        if self.session.app.is_running and not self.canonical_while_printing:
            self.canonical_while_printing.append(
                bool(termios.tcgetattr(self.slave)[3] & termios.ICANON)
            )
            os.write(self.master, b"\x04")
        super()._render(texts)


async def test_ctrl_d_typed_while_a_line_prints_still_quits() -> None:
    master, slave = pty.openpty()
    screen: list[bytes] = []

    def drain() -> None:  # the terminal emulator: read everything, answer nothing
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:
                return
            if not data:
                return
            screen.append(data)

    threading.Thread(target=drain, daemon=True).start()
    ui = CtrlDWhilePrinting(master, slave)
    await ui.start()
    typed: list[str] = []
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:

            async def read_typed() -> None:
                async for line in ui.lines():
                    typed.append(line)
                    if line == "/quit":
                        return

            nursery.start_soon(read_typed)
            while not ui.session.app.is_running:  # the prompt is up
                await trio.sleep(0.01)
            ui.print_line("[bob (12:00:00)] hello", LineKind.CHAT)
        await ui.aclose()
    os.close(master)
    assert ui.canonical_while_printing == [False]
    assert typed == ["/quit"]
    assert b"hello" in b"".join(screen)
