"""The control socket in process (docs/behaviour.md, "The control socket";
docs/protocol.md, "The control protocol"): a ChatServer whose members are on
memory streams, its control socket a real Unix socket that trio clients
speak to; and the socket file's rules (control_socket.py)."""

from __future__ import annotations

import contextlib
import os
import socket
import stat
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio
import trio.testing

from trio_chat.hub import Hub
from trio_chat.server import control
from trio_chat.server.control_socket import ControlSocket, ControlSocketError, clear_stale
from trio_chat.server.core import ChatServer, Limits
from trio_chat.state import ClientProtocol

from .harness import CHANNELS, STAMP, Harness, eventually, settle, srv


class ControlHarness(Harness):
    def __init__(self, server: ChatServer, nursery: trio.Nursery, path: str) -> None:
        super().__init__(server, nursery)
        self.path = path
        self.logged: list[str] = []


@pytest.fixture
async def chat(tmp_path: Path) -> AsyncIterator[ControlHarness]:
    path = str(tmp_path / "c.sock")
    bound = ControlSocket(path)
    hub = Hub(CHANNELS, afk_timeout=100.0)
    printed: list[str] = []
    logged: list[str] = []
    server = ChatServer(hub, Limits(), out=printed.append, log=logged.append, stamp=lambda: STAMP)
    async with trio.open_nursery() as nursery:
        harness = ControlHarness(server, nursery, path)
        harness.printed = printed
        harness.logged = logged
        nursery.start_soon(control.serve_control, server, bound.sock)
        yield harness
        nursery.cancel_scope.cancel()
    bound.remove()


