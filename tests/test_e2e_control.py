"""The control socket end to end (docs/behaviour.md, "The control socket"):
the real server with --control and the real trio-chat-ctl, on one server, a
2-node cluster and --workers; the socket file's rules; another user refused."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest

from .processes import Cluster, Nodes, Program, cluster, normalise, srv
from .programs import BIN, SERVER, free_ports

CTL = str(BIN / "trio-chat-ctl")
WHO = re.compile(
    r"/who: (\S+) (\S+) (native|web|irc) (\S+) node (\S+) idle (\d+s|-) (admitted|queued \d+)"
    r"( muted \d+s)?"
)


def ctl(
    workdir: Path, path: str, *command: str, typed: str | None = None, timeout: float = 30.0
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CTL, path, *command],
        capture_output=True,
        text=True,
        timeout=timeout,
        input=typed,
        stdin=None if typed is not None else subprocess.DEVNULL,
        cwd=workdir,
    )


def printed(result: subprocess.CompletedProcess[str]) -> list[str]:
    """The ctl's stdout lines, stamps checked and replaced."""
    return [normalise(line) for line in result.stdout.splitlines()]


def who(result: subprocess.CompletedProcess[str]) -> list[tuple[str, ...]]:
    """/who's lines as (channel, name, protocol, address, node, idle, place)."""
    rows = []
    for line in result.stdout.splitlines():
        match = WHO.fullmatch(line)
        assert match is not None, line
        rows.append(match.groups()[:7])
    return rows


