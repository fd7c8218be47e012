"""End to end, the installed programs under faults: repeated signals, a stdout
nobody reads, signals to clients in the middle of a transfer, a server that
dies (docs/security.md, "Faults"; behaviour.md, "The client's life")."""

from __future__ import annotations

import json
import os
import resource
import signal
import socket
import subprocess
import time
from pathlib import Path

import pexpect
import pytest

from trio_chat import wire
from trio_chat.client.transfers import ACK_EVERY
from trio_chat.wire import FrameType, SendState

from .peers import RawPeer
from .processes import DEADLINE, Program, cluster, srv
from .programs import CLIENT, SERVER, free_ports


@pytest.mark.parametrize(
    "signals",
    [
        (signal.SIGTERM, signal.SIGTERM),
        (signal.SIGINT, signal.SIGINT),
        (signal.SIGINT, signal.SIGTERM),
    ],
    ids=["TERM+TERM", "INT+INT", "INT+TERM"],
)
def test_repeated_signals_end_in_a_clean_exit(
    tmp_path: Path, signals: tuple[signal.Signals, signal.Signals]
) -> None:
    with cluster(tmp_path, server_options=("--max-per-address", "0")) as chat:
        peers = [RawPeer(chat.ports["general"], f"u{i}") for i in range(200)]
        for _ in range(5):  # the channel is full; the rest wait in its queue
            assert chat.server.next_line().endswith("has joined the general channel.")
        first, second = signals
        chat.server.process.send_signal(first)
        time.sleep(0.002)  # the second signal lands while the first one is handled
        chat.server.process.send_signal(second)
        assert chat.server.wait_exit() == 0
        assert "Traceback" not in chat.server.stderr
        assert "Error" not in chat.server.stderr
        for peer in peers:
            peer.close()


def test_a_stdout_nobody_reads_never_stops_the_chat(tmp_path: Path) -> None:
    ports = free_ports(3)
    (tmp_path / "configfile").write_text(
        "".join(f"channel c{i} {port} 5\n" for i, port in enumerate(ports))
    )
    errors = (tmp_path / "server.err").open("wb")
    server = subprocess.Popen(
        [SERVER, "configfile", "--flood-rate", "0"],  # alice types 12,000 lines at once
        cwd=tmp_path,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,  # never read: it fills after 64 KiB
        stderr=errors,
    )
    try:
        deadline = time.monotonic() + DEADLINE
        while b"listening on" not in (tmp_path / "server.err").read_bytes():
            assert time.monotonic() < deadline and server.poll() is None
            time.sleep(0.01)  # polling for the server's ready line
        alice = Program("alice", [CLIENT, str(ports[0]), "alice"], tmp_path)
        alice.expect(srv("Welcome to the c0 channel, alice."))
        alice.expect(srv("alice has joined the channel."))
        bob = Program("bob", [CLIENT, str(ports[0]), "bob"], tmp_path)
        alice.expect(srv("bob has joined the channel."))
        bob.expect(srv("Welcome to the c0 channel, bob."))
        bob.expect(srv("bob has joined the channel."))
        lines = [f"line {i} " + "x" * 60 for i in range(12_000)]  # far past the pipe
        alice.type(*lines)
        for line in lines:
            bob.expect(f"[alice (<time>)] {line}")
        server.send_signal(signal.SIGTERM)
        assert server.wait(DEADLINE) == 0
        assert alice.wait_exit() == 0 and bob.wait_exit() == 0
        assert b"stdout line(s) dropped" in (tmp_path / "server.err").read_bytes()
    finally:
        server.kill()
        server.wait()
        errors.close()


def offer_to(sender: RawPeer, target: str, size: int) -> int:
    fields = {"ref": 1, "target": target, "path": "big.bin", "name": "big.bin", "size": size}
    sender.send(wire.encode_json(FrameType.SEND_OFFER, {**fields, "readable": True}))
    state = sender.next_frame(FrameType.SEND_STATE)
    assert state[4] == SendState.GO
    return int(wire.ID.unpack(state[5:9])[0])


