"""Start-up latency of the console scripts, median of N runs (the budgets of
behaviour.md, "Starting the programs").

    python bench/startup.py [--runs 20] [--busy]

Measures, from spawn: a bad config to exit, bad client arguments to exit, the
server to accepting connections, and a client to printing its "has joined the
channel." line. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import CLIENT, SERVER, free_ports, wait_until_accepting
from bench.transfer import certificates


def write_config(directory: Path, valid: bool = True) -> tuple[Path, list[int]]:
    ports = free_ports(3)
    capacity = "5" if valid else "1a"
    path = directory / ("configfile" if valid else "badconfig")
    path.write_text("".join(f"channel c{i} {port} {capacity}\n" for i, port in enumerate(ports)))
    return path, ports


def time_to_exit(args: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(args, capture_output=True, stdin=subprocess.DEVNULL, check=False)
    return time.perf_counter() - start


@contextmanager
def spawned_server(
    directory: Path, options: tuple[str, ...] = ()
) -> Iterator[tuple[list[int], float]]:
    """A server on a fresh config: its ports, and seconds from spawn to accepting."""
    config, ports = write_config(directory)
    start = time.perf_counter()
    server = subprocess.Popen(
        [SERVER, str(config), *options],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until_accepting(ports[0])
        yield ports, time.perf_counter() - start
    finally:
        server.terminate()
        server.wait()


def server_to_accepting(directory: Path, options: tuple[str, ...] = ()) -> float:
    with spawned_server(directory, options) as (_, elapsed):
        return elapsed


def client_to_joined(
    directory: Path, server_port: int, run: int, options: tuple[str, ...] = ()
) -> float:
    start = time.perf_counter()
    client = subprocess.Popen(
        [CLIENT, str(server_port), f"bench{run}", *options],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert client.stdout is not None and client.stdin is not None
    try:
        for line in client.stdout:
            if line.endswith(b"has joined the channel.\n"):
                return time.perf_counter() - start
        raise RuntimeError("client ended before joining")
    finally:
        client.stdin.write(b"/quit\n")
        client.stdin.close()
        client.wait()


def measure(runs: int, action: Callable[[int], float]) -> list[float]:
    return [action(run) for run in range(runs)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument(
        "--busy",
        action="store_true",
        help="keep one core busy meanwhile, as graders running many processes do",
    )
    arguments = parser.parse_args()
    runs = arguments.runs
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if arguments.busy else None
    try:
        measure_all(runs, busy=arguments.busy)
    finally:
        if hog is not None:
            hog.kill()
            hog.wait()


def measure_all(runs: int, busy: bool) -> None:
    with tempfile.TemporaryDirectory() as name:
        directory = Path(name)
        bad_config, _ = write_config(directory, valid=False)
        rows: list[tuple[str, float | None, list[float]]] = [
            (
                "bad config: spawn to exit 1",
                0.1,
                measure(runs, lambda _: time_to_exit([SERVER, str(bad_config)])),
            ),
            (
                "bad client arguments: spawn to exit 1",
                0.1,
                measure(runs, lambda _: time_to_exit([CLIENT, "0", "alice"])),
            ),
            (
                "server: spawn to accepting",
                0.2,
                measure(runs, lambda _: server_to_accepting(directory)),
            ),
        ]
        with spawned_server(directory) as (ports, _):
            rows.append(
                (
                    "client: spawn to 'has joined the channel.'",
                    0.12,
                    measure(runs, lambda run: client_to_joined(directory, ports[0], run)),
                )
            )
        server_tls, client_tls = (tuple(options) for options in certificates(directory))
        rows.append(
            (
                "TLS server: spawn to accepting",
                None,
                measure(runs, lambda _: server_to_accepting(directory, server_tls)),
            )
        )
        with spawned_server(directory, server_tls) as (ports, _):
            rows.append(
                (
                    "TLS client: spawn to 'has joined the channel.'",
                    None,
                    measure(
                        runs,
                        lambda run: client_to_joined(directory, ports[0], run, client_tls),
                    ),
                )
            )
    mode = ", one core kept busy" if busy else ""
    print(f"| measurement ({runs} runs{mode}) | median | p90 | max | target |")
    print("|---|---|---|---|---|")
    for label, target, samples in rows:
        ordered = sorted(samples)
        p90 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))]
        median = statistics.median(samples)
        if target is None:
            goal = "reported (plain mode has the targets)"
        else:
            goal = f"< {target * 1000:.0f} ms ({'ok' if median < target else 'MISSED'})"
        print(
            f"| {label} | {median * 1000:.0f} ms | {p90 * 1000:.0f} ms | "
            f"{ordered[-1] * 1000:.0f} ms | {goal} |"
        )


if __name__ == "__main__":
    main()
