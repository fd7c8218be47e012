"""Fan-out, scale and slow-consumer load on a real trio-chat-server, on loopback.

    python bench/load.py [--quick]

A load generator in this process speaks the wire protocol. Members chat in a
closed loop: each sends its next message when its previous one has come back,
so latency is the real round trip through the server, not a queue the
generator built. The same load runs against a minimal bare-trio relay (accept,
read a line, write it to everyone) for comparison. Prints Markdown tables.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import typing
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Literal

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import SERVER, cpu_seconds, free_ports, wait_until_accepting
from trio_chat import wire
from trio_chat.wire import FrameType

# The end of a bare relay's program (bench/irc.py has one too): a member that
# hangs up leaves, and the port it serves on is its first line of output.
BARE_RELAY_END = """        except trio.BrokenResourceError:
            pass
        del clients[stream]
        nursery.cancel_scope.cancel()
async def main():
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    print(listeners[0].socket.getsockname()[1], flush=True)
    await trio.serve_listeners(handler, listeners)
trio.run(main)
"""
BARE_RELAY = (
    """
import sys, trio
clients = {}
async def handler(stream):
    send, receive = trio.open_memory_channel(100000)
    clients[stream] = send
    async def writer():
        async for data in receive:
            await stream.send_all(data)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(writer)
        await send.send(b"ok\\n")
        pending = b""
        try:
            async for data in stream:
                pending += data
                *lines, pending = pending.split(b"\\n")
                for line in lines:
                    for out in list(clients.values()):
                        out.send_nowait(line + b"\\n")
"""
    + BARE_RELAY_END
)


def raise_fd_limit() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise KeyError("VmRSS")


Protocol = Literal["chat", "line", "irc"]
HEADER_SIZE = wire.HEADER.size
LINE = int(FrameType.LINE)
EVENT = int(FrameType.EVENT)
CHAT_EVENT = b'{"event":"chat",'  # render/browser.py's chat event starts so
MESSAGE_FIELD = b'"message":"'
IRC_CHANNEL = "#bench"

# Capacity runs measure the server, not its guards: one generator process sends
# as fast as it can from one address.
UNGUARDED = ("--flood-rate", "0", "--max-per-address", "0")


class ChatServerProcess:
    def __init__(
        self,
        directory: Path,
        channels: int,
        capacity: int,
        options: tuple[str, ...] = UNGUARDED,
        names: tuple[str, ...] = (),
    ) -> None:
        """``names``: the first channels' names (bench/irc.py's is IRC_CHANNEL's);
        the rest are c1, c2, ..."""
        self.ports = free_ports(channels)
        config = directory / "load-config"
        config.write_text(
            "".join(
                f"channel {names[i] if i < len(names) else f'c{i}'} {port} {capacity}\n"
                for i, port in enumerate(self.ports)
            )
        )
        self.process = subprocess.Popen(
            [SERVER, str(config), *options],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until_accepting(self.ports[0], self.process)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait()


class BareRelayProcess:
    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", BARE_RELAY], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
        )
        assert self.process.stdout is not None
        self.ports = [int(self.process.stdout.readline())]

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait()


INSPIRCD = Path("/usr/sbin/inspircd")
INSPIRCD_CONFIG = """<config format="xml">
<server name="bench.local" description="bench" network="bench">
<admin name="bench" nick="bench" email="bench@bench.local">
<bind address="127.0.0.1" port="{port}" type="clients">
<connect name="main" allow="*" maxchans="20" timeout="60" pingfreq="600"
 hardsendq="1073741824" softsendq="1073741824" recvq="1048576" threshold="1000000"
 commandrate="100000000" fakelag="no" localmax="100000" globalmax="100000"
 resolvehostnames="no" useident="no" limit="100000">
<channels users="100000" opers="100000">
<limits maxchan="64" maxnick="30">
<performance netbuffersize="65536" somaxconn="4096" clonesonconnect="no">
<security hideserver="" runasuser="" runasgroup="">
<pid file="{directory}/inspircd.pid">
<log method="file" type="* -USERINPUT -USEROUTPUT" level="default"
 target="{directory}/inspircd.log">
