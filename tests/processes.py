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
from .redis_process import RedisProcess

DEADLINE = 15.0
STAMP = re.compile(r"\((\d\d):(\d\d):(\d\d)\)")


def is_stamp(text: str) -> bool:
    """Whether ``text`` is a well-formed ``hh:mm:ss`` (as a browser's events carry it)."""
    match = STAMP.fullmatch(f"({text})")
    return match is not None and _in_range(match)


def _in_range(match: re.Match[str]) -> bool:
    hours, minutes, seconds = (int(part) for part in match.groups())
    return hours < 24 and minutes < 60 and seconds < 60


def normalise(line: str) -> str:
    """Check the ``(hh:mm:ss)`` stamp is well formed and replace it with <time>."""
    match = STAMP.search(line)
    if match:
        assert _in_range(match), line
    return STAMP.sub("(<time>)", line)


class Lines:
    """stdout lines as they arrive, read in order with deadlines."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.lines: list[str] = []
        self._cursor = 0
        self._changed = threading.Condition()
        self._done = False

    def add(self, line: str) -> None:
        with self._changed:
            self.lines.append(line)
            self._changed.notify_all()

    def expect(self, wanted: str, deadline: float = DEADLINE) -> None:
        """Wait until ``wanted`` (with <time> for stamps) is the next new line."""
        line = self.next_line(deadline)
        assert line == wanted, f"{self.name}: expected {wanted!r}, got {line!r}"

    def expect_soon(self, wanted: str, deadline: float = DEADLINE) -> list[str]:
        """Wait for ``wanted``, passing over the lines before it (returned)."""
        passed = []
        end = time.monotonic() + deadline
        while (line := self.next_line(max(end - time.monotonic(), 0.0))) != wanted:
            passed.append(line)
        return passed

    def next_line(self, deadline: float = DEADLINE) -> str:
        end = time.monotonic() + deadline
        with self._changed:
            while self._cursor >= len(self.lines):
                remaining = end - time.monotonic()
                if self._done or remaining <= 0:
                    raise AssertionError(
                        f"{self.name}: no line arrived (stdout so far {self.lines!r}; "
                        f"stderr {self.errors()!r})"
                    )
                self._changed.wait(remaining)
            line = self.lines[self._cursor]
            self._cursor += 1
            return line

    def rest(self) -> list[str]:
        """Lines not yet consumed by expect/next_line (call after the process ended)."""
        with self._changed:
            fresh = self.lines[self._cursor :]
            self._cursor = len(self.lines)
        return fresh

    def errors(self) -> str:
        return ""


class Program(Lines):
    def __init__(self, name: str, args: list[str], cwd: Path, also: Lines | None = None) -> None:
        super().__init__(name)
        self.process = subprocess.Popen(
            args,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=cwd,
        )
        self.also = also  # the merged lines of a cluster's nodes
        self.stderr = ""
        self._stderr_done = False
        threading.Thread(target=self._read_stdout, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()

    def _read_stdout(self) -> None:
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            line = normalise(raw.decode().rstrip("\n"))
            if self.also is not None:
                self.also.add(line)
            self.add(line)
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

    def wait_exit(self, deadline: float = DEADLINE) -> int:
        status = self.process.wait(deadline)
        with self._changed:
            self._changed.wait_for(lambda: self._done, deadline)
        return status

    def errors(self) -> str:
        return self.stderr

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()


class Nodes(Lines):
    """A cluster's nodes seen as one server: their stdout lines merged in the
    order they arrive; the console is the first node's."""

    def __init__(self) -> None:
        super().__init__("nodes")
        self.nodes: list[Program] = []

    @property
    def process(self) -> subprocess.Popen[bytes]:
        return self.nodes[0].process

    @property
    def stderr(self) -> str:
        return "".join(node.stderr for node in self.nodes)

    def errors(self) -> str:
        return self.stderr

    def type(self, *lines: str) -> None:
        self.nodes[0].type(*lines)

    def close_stdin(self) -> None:
        self.nodes[0].close_stdin()

    def wait_stderr(self, wanted: str, deadline: float = DEADLINE) -> bool:
        return self.nodes[0].wait_stderr(wanted, deadline)

    def wait_exit(self, deadline: float = DEADLINE) -> int:
        statuses = [node.wait_exit(deadline) for node in self.nodes]
        return max(statuses, key=abs)


