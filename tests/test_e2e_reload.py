"""Reloading a running server (docs/behaviour.md, "Reloading the config"):
the installed server, real clients, the config rewritten and ``kill -HUP``;
a bad config refused; the TLS certificate swapped; a systemd-like parent
listening on $NOTIFY_SOCKET."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from pathlib import Path

import pytest
import trustme

from .processes import DEADLINE, Cluster, Nodes, Program, cluster, srv
from .programs import CLIENT, SERVER, free_ports


def write_config(chat: Cluster, channels: dict[str, tuple[int, int]]) -> None:
    """The config file rewritten: name -> (port, capacity); the tests' ports follow."""
    (chat.workdir / "configfile").write_text(
        "".join(
            f"channel {name} {port} {capacity}\n" for name, (port, capacity) in channels.items()
        )
    )
    chat.ports = {name: port for name, (port, _) in channels.items()}


def hang_up(chat: Cluster) -> None:
    """``kill -HUP`` the server."""
    chat.server.process.send_signal(signal.SIGHUP)


def refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=DEADLINE).close()
    except ConnectionRefusedError:
        return True
    return False


def test_sighup_applies_each_change_and_drops_nobody_it_should_not(tmp_path: Path) -> None:
    with cluster(tmp_path) as chat:
        general = [chat.join(f"user{i}") for i in range(5)]
        waiter = chat.client("waiter", "general")
        waiter.expect(srv("Welcome to the general channel, waiter."))
        waiter.expect(srv("You are in the waiting queue and there are 0 user(s) ahead of you."))
        rover = chat.join("rover", "random")
        helper = chat.join("helper", "help")
        old = dict(chat.ports)
        lobby, moved = free_ports(2)
        write_config(
            chat,
            {"lobby": (lobby, 5), "general": (old["general"], 6), "random": (moved, 5)},
        )
        hang_up(chat)
        # The removed channel first: its member goes, with the reason.
        chat.server.expect(srv("help has been removed."))
        assert helper.wait_exit() == 0
        assert "the operator removed the channel help" in helper.stderr
        # The larger capacity lets the waiter in, with the usual lines.
        chat.server.expect(srv("waiter has joined the general channel."))
        waiter.expect(srv("waiter has joined the channel."))
        for member in general:
            member.expect_soon(srv("waiter has joined the channel."))
        assert chat.server.wait_stderr("reloaded configfile: added lobby")
        assert "moved random from port" in chat.server.stderr
        # The removed and the moved channels' old ports are closed...
        assert refused(old["help"]) and refused(old["random"])
        # ...the moved one's members stayed, and newcomers use its new port.
        newbie = chat.join("newbie", "random")
        rover.expect(srv("newbie has joined the channel."))
        rover.type("still here")
        chat.server.expect("[rover (<time>)] still here")
        newbie.expect("[rover (<time>)] still here")
        # The new channel listens, and /list follows the new order.
        chat.join("lobbyist", "lobby")
        rover.type("/list")
        rover.expect_soon("[Channel] lobby 1/5/0.")
        rover.expect("[Channel] general 6/6/0.")
        rover.expect("[Channel] random 2/5/0.")
        chat.shutdown()


def test_a_bad_config_is_refused_and_the_old_one_still_served(tmp_path: Path) -> None:
    with cluster(tmp_path) as chat:
        alice = chat.join("alice")
        (tmp_path / "configfile").write_text("channel general 1 5\nchannel oops\n")
        chat.server.type("/reload")
        assert chat.server.wait_stderr("reload refused, nothing changed: configfile:2:")
        # A port somebody else holds is refused too, and nothing is bound.
        taken = socket.socket()
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        free = free_ports(1)[0]
        write_config(
            chat,
            {
                "general": (chat.ports["general"], 5),
                "random": (free, 5),
                "help": (taken.getsockname()[1], 5),
            },
        )
        hang_up(chat)
        assert chat.server.wait_stderr("reload refused, nothing changed: cannot listen for channel")
        taken.close()
        assert refused(free)
        bob = chat.join("bob")
        alice.expect(srv("bob has joined the channel."))
        alice.type("/list")
        alice.expect("[Channel] general 2/5/0.")
        alice.expect("[Channel] random 0/5/0.")
        alice.expect("[Channel] help 0/5/0.")
        assert not bob.stderr
        chat.shutdown()


