"""The IRC port (--irc) of a real server process against hostile or broken
peers on real sockets: what needs the kernel's buffers, TLS, the console or
a cluster. Bugs are ``xfail(strict=True)`` tests, as in test_irc_hostile.py."""

from __future__ import annotations

import socket
import ssl
from pathlib import Path

import trustme

from .processes import cluster, srv

DEADLINE = 15.0


def irc_socket(port: int, receive_buffer: int | None = None) -> socket.socket:
    sock = socket.socket()
    if receive_buffer is not None:
        # Set before connecting, so the window the server sees is small too.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.connect(("127.0.0.1", port))
    sock.settimeout(DEADLINE)
    return sock


def read_until(sock: socket.socket, marker: bytes) -> bytes:
    data = b""
    while marker not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError(f"closed before {marker!r}; got {data[-300:]!r}")
        data += chunk
    return data


def read_to_end(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(1 << 20):
        data += chunk
    return data


def joined(port: int, nick: str, receive_buffer: int | None = None) -> socket.socket:
    sock = irc_socket(port, receive_buffer)
    sock.sendall(f"NICK {nick}\r\nUSER {nick} 0 * :{nick}\r\nJOIN #general\r\n".encode())
    read_until(sock, b" 366 ")
    return sock


def test_a_stop_never_glues_error_onto_half_a_line(tmp_path: Path) -> None:
    with cluster(tmp_path, irc=True, server_options=("--flood-rate", "0")) as chat:
        slow = joined(chat.irc_port(0), "slow", receive_buffer=2048)
        talker = joined(chat.irc_port(0), "talker")
        text = "x" * 400
        talker.sendall(b"".join(f"PRIVMSG #general :{i} {text}\r\n".encode() for i in range(1500)))
        # Every line is through the rules once the server has printed the last.
        chat.server.expect_soon(f"[talker (<time>)] 1499 {text}")
        chat.server.type("/shutdown")
        assert chat.server.wait_exit() == 0
        lines = read_to_end(slow).split(b"\r\n")
        # A peer that does not read gets what its socket took before the
        # server had to go (the stop waits a moment, not for ever): its last
        # line may be cut, but an ERROR is never glued onto it. Whatever ERROR
        # it gets is a whole line of its own, the last.
        goodbye = b"ERROR :Closing Link: server shutting down"
        errors = [i for i, line in enumerate(lines) if b"ERROR" in line]
        assert errors in ([], [len(lines) - 2]), lines[-2:]
        if errors:
            assert lines[-2] == goodbye and lines[-1] == b""


def test_a_stop_tells_each_irc_peer_whatever_its_stage(tmp_path: Path) -> None:
    """/shutdown with IRC peers connected and silent, halfway through
    registration, negotiating CAP, and in a channel: each gets its ERROR."""
    with cluster(tmp_path, irc=True) as chat:
        stages = [b"", b"NICK only\r\n", b"CAP LS 302\r\nNICK capping\r\nUSER c 0 * :c\r\n"]
        peers = []
        for lines in stages:
            peer = irc_socket(chat.irc_port(0))
            if lines:
                peer.sendall(lines)
            peers.append(peer)
        read_until(peers[2], b"CAP * LS")
        peers.append(joined(chat.irc_port(0), "member"))
        chat.server.expect(srv("member has joined the general channel."))
        chat.server.type("/shutdown")
        assert chat.server.wait_exit() == 0
        for peer in peers:
            assert read_to_end(peer).endswith(b"ERROR :Closing Link: server shutting down\r\n")
        assert "Traceback" not in chat.server.stderr


def test_plain_text_and_garbage_on_the_tls_irc_port_lose_only_their_connection(
    tmp_path: Path,
) -> None:
    authority = trustme.CA()
    certificate = authority.issue_cert("localhost", "127.0.0.1")
    certificate.cert_chain_pems[0].write_to_path(tmp_path / "cert.pem")
    certificate.private_key_pem.write_to_path(tmp_path / "key.pem")
    tls = ("--tls-cert", str(tmp_path / "cert.pem"), "--tls-key", str(tmp_path / "key.pem"))
    context = ssl.create_default_context()
    authority.configure_trust(context)
    with cluster(tmp_path, irc=True, server_options=tls) as chat:
        member = context.wrap_socket(irc_socket(chat.irc_port(0)), server_hostname="localhost")
        member.sendall(b"NICK member\r\nUSER m 0 * :m\r\nJOIN #general\r\n")
        read_until(member, b" 366 ")
        for hostile in (b"NICK plain\r\nUSER p 0 * :p\r\n", b"\x16\x03\x01\x00\x05hello" * 50):
            peer = irc_socket(chat.irc_port(0))
            peer.sendall(hostile)
            assert read_to_end(peer) == b""
        member.sendall(b"PRIVMSG #general :still here\r\n")
        chat.server.expect_soon("[member (<time>)] still here")
        chat.shutdown()
        assert "Traceback" not in chat.server.stderr


def test_an_irc_client_is_one_connection_for_the_clusters_address_limit(
    tmp_path: Path,
) -> None:
    options = ("--max-per-address", "3")
    with cluster(tmp_path, irc=True, nodes=2, server_options=options) as chat:
        ann = irc_socket(chat.irc_port(0))  # node 1's IRC port
        ann.sendall(b"NICK ann\r\nUSER ann 0 * :ann\r\nJOIN #general,#random,#help\r\n")
        for channel in ("general", "random", "help"):
            chat.server.expect(srv(f"ann has joined the {channel} channel."))
        chat.join("bob", node=1)  # a terminal client from the same address, on node 2
        chat.shutdown()
