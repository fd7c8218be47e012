"""The client at a terminal: in a pseudo-terminal, driven by pexpect against a real
server, and the prompt machinery in process on a pty of its own."""

from __future__ import annotations

import os
import pty
import shlex
import signal
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
from .screen import Screen

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


def on_screen(
    chat: Cluster,
    name: str,
    *options: str,
    channel: str = "general",
    redirect: str = "",
    **env: str,
) -> Screen:
    """A terminal client on a screen that answers as a terminal emulator does
    (screen.py); returned once it has been welcomed to ``channel``.
    ``redirect``: a shell redirection for it (``2>FILE``)."""
    command = shlex.join([CLIENT, str(chat.ports[channel]), name, *options])
    child = pexpect.spawn(
        "/bin/sh",
        ["-c", f"exec {command} {redirect}"],
        cwd=str(chat.workdir),
        env={**os.environ, "TERM": "xterm", **env},
        dimensions=(24, 100),
        encoding="utf-8",
        timeout=TIMEOUT,
    )
    screen = Screen(child)
    screen.expect(f"Welcome to the {channel} channel, {name}.")
    return screen


def joined(chat: Cluster, name: str, *options: str, **env: str) -> Screen:
    """A terminal client (on_screen) admitted to the general channel."""
    screen = on_screen(chat, name, *options, **env)
    chat.server.expect(srv(f"{name} has joined the general channel."))
    screen.expect(f"{name} has joined the channel.")
    return screen


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
        alice = joined(chat, "alice")
        # (joined waited for the join: the history and divider came before.)
        before = alice.find("alice has joined the channel.")
        line = before.index("said before alice came")
        divider = before.index("— earlier messages —")
        welcome = before.index("Welcome to the general channel, alice.")
        assert line < divider < welcome
        # Dim (SGR 2) where the history line starts; the prefix is not shown.
        assert "\x1b[0;2m" in before[:line] or "\x1b[2m" in before[:line], repr(before[:line])
        assert "[History" not in before
        # Its sender is a name Tab knows. (Read from the screen: when Tab
        # completed in a background task, a loaded machine could draw
        # "/whisper b" before the completion and then only "ob", so "bob"
        # never came whole in the bytes written.)
        alice.send("/whisper b\t")
        alice.expect("/whisper bob")
        alice.send(" hi\r")
        chat.server.expect("[alice whispers to bob: (<time>)] hi")
        alice.send("\x04")
        assert alice.wait_exit() == 0
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
        # Screens that answer the cursor-position requests at once, as a
        # terminal does: prompt_toolkit draws no toolbar until it knows, and
        # asks again after each line it prints (a screen that answered only
        # while the test looked at it could miss a whole bar).
        rita = joined(chat, "rita", "--download-dir", str(downloads))
        sam = joined(chat, "sam")
        sam.send("/send rita movie.bin\r")
        sam.expect("movie.bin -> rita [")
        rita.expect("sam: movie.bin [")
        sam.expect("You sent movie.bin to rita.")
        chat.server.expect(srv("sam sent movie.bin to rita."))
        for screen in (sam, rita):
            screen.send("\x04")
            assert screen.wait_exit() == 0
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


# ----- completion, notices and the status bar (issue 27) -----


def test_one_completion_goes_in_at_once_with_a_space_after_it(tmp_path: Path) -> None:
    """Each line typed in one go, as a quick typist does: every Tab has
    completed before the next key, and the word it completed ends in a space.
    ``/whisper `` has one name to offer (bob): the typist's own is not one."""
    with cluster(tmp_path) as chat:
        chat.join("bob")
        alice = joined(chat, "alice")
        alice.send("/wh\t\tpsst\r")
        chat.server.expect("[alice whispers to bob: (<time>)] psst")
        (tmp_path / "report-2026.txt").write_text("numbers")
        alice.send("/se\t\trep\t\r")
        chat.server.expect(srv("alice sent report-2026.txt to bob."))
        alice.send("/sw\tra\t\r")
        chat.server.expect(srv("alice has left the channel."))
        chat.server.expect(srv("alice has joined the random channel."))
        alice.send("\x04")
        assert alice.wait_exit() == 0
        chat.shutdown()


def test_several_completions_open_the_menu_without_your_own_name(tmp_path: Path) -> None:
    with cluster(tmp_path) as chat:
        chat.join("bob")
        chat.join("carol")
        alice = joined(chat, "alice")
        alice.send("/whisper \t")

        def menu(screen: Screen) -> list[str]:
            return [row.strip() for row in screen.rows]

        alice.wait(lambda screen: {"bob", "carol"} <= set(menu(screen)), "bob and carol")
        assert "alice" not in menu(alice)
        alice.send("\t\they\r")  # the menu's first, then its second
        chat.server.expect("[alice whispers to carol: (<time>)] hey")
        alice.send("\x15/send \t")  # (Ctrl-U: a new line)
        alice.wait(lambda screen: {"bob", "carol"} <= set(menu(screen)), "bob and carol")
        assert "alice" not in menu(alice)
        alice.send("\x03")  # Ctrl-C leaves, whatever is typed
        assert alice.wait_exit() == 0
        chat.shutdown()


