"""The config file (behaviour document, "The config file"): every invalid one exits 1
with a reason naming the line, and nothing but a regular file is read."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from trio_chat.config import ChannelConfig, ConfigError, parse_config

from .programs import SERVER, run_program

GOOD = "channel general 40001 5\nchannel random 40002 10\nchannel help 40003 7\n"


def test_good_config_keeps_file_order() -> None:
    assert parse_config(GOOD) == [
        ChannelConfig("general", 40001, 5),
        ChannelConfig("random", 40002, 10),
        ChannelConfig("help", 40003, 7),
    ]


def test_blank_lines_and_extra_spaces_are_fine() -> None:
    text = "\n  channel   a 40001\t5  \n\nchannel b 40002 5\nchannel c 40003 5\n\n"
    assert [c.name for c in parse_config(text)] == ["a", "b", "c"]


INVALID = {
    "port zero": ("channel a 0 5\nchannel b 40002 5\nchannel c 40003 5\n", 1, "port 0"),
    "port not numeric": ("channel a 40001 5\nchannel b 4x 5\nchannel c 40003 5\n", 2, "'4x'"),
    "port too large": ("channel a 40001 5\nchannel b 40002 5\nchannel c 70000 5\n", 3, "70000"),
    "negative port": ("channel a -1 5\nchannel b 40002 5\nchannel c 40003 5\n", 1, "'-1'"),
    "capacity not numeric": (
        "channel a 40001 5\nchannel b 40002 1a\nchannel c 40003 5\n",
        2,
        "capacity '1a' is not an integer",
    ),
    "capacity under 5": (
        "channel a 40001 5\nchannel b 40002 4\nchannel c 40003 5\n",
        2,
        "capacity 4",
    ),
    "fewer than three": ("channel a 40001 5\nchannel b 40002 5\n", None, "at least 3"),
    "duplicate name": ("channel a 40001 5\nchannel b 40002 5\nchannel a 40003 5\n", 3, "'a'"),
    "duplicate port": ("channel a 40001 5\nchannel b 40002 5\nchannel c 40001 5\n", 3, "40001"),
    "name starts with digit": (
        "channel a 40001 5\nchannel 9b 40002 5\nchannel c 40003 5\n",
        2,
        "digit",
    ),
    "missing field": ("channel a 40001 5\nchannel b 40002\nchannel c 40003 5\n", 2, "4 fields"),
    "extra field": ("channel a 40001 5\nchannel b 40002 5 x\nchannel c 40003 5\n", 2, "4 fields"),
    "wrong keyword": ("channel a 40001 5\nchanel b 40002 5\nchannel c 40003 5\n", 2, "'chanel'"),
    "empty file": ("", None, "at least 3"),
}


@pytest.mark.parametrize("case", list(INVALID), ids=list(INVALID))
def test_invalid_config_names_the_line(case: str) -> None:
    text, line, fragment = INVALID[case]
    with pytest.raises(ConfigError) as caught:
        parse_config(text, source="cfg")
    message = str(caught.value)
    assert fragment in message
    if line is not None:
        assert message.startswith(f"cfg:{line}: ")


@pytest.mark.parametrize("case", list(INVALID), ids=list(INVALID))
def test_server_exits_1_on_invalid_config(case: str, tmp_path: Path) -> None:
    text, line, fragment = INVALID[case]
    path = tmp_path / "configfile"
    path.write_text(text)
    result = run_program(SERVER, str(path))
    assert result.returncode == 1
    assert result.stdout == ""
    assert fragment in result.stderr
    if line is not None:
        assert f"{path}:{line}: " in result.stderr


def test_server_exits_1_on_missing_config(tmp_path: Path) -> None:
    result = run_program(SERVER, str(tmp_path / "nope"))
    assert result.returncode == 1
    assert "cannot read config file" in result.stderr
    assert result.stdout == ""


def test_server_exits_1_on_directory_as_config(tmp_path: Path) -> None:
    result = run_program(SERVER, str(tmp_path))
    assert result.returncode == 1
    assert result.stdout == ""


def test_server_refuses_a_fifo_as_config_at_once(tmp_path: Path) -> None:
    fifo = tmp_path / "configfile"
    os.mkfifo(fifo)  # nobody ever writes: reading it would wait forever
    result = run_program(SERVER, str(fifo), timeout=5)
    assert result.returncode == 1
    assert "not a regular file" in result.stderr
    assert result.stdout == ""


def test_server_refuses_a_device_as_config() -> None:
    result = run_program(SERVER, "/dev/zero", timeout=5)
    assert result.returncode == 1
    assert "not a regular file" in result.stderr


def test_server_refuses_a_huge_config(tmp_path: Path) -> None:
    path = tmp_path / "configfile"
    path.write_bytes(GOOD.encode() + b"#" * (2 * 1024 * 1024))
    result = run_program(SERVER, str(path), timeout=5)
    assert result.returncode == 1
    assert "larger than" in result.stderr