class Cluster:
    """One server (or, with ``nodes``, a cluster of server nodes sharing a
    Redis) and its clients, all in one working directory.

    Node ``i`` listens on 127.0.0.(2+i) with the same ports, so a test decides
    which node each client reaches; by default clients go round the nodes.

    With ``irc``, each server or node also serves IRC (``--irc``) on a port
    of its own on 127.0.0.1: ``irc_port(node)``; with ``web``, the browser
    client (``--web``) likewise: ``web_url(node)``.
    """

    def __init__(
        self,
        workdir: Path,
        capacity: int = 5,
        server_options: tuple[str, ...] = (),
        nodes: int | None = None,
        redis_keeps_data: bool = True,
        irc: bool = False,
        web: bool = False,
    ):
        self.workdir = workdir
        self.irc = irc
        self.web = web
        # Node i's own ports, in the order the nodes started.
        self.irc_ports: list[int] = []
        self.web_ports: list[int] = []
        self.programs: list[Program] = []
        self.redis: RedisProcess | None = None
        self.hosts = ["localhost"]
        self._turn = 0
        self.server: Program | Nodes
        if nodes is None:
            self.ports, self.server = self._start_server(capacity, server_options)
            return
        self.redis = RedisProcess(keep_data=redis_keeps_data)
        self.hosts = [f"127.0.0.{2 + i}" for i in range(nodes)]
        self.server = merged = Nodes()
        options = ("--redis", self.redis.url, *server_options)
        self.ports, first = self._start_server(
            capacity, (*options, "--host", self.hosts[0]), merged
        )
        merged.nodes.append(first)
        for host in self.hosts[1:]:
            merged.nodes.append(self.start_node(host, server_options))

    def start_node(self, host: str, server_options: tuple[str, ...] = ()) -> Program:
        """One more node of the cluster, listening on ``host``."""
        assert self.redis is not None and isinstance(self.server, Nodes)
        # Its channel ports are the cluster's, on its own host; only its IRC or
        # web port (on 127.0.0.1) may be taken meanwhile, and then we try others.
        for _ in range(10):
            own = self._own_ports()
            node = Program(
                f"node@{host}",
                [
                    SERVER,
                    "configfile",
                    "--redis",
                    self.redis.url,
                    "--host",
                    host,
                    *own,
                    *server_options,
                ],
                self.workdir,
                also=self.server,
            )
            if node.wait_stderr("listening"):
                self.programs.append(node)
                self._own_ports_taken(own)
                return node
            node.wait_exit()
            if not own or "Address already in use" not in node.stderr:
                raise AssertionError(f"the node did not start: {node.stderr!r}")
        raise AssertionError("no free IRC or web port for the node in 10 tries")

    def _own_ports(self) -> tuple[str, ...]:
        """``--irc 127.0.0.1:PORT`` and ``--web 127.0.0.1:PORT`` on ports free
        right now, for what the cluster serves."""
        irc, web = free_ports(2)
        return (
            *(("--irc", f"127.0.0.1:{irc}") if self.irc else ()),
            *(("--web", f"127.0.0.1:{web}") if self.web else ()),
        )

    def _own_ports_taken(self, own: tuple[str, ...]) -> None:
        for option, address in zip(own[::2], own[1::2], strict=True):
            port = int(address.rpartition(":")[2])
            (self.irc_ports if option == "--irc" else self.web_ports).append(port)

    def irc_port(self, node: int = 0) -> int:
        """The IRC port of the server, or of node ``node`` of a cluster."""
        return self.irc_ports[node]

    def web_url(self, node: int = 0) -> str:
        """The browser client's page on the server, or on node ``node``."""
        return f"http://127.0.0.1:{self.web_ports[node]}/"

    def _start_server(
        self, capacity: int, server_options: tuple[str, ...], merged: Nodes | None = None
    ) -> tuple[dict[str, int], Program]:
        """Spawn the server on ports the kernel reported free, until it binds them:
        another process may take a port between our probe and the server's bind."""
        for _ in range(10):
            ports = dict(zip(["general", "random", "help"], free_ports(3), strict=True))
            (self.workdir / "configfile").write_text(
                "".join(f"channel {name} {port} {capacity}\n" for name, port in ports.items())
            )
            own = self._own_ports()
            server = Program(
                "server", [SERVER, "configfile", *own, *server_options], self.workdir, also=merged
            )
            # The server says so on stderr once every port is bound and listening.
            if server.wait_stderr("listening"):
                self.programs.append(server)
                self._own_ports_taken(own)
                return ports, server
            server.wait_exit()
            if "Address already in use" not in server.stderr:
                raise AssertionError(f"the server did not start: {server.stderr!r}")
        raise AssertionError("no free ports for the server in 10 tries")

    def _spawn(self, name: str, args: list[str]) -> Program:
        program = Program(name, args, self.workdir)
        self.programs.append(program)
        return program

    def host(self, node: int | None) -> str:
        if node is None:
            node = self._turn % len(self.hosts)
            self._turn += 1
        return self.hosts[node]

    def client(
        self, name: str, channel: str = "general", *options: str, node: int | None = None
    ) -> Program:
        host = ("--host", self.host(node)) if self.redis is not None else ()
        return self._spawn(name, [CLIENT, str(self.ports[channel]), name, *host, *options])

    def join(self, name: str, channel: str = "general", node: int | None = None) -> Program:
        """Start a client and wait until the server has admitted it."""
        program = self.client(name, channel, node=node)
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
        if self.redis is not None:
            self.redis.close()


@contextmanager
def cluster(
    workdir: Path,
    capacity: int = 5,
    server_options: tuple[str, ...] = (),
    nodes: int | None = None,
    redis_keeps_data: bool = True,
    irc: bool = False,
    web: bool = False,
) -> Iterator[Cluster]:
    running = Cluster(workdir, capacity, server_options, nodes, redis_keeps_data, irc, web)
    try:
        yield running
    finally:
        running.stop()


def srv(body: str) -> str:
    return f"[Server message (<time>)] {body}"
