"""A piped client prints the server's first lines before importing trio, then
hands the socket and whatever it read on to the session, losing nothing
(client/greeting.py)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import trio

from trio_chat import wire
from trio_chat.client.greeting import read_greeting
from trio_chat.client.session import ClientConnection
from trio_chat.wire import FrameType, LineKind


def line(text: str, kind: LineKind = LineKind.SERVER, subject: str = "") -> bytes:
    return wire.encode_line(kind, text, subject)


WELCOME = "[Server message (12:00:00)] Welcome to the general channel, alice."
JOINED = "[Server message (12:00:00)] alice has joined the channel."
CHAT = "[bob (12:00:01)] hi alice"
LATER = "[bob (12:00:02)] are you there?"


async def test_lines_before_trio_then_the_rest_in_the_session(
    capfd: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    ours, theirs = socket.socketpair()
    later = wire.encode_line(LineKind.CHAT, LATER, "bob")
    theirs.sendall(
        wire.encode_json(FrameType.CHANNELS, {"channels": ["general"]})
        + line(WELCOME)
        + wire.encode_json(FrameType.ROSTER, {"names": ["bob", "alice"]})
        + line(JOINED, LineKind.JOINED, "alice")
        + wire.encode_line(LineKind.CHAT, CHAT, "bob")
        + later[:7]  # a frame cut in two: its rest comes after the hand-over
    )
    greeting = read_greeting(ours, "alice")
    # Every whole line of that read is printed, in order, and only once.
    assert capfd.readouterr().out == f"{WELCOME}\n{JOINED}\n{CHAT}\n"
    assert [kind for kind, _ in greeting.kept] == [FrameType.CHANNELS, FrameType.ROSTER]
    assert greeting.bye is None and not greeting.closed

    theirs.sendall(later[7:])
    theirs.shutdown(socket.SHUT_WR)
    printed: list[str] = []
    stream = trio.SocketStream(trio.socket.from_stdlib_socket(ours))
    typed_in, typed = trio.open_memory_channel[str](0)
    connection = ClientConnection(
        stream,
        str(tmp_path),
        lines=typed,
        out=lambda text, kind, subject: printed.append(text),
        note=lambda text: None,
        greeting=greeting,
    )
    with trio.fail_after(10):
        status = await connection.run()
    assert printed == [LATER]
    assert status == 0
    theirs.close()
    await typed_in.aclose()


def test_a_refused_name_ends_before_trio(capfd: pytest.CaptureFixture[str]) -> None:
    ours, theirs = socket.socketpair()
    refused = "[Server message (12:00:00)] Cannot connect to the general channel."
    theirs.sendall(line(refused) + wire.encode_bye(1, "the name alice is already in general"))
    greeting = read_greeting(ours, "alice")
    assert capfd.readouterr().out == f"{refused}\n"
    assert greeting.bye == (1, "the name alice is already in general")
    ours.close()
    theirs.close()


def test_a_queued_client_is_settled_by_its_queue_line(capfd: pytest.CaptureFixture[str]) -> None:
    ours, theirs = socket.socketpair()
    queued = (
        "[Server message (12:00:00)] You are in the waiting queue and there are "
        "2 user(s) ahead of you."
    )
    theirs.sendall(line(WELCOME) + line(queued, LineKind.QUEUED))
    greeting = read_greeting(ours, "alice")  # returns at once: no waiting for more
    assert capfd.readouterr().out == f"{WELCOME}\n{queued}\n"
    assert not greeting.closed
    ours.close()
    theirs.close()
