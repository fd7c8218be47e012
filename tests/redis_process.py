"""A real redis-server for cluster tests, on a Unix socket of its own: the
program's own private-Redis launcher, keeping its data across restarts unless
told not to."""

from __future__ import annotations

import signal

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
