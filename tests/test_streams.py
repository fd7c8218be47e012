"""The programs' own edges: stdin lines are bounded, every address of --host listens."""

from __future__ import annotations

import os
import socket
import threading
from typing import Any

import pytest

from trio_chat.config import ChannelConfig
from trio_chat.server import sockets
from trio_chat.terminal_io import MAX_INPUT_LINE, read_lines


async def collect(data: bytes) -> tuple[list[str], list[str]]:
    reading, writing = os.pipe()

    def feed() -> None:
        with os.fdopen(writing, "wb") as pipe:
            pipe.write(data)

    threading.Thread(target=feed).start()
    complaints: list[str] = []
    try:
        lines = [line async for line in read_lines(reading, complaints.append)]
    finally:
        os.close(reading)
    return lines, complaints


async def test_a_line_past_the_limit_is_skipped_with_a_complaint() -> None:
    long = b"x" * (MAX_INPUT_LINE + 1)
    fits = b"y" * MAX_INPUT_LINE
    lines, complaints = await collect(b"first\n" + long + b"\n" + fits + b"\nlast")
    assert lines == ["first", fits.decode(), "last"]
    assert len(complaints) == 1 and str(MAX_INPUT_LINE) in complaints[0]


async def test_stdin_without_any_newline_is_never_held_whole() -> None:
    lines, complaints = await collect(b"z" * (4 * 1024 * 1024))
    assert lines == []
    assert len(complaints) == 1


async def test_lines_split_across_reads_and_crlf() -> None:
    lines, complaints = await collect(b"a\r\n\n  b  \n" * 20000)
    assert lines == ["a\r", "", "  b  "] * 20000  # stripping is the parsers' job
    assert complaints == []


def ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6 loopback on this machine")
def test_host_with_two_addresses_listens_on_both(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where ``localhost`` resolves to both ::1 and 127.0.0.1, both must accept."""
    real = socket.getaddrinfo

    def both_loopbacks(host: str, port: int, *args: Any, **kwargs: Any) -> Any:
        if host != "localhost":
            return real(host, port, *args, **kwargs)
        return real("::1", port, *args, **kwargs) + real("127.0.0.1", port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", both_loopbacks)
    # The port comes from the kernel; another process may take it before we
    # bind it again, so try a few.
    for _ in range(20):
        with socket.socket() as picker:
            picker.bind(("127.0.0.1", 0))
            port = picker.getsockname()[1]
        try:
            bound = sockets.bind_channels([ChannelConfig("a", port, 5)], "localhost")
            break
        except OSError:
            continue
    else:
        raise AssertionError("no port could be bound on both addresses")
    try:
        assert len(bound["a"]) == 2
        for address in ("::1", "127.0.0.1"):
            socket.create_connection((address, port), timeout=5).close()
    finally:
        for sock in bound["a"]:
            sock.close()