def stale_socket(path: Path) -> None:
    """A socket file nobody accepts on, as a killed server leaves it."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as dead:
        dead.bind(str(path))


def test_every_console_command_through_the_ctl(tmp_path: Path) -> None:
    stale_socket(tmp_path / "ctl.sock")  # taken over
    with cluster(tmp_path, server_options=("--control", "ctl.sock", "--history", "5")) as chat:
        info = os.stat(tmp_path / "ctl.sock")
        assert stat.S_IMODE(info.st_mode) == 0o600 and info.st_uid == os.getuid()
        alice = chat.join("alice")
        bob = chat.join("bob")
        carol = chat.join("carol", "random")
        alice.type("hello")
        chat.server.expect("[alice (<time>)] hello")

        result = ctl(tmp_path, "ctl.sock", "/who")
        assert result.returncode == 0 and result.stderr == ""
        rows = who(result)
        assert [row[:3] for row in rows] == [
            ("general", "alice", "native"),
            ("general", "bob", "native"),
            ("random", "carol", "native"),
        ]
        assert all(row[3] in ("127.0.0.1", "::1") and row[4] == "-" for row in rows)
        assert all(row[6] == "admitted" for row in rows)

        result = ctl(tmp_path, "ctl.sock", "/mute", "general:alice", "30")
        assert (result.returncode, printed(result)) == (0, [srv("Muted alice for 30 seconds.")])
        chat.server.expect(srv("Muted alice for 30 seconds."))
        (alice_row, _) = ctl(tmp_path, "ctl.sock", "/who general").stdout.splitlines()
        assert re.search(r" admitted muted (29|30)s$", alice_row), alice_row

        result = ctl(tmp_path, "ctl.sock", "/history", "general")
        assert result.returncode == 0
        (line,) = result.stdout.splitlines()
        assert re.fullmatch(r"\[History \d{4}-\d\d-\d\d\] \[alice \(\d\d:\d\d:\d\d\)\] hello", line)

        result = ctl(tmp_path, "ctl.sock", "/kick general:bob")
        assert (result.returncode, printed(result)) == (0, [srv("Kicked bob.")])
        chat.server.expect(srv("Kicked bob."))
        assert bob.wait_exit() == 0

        result = ctl(tmp_path, "ctl.sock", "/empty random")
        assert (result.returncode, printed(result)) == (0, [srv("random has been emptied.")])
        chat.server.expect(srv("random has been emptied."))
        assert carol.wait_exit() == 0

        # Failures: exit 1, the failed line on stderr, a contract line on stdout.
        result = ctl(tmp_path, "ctl.sock", "/who nowhere")
        assert (result.returncode, result.stdout) == (1, "")
        assert result.stderr == "/who: there is no channel nowhere\n"
        result = ctl(tmp_path, "ctl.sock", "/kick", "nowhere:bob")
        assert (result.returncode, printed(result)) == (1, [srv("nowhere does not exist.")])
        chat.server.expect(srv("nowhere does not exist."))
        result = ctl(tmp_path, "ctl.sock", "/frobnicate")
        assert result.returncode == 1 and "unknown console command '/frobnicate'" in result.stderr

        # Commands from stdin, each answered in turn.
        result = ctl(tmp_path, "ctl.sock", typed="/who random\n\n/who help\n")
        assert result.returncode == 0, result.stderr
        assert result.stdout == "/who: nobody is in random\n/who: nobody is in help\n"

        refuse_while_live(tmp_path, chat)

        result = ctl(tmp_path, "ctl.sock", "/shutdown")
        assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
        assert chat.server.wait_exit() == 0
        assert alice.wait_exit() == 0
        assert not (tmp_path / "ctl.sock").exists()

    result = ctl(tmp_path, "ctl.sock", "/who")
    assert result.returncode == 1
    assert "there is no control socket ctl.sock" in result.stderr
    stale_socket(tmp_path / "ctl.sock")
    result = ctl(tmp_path, "ctl.sock", "/who")
    assert result.returncode == 1 and "no server is listening on ctl.sock" in result.stderr


def refuse_while_live(workdir: Path, chat: Cluster) -> None:
    """A second server on the same socket, or on a file that is not a socket,
    exits 1 before binding any port; the first goes on answering."""
    second = subprocess.run(
        [SERVER, "configfile", "--control", "ctl.sock"],
        capture_output=True,
        text=True,
        timeout=20,
        stdin=subprocess.DEVNULL,
        cwd=workdir,
    )
    assert second.returncode == 1
    assert "ctl.sock is in use: another server answers on it" in second.stderr
    assert "listening on" not in second.stderr and "Address already in use" not in second.stderr
    (workdir / "notes").write_text("keep me\n")
    for path, reason in (("notes", "it exists and is not a socket"), (".", "it is a directory")):
        other = subprocess.run(
            [SERVER, "configfile", "--control", path],
            capture_output=True,
            text=True,
            timeout=20,
            stdin=subprocess.DEVNULL,
            cwd=workdir,
        )
        assert other.returncode == 1 and reason in other.stderr, other.stderr
    assert (workdir / "notes").read_text() == "keep me\n"
    assert ctl(workdir, "ctl.sock", "/who help").stdout == "/who: nobody is in help\n"


def nobody_can_run_programs() -> str | None:
    """Why the check as another user cannot run here, or None."""
    if os.geteuid() != 0:
        return "not root: cannot run a check as another user"
    if shutil.which("setpriv") is None:
        return "setpriv is not installed"
    return None


def test_another_user_cannot_use_the_socket() -> None:
    reason = nobody_can_run_programs()
    if reason is not None:
        pytest.skip(reason)
    # A directory anyone may enter, so only the socket's own mode keeps them out.
    workdir = Path(tempfile.mkdtemp(prefix="tc-ctl-"))
    workdir.chmod(0o755)
    try:
        with cluster(workdir, server_options=("--control", "ctl.sock")) as chat:
            as_nobody = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
            probe = subprocess.run(
                [*as_nobody, CTL, "--version"], capture_output=True, text=True, timeout=20
            )
            if "trio-chat-ctl" not in probe.stdout + probe.stderr:
                pytest.skip(f"nobody cannot run {CTL}: {probe.stderr.strip()}")
            refused = subprocess.run(
                [*as_nobody, CTL, str(workdir / "ctl.sock"), "/shutdown"],
                capture_output=True,
                text=True,
                timeout=20,
            )
            assert refused.returncode == 1
            assert "permission denied" in refused.stderr
            # The server's own user still can, and nothing was shut down.
            assert ctl(workdir, "ctl.sock", "/who").stdout == "/who: nobody is in any channel\n"
            chat.shutdown()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def test_a_command_at_node_1_acts_on_a_member_of_node_2(tmp_path: Path) -> None:
    with cluster(tmp_path, nodes=1, server_options=("--control", "n1.sock")) as chat:
        assert isinstance(chat.server, Nodes)
        chat.hosts.append("127.0.0.3")
        chat.server.nodes.append(chat.start_node("127.0.0.3", ("--control", "n2.sock")))
        alice = chat.join("alice", node=1)
        bob = chat.join("bob", node=0)
        result = ctl(tmp_path, "n1.sock", "/who")
        assert result.returncode == 0, result.stderr
        assert [row[:3] + row[4:5] for row in who(result)] == [
            ("general", "alice", "native", "2"),
            ("general", "bob", "native", "1"),
        ]
        # The same from node 2's socket: the rules are the cluster's.
        assert [row[:2] for row in who(ctl(tmp_path, "n2.sock", "/who"))] == [
            ("general", "alice"),
            ("general", "bob"),
        ]
        result = ctl(tmp_path, "n1.sock", "/kick general:alice")
        assert (result.returncode, printed(result)) == (0, [srv("Kicked alice.")])
        assert alice.wait_exit() == 0
        bob.expect(srv("alice has left the channel."))
        # A cluster whose Redis does not answer does not answer either.
        assert chat.redis is not None
        chat.redis.signal(signal.SIGSTOP)
        try:
            result = ctl(tmp_path, "--timeout", "1", "n1.sock", "/who")
            assert result.returncode == 1
            assert "no answer within 1 s" in result.stderr
        finally:
            chat.redis.signal(signal.SIGCONT)
        result = ctl(tmp_path, "n2.sock", "/shutdown")
        assert result.returncode == 0, result.stderr
        assert chat.server.wait_exit() == 0
        assert bob.wait_exit() == 0
        assert not (tmp_path / "n1.sock").exists() and not (tmp_path / "n2.sock").exists()


def test_each_worker_has_its_own_socket(tmp_path: Path) -> None:
    ports = free_ports(3)
    (tmp_path / "configfile").write_text(
        "".join(
            f"channel {name} {port} 5\n"
            for name, port in zip(["general", "random", "help"], ports, strict=True)
        )
    )
    server = Program(
        "workers", [SERVER, "configfile", "--workers", "2", "--control", "w.sock"], tmp_path
    )
    try:
        assert server.wait_stderr("2 workers listening", deadline=30)
        for worker in ("w.sock.1", "w.sock.2"):
            result = ctl(tmp_path, worker, "/who")
            assert result.stdout == "/who: nobody is in any channel\n", result.stderr
        assert ctl(tmp_path, "w.sock.2", "/shutdown").returncode == 0
        assert server.wait_exit(deadline=20) == 0
        assert not (tmp_path / "w.sock.1").exists() and not (tmp_path / "w.sock.2").exists()
    finally:
        if server.process.poll() is None:
            server.process.terminate()
            server.process.wait(20)
