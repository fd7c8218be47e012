"""Real processes for end-to-end tests: spawn, type into stdin, wait for lines.

Waiting is always for an expected line with a generous deadline, never a fixed
sleep. Stamps are checked by pattern and then replaced by ``<time>`` so whole
transcripts compare exactly.
"""

from __future__ import annotations

import re
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .programs import CLIENT, SERVER, free_ports

DEADLINE = 15.0
STAMP = re.compile(r"\((\d\d):(\d\d):(\d\d)\)")


def normalise(line: str) -> str:
    """Check the ``(hh:mm:ss)`` stamp is well formed and replace it with <time>."""
    match = STAMP.search(line)
    if match:
        hours, minutes, seconds = (int(part) for part in match.groups())
        assert hours < 24 and minutes < 60 and seconds < 60, line
    return STAMP.sub("(<time>)", line)


class Program:
    def __init__(self, name: str, args: list[str], cwd: Path) -> None:
        self.name = name
        self.process = subprocess.Popen(
            args,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=cwd,
        )
        self.lines: list[str] = []
        self.stderr = ""
        self._cursor = 0
        self._changed = threading.Condition()
        self._done = False
        self._stderr_done = False
        threading.Thread(target=self._read_stdout, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()

    def _read_stdout(self) -> None:
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            with self._changed:
                self.lines.append(normalise(raw.decode().rstrip("\n")))
                self._changed.notify_all()
        with self._changed:
            self._done = True
            self._changed.notify_all()

    def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        for raw in self.process.stderr:
            with self._changed:
                self.stderr += raw.decode(errors="replace")
                self._changed.notify_all()
        with self._changed:
            self._stderr_done = True
            self._changed.notify_all()

    def wait_stderr(self, wanted: str, deadline: float = DEADLINE) -> bool:
        """Wait until ``wanted`` appears on stderr; False if stderr ended first."""
        with self._changed:
            found = self._changed.wait_for(
                lambda: wanted in self.stderr or self._stderr_done, deadline
            )
            if not found:
                raise AssertionError(f"{self.name}: {wanted!r} not on stderr: {self.stderr!r}")
            return wanted in self.stderr

    def type(self, *lines: str) -> None:
        assert self.process.stdin is not None
        for line in lines:
            self.process.stdin.write(line.encode() + b"\n")
        self.process.stdin.flush()

    def close_stdin(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()

    def expect(self, wanted: str, deadline: float = DEADLINE) -> None:
        """Wait until ``wanted`` (with <time> for stamps) is the next new line."""
        line = self.next_line(deadline)
        assert line == wanted, f"{self.name}: expected {wanted!r}, got {line!r}"

    def next_line(self, deadline: float = DEADLINE) -> str:
        end = time.monotonic() + deadline
        with self._changed:
            while self._cursor >= len(self.lines):
                remaining = end - time.monotonic()
                if self._done or remaining <= 0:
                    raise AssertionError(
                        f"{self.name}: no line arrived (stdout so far {self.lines!r}; "
                        f"stderr {self.stderr!r})"
                    )
                self._changed.wait(remaining)
            line = self.lines[self._cursor]
            self._cursor += 1
            return line

    def wait_exit(self, deadline: float = DEADLINE) -> int:
        status = self.process.wait(deadline)
        with self._changed:
            self._changed.wait_for(lambda: self._done, deadline)
        return status

    def rest(self) -> list[str]:
        """Lines not yet consumed by expect/next_line (call after the process ended)."""
        with self._changed:
            fresh = self.lines[self._cursor :]
            self._cursor = len(self.lines)
        return fresh

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()


class Cluster:
    """One server and its clients, all in one working directory."""

    def __init__(self, workdir: Path, capacity: int = 5, server_options: tuple[str, ...] = ()):
        self.workdir = workdir
        self.programs: list[Program] = []
        self.ports, self.server = self._start_server(capacity, server_options)

    def _start_server(
        self, capacity: int, server_options: tuple[str, ...]
    ) -> tuple[dict[str, int], Program]:
        """Spawn the server on ports the kernel reported free, until it binds them:
        another process may take a port between our probe and the server's bind."""
        for _ in range(10):
            ports = dict(zip(["general", "random", "help"], free_ports(3), strict=True))
            (self.workdir / "configfile").write_text(
                "".join(f"channel {name} {port} {capacity}\n" for name, port in ports.items())
            )
            server = Program("server", [SERVER, "configfile", *server_options], self.workdir)
            # The server says so on stderr once every port is bound and listening.
            if server.wait_stderr("listening"):
                self.programs.append(server)
                return ports, server
            server.wait_exit()
            if "Address already in use" not in server.stderr:
                raise AssertionError(f"the server did not start: {server.stderr!r}")
        raise AssertionError("no free ports for the server in 10 tries")

    def _spawn(self, name: str, args: list[str]) -> Program:
        program = Program(name, args, self.workdir)
        self.programs.append(program)
        return program

    def client(self, name: str, channel: str = "general", *options: str) -> Program:
        return self._spawn(name, [CLIENT, str(self.ports[channel]), name, *options])

    def join(self, name: str, channel: str = "general") -> Program:
        """Start a client and wait until the server has admitted it."""
        program = self.client(name, channel)
        self.server.expect(f"[Server message (<time>)] {name} has joined the {channel} channel.")
        program.expect(f"[Server message (<time>)] Welcome to the {channel} channel, {name}.")
        program.expect(f"[Server message (<time>)] {name} has joined the channel.")
        return program

    def shutdown(self) -> None:
        self.server.type("/shutdown")
        assert self.server.wait_exit() == 0
        for program in self.programs:
            program.wait_exit()

    def stop(self) -> None:
        for program in self.programs:
            program.kill()


@contextmanager
def cluster(
    workdir: Path, capacity: int = 5, server_options: tuple[str, ...] = ()
) -> Iterator[Cluster]:
    running = Cluster(workdir, capacity, server_options)
    try:
        yield running
    finally:
        running.stop()


def srv(body: str) -> str:
    return f"[Server message (<time>)] {body}"