def test_tab_tab_enter_typed_at_once_takes_the_completion(tmp_path: Path) -> None:
    """The menu of channels (not the one it is in), Tab takes the first, Enter
    sends the line as the Tab left it, even when all three keys come at once."""
    with cluster(tmp_path) as chat:
        alice = joined(chat, "alice")
        alice.send("/switch \t\t\r")
        chat.server.expect(srv("alice has left the channel."))
        chat.server.expect(srv("alice has joined the random channel."))
        alice.expect("Welcome to the random channel, alice.")
        alice.send("\x04")
        assert alice.wait_exit() == 0
        chat.shutdown()


def test_send_to_someone_not_reading_says_so_at_once(tmp_path: Path) -> None:
    (tmp_path / "notes.bin").write_bytes(os.urandom(1 << 20))
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    with cluster(tmp_path) as chat:
        rita = chat.client("rita", "general", "--download-dir", str(downloads))
        chat.server.expect(srv("rita has joined the general channel."))
        rita.expect(srv("Welcome to the general channel, rita."))
        rita.expect(srv("rita has joined the channel."))
        sam = joined(chat, "sam")
        rita.process.send_signal(signal.SIGSTOP)  # rita reads nothing now
        try:
            sam.send("/send rita notes.bin\r")
            sam.expect("— offering notes.bin (1.0 MiB) to rita…")
            sam.expect("notes.bin -> rita: waiting for rita to take it…")
            sam.expect_status("1 transfer 0%")
        finally:
            rita.process.send_signal(signal.SIGCONT)
        sam.expect("You sent notes.bin to rita.")
        chat.server.expect(srv("sam sent notes.bin to rita."))
        sam.wait(lambda screen: "transfer" not in screen.bottom, "no transfer in the status")
        sam.send("\x04")
        assert sam.wait_exit() == 0
        chat.shutdown()
    assert (downloads / "notes.bin").read_bytes() == (tmp_path / "notes.bin").read_bytes()


def test_notices_read_as_part_of_the_chat(tmp_path: Path) -> None:
    """The client's own notes and the server's notices, at a terminal: a dim
    italic line of the chat, without the program's name."""
    with cluster(tmp_path) as chat:
        alice = joined(chat, "alice")
        alice.find("alice has joined the channel.")
        alice.send("/whisper\r")
        alice.expect("— usage: /whisper <username> <message>")
        before = alice.find("— usage: /whisper")
        assert "\x1b[0;2;3m" in before[-20:], repr(before[-20:])  # dim, italic
        chat.server.type("/ban random:alice")
        chat.server.expect(srv("Banned random:alice until unbanned."))
        alice.send("/switch random\r")
        alice.expect("Cannot switch to the random channel.")
        alice.expect("— alice is banned from random")
        assert "trio-chat-client" not in alice.transcript
        alice.send("\x04")
        assert alice.wait_exit() == 0
        chat.shutdown()


def test_notices_keep_the_program_name_when_stderr_is_elsewhere(tmp_path: Path) -> None:
    """At a terminal with stderr to a file, the notes go there as off a terminal."""
    with cluster(tmp_path) as chat:
        notes = tmp_path / "notes.txt"
        alice = on_screen(chat, "alice", redirect=f"2>{shlex.quote(str(notes))}")
        alice.expect("alice has joined the channel.")
        alice.send("/whisper\r")
        alice.send("/quit\r")
        assert alice.wait_exit() == 0
        assert notes.read_text() == "trio-chat-client: usage: /whisper <username> <message>\n"
        assert "usage" not in alice.transcript
        chat.shutdown()


def test_status_bar_shows_the_channel_its_members_and_the_queue(tmp_path: Path) -> None:
    with cluster(tmp_path, capacity=5) as chat:
        alice = joined(chat, "alice")
        alice.expect_status("general · 1/5 members")
        for name in ("bob", "ben", "bea", "bo"):
            chat.join(name)
        alice.expect_status("general · 5/5 members")
        # The capacity came from a /list of the client's own, which it did not show.
        assert "[Channel]" not in alice.transcript
        carol = on_screen(chat, "carol")
        carol.expect_status("general · queued, 0 ahead · 5/5 members")
        dave = on_screen(chat, "dave")
        dave.expect_status("general · queued, 1 ahead")
        alice.send("/quit\r")
        assert alice.wait_exit() == 0
        chat.server.expect(srv("alice has left the channel."))
        chat.server.expect(srv("carol has joined the general channel."))
        carol.expect_status("general · 5/5 members")
        dave.expect_status("general · queued, 0 ahead")
        carol.send("/switch random\r")
        carol.expect_status("random · 1/5 members")
        dave.expect_status("general · 5/5 members")
        carol.send("/list\r")  # what the user asks for is shown
        carol.expect("[Channel] random 1/5/0.")
        for screen in (carol, dave):
            screen.send("\x04")
            assert screen.wait_exit() == 0
        chat.shutdown()
