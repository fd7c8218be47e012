"""What the benchmark scripts share: the installed programs, ports, checksums."""

from __future__ import annotations

import hashlib
import os
import resource
import socket
import subprocess
import sys
import time
from pathlib import Path

BIN = Path(sys.executable).parent
SERVER = str(BIN / "trio-chat-server")
CLIENT = str(BIN / "trio-chat-client")


def free_ports(count: int) -> list[int]:
    """Ports nobody listens on right now (the OS picks them, then we let go)."""
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


class ServerExited(RuntimeError):
    """The server ended before it accepted connections (a port taken meanwhile:
    free_ports lets go of the ports it found, and others may bind them)."""


def wait_until_accepting(port: int, process: subprocess.Popen[bytes] | None = None) -> None:
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if process is not None and process.poll() is not None:
                raise ServerExited(f"exit status {process.returncode}, port {port}") from None
            time.sleep(0.001)


def cpu_model() -> str:
    """The CPU's model name, for the machine line a benchmark prints."""
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "unknown CPU"


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def user_seconds(pid: int) -> float:
    """The user part of ``cpu_seconds``: the program's own work, not the kernel's."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / os.sysconf("SC_CLK_TCK")


def own_cpu() -> float:
    """User plus system CPU time this process (the load generator) has used."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while block := file.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()
