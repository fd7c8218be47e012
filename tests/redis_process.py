"""A real redis-server for cluster tests, on a Unix socket of its own: the
program's own private-Redis launcher, keeping its data across restarts unless
told not to."""

from __future__ import annotations

import signal
import socket

from trio_chat.cluster.embedded import EmbeddedRedis


class RedisProcess(EmbeddedRedis):
    """Started on construction; ``stop`` then ``start`` keeps its data when ``keep_data``."""

    def __init__(self, keep_data: bool = True) -> None:
        super().__init__(keep_data=keep_data, prefix="tc-redis-")
        self.start()

    def signal(self, signum: signal.Signals) -> None:
        """SIGSTOP/SIGCONT stall and resume it; SIGKILL crashes it (then ``start``)."""
        assert self.process is not None
        self.process.send_signal(signum)
        if signum == signal.SIGKILL:
            self.process.wait()

    def command(self, *words: str) -> bytes:
        """One command over a connection of its own; the first line of the reply."""
        request = f"*{len(words)}\r\n".encode()
        for word in words:
            request += f"${len(word.encode())}\r\n{word}\r\n".encode()
        with socket.socket(socket.AF_UNIX) as connection:
            connection.connect(str(self.socket))
            connection.sendall(request)
            reply = b""
            while not reply.endswith(b"\r\n"):
                reply += connection.recv(4096)
        return reply.split(b"\r\n", 1)[0]