def partials(directory: Path) -> list[str]:
    return [p.name for p in directory.iterdir() if p.name.startswith(".trio-chat-")]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_a_piped_receiver_stopped_by_a_signal_leaves_no_partial_file(
    tmp_path: Path, signum: signal.Signals
) -> None:
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    with cluster(tmp_path) as chat:
        bob = chat.client("bob", "general", "--download-dir", str(downloads))
        chat.server.expect(srv("bob has joined the general channel."))
        sender = RawPeer(chat.ports["general"], "sam")
        chat.server.expect(srv("sam has joined the general channel."))
        ident = offer_to(sender, "bob", 10 * wire.CHUNK_SIZE)
        # The client acknowledges a quarter window at a time: once it has, that
        # much is on disk.
        for _ in range(ACK_EVERY // wire.CHUNK_SIZE):
            sender.send(wire.encode_with_id(FrameType.FILE_DATA, ident, b"\1" * wire.CHUNK_SIZE))
        sender.next_frame(FrameType.FILE_ACK)
        assert len(partials(downloads)) == 1
        bob.process.send_signal(signum)
        assert bob.wait_exit() == 128 + signum
        assert partials(downloads) == []
        aborted = sender.next_frame(FrameType.SEND_STATE)
        assert aborted[4] == SendState.ABORTED
        sender.close()
        chat.shutdown()
        assert chat.server.rest() == []  # bob's going was silent


def client_under(shell: pexpect.spawn) -> int:
    """The pid of the client the shell runs (its only child)."""
    deadline = time.monotonic() + DEADLINE
    while True:
        children = Path(f"/proc/{shell.pid}/task/{shell.pid}/children").read_text().split()
        if children:
            return int(children[0])
        assert time.monotonic() < deadline
        time.sleep(0.01)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_a_terminal_client_stopped_by_a_signal_leaves_as_quit_and_restores_the_terminal(
    tmp_path: Path, signum: signal.Signals
) -> None:
    with cluster(tmp_path) as chat:
        shell = pexpect.spawn(
            "sh",
            ["-c", f"{CLIENT} {chat.ports['general']} alice; echo STATUS=$?; stty -a"],
            cwd=str(tmp_path),
            env={**os.environ, "TERM": "xterm"},
            dimensions=(24, 100),
            encoding="utf-8",
            timeout=DEADLINE,
        )
        chat.server.expect(srv("alice has joined the general channel."))
        shell.expect_exact("alice has joined the channel.")
        os.kill(client_under(shell), signum)
        chat.server.expect(srv("alice has left the channel."))
        shell.expect(r"STATUS=(\d+)")
        assert shell.match.group(1) == "0"
        shell.expect(pexpect.EOF)
        settings = shell.before.split()
        assert "icanon" in settings and "echo" in settings  # cooked again
        chat.shutdown()


def test_a_sender_whose_server_dies_mid_transfer_says_so_once(tmp_path: Path) -> None:
    (tmp_path / "big.bin").write_bytes(b"\0" * (8 * wire.SEND_WINDOW))
    with cluster(tmp_path) as chat:
        receiver = RawPeer(chat.ports["general"], "bob")  # takes data, never acknowledges
        chat.server.expect(srv("bob has joined the general channel."))
        alice = chat.join("alice")
        alice.type("/send bob big.bin")
        json.loads(receiver.next_frame(FrameType.FILE_INCOMING))
        receiver.next_frame(FrameType.FILE_DATA)
        chat.server.process.kill()
        assert alice.wait_exit() == 0
        assert "Traceback" not in alice.stderr and "Error" not in alice.stderr
        assert alice.stderr.count("the server closed the connection") == 1
        assert "big.bin was not delivered to bob" in alice.stderr
        receiver.close()


def test_clients_are_told_on_stderr_when_the_server_shuts_down(tmp_path: Path) -> None:
    with cluster(tmp_path) as chat:
        alice = chat.join("alice")
        chat.shutdown()
        assert alice.rest() == []
        assert "the server closed the connection" in alice.stderr


def test_a_thousand_channels_under_the_common_open_file_limit(tmp_path: Path) -> None:
    def common_limit() -> None:
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard))

    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 4096:
        pytest.skip(f"the hard open-file limit here is {hard}")
    for _ in range(5):  # another process may take a port first: try new ones
        ports = free_ports(1100)
        (tmp_path / "configfile").write_text(
            "".join(f"channel c{i} {port} 5\n" for i, port in enumerate(ports))
        )
        server = subprocess.Popen(
            [SERVER, "configfile"],
            cwd=tmp_path,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            preexec_fn=common_limit,
        )
        assert server.stderr is not None
        first = server.stderr.readline().decode()
        if "listening on" in first:
            socket.create_connection(("127.0.0.1", ports[-1]), timeout=DEADLINE).close()
            server.send_signal(signal.SIGTERM)
            assert server.wait(DEADLINE) == 0
            return
        server.wait(DEADLINE)
        assert "Address already in use" in first, first
    raise AssertionError("no free ports in 5 tries")


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def test_out_of_descriptors_the_server_serves_its_clients_summarizes_and_recovers(
    tmp_path: Path,
) -> None:
    with cluster(tmp_path, server_options=("--max-per-address", "0")) as chat:
        alice = chat.join("alice", "random")
        bob = chat.join("bob", "random")
        pid = chat.server.process.pid
        limits = resource.prlimit(pid, resource.RLIMIT_NOFILE)
        # Room for four more connections, then every accept fails (EMFILE).
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (open_fds(pid) + 4, limits[1]))
        # The kernel completes them all; the server can take only four.
        peers = [RawPeer(chat.ports["general"], f"u{i}") for i in range(12)]
        assert chat.server.wait_stderr("cannot accept new connections (EMFILE")
        alice.type("still here")  # the connections the server has are served
        bob.expect("[alice (<time>)] still here")
        resource.prlimit(pid, resource.RLIMIT_NOFILE, limits)  # descriptors come back
        assert chat.server.wait_stderr("accepting new connections again")
        for peer in peers:  # every one that waited was taken: welcomed or queued
            assert peer.next_frame(FrameType.LINE)
            peer.close()
        carol = chat.client("carol", "help")
        carol.expect(srv("Welcome to the help channel, carol."))
        chat.shutdown()
        assert "Traceback" not in chat.server.stderr
        # A summary, not a traceback per port every 0.1 s: the first line, at
        # most one per 10 s while it lasts (test_listener.py counts them), the end.
        said = [line for line in chat.server.stderr.splitlines() if "accept" in line]
        assert said[0].startswith("trio-chat-server: cannot accept new connections (EMFILE")
        assert said[-1].startswith("trio-chat-server: accepting new connections again, after ")
        summaries = tuple(
            f"trio-chat-server: {start}"
            for start in ("cannot accept new", "still cannot accept new", "accepting new")
        )
        assert all(line.startswith(summaries) for line in said), said