class Ctl:
    """A control connection, speaking the protocol by hand."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.buffer = b""

    async def line(self) -> str | None:
        while b"\n" not in self.buffer:
            chunk = await self.stream.receive_some(65536)
            if not chunk:
                return None
            self.buffer += chunk
        raw, _, self.buffer = self.buffer.partition(b"\n")
        return raw.decode()

    async def answer(self) -> list[str]:
        lines: list[str] = []
        while True:
            line = await self.line()
            assert line is not None, f"closed before the end line, after {lines!r}"
            lines.append(line)
            if line.startswith("end "):
                return lines

    async def ask(self, command: str) -> list[str]:
        await self.stream.send_all(command.encode() + b"\n")
        return await self.answer()


@contextlib.asynccontextmanager
async def ctl(chat: ControlHarness) -> AsyncIterator[Ctl]:
    stream = await trio.open_unix_socket(chat.path)
    async with stream:
        yield Ctl(stream)


async def test_every_answer_is_what_the_console_prints_tagged(chat: ControlHarness) -> None:
    await chat.join("alice")
    await chat.join("bob")
    chat.printed_lines()
    async with ctl(chat) as c:
        assert await c.ask("/who") == [
            "stderr /who: general alice native - node - idle 0s admitted",
            "stderr /who: general bob native - node - idle 0s admitted",
            "end ok",
        ]
        assert await c.ask("/kick general:bob") == [f"stdout {srv('Kicked bob.')}", "end ok"]
        # The server's stdout has it too, and its stderr the console lines.
        assert chat.printed_lines() == [srv("Kicked bob.")]
        assert "/who: general alice native - node - idle 0s admitted" in chat.logged
        assert await c.ask("/mute general:alice 30") == [
            f"stdout {srv('Muted alice for 30 seconds.')}",
            "end ok",
        ]
        assert await c.ask("") == ["end ok"]


async def test_who_names_a_browsers_protocol(chat: ControlHarness) -> None:
    webby = await chat.join("webby", "general", "192.0.2.7", ClientProtocol.BROWSER)
    async with ctl(chat) as c:
        assert await c.ask("/who general") == [
            "stderr /who: general webby web 192.0.2.7 node - idle 0s admitted",
            "end ok",
        ]
    await webby.hang_up()


async def test_failures_are_marked(chat: ControlHarness) -> None:
    async with ctl(chat) as c:
        assert await c.ask("/kick nowhere:bob") == [
            f"stdout {srv('nowhere does not exist.')}",
            "end failed",
        ]
        assert await c.ask("/who nowhere") == [
            "failed /who: there is no channel nowhere",
            "end failed",
        ]
        assert await c.ask("/empty") == ["failed usage: /empty <channel_name>", "end failed"]
        (unknown, end) = await c.ask("/bogus")
        assert unknown.startswith("failed unknown console command '/bogus'; commands: ")
        assert end == "end failed"


async def test_pipelined_commands_are_answered_in_order(chat: ControlHarness) -> None:
    await chat.join("alice")
    async with ctl(chat) as c:
        await c.stream.send_all(b"/who random\n/who general\r\n/who help\n")
        assert await c.answer() == ["stderr /who: nobody is in random", "end ok"]
        assert await c.answer() == [
            "stderr /who: general alice native - node - idle 0s admitted",
            "end ok",
        ]
        assert await c.answer() == ["stderr /who: nobody is in help", "end ok"]


async def test_two_connections_at_once_each_get_their_own_answers(chat: ControlHarness) -> None:
    await chat.join("alice")
    async with ctl(chat) as one, ctl(chat) as two:
        await one.stream.send_all(b"/who random\n")
        await two.stream.send_all(b"/kick general:alice\n")
        assert await two.answer() == [f"stdout {srv('Kicked alice.')}", "end ok"]
        assert await one.answer() == ["stderr /who: nobody is in random", "end ok"]
        assert await one.ask("/who") == ["stderr /who: nobody is in any channel", "end ok"]


async def test_a_client_that_hangs_up_mid_answer_hurts_nobody(chat: ControlHarness) -> None:
    alice = await chat.join("alice")
    gone = await trio.open_unix_socket(chat.path)
    await gone.send_all(b"/who\n" * 5000)
    await gone.aclose()  # before reading any of it
    async with ctl(chat) as c:
        assert await c.ask("/who general") == [
            "stderr /who: general alice native - node - idle 0s admitted",
            "end ok",
        ]
    await eventually(lambda: not chat.server.answers)
    alice.take()
    bob = await chat.join("bob")
    assert bob.take()[-1] == srv("bob has joined the channel.")
    assert alice.take() == [srv("bob has joined the channel.")]


async def test_a_client_that_never_reads_is_dropped_at_the_bound(
    chat: ControlHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Its socket fills; then the first answer it leaves unsent is past the bound.
    monkeypatch.setattr(control, "MAX_UNSENT", 0)
    stuck = await trio.open_unix_socket(chat.path)

    async def flood() -> None:
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            await stuck.send_all(b"/who\n" * 40000)

    async with stuck, trio.open_nursery() as nursery:
        nursery.start_soon(flood)
        await eventually(lambda: any("unread: dropped" in line for line in chat.logged))
        # Meanwhile, and after, other clients are answered.
        async with ctl(chat) as c:
            assert await c.ask("/who") == ["stderr /who: nobody is in any channel", "end ok"]
        nursery.cancel_scope.cancel()


async def test_an_overlong_line_is_refused_and_the_connection_closed(
    chat: ControlHarness,
) -> None:
    async with ctl(chat) as c:
        await c.stream.send_all(b"/who " + b"x" * control.MAX_COMMAND_LINE + b"\n/who\n")
        assert await c.answer() == [
            f"failed a command line is longer than {control.MAX_COMMAND_LINE} bytes",
            "end failed",
        ]
        assert await c.line() is None
    async with ctl(chat) as c:
        # No newline at all: refused as soon as the limit is passed.
        await c.stream.send_all(b"y" * (control.MAX_COMMAND_LINE + 10))
        assert (await c.answer())[-1] == "end failed"


async def test_garbage_is_an_unknown_command_and_the_connection_goes_on(
    chat: ControlHarness,
) -> None:
    async with ctl(chat) as c:
        (unknown, end) = await c.ask("\xff\x00\x1b[2J/who")
        # Control characters never come back raw.
        assert "\x1b" not in unknown and "\x00" not in unknown
        assert unknown.startswith("failed unknown console command") and end == "end failed"
        await c.stream.send_all(b"\xff\xfe\n")
        assert (await c.answer())[-1] == "end failed"
        assert await c.ask("/who") == ["stderr /who: nobody is in any channel", "end ok"]


async def test_a_half_closed_client_gets_its_answers_then_the_end(chat: ControlHarness) -> None:
    async with ctl(chat) as c:
        await c.stream.send_all(b"/who\n/who help\n")
        await c.stream.send_eof()
        assert await c.answer() == ["stderr /who: nobody is in any channel", "end ok"]
        assert await c.answer() == ["stderr /who: nobody is in help", "end ok"]
        assert await c.line() is None


async def test_connections_past_the_limit_are_told_and_closed(chat: ControlHarness) -> None:
    async with contextlib.AsyncExitStack() as stack:
        held = [await stack.enter_async_context(ctl(chat)) for _ in range(control.MAX_CONNECTIONS)]
        assert await held[0].ask("/who") == ["stderr /who: nobody is in any channel", "end ok"]
        async with ctl(chat) as extra:
            assert await extra.answer() == [
                f"failed too many control connections at once (the limit is "
                f"{control.MAX_CONNECTIONS})",
                "end failed",
            ]
            assert await extra.line() is None
        await held[-1].stream.aclose()
        await settle()
        async with ctl(chat) as again:
            assert await again.ask("/who") == ["stderr /who: nobody is in any channel", "end ok"]


async def test_shutdown_is_answered_before_the_server_stops(chat: ControlHarness) -> None:
    await chat.join("alice")
    async with ctl(chat) as c:
        assert await c.ask("/shutdown") == ["end ok"]
    # (Without ChatServer.serve there is no root scope to cancel: the e2e
    # tests see the process end.)
    assert chat.server.stopped.is_set() and chat.server.hub.closed


# ----- the socket file (no trio) -----


def test_the_socket_is_the_owners_only_and_removed_after(tmp_path: Path) -> None:
    path = tmp_path / "c.sock"
    bound = ControlSocket(str(path))
    info = os.stat(path)
    assert stat.S_ISSOCK(info.st_mode) and stat.S_IMODE(info.st_mode) == 0o600
    assert info.st_uid == os.getuid()
    bound.remove()
    assert not path.exists()


def test_a_stale_socket_is_taken_over(tmp_path: Path) -> None:
    path = tmp_path / "c.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as dead:
        dead.bind(str(path))  # bound, never listening: nobody accepts on it
    bound = ControlSocket(str(path))
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.connect(str(path))
    bound.remove()


def test_a_live_socket_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "c.sock"
    first = ControlSocket(str(path))
    with pytest.raises(ControlSocketError, match="another server answers on it"):
        ControlSocket(str(path))
    assert path.exists()
    first.remove()


def test_other_files_are_refused(tmp_path: Path) -> None:
    regular = tmp_path / "file"
    regular.write_text("keep me")
    with pytest.raises(ControlSocketError, match="it exists and is not a socket"):
        clear_stale(str(regular))
    assert regular.read_text() == "keep me"
    with pytest.raises(ControlSocketError, match="it is a directory"):
        clear_stale(str(tmp_path))
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "elsewhere.sock")
    with pytest.raises(ControlSocketError, match="not a socket"):
        clear_stale(str(link))
    with pytest.raises(ControlSocketError, match="cannot open the control socket"):
        ControlSocket(str(tmp_path / "missing" / "c.sock"))
    with pytest.raises(ControlSocketError, match="needs a path"):
        ControlSocket("")  # not a nameless (abstract) socket
    with pytest.raises(ControlSocketError, match="too long"):
        ControlSocket(str(tmp_path / ("x" * 200)))


def test_remove_leaves_a_later_servers_socket(tmp_path: Path) -> None:
    path = tmp_path / "c.sock"
    first = ControlSocket(str(path))
    os.unlink(path)
    second = ControlSocket(str(path))
    first.remove()
    assert path.exists()
    second.remove()
    assert not path.exists()


def test_the_ctl_and_the_servers_start_import_neither_trio_nor_the_control_modules() -> None:
    """trio-chat-ctl starts at once; a server without --control pays nothing for it."""
    probe = (
        "import sys, trio_chat.ctl, trio_chat.server.cli; "
        "print(sorted(m for m in sys.modules if m == 'trio' or 'control' in m))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=30
    )
    assert result.stdout.strip() == "[]"
