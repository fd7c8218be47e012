"""``--workers N``: N node processes on this machine, one cluster.

This process starts them (and, without ``--redis``, a private redis-server),
passes console lines to one of them (any node's console acts on the whole
cluster), passes SIGINT and SIGTERM on to all of them, and ends when they
all have. It never imports trio: it only waits.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from types import FrameType

from ..server.cli import PROGRAM
from ..terminal_io import print_error
from .embedded import EmbeddedRedis, RedisUnavailable

START_TIMEOUT = 30.0


def _node_arguments(argv: Sequence[str]) -> list[str]:
    """The command line minus --workers, for each node."""
    kept: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--workers":
            skip = True
        elif not arg.startswith("--workers="):
            kept.append(arg)
    return kept


class Workers:
    def __init__(self, count: int, argv: list[str]) -> None:
        self.count = count
        self.argv = argv
        self.children: list[subprocess.Popen[bytes]] = []
        self.listening = 0
        self.failed = False
        self._lock = threading.Condition()

    def start(self) -> None:
        for _ in range(self.count):
            child = subprocess.Popen(
                [sys.executable, "-m", "trio_chat.server", *self.argv],
                stdin=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            self.children.append(child)
            threading.Thread(target=self._pass_stderr, args=(child,), daemon=True).start()

    def _pass_stderr(self, child: subprocess.Popen[bytes]) -> None:
        assert child.stderr is not None
        for raw in child.stderr:
            sys.stderr.buffer.write(raw)
            sys.stderr.flush()
            if b"listening" in raw:
                with self._lock:
                    self.listening += 1
                    self._lock.notify_all()
        with self._lock:
            self._lock.notify_all()

    def wait_listening(self) -> bool:
        with self._lock:
            return (
                self._lock.wait_for(
                    lambda: (
                        self.listening == self.count
                        or any(child.poll() is not None for child in self.children)
                    ),
                    START_TIMEOUT,
                )
                and self.listening == self.count
            )

    def pass_console(self) -> None:
        """Each console line goes to the first node still running."""
        for line in sys.stdin.buffer:
            for child in self.children:
                if child.poll() is None and child.stdin is not None:
                    try:
                        child.stdin.write(line)
                        child.stdin.flush()
                        break
                    except OSError:
                        continue

    def signal_all(self, signum: int) -> None:
        for child in self.children:
            if child.poll() is None:
                child.send_signal(signum)

    def wait_all(self) -> None:
        while any(child.poll() is None for child in self.children):
            time.sleep(0.05)


def run_workers(arguments: argparse.Namespace, argv: list[str]) -> int:
    embedded: EmbeddedRedis | None = None
    url = arguments.redis
    if url is None:
        embedded = EmbeddedRedis()
        try:
            embedded.start()
        except (RedisUnavailable, OSError) as error:
            print_error(PROGRAM, f"cannot start the private redis-server: {error}")
            return 1
        url = embedded.url
    node_argv = _node_arguments(argv)
    if arguments.redis is None:
        node_argv += ["--redis", url]
    node_argv.append("--reuse-port")
    workers = Workers(arguments.workers, node_argv)

    def forward(signum: int, frame: FrameType | None) -> None:
        workers.signal_all(signum)

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    try:
        workers.start()
        if not workers.wait_listening():
            workers.signal_all(signal.SIGTERM)
            workers.wait_all()
            print_error(PROGRAM, "the workers did not all start; stopped them")
            return 1
        print_error(PROGRAM, f"{arguments.workers} workers listening, sharing {url}")
        threading.Thread(target=workers.pass_console, daemon=True).start()
        workers.wait_all()
        return 0
    finally:
        if embedded is not None:
            embedded.close()
