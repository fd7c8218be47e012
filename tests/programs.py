"""Locate and run the installed console scripts, as a grader would."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

BIN = Path(sys.executable).parent
SERVER = str(BIN / "trio-chat-server")
CLIENT = str(BIN / "trio-chat-client")


def run_program(
    *args: str, timeout: float = 10.0, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(args),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        cwd=cwd,
    )


def free_ports(count: int) -> list[int]:
    """Ports nobody listens on right now (the OS picks them, then we let go).

    Another process may take one before it is used: callers that bind them
    retry on "Address already in use" (see ``processes.Cluster``)."""
    sockets = []
    for _ in range(count):
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sockets.append(sock)
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


@contextmanager
def port_nobody_serves() -> Iterator[int]:
    """A port bound but not listening, held for the whole block: connecting to it
    is refused, and no other process can start listening on it meanwhile."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        yield holder.getsockname()[1]
