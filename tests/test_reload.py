"""A reload in process (server/reload.py, server/ports.py): real loopback
sockets, the server's own reload; what it says; sd_notify's datagrams."""

from __future__ import annotations

import argparse
import contextlib
import socket
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path

import pytest
import trio

from trio_chat import wire
from trio_chat.config import ChannelConfig, load_config
from trio_chat.hub import Hub
from trio_chat.server import notify
from trio_chat.server.cli import parse_arguments
from trio_chat.server.core import ChatServer
from trio_chat.server.reload import describe, reload
from trio_chat.server.run import socket_listeners
from trio_chat.server.sockets import bind_channels

from .harness import Peer, settle
from .programs import free_ports

DEADLINE = 10.0


def test_describe_says_each_change_in_the_new_order() -> None:
    before = [ChannelConfig("a", 1, 5), ChannelConfig("b", 2, 5), ChannelConfig("c", 3, 5)]
    after = [ChannelConfig("d", 4, 5), ChannelConfig("b", 9, 7), ChannelConfig("a", 1, 5)]
    assert describe(before, after) == (
        "added d (port 4); moved b from port 2 to 9; b's capacity 5 -> 7; removed c"
    )
    assert describe(before, before) == "no change"
    assert describe(before, before[::-1]) == "the channels' order"
    assert describe(before, before, tls=True) == "the TLS certificate read again"


def test_the_notifier_sends_each_state_as_one_datagram(tmp_path: Path) -> None:
    path = str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as manager:
        manager.bind(path)
        notifier = notify.Notifier(path, log=pytest.fail)
        notifier.ready("serving 3 channels")
        assert manager.recv(4096) == b"READY=1\nSTATUS=serving 3 channels"
        notifier.reloading()
        fields = manager.recv(4096).decode().split("\n")
        assert fields[0] == "RELOADING=1" and fields[1].startswith("MONOTONIC_USEC=")
        assert int(fields[1].partition("=")[2]) > 0
        notifier.stopping()
        assert manager.recv(4096).startswith(b"STOPPING=1\n")