<module name="cap">
<module name="ircv3">
<module name="ircv3_echomessage">
"""


class InspircdProcess:
    """InspIRCd (the C++ IRC server) with flood limits off and echo-message on."""

    def __init__(self, directory: Path) -> None:
        (port,) = free_ports(1)
        self.ports = [port]
        config = directory / "inspircd.conf"
        config.write_text(INSPIRCD_CONFIG.format(port=port, directory=directory))
        root = ["--runasroot"] if os.geteuid() == 0 else []
        self.process = subprocess.Popen(
            [str(INSPIRCD), *root, "--nofork", f"--config={config}"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until_accepting(port, self.process)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait()


class Member:
    """One generator-side client: sends in a closed loop, records latencies."""

    def __init__(self, index: int, stream: trio.abc.Stream, protocol: Protocol) -> None:
        self.index = index
        self.stream = stream
        self.protocol = protocol
        self.echoed = trio.Event()
        self.received = 0
        self.latencies: list[float] = []
        self.pending = b""

    def encode(self, text: str) -> bytes:
        if self.protocol == "chat":
            return wire.encode_input(text)
        if self.protocol == "irc":
            return f"PRIVMSG {IRC_CHANNEL} :{text}\r\n".encode()
        return text.encode() + b"\n"

    def _messages(self, data: bytes | bytearray) -> list[str]:
        if self.protocol == "chat":
            return self._chat_lines(data)
        self.pending += data
        *lines, self.pending = self.pending.split(b"\n")
        if self.protocol == "irc":
            # ":nick!user@host PRIVMSG #bench :m 3 17 123.4" -> "x (nick) m 3 17 123.4"
            return [
                line.decode().rstrip("\r").replace(f" PRIVMSG {IRC_CHANNEL} :", " ", 1)
                for line in lines
            ]
        return [line.decode() for line in lines]

    def _chat_lines(self, data: bytes | bytearray) -> list[str]:
        """The LINE frames' text. As lean as the IRC adapter's line split, so
        that parsing in the generator costs each protocol about the same: no
        Frame objects or views, just the header and a slice per frame."""
        buffer = self.pending + data if self.pending else bytes(data)
        lines: list[str] = []
        start = 0
        end = len(buffer)
        unpack = wire.HEADER.unpack_from
        while end - start >= HEADER_SIZE:
            length, frame_type = unpack(buffer, start)
            stop = start + HEADER_SIZE + length
            if stop > end:
                break
            if frame_type == LINE:  # kind, subject, "\n", the line
                text = buffer.index(b"\n", start + HEADER_SIZE + 1, stop) + 1
                lines.append(buffer[text:stop].decode())
            elif frame_type == EVENT:  # a browser's: what it would show
                body = buffer[start + HEADER_SIZE : stop]
                if body.startswith(CHAT_EVENT):
                    # The text alone, found as the IRC adapter finds its own (a
                    # bench line has no quote or escape): a JSON parse per
                    # delivery would make the generator, on the same cores as
                    # the server, the slower side for browsers alone.
                    at = body.index(MESSAGE_FIELD) + len(MESSAGE_FIELD)
                    lines.append(body[at : body.index(b'"', at)].decode())
                else:
                    event = json.loads(body)
                    if event["event"] == "joined":
                        lines.append(f"{event['user']} has joined the channel.")
            start = stop
        self.pending = buffer[start:]
        return lines

    async def read_until(self, wanted: Callable[[str], bool]) -> None:
        while True:
            data = await self.stream.receive_some(65536)
            if not data:
                raise RuntimeError("server closed the connection")
            if any(wanted(message) for message in self._messages(data)):
                return

    async def read_forever(self) -> None:
        try:
            while data := await self.stream.receive_some(65536):
                now = time.perf_counter()
                for message in self._messages(data):
                    fields = message.rsplit(" ", 3)
                    if len(fields) != 4 or not fields[0].endswith("m"):
                        continue
                    self.received += 1
                    self.latencies.append(now - float(fields[3]))
                    if int(fields[1]) == self.index:
                        self.echoed.set()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass

    async def chat(self, messages: int, pause: float = 0.0) -> None:
        for seq in range(messages):
            self.echoed = trio.Event()
            await self.stream.send_all(self.encode(f"m {self.index} {seq} {time.perf_counter()}"))
            await self.echoed.wait()
            if pause:
                await trio.sleep(pause)


Opener = Callable[[str, int], Awaitable[trio.abc.Stream]]


async def connect(
    port: int,
    index: int,
    protocol: Protocol,
    host: str = "127.0.0.1",
    opener: Opener = trio.open_tcp_stream,
) -> tuple[Member, float]:
    start = time.perf_counter()
    stream = await opener(host, port)
    member = Member(index, stream, protocol)
    if protocol == "chat":
        await stream.send_all(wire.encode_hello(f"u{index}"))
        me = f"u{index} has joined the channel."
        await member.read_until(lambda message: message.endswith(me))
    elif protocol == "irc":
        # echo-message: the sender gets its own line back, as trio-chat sends it.
        await stream.send_all(
            f"CAP REQ :echo-message\r\nNICK u{index}\r\nUSER u{index} 0 * :u{index}\r\n"
            "CAP END\r\n".encode()
        )
        await member.read_until(lambda message: " 001 " in message)
        await stream.send_all(f"JOIN {IRC_CHANNEL}\r\n".encode())
        await member.read_until(lambda message: " 366 " in message)
    else:
        await member.read_until(lambda message: message == "ok")
    return member, time.perf_counter() - start


async def connect_all(
    ports: list[int],
    count: int,
    protocol: Protocol,
    concurrency: int = 100,
    hosts: tuple[str, ...] = ("127.0.0.1",),
    opener: Opener = trio.open_tcp_stream,
) -> tuple[list[Member], list[float]]:
    """Members take the ports in turn, and the hosts (a cluster's nodes) in turn."""
    members: list[Member | None] = [None] * count
    joins: list[float] = [0.0] * count
    limiter = trio.CapacityLimiter(concurrency)

    async def one(index: int) -> None:
        async with limiter:
            members[index], joins[index] = await connect(
                ports[index % len(ports)], index, protocol, hosts[index % len(hosts)], opener
            )

    async with trio.open_nursery() as nursery:
        for index in range(count):
            nursery.start_soon(one, index)
    return [m for m in members if m is not None], joins


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


async def fan_out(
    ports: list[int],
    members: int,
    messages: int,
    protocol: Protocol,
    silent: int = 0,
    hosts: tuple[str, ...] = ("127.0.0.1",),
    opener: Opener = trio.open_tcp_stream,
) -> dict[str, float]:
    group, _ = await connect_all(ports, members, protocol, hosts=hosts, opener=opener)
    sleepers = []
    for index in range(silent):  # connected, joined, never reading again
        sleeper, _ = await connect(ports[0], members + index, protocol)
        sleepers.append(sleeper)
    async with trio.open_nursery() as readers:
        for member in group:
            readers.start_soon(member.read_forever)
        start = time.perf_counter()
        async with trio.open_nursery() as senders:
            for member in group:
                senders.start_soon(member.chat, messages)
        expected = members * messages
        while any(member.received < expected for member in group):
            await trio.sleep(0.001)  # the last deliveries to the slowest readers
        elapsed = time.perf_counter() - start
        readers.cancel_scope.cancel()
    for member in [*group, *sleepers]:
        await member.stream.aclose()
    latencies = [latency for member in group for latency in member.latencies]
    return {
        "deliveries": len(latencies) / elapsed,
        "total": len(latencies),
        "p50": percentile(latencies, 0.5),
        "p99": percentile(latencies, 0.99),
    }


def measured_run(
    process: subprocess.Popen[bytes], run: Callable[[], dict[str, float]]
) -> dict[str, float]:
    """``run()``'s result plus the server's CPU seconds per 100,000 deliveries."""
    before = cpu_seconds(process.pid)
    result = run()
    used = cpu_seconds(process.pid) - before
    result["cpu_per_100k"] = used / result["total"] * 100_000 if result.get("total") else 0.0
    return result


class ServerProcess(typing.Protocol):
    process: subprocess.Popen[bytes]
    ports: list[int]

    def stop(self) -> None: ...


def measured_fan_out(
    start: Callable[[], ServerProcess], protocol: Protocol, members: int, messages: int
) -> dict[str, float]:
    """Start a server, run the closed-loop fan-out against it, measure its CPU."""
    server = start()
    try:
        return measured_run(
            server.process,
            partial(trio.run, partial(fan_out, server.ports[:1], members, messages, protocol)),
        )
    finally:
        server.stop()


def fan_out_table(directory: Path, sizes: list[tuple[int, int]]) -> list[str]:
    rows = [
        "| members | messages each | trio-chat deliveries/s | p50 | p99 | CPU-s per 100k "
        "| bare relay deliveries/s | p50 | p99 | CPU-s per 100k | trio-chat / bare |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for members, messages in sizes:
        chat_server = partial(ChatServerProcess, directory, 3, max(members + 10, 5))
        ours = measured_fan_out(chat_server, "chat", members, messages)
        bare = measured_fan_out(BareRelayProcess, "line", members, messages)
        rows.append(
            f"| {members} | {messages} | {ours['deliveries']:,.0f} | "
            f"{ours['p50'] * 1000:.1f} ms | {ours['p99'] * 1000:.1f} ms | "
            f"{ours['cpu_per_100k']:.2f} | "
            f"{bare['deliveries']:,.0f} | {bare['p50'] * 1000:.1f} ms | "
            f"{bare['p99'] * 1000:.1f} ms | {bare['cpu_per_100k']:.2f} | "
            f"{ours['deliveries'] / bare['deliveries']:.0%} |"
        )
    return rows


def inspircd_table(directory: Path, sizes: list[tuple[int, int]], runs: int) -> list[str]:
    """The same closed-loop fan-out against InspIRCd, when it is installed:
    ``runs`` runs of each, alternating, and the median of each column (a
    closed loop's batching, and so its CPU per delivery, varies run to run)."""
    rows = [
        "| members | messages each | trio-chat deliveries/s | CPU-s per 100k "
        "| InspIRCd deliveries/s | CPU-s per 100k | trio-chat CPU / InspIRCd CPU "
        "| trio-chat rate / InspIRCd rate |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for members, messages in sizes:
        chat_server = partial(ChatServerProcess, directory, 3, max(members + 10, 5))
        ours: list[dict[str, float]] = []
        theirs: list[dict[str, float]] = []
        for _ in range(runs):
            ours.append(measured_fan_out(chat_server, "chat", members, messages))
            theirs.append(
                measured_fan_out(partial(InspircdProcess, directory), "irc", members, messages)
            )
        rate, cpu = median_of(ours, "deliveries"), median_of(ours, "cpu_per_100k")
        their_rate, their_cpu = median_of(theirs, "deliveries"), median_of(theirs, "cpu_per_100k")
        rows.append(
            f"| {members} | {messages} | {rate:,.0f} | {cpu:.3f} | {their_rate:,.0f} | "
            f"{their_cpu:.3f} | {cpu / their_cpu:.2f}x | {rate / their_rate:.2f}x |"
        )
    return rows


def median_of(results: list[dict[str, float]], key: str) -> float:
    return statistics.median(result[key] for result in results)


def scale_table(directory: Path, clients: int) -> list[str]:
    channels = 100
    server = ChatServerProcess(directory, channels, clients // channels + 10)
    try:
        baseline = rss_kb(server.process.pid)

        async def main() -> dict[str, float]:
            members, joins = await connect_all(server.ports, clients, "chat", concurrency=200)
            async with trio.open_nursery() as nursery:
                for member in members:
                    nursery.start_soon(member.read_forever)
                await trio.sleep(1)  # let the last join announcements drain
                held = rss_kb(server.process.pid)
                nursery.cancel_scope.cancel()
            for member in members:
                await member.stream.aclose()
            return {
                "held": len(members),
                "rss": held,
                "p50": percentile(joins, 0.5),
                "p99": percentile(joins, 0.99),
            }

        result = trio.run(main)
    finally:
        server.stop()
    per_connection = (result["rss"] - baseline) / result["held"]
    return [
        "| clients held | channels | server RSS idle | server RSS held | RSS per connection "
        "| join p50 | join p99 |",
        "|---|---|---|---|---|---|---|",
        f"| {result['held']:,.0f} | {channels} | {baseline / 1024:.1f} MB | "
        f"{result['rss'] / 1024:.1f} MB | {per_connection:.1f} KB (target < 30 KB) | "
        f"{result['p50'] * 1000:.1f} ms | {result['p99'] * 1000:.1f} ms |",
    ]


def slow_consumer_table(directory: Path, members: int, messages: int) -> list[str]:
    results = {}
    for silent in (0, 1):
        server = ChatServerProcess(directory, 3, members + 10)
        try:
            results[silent] = trio.run(
                partial(fan_out, server.ports[:1], members, messages, "chat", silent)
            )
        finally:
            server.stop()
    ratio = results[1]["p99"] / results[0]["p99"]
    return [
        "| run | deliveries/s | p50 | p99 |",
        "|---|---|---|---|",
        *(
            f"| {members} members{' + 1 that never reads' if silent else ''} | "
            f"{r['deliveries']:,.0f} | {r['p50'] * 1000:.1f} ms | {r['p99'] * 1000:.1f} ms |"
            for silent, r in results.items()
        ),
        f"| p99 with the slow consumer / without | | | {ratio:.2f}x (target <= 2x) |",
    ]


async def paced_chat_with_flooder(
    port: int, members: int, messages: int, pause: float, flood: bool
) -> dict[str, float]:
    """``members`` chat in a closed loop, pausing ``pause`` s after each echo
    (under the flood limit); one more member, if ``flood``, writes lines as fast
    as the server takes them."""
    # Each from its own loopback address, as people are: the members of one
    # address share a line budget (docs/security.md, "Flood control").
    addresses = itertools.count(2)

    async def own_address(host: str, port: int) -> trio.abc.Stream:
        source = f"127.0.0.{next(addresses)}"
        return await trio.open_tcp_stream(host, port, local_address=source)

    group, _ = await connect_all([port], members, "chat", opener=own_address)
    flooder, _ = await connect(port, members, "chat", opener=own_address)
    flood_line = wire.encode_input("flood " + "x" * 40)
    async with trio.open_nursery() as background:
        for member in group:
            background.start_soon(member.read_forever)
        background.start_soon(flooder.read_forever)
        if flood:

            async def pour() -> None:
                with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                    while True:
                        await flooder.stream.send_all(flood_line * 64)

            background.start_soon(pour)
        start = time.perf_counter()
        async with trio.open_nursery() as senders:
            for member in group:
                senders.start_soon(member.chat, messages, pause)
        elapsed = time.perf_counter() - start
        background.cancel_scope.cancel()
    for member in [*group, flooder]:
        await member.stream.aclose()
    latencies = [latency for member in group for latency in member.latencies]
    return {
        "seconds": elapsed,
        "p50": percentile(latencies, 0.5),
        "p99": percentile(latencies, 0.99),
    }


def flood_table(directory: Path, members: int, messages: int, pause: float) -> list[str]:
    rows = [
        "| run (default flood limits) | duration | p50 | p99 | server CPU during the run |",
        "|---|---|---|---|---|",
    ]
    results = {}
    for flood in (False, True):
        server = ChatServerProcess(directory, 3, members + 10, options=("--max-per-address", "0"))
        try:
            before = cpu_seconds(server.process.pid)
            result = trio.run(
                partial(paced_chat_with_flooder, server.ports[0], members, messages, pause, flood)
            )
            result["cpu"] = cpu_seconds(server.process.pid) - before
        finally:
            server.stop()
        results[flood] = result
        label = f"{members} members chatting" + (" + 1 flooding" if flood else "")
        rows.append(
            f"| {label} | {result['seconds']:.1f} s | {result['p50'] * 1000:.1f} ms | "
            f"{result['p99'] * 1000:.1f} ms | {result['cpu']:.2f} s "
            f"({result['cpu'] / result['seconds']:.0%} of a core) |"
        )
    ratio = results[True]["p99"] / results[False]["p99"]
    rows.append(f"| p99 with the flooder / without | | | {ratio:.2f}x (target <= 2x) | |")
    return rows


# Channel history (docs/behaviour.md, "Channel history"): the server's option.
HISTORY = ("--history", "1000")
# A typical chat line for the history's memory: 100 characters.
HISTORY_PAD = "x" * 80


def history_fan_out_table(directory: Path, members: int, messages: int, runs: int) -> list[str]:
    """The closed-loop fan-out with --history 1000 and without, alternating:
    the median of ``runs`` runs of each (every line is kept, and once 1000
    are, each drops the oldest)."""
    results: dict[bool, list[dict[str, float]]] = {False: [], True: []}
    for _ in range(runs):
        for keeping in (False, True):
            options = (*UNGUARDED, *HISTORY) if keeping else UNGUARDED
            server = partial(ChatServerProcess, directory, 3, members + 10, options)
            results[keeping].append(measured_fan_out(server, "chat", members, messages))
    rate = {k: median_of(v, "deliveries") for k, v in results.items()}
    cpu = {k: median_of(v, "cpu_per_100k") for k, v in results.items()}
    return [
        "| members | messages each | without: deliveries/s | CPU-s per 100k "
        "| --history 1000: deliveries/s | CPU-s per 100k | rate with / without "
        "| CPU with / without |",
        "|---|---|---|---|---|---|---|---|",
        f"| {members} | {messages} | {rate[False]:,.0f} | {cpu[False]:.3f} | "
        f"{rate[True]:,.0f} | {cpu[True]:.3f} | {rate[True] / rate[False]:.1%} | "
        f"{cpu[True] / cpu[False]:.1%} |",
    ]


async def fill_history(port: int, index: int, lines: int) -> Member:
    """A member of the channel on ``port`` says ``lines`` lines of about 100
    characters, one at a time (each comes back before the next goes)."""
    member, _ = await connect(port, index, "chat")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(member.read_forever)
        for seq in range(lines):
            member.echoed = trio.Event()
            text = f"{HISTORY_PAD} m {index} {seq} {time.perf_counter()}"
            await member.stream.send_all(wire.encode_input(text))
            await member.echoed.wait()
        nursery.cancel_scope.cancel()
    return member


def admission_cost(directory: Path, options: tuple[str, ...], members: int, joins: int) -> float:
    """Server CPU milliseconds per admission to a channel of ``members``,
    after 1000 lines were said in it (kept or not, as ``options`` say): each
    newcomer joins, reads everything up to its own join (the history too) and
    hangs up before the next comes."""
    server = ChatServerProcess(directory, 3, members + joins + 10, options)
    port = server.ports[0]
    try:

        async def main() -> float:
            group, _ = await connect_all([port], members - 1, "chat")
            speaker = await fill_history(port, members, 1000)
            async with trio.open_nursery() as nursery:
                for member in [*group, speaker]:
                    nursery.start_soon(member.read_forever)
                await trio.sleep(0.5)  # the last lines drain
                before = cpu_seconds(server.process.pid)
                for index in range(joins):
                    newcomer, _ = await connect(port, 100_000 + index, "chat")
                    await newcomer.stream.aclose()
                used = cpu_seconds(server.process.pid) - before
                nursery.cancel_scope.cancel()
            return used / joins * 1000

        return trio.run(main)
    finally:
        server.stop()


def history_memory(directory: Path, channels: int) -> tuple[float, float]:
    """Server RSS (KB) a channel's full history of 1000 lines of ~100
    characters adds, and what the history counts against --history-bytes."""
    server = ChatServerProcess(directory, channels, 10, (*UNGUARDED, *HISTORY))
    try:

        async def main() -> float:
            speakers = await connect_all(server.ports, channels, "chat")
            await trio.sleep(0.5)
            before = rss_kb(server.process.pid)
            async with trio.open_nursery() as nursery:
                for index, port in enumerate(server.ports):
                    nursery.start_soon(fill_history, port, channels + index, 1000)
            await trio.sleep(0.5)
            del speakers
            return (rss_kb(server.process.pid) - before) / channels

        per_channel = trio.run(main)
    finally:
        server.stop()
    line = len(f"{HISTORY_PAD} m 10 999 {time.perf_counter()}")
    counted = 1000 * (len("u10") + line + 32) / 1024
    return per_channel, counted


# Runs of each for the history's fan-out: a closed loop's rate and CPU per
# delivery vary by 15% run to run, more than what history costs (measured
# in the hub alone: 1.4 µs a line, about 1% of a line's 100 deliveries).
HISTORY_RUNS = 7


def history_tables(directory: Path, quick: bool) -> list[str]:
    # 30,000 lines: the history is full (1000) for all but the first 1000.
    members, messages = (20, 20) if quick else (100, 300)
    rows = history_fan_out_table(directory, members, messages, 1 if quick else HISTORY_RUNS)
    joins = 10 if quick else 100
    without = admission_cost(directory, UNGUARDED, 100, joins)
    with_history = admission_cost(directory, (*UNGUARDED, *HISTORY), 100, joins)
    per_channel, counted = history_memory(directory, 5 if quick else 20)
    rows += [
        "",
        "| admission to a 100-member channel after 1000 lines | server CPU per admission |",
        "|---|---|",
        f"| without history | {without:.2f} ms |",
        f"| --history 1000 (the newcomer gets all 1000) | {with_history:.2f} ms "
        f"(target ≤ 5 ms; the history's own part {with_history - without:.2f} ms) |",
        "",
        "| a channel's full history (1000 lines of ~100 characters) | per channel |",
        "|---|---|",
        f"| server RSS it adds | {per_channel:,.0f} KB |",
        f"| what it counts against --history-bytes (default 256K) | {counted:,.0f} KB |",
    ]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument(
        "--runs", type=int, default=3, help="runs of each server against InspIRCd (median)"
    )
    parser.add_argument(
        "--history-only", action="store_true", help="only the channel history tables"
    )
    arguments = parser.parse_args()
    quick = arguments.quick
    raise_fd_limit()
    sizes = [(10, 20), (100, 5)] if quick else [(10, 1000), (100, 100), (1000, 1)]
    with tempfile.TemporaryDirectory() as name:
        directory = Path(name)
        if arguments.history_only:
            print("Channel history: fan-out with --history 1000 and without, alternating\n")
            print("\n".join(history_tables(directory, quick)))
            return
        print("Fan-out: one channel, every member sends in a closed loop\n")
        print("\n".join(fan_out_table(directory, sizes)))
        if INSPIRCD.exists():
            irc_sizes = [(10, 50), (100, 20)] if quick else [(10, 1000), (100, 100), (300, 20)]
            runs = 1 if quick else arguments.runs
            print(
                "\nAgainst InspIRCd (flood limits off, echo-message on), same generator; "
                f"median of {runs} alternating runs of each; CPU is the server process's "
                "user+system time from /proc\n"
            )
            print("\n".join(inspircd_table(directory, irc_sizes, runs)))
        print("\nScale: idle clients held over 100 channels\n")
        print("\n".join(scale_table(directory, 500 if quick else 10000)))
        print("\nSlow consumer: one member stops reading while the others chat\n")
        print("\n".join(slow_consumer_table(directory, 20 if quick else 100, 10 if quick else 50)))
        print("\nFlood: one member floods while others chat under the limit\n")
        print("\n".join(flood_table(directory, 20, 10 if quick else 40, 0.25)))
        print("\nChannel history: fan-out with --history 1000 and without, alternating\n")
        print("\n".join(history_tables(directory, quick)))


if __name__ == "__main__":
    main()
