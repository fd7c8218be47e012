"""Binding the server's ports (server/sockets.py): all of them or none, and the
line on stderr that says they are bound."""

from __future__ import annotations

import argparse
import socket
from collections.abc import Iterator

import pytest

from trio_chat.config import ChannelConfig
from trio_chat.server import sockets


@pytest.fixture
def made(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[socket.socket]]:
    """Every socket the module makes, closed at the end of the test whatever happened."""
    created: list[socket.socket] = []
    listen = sockets._listen

    def recorded(
        family: int, kind: int, proto: int, address: tuple[object, ...], reuse_port: bool
    ) -> socket.socket:
        sock = listen(family, kind, proto, address, reuse_port)
        created.append(sock)
        return sock

    monkeypatch.setattr(sockets, "_listen", recorded)
    yield created
    for sock in created:
        sock.close()


def test_bind_all_listens_on_every_channel_and_the_web_page(made: list[socket.socket]) -> None:
    # Port 0: the kernel picks, so nothing here can collide with another process.
    channels = [ChannelConfig("a", 0, 5), ChannelConfig("b", 0, 5)]
    bound = sockets.bind_all(channels, "127.0.0.1", ("127.0.0.1", 0))
    assert set(bound.channels) == {"a", "b"}
    assert bound.web is not None
    for sock in [bound.web, *bound.channels["a"], *bound.channels["b"]]:
        socket.create_connection(sock.getsockname()[:2], timeout=5).close()


def test_bind_all_binds_nothing_when_a_channel_port_is_taken(made: list[socket.socket]) -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        busy = blocker.getsockname()[1]
        channels = [ChannelConfig("a", 0, 5), ChannelConfig("b", busy, 5)]
        with pytest.raises(OSError, match=f"cannot listen for channel b on 127.0.0.1:{busy}: "):
            sockets.bind_all(channels, "127.0.0.1", ("127.0.0.1", 0))
    assert len(made) == 2  # the web page's and channel a's
    assert all(sock.fileno() == -1 for sock in made)


def test_bind_all_names_the_web_page_when_its_port_is_taken(made: list[socket.socket]) -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        busy = blocker.getsockname()[1]
        with pytest.raises(OSError, match=f"cannot listen for the web page on 127.0.0.1:{busy}: "):
            sockets.bind_all([ChannelConfig("a", 0, 5)], "127.0.0.1", ("127.0.0.1", busy))
    assert made == []


@pytest.mark.parametrize(
    ("web", "tls", "who", "expected"),
    [
        (None, False, "", "trio-chat-server: listening on 0.0.0.0: a 4000, b 4001\n"),
        (
            ("::1", 8080),
            True,
            "node 2, ",
            "trio-chat-server: node 2, listening (TLS) on 0.0.0.0: a 4000, b 4001; "
            "web page on http://[::1]:8080/\n",
        ),
        (
            ("127.0.0.1", 8080),
            False,
            "",
            "trio-chat-server: listening on 0.0.0.0: a 4000, b 4001; "
            "web page on http://127.0.0.1:8080/\n",
        ),
    ],
    ids=["plain", "node-tls-ipv6-web", "web"],
)
def test_announce_listening(
    web: tuple[str, int] | None,
    tls: bool,
    who: str,
    expected: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    channels = [ChannelConfig("a", 4000, 5), ChannelConfig("b", 4001, 5)]
    sockets.announce_listening(channels, "0.0.0.0", web, tls, who)
    assert capsys.readouterr() == ("", expected)


def test_bind_and_announce_says_so_only_once_bound(
    made: list[socket.socket], capsys: pytest.CaptureFixture[str]
) -> None:
    arguments = argparse.Namespace(host="127.0.0.1", web=None, reuse_port=False)
    bound = sockets.bind_and_announce([ChannelConfig("a", 0, 5)], arguments, tls=False)
    assert len(bound.channels["a"]) == 1
    assert capsys.readouterr().err == "trio-chat-server: listening on 127.0.0.1: a 0\n"
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        busy = blocker.getsockname()[1]
        with pytest.raises(OSError):
            sockets.bind_and_announce([ChannelConfig("a", busy, 5)], arguments, tls=False)
    assert capsys.readouterr().err == ""
