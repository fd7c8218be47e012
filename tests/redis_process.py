"""A real redis-server for cluster tests, on a Unix socket of its own: the
program's own private-Redis launcher, keeping its data across restarts."""

from __future__ import annotations

from trio_chat.cluster.embedded import EmbeddedRedis


class RedisProcess(EmbeddedRedis):
    """Started on construction; ``stop`` then ``start`` keeps its data."""

    def __init__(self) -> None:
        super().__init__(keep_data=True, prefix="tc-redis-")
        self.start()
