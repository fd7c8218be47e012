"""End to end, what ``--workers`` starts ends with it: the supervisor killed
with SIGKILL takes its nodes, its private redis-server and their directory
with it; the private redis-server killed stops the cluster with a reason
(trio_chat/cluster/lifeline.py, workers.py; docs/cluster.md, "Several processes: a
cluster")."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from .processes import DEADLINE, Program, srv
from .programs import CLIENT, SERVER, free_ports


def descendants(pid: int) -> list[int]:
    found = []
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        found += [int(child), *descendants(int(child))]
    return found


def command_of(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()


def has_ended(pid: int) -> bool:
    """Gone, or dead and waiting to be reaped (where nobody reaps orphans)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rpartition(")")[2].split()[0] in ("Z", "X")


def wait_for(what: str, holds: Callable[[], bool]) -> None:
    deadline = time.monotonic() + DEADLINE
    while not holds():
        assert time.monotonic() < deadline, f"{what} within {DEADLINE} s"
        time.sleep(0.02)  # polling /proc and the file system


@contextmanager
def workers(workdir: Path) -> Iterator[tuple[Program, list[Program], Path]]:
    """A --workers 2 supervisor with its private Redis, and two clients joined."""
    ports = free_ports(3)
    (workdir / "configfile").write_text(
        "".join(f"channel c{i} {port} 5\n" for i, port in enumerate(ports))
    )
    server = Program("workers", [SERVER, "configfile", "--workers", "2"], workdir)
    clients: list[Program] = []
    try:
        assert server.wait_stderr("2 workers listening", deadline=30)
        for name in ("alice", "bob"):
            client = Program(name, [CLIENT, str(ports[0]), name], workdir)
            clients.append(client)
            client.expect(srv(f"Welcome to the c0 channel, {name}."))
        private = next(w for w in server.stderr.split() if "trio-chat-redis-" in w)
        yield server, clients, Path(private.removeprefix("unix://")).parent
    finally:
        for program in [server, *clients]:
            program.kill()


def test_a_supervisor_killed_with_sigkill_takes_everything_it_started_with_it(
    tmp_path: Path,
) -> None:
    with workers(tmp_path) as (server, clients, directory):
        started = descendants(server.process.pid)
        commands = [command_of(pid) for pid in started]
        assert sum("trio_chat.server" in command for command in commands) == 2, commands
        assert sum("redis-server" in command for command in commands) == 1, commands
        assert directory.is_dir()
        server.process.kill()
        server.process.wait()
        wait_for("every process the supervisor started ends", lambda: all(map(has_ended, started)))
        wait_for("the private Redis's directory is removed", lambda: not directory.exists())
        for client in clients:  # told by their connections closing
            assert client.wait_exit() == 0
            assert "the server closed the connection" in client.stderr


def test_a_private_redis_that_dies_stops_the_cluster_with_a_reason(tmp_path: Path) -> None:
    with workers(tmp_path) as (server, clients, directory):
        started = descendants(server.process.pid)
        (redis,) = [pid for pid in started if "redis-server" in command_of(pid)]
        os.kill(redis, signal.SIGKILL)
        assert server.wait_exit(deadline=30) == 1
        assert (
            "trio-chat-server: the private redis-server was killed by SIGKILL, and the "
            "cluster's shared state with it: stopping the workers\n"
        ) in server.stderr
        assert "Traceback" not in server.stderr
        for client in clients:
            assert client.wait_exit() == 0
            assert "the server closed the connection" in client.stderr
        wait_for("every process the supervisor started ends", lambda: all(map(has_ended, started)))
        assert not directory.exists()
