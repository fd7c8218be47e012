"""The IRC port's options (docs/irc.md, "Options"): bad values exit 1 with a
reason, a busy port exits 1 before anything is bound, and nothing of IRC is
imported without ``--irc``."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from .programs import SERVER, free_ports, run_program


def config(tmp_path: Path, names: tuple[str, str, str] = ("a", "b", "c")) -> Path:
    path = tmp_path / "configfile"
    ports = free_ports(3)
    path.write_text("".join(f"channel {n} {p} 5\n" for n, p in zip(names, ports, strict=True)))
    return path


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (["--irc", "nope"], "is not a port (1-65535) or HOST:PORT for the IRC port"),
        (["--irc", "70000"], "for the IRC port"),
        (["--irc", "6667", "--irc-server-name", "bad name"], "is not a server name"),
        (["--irc-server-name", "ok.name"], "go with --irc"),
        (["--irc-password-file", "x"], "go with --irc"),
        (["--irc", "6667", "--irc-password-file", "/nonexistent/pw"], "cannot read the IRC"),
    ],
)
def test_bad_irc_options_exit_1_with_the_reason(
    tmp_path: Path, args: list[str], reason: str
) -> None:
    result = run_program(SERVER, str(config(tmp_path)), *args)
    assert result.returncode == 1
    assert result.stdout == ""
    assert reason in result.stderr


def test_channels_irc_cannot_name_exit_1(tmp_path: Path) -> None:
    for names, reason in [
        (("a,b", "c", "d"), "cannot be an IRC channel"),
        (("Gen", "gen", "x"), "are one channel on IRC"),
    ]:
        result = run_program(SERVER, str(config(tmp_path, names)), "--irc", "6667")
        assert result.returncode == 1
        assert reason in result.stderr


def test_a_busy_irc_port_exits_1_and_binds_nothing(tmp_path: Path) -> None:
    path = config(tmp_path)
    first_channel = int(path.read_text().split()[2])
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        busy = blocker.getsockname()[1]
        result = run_program(SERVER, str(path), "--irc", str(busy))
    assert result.returncode == 1
    assert f"cannot listen for IRC on 127.0.0.1:{busy}: Address already in use" in result.stderr
    assert result.stdout == ""
    with socket.socket() as probe:  # no channel's port was bound meanwhile
        probe.bind(("127.0.0.1", first_channel))


def test_nothing_of_irc_is_imported_without_the_option() -> None:
    probe = (
        "import sys, argparse\n"
        "from trio_chat.server import run\n"
        "assert run.irc_services(None, [], argparse.Namespace()) == []\n"
        "print(sorted(m for m in sys.modules if m.startswith(('trio_chat.irc', 'irctokens'))))\n"
    )
    imported = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    assert imported == "[]\n"


def test_an_option_whose_extra_is_missing_exits_1_before_binding(tmp_path: Path) -> None:
    """Without the irc extra, --irc says what to install (irctokens hidden
    from the import system here)."""
    probe = (
        "import sys, importlib.util\n"
        "real = importlib.util.find_spec\n"
        "importlib.util.find_spec = (\n"
        "    lambda name, *a: None if name == 'irctokens' else real(name, *a))\n"
        "from trio_chat.server import cli\n"
        f"sys.exit(cli.main([{str(config(tmp_path))!r}, '--irc', '6667']))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert result.returncode == 1
    assert "--irc needs irctokens, which is not installed: pip install 'trio-chat[irc]'" in (
        result.stderr
    )
