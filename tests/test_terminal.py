"""The client in a pseudo-terminal (issue 7), driven by pexpect against a real server."""

from __future__ import annotations

import os
from pathlib import Path

import pexpect
import pytest

from .processes import Cluster, cluster, srv
from .programs import CLIENT

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
