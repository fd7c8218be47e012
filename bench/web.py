"""Fan-out to 100 WebSocket members against 100 TCP members, one server.

    python bench/web.py [--quick]

The closed-loop generator of bench/load.py (each member sends its next line
when its own came back) speaks the same frames to the channel's port and,
through trio-websocket, to the browser endpoint of `--web`. Prints a
Markdown table.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from functools import partial
from pathlib import Path

import trio
from trio_websocket import WebSocketConnection, connect_websocket

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import cpu_seconds, free_ports, own_cpu
from bench.load import ChatServerProcess, fan_out, raise_fd_limit


class WebSocketBytes(trio.abc.Stream):
    """A WebSocket as the byte stream the generator's members expect."""

    def __init__(self, socket: WebSocketConnection) -> None:
        self.socket = socket

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        message = await self.socket.get_message()
        return message if isinstance(message, bytes) else message.encode()

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self.socket.send_message(bytes(data))

    async def wait_send_all_might_not_block(self) -> None:
        await trio.lowlevel.checkpoint()

    async def aclose(self) -> None:
        await self.socket.aclose()


async def web_fan_out(web_port: int, members: int, messages: int) -> dict[str, float]:
    async with trio.open_nursery() as nursery:

        async def opener(host: str, port: int) -> trio.abc.Stream:
            socket = await connect_websocket(
                nursery,
                host,
                web_port,
                "/ws/c0",
                use_ssl=False,
                extra_headers=[(b"Origin", f"http://{host}:{web_port}".encode())],
            )
            return WebSocketBytes(socket)

        result = await fan_out([0], members, messages, "chat", opener=opener)
        nursery.cancel_scope.cancel()
    return result


def measure(members: int, messages: int, web: bool) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as directory:
        (web_port,) = free_ports(1)
        server = ChatServerProcess(
            Path(directory),
            3,
            members + 10,
            ("--flood-rate", "0", "--max-per-address", "0", "--web", str(web_port)),
        )
        try:
            before, generator_before = cpu_seconds(server.process.pid), own_cpu()
            if web:
                result = trio.run(web_fan_out, web_port, members, messages)
            else:
                result = trio.run(partial(fan_out, server.ports[:1], members, messages, "chat"))
            used = cpu_seconds(server.process.pid) - before
            generator = own_cpu() - generator_before
        finally:
            server.stop()
    result["cpu_per_100k"] = used / result["total"] * 100_000
    result["generator_per_100k"] = generator / result["total"] * 100_000
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    arguments = parser.parse_args()
    raise_fd_limit()
    members, messages = (20, 5) if arguments.quick else (100, 20)
    rows = [
        "| members | messages each | connection | deliveries/s | p50 | p99 "
        "| server CPU-s per 100k | generator CPU-s per 100k | vs TCP |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    tcp_rate = 0.0
    for web in (False, True):
        result = measure(members, messages, web)
        if not web:
            tcp_rate = result["deliveries"]
        rows.append(
            f"| {members} | {messages} | {'WebSocket' if web else 'TCP'} | "
            f"{result['deliveries']:,.0f} | {result['p50'] * 1000:.1f} ms | "
            f"{result['p99'] * 1000:.1f} ms | {result['cpu_per_100k']:.2f} | "
            f"{result['generator_per_100k']:.2f} | {result['deliveries'] / tcp_rate:.0%} |"
        )
    print("\n".join(rows))


if __name__ == "__main__":
    main()
