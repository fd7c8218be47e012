"""SPEC §1: bad invocations exit 1 at once with a reason on stderr."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from .programs import CLIENT, SERVER, free_ports, run_program


@pytest.mark.parametrize("args", [[], ["a", "b"]], ids=["none", "two"])
def test_server_wrong_argument_count(args: list[str]) -> None:
    result = run_program(SERVER, *args)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr


def test_server_port_in_use_exits_1_and_binds_nothing(tmp_path: Path) -> None:
    first, busy, third = free_ports(3)
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", busy))
    blocker.listen()
    try:
        config = tmp_path / "configfile"
        config.write_text(f"channel a {first} 5\nchannel b {busy} 5\nchannel c {third} 5\n")
        result = run_program(SERVER, str(config))
        assert result.returncode == 1
        assert f"{busy}" in result.stderr
        assert result.stdout == ""
    finally:
        blocker.close()
    # The port bound before the failure was released again.
    probe = socket.socket()
    probe.bind(("127.0.0.1", first))
    probe.close()


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["12345"],
        ["12345", "alice", "extra"],
        ["port", "alice"],
        ["0", "alice"],
        ["65536", "alice"],
        ["-1", "alice"],
        ["12.5", "alice"],
        ["12345", ""],
        ["12345", "al ice"],
        ["12345", "al:ice"],
        ["12345", "al\x07ice"],
        ["12345", "x" * 33],
    ],
)
def test_client_bad_arguments(args: list[str]) -> None:
    result = run_program(CLIENT, *args)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr


def test_client_no_server_exits_1() -> None:
    (port,) = free_ports(1)
    result = run_program(CLIENT, str(port), "alice")
    assert result.returncode == 1
    assert "no server accepting" in result.stderr
    assert result.stdout == ""


def test_help_and_version_exit_0() -> None:
    for program in (SERVER, CLIENT):
        helped = run_program(program, "--help")
        assert helped.returncode == 0 and "--host" in helped.stdout
        versioned = run_program(program, "--version")
        assert versioned.returncode == 0