def test_an_abstract_socket_and_a_missing_manager(monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"trio-chat-notify-test-{id(monkeypatch)}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as manager:
        manager.bind("\0" + name)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        notifier = notify.from_environment(log=pytest.fail)
        assert notifier is not None
        notifier.stopping()
        assert manager.recv(4096).startswith(b"STOPPING=1")
    # Gone: said once, never raised.
    said: list[str] = []
    gone = notify.Notifier("@" + name, said.append)
    gone.ready("x")
    gone.ready("x")
    assert len(said) == 1 and "cannot notify the service manager" in said[0]
    for unusable in ("", "relative/path", "@"):
        monkeypatch.setenv("NOTIFY_SOCKET", unusable)
        assert notify.from_environment(log=pytest.fail) is None


def write(path: Path, channels: dict[str, tuple[int, int]]) -> None:
    path.write_text(
        "".join(f"channel {name} {port} {cap}\n" for name, (port, cap) in channels.items())
    )


@contextlib.asynccontextmanager
async def serving(
    configfile: Path, logged: list[str], printed: list[str]
) -> AsyncIterator[ChatServer]:
    arguments: argparse.Namespace = parse_arguments([str(configfile), "--host", "127.0.0.1"])
    channels = load_config(str(configfile))
    server = ChatServer(Hub(channels), out=printed.append, log=logged.append)
    server.listen_host = "127.0.0.1"
    server.reloader = partial(reload, server, arguments, None)
    sockets = bind_channels(channels, "127.0.0.1")
    async with trio.open_nursery() as nursery:
        await nursery.start(
            partial(
                server.serve,
                socket_listeners(sockets, server.backlog),
                console_fd=None,
                handle_signals=False,
            )
        )
        yield server
        server.stop()


async def connect(name: str, port: int, nursery: trio.Nursery) -> Peer:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    peer = Peer(name, stream)
    nursery.start_soon(peer.read_loop)
    await stream.send_all(wire.encode_hello(name))
    return peer


async def refused(port: int) -> bool:
    try:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
    except OSError:
        return True
    await stream.aclose()
    return False


async def test_ports_swap_and_move_and_connections_outlive_their_port(tmp_path: Path) -> None:
    one, two, three, four = free_ports(4)
    configfile = tmp_path / "configfile"
    write(configfile, {"a": (one, 5), "b": (two, 5), "c": (three, 5)})
    logged: list[str] = []
    printed: list[str] = []
    with trio.fail_after(DEADLINE):
        async with serving(configfile, logged, printed) as server, trio.open_nursery() as peers:
            bea = await connect("bea", two, peers)
            assert (await bea.next_line()).endswith("Welcome to the b channel, bea.")
            # a and b swap ports; c moves to a new one.
            write(configfile, {"a": (two, 5), "b": (one, 5), "c": (four, 5)})
            server.console_line("/reload")
            assert logged[-1] == (
                f"reloaded {configfile}: moved a from port {one} to {two}; "
                f"moved b from port {two} to {one}; moved c from port {three} to {four}"
            )
            assert await refused(three)
            # bea, connected through the port that is a's now, is still in b.
            ben = await connect("ben", one, peers)
            await ben.next_line()  # its welcome to b
            await bea.say("hello")
            while not any(line.endswith("hello") for line in ben.lines):
                await ben.next_line()
            amy = await connect("amy", two, peers)
            assert (await amy.next_line()).endswith("Welcome to the a channel, amy.")
            cid = await connect("cid", four, peers)
            assert (await cid.next_line()).endswith("Welcome to the c channel, cid.")
            assert not bea.closed and bea.bye is None
            peers.cancel_scope.cancel()
        await settle()


async def test_a_refused_reload_binds_and_changes_nothing(tmp_path: Path) -> None:
    one, two, three, four = free_ports(4)
    configfile = tmp_path / "configfile"
    write(configfile, {"a": (one, 5), "b": (two, 5), "c": (three, 5)})
    logged: list[str] = []
    answers: list[tuple[str, bool]] = []
    with trio.fail_after(DEADLINE):
        async with serving(configfile, logged, []) as server:
            with socket.socket() as taken:
                taken.bind(("127.0.0.1", 0))
                taken.listen()
                busy = taken.getsockname()[1]
                write(configfile, {"a": (one, 5), "d": (four, 5), "e": (busy, 5)})
                server.reload(lambda text, failed: answers.append((text, failed)))
            (text, failed), *_ = answers
            assert failed and text.startswith("reload refused, nothing changed: cannot listen")
            assert await refused(four)
            assert list(server.hub.channels) == ["a", "b", "c"]
            assert not await refused(two)
            configfile.write_text("nonsense\n")
            server.reload(lambda text, failed: answers.append((text, failed)))
            assert answers[-1] == (
                f"reload refused, nothing changed: {configfile}:1: expected 'channel', "
                "found 'nonsense'",
                True,
            )
            assert list(server.hub.channels) == ["a", "b", "c"]


async def test_a_sighup_during_the_start_reloads_once_the_ports_are_served() -> None:
    """Before the signal watcher runs, SIGHUP's default would kill the
    server: it is recorded (early_signals), and the reload happens as soon
    as the channels' ports are served."""
    import os
    import signal

    from trio_chat.server import early_signals

    kept = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        early_signals.install()
        os.kill(os.getpid(), signal.SIGHUP)  # (its handler runs before kill returns)
        hub = Hub([ChannelConfig("a", 41001, 5), ChannelConfig("b", 41002, 5)])
        server = ChatServer(hub, out=lambda text: None, log=lambda text: None)
        asked: list[bool] = []
        server.reloader = lambda answer: asked.append(server.ports is not None)
        async with trio.open_nursery() as nursery:
            await nursery.start(partial(server.serve, {}, console_fd=None))
            assert asked == [True]
            assert not early_signals.reload_requested()  # done once, then forgotten
            server.stop()
    finally:
        for signum, handler in kept.items():
            signal.signal(signum, handler)
