"""End to end, both programs started with stdin, stdout or stderr closed
(``>&-``): they run as if it were /dev/null, and no socket takes its number
(behaviour.md, "Standard output and standard error")."""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path

import pytest

from .processes import DEADLINE, Program, cluster, srv
from .programs import CLIENT, SERVER, free_ports

STREAMS = {0: "stdin", 1: "stdout", 2: "stderr"}


def with_closed(fd: int, *command: str) -> list[str]:
    """``command`` run by a shell that closes ``fd`` first (its pid is the
    command's: the shell execs it)."""
    return ["sh", "-c", f'exec "$@" {fd}>&-', "sh", *command]


def standard_fds(pid: int) -> dict[int, str]:
    return {fd: os.readlink(f"/proc/{pid}/fd/{fd}") for fd in STREAMS}


def assert_only_closed_one_is_dev_null(pid: int, closed: int) -> None:
    fds = standard_fds(pid)
    assert fds[closed] == "/dev/null", fds
    assert not any(target.startswith("socket:") for target in fds.values()), fds


def wait_accepting(port: int, server: Program) -> bool:
    """Until ``port`` accepts a connection (the server may have no stderr to
    say it listens on); False if the server exited first."""
    deadline = time.monotonic() + DEADLINE
    while server.process.poll() is None:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=DEADLINE).close()
            return True
        except ConnectionRefusedError:
            assert time.monotonic() < deadline, f"{server.name} never listened"
            time.sleep(0.01)  # polling for the listening socket
    return False


def start_server(workdir: Path, closed: int) -> tuple[list[int], Program]:
    for _ in range(10):  # another process may take a port first: try new ones
        ports = free_ports(3)
        (workdir / "configfile").write_text(
            "".join(f"channel c{i} {port} 5\n" for i, port in enumerate(ports))
        )
        server = Program("server", with_closed(closed, SERVER, "configfile"), workdir)
        if all(wait_accepting(port, server) for port in ports):
            return ports, server
        server.wait_exit()
    raise AssertionError("the server did not start in 10 tries")


@pytest.mark.parametrize("closed", list(STREAMS), ids=list(STREAMS.values()))
def test_a_server_started_with_a_standard_stream_closed_serves(tmp_path: Path, closed: int) -> None:
    ports, server = start_server(tmp_path, closed)
    clients: list[Program] = []
    try:
        assert_only_closed_one_is_dev_null(server.process.pid, closed)
        alice = Program("alice", [CLIENT, str(ports[0]), "alice"], tmp_path)
        clients.append(alice)
        alice.expect(srv("Welcome to the c0 channel, alice."))
        alice.expect(srv("alice has joined the channel."))
        bob = Program("bob", [CLIENT, str(ports[0]), "bob"], tmp_path)
        clients.append(bob)
        alice.expect(srv("bob has joined the channel."))
        bob.expect(srv("Welcome to the c0 channel, bob."))
        bob.expect(srv("bob has joined the channel."))
        alice.type("hello bob")
        bob.expect("[alice (<time>)] hello bob")
        server.process.send_signal(signal.SIGTERM)
        assert server.wait_exit() == 0
        assert alice.wait_exit() == 0 and bob.wait_exit() == 0
        if closed == 1:  # what it would have printed went nowhere
            assert server.rest() == []
        else:
            assert server.rest() == [
                srv("alice has joined the c0 channel."),
                srv("bob has joined the c0 channel."),
                "[alice (<time>)] hello bob",
            ]
        if closed == 2:
            assert server.stderr == ""
        else:
            assert "listening on 127.0.0.1" in server.stderr
            assert "Traceback" not in server.stderr
    finally:
        for program in [server, *clients]:
            program.kill()


@pytest.mark.parametrize("closed", list(STREAMS), ids=list(STREAMS.values()))
def test_a_client_started_with_a_standard_stream_closed_chats(tmp_path: Path, closed: int) -> None:
    with cluster(tmp_path) as chat:
        bob = chat.join("bob")
        port = str(chat.ports["general"])
        alice = Program("alice", with_closed(closed, CLIENT, port, "alice"), tmp_path)
        chat.programs.append(alice)
        chat.server.expect(srv("alice has joined the general channel."))
        bob.expect(srv("alice has joined the channel."))
        assert_only_closed_one_is_dev_null(alice.process.pid, closed)
        if closed == 0:  # no input at all: alice only listens
            bob.type("hello alice")
            chat.server.expect("[bob (<time>)] hello alice")
            alice.expect_soon("[bob (<time>)] hello alice")
        else:
            alice.type("hello bob")
            bob.expect("[alice (<time>)] hello bob")
            chat.server.expect("[alice (<time>)] hello bob")
        chat.shutdown()
        assert alice.wait_exit() == 0
        if closed == 1:
            assert alice.rest() == []
        if closed != 2:
            assert "Traceback" not in alice.stderr