def write_certificate(authority: trustme.CA, cert: Path, key: Path) -> None:
    leaf = authority.issue_cert("localhost", "127.0.0.1")
    leaf.private_key_pem.write_to_path(str(key))
    with cert.open("wb") as chain:
        for blob in leaf.cert_chain_pems:
            chain.write(blob.bytes())


def test_a_swapped_certificate_is_what_new_clients_see(tmp_path: Path) -> None:
    first, second = trustme.CA(), trustme.CA()
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    write_certificate(first, cert, key)
    for name, authority in (("first.pem", first), ("second.pem", second)):
        authority.cert_pem.write_to_path(str(tmp_path / name))
    options = ("--tls-cert", str(cert), "--tls-key", str(key))
    with cluster(tmp_path, server_options=options) as chat:
        alice = chat.client("alice", "general", "--ca", str(tmp_path / "first.pem"))
        alice.expect(srv("Welcome to the general channel, alice."))
        alice.expect(srv("alice has joined the channel."))
        write_certificate(second, cert, key)
        hang_up(chat)
        assert chat.server.wait_stderr("the TLS certificate read again")
        # A new client trusting only the second CA gets in; one trusting the
        # first is refused; alice's connection goes on.
        bob = chat.client("bob", "general", "--ca", str(tmp_path / "second.pem"))
        bob.expect(srv("Welcome to the general channel, bob."))
        alice.expect(srv("bob has joined the channel."))
        carol = chat.client("carol", "general", "--ca", str(tmp_path / "first.pem"))
        assert carol.wait_exit() == 1
        assert "certificate" in carol.stderr
        alice.type("after the swap")
        bob.expect_soon("[alice (<time>)] after the swap")
        # A key that does not match is refused, and the second one kept.
        key.write_text("not a key\n")
        hang_up(chat)
        assert chat.server.wait_stderr("reload refused, nothing changed: cannot use certificate")
        dave = chat.client("dave", "general", "--ca", str(tmp_path / "second.pem"))
        dave.expect(srv("Welcome to the general channel, dave."))
        chat.shutdown()


