"""Starting the programs (behaviour document): every bad invocation, positional or
option, exits 1 at once with a reason on stderr."""

from __future__ import annotations

import argparse
import dataclasses
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from trio_chat.arguments import byte_size, count_at_least, positive_seconds, size_text

from .programs import CLIENT, SERVER, free_ports, port_nobody_serves, run_program


@pytest.mark.parametrize("args", [[], ["a", "b"]], ids=["none", "two"])
def test_server_wrong_argument_count(args: list[str]) -> None:
    result = run_program(SERVER, *args)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr


def test_server_port_in_use_exits_1_and_binds_nothing(tmp_path: Path) -> None:
    config = tmp_path / "configfile"
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        busy = blocker.getsockname()[1]
        # The first and third ports are merely free now; if another process
        # takes one before the server binds it, the server names that one: try again.
        for _ in range(10):
            first, third = free_ports(2)
            config.write_text(f"channel a {first} 5\nchannel b {busy} 5\nchannel c {third} 5\n")
            result = run_program(SERVER, str(config))
            if f":{busy}:" in result.stderr:
                break
        assert result.returncode == 1
        assert f"channel b on 127.0.0.1:{busy}: Address already in use" in result.stderr
        assert result.stdout == ""
    # The port bound before the failure was released again.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", first))


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
    with port_nobody_serves() as port:
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


BAD_SERVER_OPTIONS = [
    ("--max-connections", "0"),
    ("--max-connections", "-5"),
    ("--max-connections", "+7"),
    ("--max-connections", "1_000"),
    ("--max-connections", " 5"),
    ("--max-connections", "\uff15"),  # a fullwidth digit five
    ("--max-file-size", "4gbbb"),
    ("--max-file-size", "4bb"),
    ("--max-file-size", "4ib"),
    ("--max-file-size", "4 G"),
    ("--max-file-size", "-4G"),
    ("--max-file-size", "4.5G"),
    ("--max-file-size", "G"),
    ("--max-file-size", "4X"),
    ("--afk-timeout", " 5"),
    ("--afk-timeout", "5 "),
    ("--afk-timeout", "nan"),
    ("--afk-timeout", "inf"),
    ("--afk-timeout", "-5"),
    ("--afk-timeout", "0"),
    ("--afk-timeout", "1e3"),
    ("--afk-timeout", "9" * 400),
    ("--hello-timeout", "\t3"),
    ("--hello-timeout", "NaN"),
    ("--hello-timeout", "-inf"),
    ("--hello-timeout", "0.0"),
]


@pytest.mark.parametrize(("option", "value"), BAD_SERVER_OPTIONS)
def test_server_bad_option_value_exits_1(option: str, value: str, tmp_path: Path) -> None:
    config = tmp_path / "configfile"
    config.write_text("channel a 1 5\nchannel b 2 5\nchannel c 3 5\n")
    result = run_program(SERVER, str(config), f"{option}={value}")
    assert result.returncode == 1
    assert option in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("0", 0),
        ("500", 500),
        ("500B", 500),
        ("4K", 4096),
        ("4k", 4096),
        ("4KB", 4096),
        ("4KiB", 4096),
        ("64MiB", 64 * 1024**2),
        ("2G", 2 * 1024**3),
        ("2gib", 2 * 1024**3),
        ("1T", 1024**4),
    ],
)
def test_good_sizes(text: str, size: int) -> None:
    assert byte_size(text) == size


@pytest.mark.parametrize(("text", "seconds"), [("5", 5.0), ("0.5", 0.5), (".5", 0.5), ("100", 100)])
def test_good_seconds(text: str, seconds: float) -> None:
    assert positive_seconds(text) == seconds


def test_max_connections_must_be_a_plain_count() -> None:
    parse = count_at_least(1, "a number of connections")
    assert parse("1") == 1 and parse("20000") == 20000
    for bad in ("0", "-5", "+7", "1_000", " 5"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse(bad)


def test_server_option_defaults_are_the_documented_limits() -> None:
    """The command line (which must not import trio) takes its defaults from
    trio-free modules: they must be the limits the server runs with."""
    from trio_chat.hub import DEFAULT_AFK_TIMEOUT
    from trio_chat.server.cli import parse_arguments
    from trio_chat.server.core import Limits

    arguments = parse_arguments(["configfile"])
    limits = Limits()
    assert arguments.hello_timeout == limits.hello_timeout
    assert arguments.max_file_size == limits.max_file_size
    assert arguments.max_connections == limits.max_connections
    assert arguments.flood_burst == limits.flood_burst
    assert arguments.flood_rate == limits.flood_rate
    assert arguments.max_per_address == limits.max_per_address
    assert arguments.afk_timeout == DEFAULT_AFK_TIMEOUT


def test_limits_defaults_read_without_making_limits() -> None:
    """The command line reads ``Limits.x`` (the class attribute a dataclass keeps
    for each plain default); ``outbox_file_bytes`` has none, so that ``wire`` is
    imported only when a server makes its limits."""
    from trio_chat import wire
    from trio_chat.server.limits import MAX_INCOMING_TRANSFERS, Limits

    made = Limits()
    for field in dataclasses.fields(Limits):
        if field.name != "outbox_file_bytes":
            assert getattr(Limits, field.name) == getattr(made, field.name)
    assert made.outbox_file_bytes == MAX_INCOMING_TRANSFERS * wire.SEND_WINDOW + wire.MAX_PAYLOAD


@pytest.mark.parametrize(
    ("size", "text"),
    [(4 * 1024**3, "4G"), (1536 * 1024, "1536K"), (1000, "1000"), (0, "0"), (2 * 1024**4, "2T")],
)
def test_size_text_is_what_byte_size_reads_back(size: int, text: str) -> None:
    assert size_text(size) == text
    assert byte_size(text) == size


def test_help_gives_the_default_file_size_and_every_redis_scheme() -> None:
    helped = run_program(SERVER, "--help").stdout
    assert "--max-file-size BYTES" in helped
    assert "(default: 4G)" in " ".join(helped.split())
    for scheme in ("redis://", "rediss://", "unix://"):
        assert scheme in helped


def test_command_line_imports_neither_trio_nor_the_rules() -> None:
    """Checking arguments and config must not wait for trio (~0.1 s), the hub or
    the wire protocol (the defaults come from trio-free modules), nor for socket:
    a bad invocation exits within milliseconds."""
    probe = (
        "import sys\n"
        "from trio_chat.server import cli\n"
        "cli.parse_arguments(['configfile'])\n"
        "print(sorted(m for m in ('trio', 'typing', 'trio_chat.hub', 'trio_chat.wire', 'socket') "
        "if m in sys.modules))\n"
    )
    imported = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    assert imported == "[]\n"
