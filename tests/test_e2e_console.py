"""End to end: the server console, AFK and signals (behaviour.md, "The server
console", "Inactivity (AFK)")."""

from __future__ import annotations

import signal
import socket
from pathlib import Path

import pytest

from .processes import cluster, srv


def test_kick_outcomes(tmp_path: Path, nodes: int | None) -> None:
    with cluster(tmp_path, nodes=nodes) as chat:
        alice = chat.join("alice")
        bob = chat.join("bob")
        chat.server.type("/kick nowhere:bob", "/kick general:nobody", "/kick general:bob")
        chat.server.expect(srv("nowhere does not exist."))
        chat.server.expect(srv("nobody is not in general."))
        chat.server.expect(srv("Kicked bob."))
        assert bob.wait_exit() == 0
        assert bob.rest() == []
        alice.expect(srv("bob has joined the channel."))
        alice.expect(srv("bob has left the channel."))
        chat.shutdown()


def test_mute_outcomes(tmp_path: Path, nodes: int | None) -> None:
    with cluster(tmp_path, nodes=nodes) as chat:
        alice = chat.join("alice")
        bob = chat.join("bob")
        alice.expect(srv("bob has joined the channel."))
        chat.server.type(
            "/mute general:bob 0",
            "/mute general:bob -3",
            "/mute general:bob soon",
            "/mute general:bob",
            "/mute nowhere:bob 10",
            "/mute general:nobody 10",
            "/mute general:bob 30",
        )
        for _ in range(4):
            chat.server.expect(srv("Invalid mute time."))
        chat.server.expect(srv("bob is not here."))
        chat.server.expect(srv("nobody is not here."))
        chat.server.expect(srv("Muted bob for 30 seconds."))
        bob.expect(srv("You have been muted for 30 seconds."))
        alice.expect(srv("bob has been muted for 30 seconds."))
        bob.type("let me speak", "/whisper alice please", "/list")
        bob.expect(srv("You are still muted for 29 seconds."))
        bob.expect(srv("You are still muted for 29 seconds."))
        bob.expect("[Channel] general 2/5/0.")
        chat.shutdown()
        assert alice.rest() == []
        assert chat.server.rest() == []


def test_empty_only_that_channel(tmp_path: Path, nodes: int | None) -> None:
    with cluster(tmp_path, nodes=nodes) as chat:
        members = [chat.join(f"u{i}") for i in range(5)]
        queued = chat.client("q0")
        queued.expect(srv("Welcome to the general channel, q0."))
        queued.next_line()
        bystander = chat.join("other", "random")
        chat.server.type("/empty nowhere", "/empty general")
        chat.server.expect(srv("nowhere does not exist."))
        chat.server.expect(srv("general has been emptied."))
        chat.server.expect(srv("q0 has joined the general channel."))
        for member in members:
            assert member.wait_exit() == 0
        queued.expect(srv("q0 has joined the channel."))
        bystander.type("still here")
        bystander.expect("[other (<time>)] still here")
        chat.shutdown()


def test_shutdown_exits_everyone_and_frees_ports(tmp_path: Path, nodes: int | None) -> None:
    with cluster(tmp_path, nodes=nodes) as chat:
        members = [chat.join(f"u{i}") for i in range(5)]
        queued = chat.client("q0")
        queued.expect(srv("Welcome to the general channel, q0."))
        other = chat.join("h", "help")
        chat.server.type("/shutdown")
        assert chat.server.wait_exit() == 0
        for program in [*members, queued, other]:
            assert program.wait_exit() == 0
        hosts = ["127.0.0.1"] if nodes is None else chat.hosts
        for host in hosts:
            for port in chat.ports.values():
                probe = socket.socket()
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                probe.bind((host, port))
                probe.close()
        assert chat.server.rest() == []


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signals_shut_down_cleanly(tmp_path: Path, signum: int) -> None:
    with cluster(tmp_path) as chat:
        alice = chat.join("alice")
        chat.server.process.send_signal(signum)
        assert chat.server.wait_exit() == 0
        assert alice.wait_exit() == 0


def test_afk_with_short_timeout(tmp_path: Path, nodes: int | None) -> None:
    with cluster(tmp_path, nodes=nodes, server_options=("--afk-timeout", "1")) as chat:
        idle = chat.join("idle")
        watcher = chat.join("watcher")  # joined later, so it idles out later
        chat.server.expect(srv("idle went AFK."), deadline=10)
        watcher.expect(srv("idle went AFK."), deadline=10)
        assert idle.wait_exit() == 0
        assert idle.rest() == [srv("watcher has joined the channel.")]
        chat.server.expect(srv("watcher went AFK."), deadline=10)
        assert watcher.wait_exit() == 0
        chat.shutdown()


def test_server_console_eof_keeps_serving(tmp_path: Path) -> None:
    with cluster(tmp_path) as chat:
        chat.server.close_stdin()
        alice = chat.join("alice")
        alice.type("/quit")
        assert alice.wait_exit() == 0
        chat.server.expect(srv("alice has left the channel."))
        chat.server.process.send_signal(signal.SIGTERM)
        assert chat.server.wait_exit() == 0