def test_a_systemd_like_parent_hears_ready_reloading_and_stopping(tmp_path: Path) -> None:
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    address = f"\0trio-chat-test-{os.getpid()}"
    listener.bind(address)
    listener.settimeout(DEADLINE)
    ports = free_ports(3)
    (tmp_path / "configfile").write_text(
        "".join(f"channel c{i} {port} 5\n" for i, port in enumerate(ports))
    )
    env = {**os.environ, "NOTIFY_SOCKET": "@" + address[1:]}
    server = subprocess.Popen(
        [SERVER, "configfile"],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:

        def message() -> dict[str, str]:
            fields = listener.recv(4096).decode().splitlines()
            return dict(field.split("=", 1) for field in fields)

        ready = message()
        assert ready["READY"] == "1" and ready["STATUS"] == "serving 3 channels"
        # Every port is bound by then.
        for port in ports:
            socket.create_connection(("127.0.0.1", port), timeout=DEADLINE).close()
        server.send_signal(signal.SIGHUP)
        reloading = message()
        assert reloading["RELOADING"] == "1" and int(reloading["MONOTONIC_USEC"]) > 0
        assert message()["READY"] == "1"
        # A refused reload is followed by READY=1 as well: the server serves on.
        (tmp_path / "configfile").write_text("nonsense\n")
        server.send_signal(signal.SIGHUP)
        assert message()["RELOADING"] == "1"
        assert message()["READY"] == "1"
        server.send_signal(signal.SIGTERM)
        assert message()["STOPPING"] == "1"
        assert server.wait(DEADLINE) == 0
        assert server.stderr is not None
        errors = server.stderr.read().decode()
        assert "reload refused, nothing changed: configfile:1:" in errors
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
        listener.close()


def test_a_reload_at_one_node_reloads_the_whole_cluster(tmp_path: Path) -> None:
    with cluster(tmp_path, nodes=2) as chat:
        assert isinstance(chat.server, Nodes) and chat.redis is not None
        first, second = chat.server.nodes
        helper = chat.join("helper", "help", node=1)
        rover = chat.join("rover", "random", node=1)
        old_config = (tmp_path / "configfile").read_text()
        old = dict(chat.ports)
        (lobby,) = free_ports(1)
        write_config(
            chat,
            {"general": (old["general"], 5), "random": (old["random"], 5), "lobby": (lobby, 5)},
        )
        first.process.send_signal(signal.SIGHUP)
        # Node 1's member of the removed channel goes; node 0 printed the line.
        chat.server.expect(srv("help has been removed."))
        assert helper.wait_exit() == 0
        assert "the operator removed the channel help" in helper.stderr
        assert first.wait_stderr("reloaded configfile: added lobby (port")
        # Both nodes listen on the new channel's port, neither on the old one.
        chat.join("lobbyist", "lobby", node=1)
        chat.join("other", "lobby", node=0)
        for host in chat.hosts:
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection((host, old["help"]), timeout=DEADLINE).close()
        rover.type("/list")
        rover.expect("[Channel] general 0/5/0.")
        rover.expect("[Channel] random 1/5/0.")
        rover.expect("[Channel] lobby 2/5/0.")
        # A node started with the old config is refused, as any other config is.
        (tmp_path / "oldconfig").write_text(old_config)
        late = subprocess.run(
            [SERVER, "oldconfig", "--redis", chat.redis.url, "--host", "127.0.0.9"],
            cwd=tmp_path,
            capture_output=True,
            timeout=DEADLINE,
        )
        assert late.returncode == 1
        assert b"this config differs from the one the running cluster uses" in late.stderr
        # And one with the new config joins, and serves the reloaded channels.
        chat.hosts.append("127.0.0.4")
        chat.start_node("127.0.0.4")
        chat.join("newcomer", "lobby", node=2)
        assert second.process.poll() is None
        chat.shutdown()


def test_workers_reload_once_and_their_supervisor_talks_to_the_manager(tmp_path: Path) -> None:
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(tmp_path / "notify"))
    listener.settimeout(30)
    ports = free_ports(4)
    names = ["general", "random", "help"]
    write_lines = [f"channel {name} {port} 5\n" for name, port in zip(names, ports, strict=False)]
    (tmp_path / "configfile").write_text("".join(write_lines))
    env = {**os.environ, "NOTIFY_SOCKET": str(tmp_path / "notify")}
    with (tmp_path / "stderr").open("wb") as errors:
        server = subprocess.Popen(
            [SERVER, "configfile", "--workers", "2"],
            cwd=tmp_path,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=errors,
        )
    try:

        def message() -> dict[str, str]:
            fields = listener.recv(4096).decode().splitlines()
            return dict(field.split("=", 1) for field in fields)

        assert message() == {"READY": "1", "STATUS": "2 workers serving"}
        (tmp_path / "configfile").write_text("".join(write_lines) + f"channel lobby {ports[3]} 5\n")
        server.send_signal(signal.SIGHUP)
        assert message()["RELOADING"] == "1"
        assert message()["READY"] == "1"
        client = Program("c", [CLIENT, str(ports[3]), "c"], tmp_path)
        client.expect(srv("Welcome to the lobby channel, c."))
        server.send_signal(signal.SIGTERM)
        assert message()["STOPPING"] == "1"
        assert server.wait(30) == 0
        assert client.wait_exit() == 0
        said = (tmp_path / "stderr").read_text()
        assert said.count("reloaded configfile: added lobby") == 1, said
    finally:
        if server.poll() is None:
            server.terminate()
            server.wait(20)
        listener.close()
