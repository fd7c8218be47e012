"""Fan-out through a cluster: one plain server, one node with Redis, two nodes.

    python bench/cluster.py [--quick | --pairs N | --lone N]

The closed-loop generator of bench/load.py (each member sends its next line
when its own came back) drives one channel; with two nodes the members
alternate between them (node 1 on 127.0.0.2, node 2 on 127.0.0.3). CPU
seconds per 100,000 deliveries are given for every process: each node and
redis-server, and the generator itself (this process: it shares the
machine's cores with the servers). ``--lone N`` times a lone line instead:
one member sends N lines, each when the last came back, through a plain
server and through one node (alternately, 3 times each). Prints Markdown
tables.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import SERVER, cpu_seconds, free_ports, own_cpu
from bench.load import UNGUARDED, fan_out, raise_fd_limit
from tests.redis_process import RedisProcess


class Setup:
    """The server processes of one configuration and their CPU so far."""

    def __init__(self, directory: Path, members: int, nodes: int | None) -> None:
        self.port = free_ports(1)[0]
        others = free_ports(2)
        config = directory / f"cluster-config-{self.port}"
        config.write_text(
            f"channel c0 {self.port} {members + 10}\n"
            f"channel c1 {others[0]} 5\nchannel c2 {others[1]} 5\n"
        )
        self.redis: RedisProcess | None = None
        self.processes: list[tuple[str, subprocess.Popen[bytes]]] = []
        if nodes is None:
            self.hosts: tuple[str, ...] = ("127.0.0.1",)
            self._start("server", [SERVER, str(config), *UNGUARDED])
            self._settle()
            return
        self.redis = RedisProcess()
        assert self.redis.process is not None
        self.hosts = tuple(f"127.0.0.{2 + i}" for i in range(nodes))
        for number, host in enumerate(self.hosts, start=1):
            self._start(
                f"node {number}",
                [SERVER, str(config), *UNGUARDED, "--redis", self.redis.url, "--host", host],
            )
        self.processes.append(("redis-server", self.redis.process))
        self._settle()

    def _settle(self) -> None:
        """Wait until the servers stop using CPU after "listening" (a plain
        server still spends about 0.3 s there), so that no run pays for it."""
        last = self.cpu()
        for _ in range(50):
            time.sleep(0.2)
            now = self.cpu()
            if all(now[name] - last[name] < 0.01 for name in now):
                return
            last = now

    def _start(self, name: str, command: list[str]) -> None:
        process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        assert process.stderr is not None
        for line in process.stderr:  # "listening ..." once every port is bound
            if b"listening" in line:
                break
        else:
            raise RuntimeError(f"{name} did not start")
        self.processes.append((name, process))

    def cpu(self) -> dict[str, float]:
        return {name: cpu_seconds(process.pid) for name, process in self.processes}

    def stop(self) -> None:
        for _, process in self.processes:
            if process.poll() is None:
                process.terminate()
                process.wait()
        if self.redis is not None:
            self.redis.close()


def run(directory: Path, members: int, messages: int, nodes: int | None) -> dict[str, object]:
    setup = Setup(directory, members, nodes)
    try:
        before = {**setup.cpu(), "generator": own_cpu()}
        result = trio.run(
            partial(fan_out, [setup.port], members, messages, "chat", hosts=setup.hosts)
        )
        after = {**setup.cpu(), "generator": own_cpu()}
    finally:
        setup.stop()
    total = float(result["total"])
    cpu = {name: (after[name] - before[name]) / total * 100_000 for name in before}
    return {**result, "cpu": cpu}


def table(directory: Path, sizes: list[tuple[int, int]]) -> list[str]:
    rows = [
        "| members | messages each | setup | deliveries/s | p50 | p99 | vs plain "
        "| CPU-s per 100k deliveries, each process |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for members, messages in sizes:
        plain_rate = 0.0
        for label, nodes in (("plain", None), ("1 node + Redis", 1), ("2 nodes + Redis", 2)):
            result = run(directory, members, messages, nodes)
            rate = float(result["deliveries"])  # type: ignore[arg-type]
            if nodes is None:
                plain_rate = rate
            cpu: dict[str, float] = result["cpu"]  # type: ignore[assignment]
            rows.append(
                f"| {members} | {messages} | {label} | {rate:,.0f} | "
                f"{float(result['p50']) * 1000:.1f} ms | "  # type: ignore[arg-type]
                f"{float(result['p99']) * 1000:.1f} ms | {rate / plain_rate:.0%} | "  # type: ignore[arg-type]
                + ", ".join(f"{name} {seconds:.2f}" for name, seconds in cpu.items())
                + " |"
            )
            print(rows[-1], file=sys.stderr, flush=True)
    return rows


def pairs_table(directory: Path, members: int, messages: int, pairs: int) -> list[str]:
    """Plain and one node, alternately: the ratio varies from run to run here."""
    rows = [
        f"| pair ({members} members, {messages} messages each) | plain deliveries/s "
        "| 1 node + Redis deliveries/s | 1 node / plain |",
        "|---|---|---|---|",
    ]
    ratios = []
    for pair in range(1, pairs + 1):
        plain = float(run(directory, members, messages, None)["deliveries"])  # type: ignore[arg-type]
        node = float(run(directory, members, messages, 1)["deliveries"])  # type: ignore[arg-type]
        ratios.append(node / plain)
        rows.append(f"| {pair} | {plain:,.0f} | {node:,.0f} | {node / plain:.0%} |")
    rows.append(f"| median | | | {statistics.median(ratios):.0%} |")
    return rows


def lone_table(directory: Path, messages: int, runs: int = 3) -> list[str]:
    """A lone line's round trip: one member, its next line when its own came back."""
    found: dict[str, list[dict[str, object]]] = {"plain": [], "1 node + Redis": []}
    for _ in range(runs):
        found["plain"].append(run(directory, 1, messages, None))
        found["1 node + Redis"].append(run(directory, 1, messages, 1))
    rows = [
        f"| setup ({messages} lines, {runs} runs) | p50 ms, each run | p99 ms, each run "
        "| server CPU µs a line, each run |",
        "|---|---|---|---|",
    ]
    for label, results in found.items():
        cpu = [
            sum(seconds for name, seconds in result["cpu"].items() if name != "generator") * 10  # type: ignore[attr-defined]
            for result in results
        ]
        rows.append(
            f"| {label} | "
            + " / ".join(f"{float(r['p50']) * 1000:.2f}" for r in results)  # type: ignore[arg-type]
            + " | "
            + " / ".join(f"{float(r['p99']) * 1000:.2f}" for r in results)  # type: ignore[arg-type]
            + " | "
            + " / ".join(f"{c:.0f}" for c in cpu)
            + " |"
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument(
        "--pairs",
        type=int,
        metavar="N",
        help="instead: N alternating runs of plain and one node at 100 members",
    )
    parser.add_argument(
        "--lone",
        type=int,
        metavar="N",
        help="instead: a lone line's round trip, N lines, plain and one node",
    )
    arguments = parser.parse_args()
    raise_fd_limit()
    sizes = [(20, 5), (100, 2)] if arguments.quick else [(100, 20), (1000, 2)]
    with tempfile.TemporaryDirectory() as directory:
        if arguments.lone:
            print("\n".join(lone_table(Path(directory), arguments.lone)))
            return
        if arguments.pairs:
            print("\n".join(pairs_table(Path(directory), 100, 20, arguments.pairs)))
            return
        print("\n".join(table(Path(directory), sizes)))


if __name__ == "__main__":
    main()
