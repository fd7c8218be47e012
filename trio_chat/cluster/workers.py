"""``--workers N``: N node processes on this machine, one cluster.

This process starts them (and, without ``--redis``, a private redis-server),
passes console lines to one of them (any node's console acts on the whole
cluster), passes SIGINT and SIGTERM on to all of them, and SIGHUP to one of
them (a reload at one node reloads the whole cluster, once), and ends when
they all have. It never imports trio: it only waits. It is the process a
service manager watches, so it, not the nodes, tells $NOTIFY_SOCKET when
they are all listening and when a reload is done (server/notify.py).

Everything it starts dies with it, even if it is killed with SIGKILL
(lifeline.py). If the private redis-server dies, the cluster's shared state
(which it kept in memory only) is gone, and the nodes would keep their clients
connected with nothing ever delivered again: so this process stops them all
(their clients see the connection close), says why on stderr and exits 1.
(Restarting it would hand the nodes an empty Redis that none of them could
trust.)
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from types import FrameType
from typing import TYPE_CHECKING

from ..server import PROGRAM
from ..terminal_io import print_error
from .embedded import EmbeddedRedis, RedisUnavailable
from .lifeline import die_with_this_process

if TYPE_CHECKING:
    from ..server.notify import Notifier

START_TIMEOUT = 30.0
# Seconds the nodes have to stop after SIGTERM before they get SIGKILL.
STOP_TIMEOUT = 10.0


def _node_arguments(argv: Sequence[str]) -> list[str]:
    """The command line minus --workers (and --control: each node has its
    own, ``worker_controls``), for each node."""
    kept: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg in ("--workers", "--control"):
            skip = True
        elif not arg.startswith(("--workers=", "--control=")):
            kept.append(arg)
    return kept


def worker_controls(path: str | None, count: int) -> list[list[str]]:
    """Each worker's own --control: worker I (from 1) listens on PATH.I; any
    one of them acts on the whole cluster (docs/behaviour.md, "The control
    socket"). Checked here, before any worker starts (ControlSocketError)."""
    if path is None:
        return [[] for _ in range(count)]
    from ..server.control_socket import clear_stale

    paths = [f"{path}.{worker}" for worker in range(1, count + 1)]
    for each in paths:
        clear_stale(each)
    return [["--control", each] for each in paths]


class Workers:
    def __init__(self, count: int, argv: list[str], own: list[list[str]] | None = None) -> None:
        """``own``: each worker's own arguments after ``argv``."""
        self.count = count
        self.argv = argv
        self.own = own or [[] for _ in range(count)]
        self.children: list[subprocess.Popen[bytes]] = []
        self.listening = 0
        self.failed = False
        self._lock = threading.Condition()
        self.notifier: Notifier | None = None
        # A SIGHUP passed on, until the node's answer passes by on its stderr.
        self.reloading = False

    def start(self) -> None:
        # The service manager hears from this process only.
        environment = {k: v for k, v in os.environ.items() if k != "NOTIFY_SOCKET"}
        # Every child before any thread (lifeline.py).
        for worker in range(self.count):
            self.children.append(
                subprocess.Popen(
                    [sys.executable, "-m", "trio_chat.server", *self.argv, *self.own[worker]],
                    stdin=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    preexec_fn=die_with_this_process(),
                    env=environment,
                )
            )
        for child in self.children:
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
            elif self.reloading and (b": reloaded " in raw or b": reload refused" in raw):
                self.reloading = False
                if self.notifier is not None:
                    self.notifier.ready(f"{self.count} workers serving")
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

    def reload(self) -> None:
        """SIGHUP to the first node still running: its reload goes through
        the cluster's log to every node, so the channels change once."""
        if self.listening < self.count:
            print_error(PROGRAM, "SIGHUP before every worker listens: ignored")
            return
        for child in self.children:
            if child.poll() is None:
                if self.notifier is not None:
                    self.notifier.reloading()
                self.reloading = True
                child.send_signal(signal.SIGHUP)
                return

    def signal_all(self, signum: int) -> None:
        for child in self.children:
            if child.poll() is None:
                child.send_signal(signum)

    def wait_all(self, redis: subprocess.Popen[bytes] | None = None) -> int:
        """Until every node has ended: 0; or 1 once ``redis`` (the private
        redis-server) has ended first, and the nodes are stopped."""
        while any(child.poll() is None for child in self.children):
            if redis is not None and redis.poll() is not None:
                print_error(
                    PROGRAM,
                    f"the private redis-server {ended(redis.returncode)}, and the cluster's "
                    "shared state with it: stopping the workers",
                )
                self.stop()
                return 1
            time.sleep(0.05)
        return 0

    def stop(self) -> None:
        """SIGTERM to every node, SIGKILL to those still running after STOP_TIMEOUT."""
        self.signal_all(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        for child in self.children:
            try:
                child.wait(max(deadline - time.monotonic(), 0.0))
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()


def ended(status: int) -> str:
    """How a child ended, from its ``returncode``."""
    if status >= 0:
        return f"exited with status {status}"
    try:
        return f"was killed by {signal.Signals(-status).name}"
    except ValueError:
        return f"was killed by signal {-status}"


def run_workers(arguments: argparse.Namespace, argv: list[str]) -> int:
    from ..server.control_socket import ControlSocketError

    try:
        controls = worker_controls(arguments.control, arguments.workers)
    except ControlSocketError as error:
        print_error(PROGRAM, str(error))
        return 1
    embedded: EmbeddedRedis | None = None
    url = arguments.redis
    if url is None:
        try:
            embedded = EmbeddedRedis(dies_with_parent=True)
            embedded.start()
        except (RedisUnavailable, OSError) as error:
            print_error(PROGRAM, f"cannot start the private redis-server: {error}")
            return 1
        url = embedded.url
    node_argv = _node_arguments(argv)
    if arguments.redis is None:
        node_argv += ["--redis", url]
    node_argv.append("--reuse-port")
    workers = Workers(arguments.workers, node_argv, controls)

    if "NOTIFY_SOCKET" in os.environ:
        from ..server.notify import from_environment

        workers.notifier = from_environment(lambda text: print_error(PROGRAM, text))

    def forward(signum: int, frame: FrameType | None) -> None:
        if workers.notifier is not None:
            workers.notifier.stopping()
        workers.signal_all(signum)

    def reload(signum: int, frame: FrameType | None) -> None:
        workers.reload()

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGHUP, reload)
    try:
        workers.start()
        if not workers.wait_listening():
            workers.stop()
            print_error(PROGRAM, "the workers did not all start; stopped them")
            return 1
        print_error(PROGRAM, f"{arguments.workers} workers listening, sharing {url}")
        if workers.notifier is not None:
            workers.notifier.ready(f"{arguments.workers} workers serving")
        threading.Thread(target=workers.pass_console, daemon=True).start()
        return workers.wait_all(embedded.process if embedded is not None else None)
    finally:
        if embedded is not None:
            embedded.close()
