"""Mixed load: many small channels at a fixed offered rate, churn, and the
one-channel closed loop, against trio-chat (native port and IRC port),
InspIRCd, ngIRCd, and a bare trio relay (the floor: what any trio program
pays for the same IRC load, BARE_CHANNELS_RELAY below).

    python bench/mix.py [--quick] [--servers native,irc,inspircd,ngircd,bare] [--runs N]
                        [--tables mix,churn,closed]

**Open loop** (the mix): 1,000 members in 100 channels of 10, then in 20
channels of 50. Each member says a line every 2 s on average (an interval
drawn from 0.5x to 1.5x of it, so members do not march in step), whatever
the server does with them: the rate offered is fixed, not set by the
server's replies. Each step doubles the rate; a step is past the **knee**
when its p99 latency (a line's send to each reception) passes 100 ms or
fewer than 95% of the deliveries due arrive. The members live in
``--generators`` processes (the channels split between them), each from its
own loopback address, so that no generator core sets the rate.

**Churn**: 1,000 members in 20 channels of 50. The server's CPU per join
(a newcomer connects, registers where IRC asks it to, joins and has the
roster: nobody chatting), per leave (a member quits), and under chat:
50 joins and 50 leaves a second while everyone chats at the base rate, the
CPU above the same chat without churn, per join+leave, and the join
latency (connect to roster) p50/p99.

**Closed loop**: bench/load.py's one channel, every member sends its next
line when its own came back, at 10 and 100 members, the median of
``--runs`` alternating runs.

The IRC servers see the same load: registration with NICK and USER, one
JOIN. In the open loop and churn nobody asks for echo-message (ngIRCd does
not offer it), so a line is delivered to the other members of its channel;
the native port always sends the sender its own line, so its lines have
one delivery more (CPU is compared per delivery). In the closed loop
trio-chat's IRC port and InspIRCd echo (as bench/load.py and bench/irc.py
measure them); ngIRCd cannot, so its members wait for their line to reach
the next member instead. CPU is the server process's user+system time from
/proc; RSS is the server's at the end of a step.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import itertools
import json
import os
import platform
import random
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Literal

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    ServerExited,
    cpu_model,
    cpu_seconds,
    free_ports,
    own_cpu,
    user_seconds,
    wait_until_accepting,
)
from bench.irc import SERVER_NAME
from bench.load import (
    INSPIRCD,
    UNGUARDED,
    ChatServerProcess,
    InspircdProcess,
    Member,
    ServerProcess,
    measured_fan_out,
    measured_run,
    median_of,
    percentile,
    raise_fd_limit,
    rss_kb,
)
from trio_chat import wire

NGIRCD = Path("/usr/sbin/ngircd")
# Penalties off (MaxPenaltyTime 0: no fake lag however fast a client
# writes), no per-address or per-user limits, no lookups at registration.
NGIRCD_CONFIG = """[Global]
Name = bench.local
Info = bench
Listen = 127.0.0.1
Ports = {port}
MotdPhrase = bench
[Limits]
MaxConnections = 0
MaxConnectionsIP = 0
MaxJoins = 0
MaxNickLength = 30
MaxPenaltyTime = 0
PingTimeout = 600
PongTimeout = 600
[Options]
DNS = no
Ident = no
PAM = no
"""

BASE_INTERVAL = 2.0  # seconds between one member's lines, on average
KNEE_P99 = 0.100
KNEE_DELIVERED = 0.95
GENERATOR_SHORT = 0.9  # of the offered rate sent: below it, the generators are the limit
DRAIN = 1.0  # after a step, for its last lines to arrive
BUCKET = 20_000  # latency histogram: buckets of 50 microseconds
LAST_BUCKET = 20 * BUCKET  # 20 s and more
TRIO_CHAT_MAX_NAME = 20  # generator names stay short: u<generator><index>

Kind = Literal["native", "irc", "inspircd", "ngircd", "bare"]
KINDS: tuple[Kind, ...] = ("native", "irc", "inspircd", "ngircd", "bare")
LABELS: dict[Kind, str] = {
    "native": "trio-chat, native",
    "irc": "trio-chat, IRC",
    "inspircd": "InspIRCd, IRC",
    "ngircd": "ngIRCd, IRC",
    "bare": "bare trio relay, IRC",
}


# ----- the servers -----


class NgircdProcess:
    """ngIRCd (the C IRC server) with penalties and limits off."""

    def __init__(self, directory: Path) -> None:
        (port,) = free_ports(1)
        self.ports = [port]
        config = directory / "ngircd.conf"
        config.write_text(NGIRCD_CONFIG.format(port=port))
        self.process = subprocess.Popen(
            [str(NGIRCD), "--nodaemon", "--config", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until_accepting(port, self.process)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait()


# The floor for trio-chat on this load: as little as a trio program can do and
# still be an IRC server to the generator, with channels. A task a connection,
# its lines split, each line written at once with one os.write to each member
# it is for (as InspIRCd and ngIRCd write: with 10 members a line there is
# nothing to batch): PRIVMSG to the others of the channel; a JOIN to all of
# them and the names to the newcomer; a QUIT to those left. No parsing beyond
# the command, no checks, no backpressure (a write the socket does not take
# is lost, and the step's "delivered" shows it).
BARE_CHANNELS_RELAY = """
import os, trio
members = {}
def tell(fds, data):
    for fd in fds:
        try:
            os.write(fd, data)
        except OSError:
            pass
async def handler(stream):
    fd = stream.socket.fileno()
    nick = source = b"*"
    joined = []
    pending = b""
    async with stream:
        try:
            async for data in stream:
                pending += data
                *lines, pending = pending.split(b"\\n")
                for line in lines:
                    command, _, rest = line.rstrip(b"\\r").partition(b" ")
                    if command == b"PRIVMSG":
                        out = b":" + source + b" PRIVMSG " + rest + b"\\r\\n"
                        for other in members[rest.partition(b" ")[0]]:
                            if other != fd:
                                tell((other,), out)
                    elif command == b"NICK":
                        nick = rest
                        source = nick + b"!" + nick + b"@bare"
                    elif command == b"USER":
                        tell((fd,), b":bare 001 " + nick + b" :hello\\r\\n")
                    elif command == b"JOIN":
                        channel = members.setdefault(rest, {})
                        channel[fd] = nick
                        joined.append(rest)
                        tell(channel, b":" + source + b" JOIN " + rest + b"\\r\\n")
                        names = b" ".join(channel.values())
                        tell((fd,), b":bare 353 " + nick + b" = " + rest + b" :" + names
                             + b"\\r\\n:bare 366 " + nick + b" " + rest + b" :End\\r\\n")
        except trio.BrokenResourceError:
            pass
        finally:
            for name in joined:
                channel = members[name]
                del channel[fd]
                tell(channel, b":" + source + b" QUIT :bye\\r\\n")
async def main():
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    print(listeners[0].socket.getsockname()[1], flush=True)
    await trio.serve_listeners(handler, listeners)
trio.run(main)
"""


class BareChannelsRelay:
    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", BARE_CHANNELS_RELAY],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        assert self.process.stdout is not None
        self.ports = [int(self.process.stdout.readline())]

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait()


class TrioChatChannels:
    """trio-chat-server with ``channels`` channels c0, c1, ... and its IRC
    port; ``ports`` are the native ports (one a channel) or the IRC port."""

    def __init__(self, directory: Path, channels: int, capacity: int, kind: Kind) -> None:
        for attempt in range(5):
            (irc_port,) = free_ports(1)
            options = (
                *UNGUARDED, "--irc", f"127.0.0.1:{irc_port}", "--irc-server-name", SERVER_NAME
            )  # fmt: skip
            try:
                self.server = ChatServerProcess(directory, channels, capacity, options)
                wait_until_accepting(irc_port, self.server.process)
                break
            except ServerExited:  # a port taken meanwhile: new ports
                if attempt == 4:
                    raise
        self.process = self.server.process
        self.ports = [irc_port] if kind == "irc" else self.server.ports

    def stop(self) -> None:
        self.server.stop()


def start_server(kind: Kind, directory: Path, channels: int, capacity: int) -> ServerProcess:
    if kind == "inspircd":
        return InspircdProcess(directory)
    if kind == "ngircd":
        return NgircdProcess(directory)
    if kind == "bare":
        return BareChannelsRelay()
    return TrioChatChannels(directory, max(channels, 3), capacity, kind)


def installed(kind: Kind) -> bool:
    return {"inspircd": INSPIRCD, "ngircd": NGIRCD}.get(kind, Path(sys.executable)).exists()


# ----- the generator (a process of its own: --generator JSON) -----


@dataclass
class Pace:
    """How often the members speak now: ``interval`` s on average, or not
    at all (``None``); ``changed`` wakes the silent ones."""

    interval: float | None = None
    changed: trio.Event = field(default_factory=trio.Event)

    def set(self, interval: float | None) -> None:
        self.interval = interval
        self.changed.set()
        self.changed = trio.Event()


@dataclass
class Tally:
    """What a generator saw during a step."""

    sent: int = 0
    due: int = 0  # deliveries the sent lines are owed
    delivered: int = 0
    latencies: collections.Counter[int] = field(default_factory=collections.Counter)
    joins: collections.Counter[int] = field(default_factory=collections.Counter)
    joined: int = 0
    left: int = 0
    lost: int = 0  # members the server hung up on

    def report(self) -> dict[str, Any]:
        return {
            "sent": self.sent,
            "due": self.due,
            "delivered": self.delivered,
            "latencies": dict(self.latencies),
            "joins": dict(self.joins),
            "joined": self.joined,
            "left": self.left,
            "lost": self.lost,
        }


def bucket(seconds: float) -> int:
    return min(int(seconds * BUCKET), LAST_BUCKET)


class Generator:
    def __init__(self, setup: dict[str, Any]) -> None:
        self.kind: Kind = setup["kind"]
        self.ports: list[int] = setup["ports"]
        self.address: str = setup["address"]
        self.channels: list[int] = setup["channels"]
        self.size: int = setup["size"]  # members a channel starts with
        self.number: int = setup["number"]
        self.serial = itertools.count()
        self.pace = Pace()
        self.tally = Tally()
        # Members now in each channel, by name.
        self.rosters: dict[int, dict[str, Member]] = {c: {} for c in self.channels}
        self.scopes: dict[str, trio.CancelScope] = {}
        self.newcomers: list[tuple[int, str]] = []
        self.nursery: trio.Nursery | None = None

    @property
    def protocol(self) -> Literal["chat", "irc"]:
        return "chat" if self.kind == "native" else "irc"

    async def open(self, host: str, port: int) -> trio.abc.Stream:
        return await trio.open_tcp_stream(host, port, local_address=self.address)

    async def join(self, channel: int) -> tuple[str, Member, float]:
        """A new member in ``channel``: connected, registered, joined, the
        roster read. Returns its name and how long that took."""
        serial = next(self.serial)
        name = f"u{self.number}x{serial}"
        index = self.number * 1_000_000 + serial
        if self.protocol == "chat":
            port = self.ports[channel]
            start = time.perf_counter()
            stream = await self.open("127.0.0.1", port)
            member = Member(index, stream, "chat")
            await stream.send_all(wire.encode_hello(name))
            me = f"{name} has joined the channel."
            await member.read_until(lambda message: message.endswith(me))
        else:
            start = time.perf_counter()
            stream = await self.open("127.0.0.1", self.ports[0])
            member = Member(index, stream, "irc")
            # JOIN once registered, as clients do (InspIRCd refuses it before).
            await stream.send_all(f"NICK {name}\r\nUSER {name} 0 * :{name}\r\n".encode())
            await member.read_until(lambda message: " 001 " in message)
            await stream.send_all(f"JOIN #c{channel}\r\n".encode())
            await member.read_until(lambda message: " 366 " in message)
        return name, member, time.perf_counter() - start

    def start_member(self, channel: int, name: str, member: Member) -> None:
        assert self.nursery is not None
        scope = trio.CancelScope()
        self.scopes[name] = scope
        self.rosters[channel][name] = member
        self.nursery.start_soon(self.live, scope, channel, name, member)

    async def live(self, scope: trio.CancelScope, channel: int, name: str, member: Member) -> None:
        with scope:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self.speak, channel, member)
                await self.listen(member)
                nursery.cancel_scope.cancel()
            self.tally.lost += 1  # the server ended it (a leave is cancelled first)
        self.rosters[channel].pop(name, None)
        self.scopes.pop(name, None)
        if scope.cancel_called:  # it leaves
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                if self.protocol == "irc":
                    with trio.move_on_after(1):
                        await member.stream.send_all(b"QUIT :bye\r\n")
            await member.stream.aclose()

    async def listen(self, member: Member) -> None:
        """Until the server hangs up: each line said, its latency."""
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            while data := await member.stream.receive_some(65536):
                now = time.perf_counter()
                tally = self.tally  # (a new one each step)
                for message in member._messages(data):
                    fields = message.rsplit(" ", 3)
                    if len(fields) == 4 and fields[0].endswith("m"):
                        tally.delivered += 1
                        tally.latencies[bucket(now - float(fields[3]))] += 1
                    elif message.startswith("PING "):
                        await member.stream.send_all(f"PONG {message[5:]}\r\n".encode())

    async def speak(self, channel: int, member: Member) -> None:
        """A line every ``pace.interval`` s on average, the first at a random
        point of the first interval (the members of a step do not all start
        at once); a new pace starts over at once."""
        prefix = f"m {member.index} "
        seq = 0
        first = True
        while True:
            interval, changed = self.pace.interval, self.pace.changed
            if interval is None:
                await changed.wait()
                first = True
                continue
            wait = random.uniform(0, interval) if first else interval * random.uniform(0.5, 1.5)
            first = False
            with trio.move_on_after(wait):
                await changed.wait()
            if changed.is_set():
                first = True
                continue
            line = member.encode(f"{prefix}{seq} {time.perf_counter()}")
            try:
                await member.stream.send_all(line.replace(b"#bench", b"#c%d" % channel))
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return  # its listen() sees the end
            seq += 1
            self.tally.sent += 1
            others = len(self.rosters[channel]) - 1
            self.tally.due += others + 1 if self.protocol == "chat" else others

    async def connect_all(self) -> None:
        limiter = trio.CapacityLimiter(50)

        async def one(channel: int) -> None:
            async with limiter:
                name, member, _ = await self.join(channel)
            self.start_member(channel, name, member)

        async with trio.open_nursery() as nursery:
            for channel in self.channels:
                for _ in range(self.size):
                    nursery.start_soon(one, channel)

    async def timed_join(self, channel: int, newcomer: bool) -> None:
        name, member, took = await self.join(channel)
        self.tally.joins[bucket(took)] += 1
        self.tally.joined += 1
        self.start_member(channel, name, member)
        if newcomer:
            self.newcomers.append((channel, name))

    def leave(self, channel: int, name: str) -> None:
        scope = self.scopes.get(name)
        if scope is not None:
            scope.cancel()
            self.tally.left += 1

    def anyone(self) -> tuple[int, str] | None:
        channels = [c for c in self.channels if self.rosters[c]]
        if not channels:
            return None
        channel = random.choice(channels)
        return channel, random.choice(list(self.rosters[channel]))

    async def churn(self, mode: str, rate: float, seconds: float) -> None:
        """``rate`` a second for ``seconds``: newcomers join ("joins"; they
        are remembered), the newcomers leave ("leaves"), or a member leaves
        and a newcomer joins its channel, so that sizes hold ("both")."""
        start = trio.current_time()
        async with trio.open_nursery() as nursery:
            for tick in range(int(seconds * rate)):
                await trio.sleep_until(start + tick / rate)
                if mode == "joins":
                    nursery.start_soon(self.timed_join, random.choice(self.channels), True)
                elif mode == "leaves":
                    if self.newcomers:
                        self.leave(*self.newcomers.pop())
                elif (someone := self.anyone()) is not None:
                    self.leave(*someone)
                    nursery.start_soon(self.timed_join, someone[0], False)

    async def command(self, words: list[str]) -> dict[str, Any]:
        """``chat INTERVAL SECONDS`` or ``churn MODE RATE SECONDS INTERVAL``
        (an INTERVAL of 0: nobody speaks); its tally once the last lines
        had time to arrive."""
        self.tally = Tally()
        before = own_cpu()
        if words[0] == "chat":
            interval, seconds = float(words[1]), float(words[2])
            self.pace.set(interval or None)
            await trio.sleep(seconds)
        else:
            mode, rate, seconds, interval = words[1], *map(float, words[2:])
            self.pace.set(interval or None)
            await self.churn(mode, rate, seconds)
        self.pace.set(None)
        await trio.sleep(DRAIN)
        result = self.tally.report()
        result["cpu"] = own_cpu() - before
        return result

    async def run(self) -> None:
        async with trio.open_nursery() as nursery:
            self.nursery = nursery
            await self.connect_all()
            print(json.dumps({"ready": True}), flush=True)
            commands = trio.wrap_file(sys.stdin)
            while (line := await commands.readline()) and line.strip() != "quit":
                print(json.dumps(await self.command(line.split())), flush=True)
            nursery.cancel_scope.cancel()


# ----- the parent: servers, generators, steps -----


class Generators:
    """``count`` generator processes sharing ``channels`` channels of ``size``."""

    def __init__(self, kind: Kind, ports: list[int], channels: int, size: int, count: int) -> None:
        self.processes = []
        for number in range(count):
            setup = {
                "kind": kind,
                "ports": ports,
                "address": f"127.0.0.{number + 2}",
                "channels": list(range(number, channels, count)),
                "size": size,
                "number": number,
            }
            self.processes.append(
                subprocess.Popen(
                    [sys.executable, __file__, "--generator", json.dumps(setup)],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    text=True,
                )
            )
        for process in self.processes:
            self._reply(process)

    @staticmethod
    def _reply(process: subprocess.Popen[str]) -> dict[str, Any]:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line:
            raise RuntimeError(f"a generator ended (status {process.wait()})")
        reply: dict[str, Any] = json.loads(line)
        return reply

    def command(self, text: str) -> list[dict[str, Any]]:
        for process in self.processes:
            assert process.stdin is not None
            process.stdin.write(text + "\n")
            process.stdin.flush()
        return [self._reply(process) for process in self.processes]

    def close(self) -> None:
        for process in self.processes:
            with contextlib.suppress(BrokenPipeError):
                assert process.stdin is not None
                process.stdin.write("quit\n")
                process.stdin.close()
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


def merged(replies: list[dict[str, Any]]) -> dict[str, Any]:
    total: dict[str, Any] = {"latencies": collections.Counter(), "joins": collections.Counter()}
    for reply in replies:
        for key, value in reply.items():
            if isinstance(value, dict):
                total[key].update({int(k): v for k, v in value.items()})
            else:
                total[key] = total.get(key, 0) + value
    return total


def quantile(histogram: collections.Counter[int], fraction: float) -> float:
    """The ``fraction`` quantile of a histogram of BUCKET buckets, in seconds."""
    count = sum(histogram.values())
    if not count:
        return float("nan")
    rank = fraction * (count - 1)
    seen = 0
    for key in sorted(histogram):
        seen += histogram[key]
        if seen > rank:
            return (key + 0.5) / BUCKET
    return LAST_BUCKET / BUCKET


@dataclass
class Session:
    """A server and its generators for one layout, and the steps run on it."""

    kind: Kind
    directory: Path
    channels: int
    size: int
    generators: int
    server: ServerProcess = field(init=False)
    load: Generators = field(init=False)

    def __enter__(self) -> Session:
        capacity = self.size * 2 + 50  # joins-only churn grows channels
        self.server = start_server(self.kind, self.directory, self.channels, capacity)
        try:
            self.load = Generators(
                self.kind, self.server.ports, self.channels, self.size, self.generators
            )
        except BaseException:
            self.server.stop()
            raise
        return self

    def __exit__(self, *_: object) -> None:
        self.load.close()
        self.server.stop()

    def step(self, command: str) -> dict[str, Any]:
        pid = self.server.process.pid
        before, user, start = cpu_seconds(pid), user_seconds(pid), time.perf_counter()
        result = merged(self.load.command(command))
        result["server_cpu"] = cpu_seconds(pid) - before
        result["server_user"] = user_seconds(pid) - user
        result["wall"] = time.perf_counter() - start
        result["rss"] = rss_kb(pid)
        return result


# ----- the open loop -----


@dataclass(frozen=True)
class MixStep:
    factor: int
    offered: float  # lines a second asked of the members
    seconds: float
    result: dict[str, Any]

    def lines(self) -> float:
        return float(self.result["sent"]) / self.seconds

    def deliveries(self) -> float:
        return float(self.result["delivered"]) / self.seconds

    def delivered_share(self) -> float:
        due = self.result["due"]
        return float(self.result["delivered"]) / due if due else 0.0

    def p(self, fraction: float) -> float:
        return quantile(self.result["latencies"], fraction)

    def cpu_per_100k(self) -> float:
        delivered = self.result["delivered"]
        return float(self.result["server_cpu"]) / delivered * 100_000 if delivered else 0.0

    def split_us(self) -> tuple[float, float]:
        """Microseconds of server CPU per delivery: the server's own (user)
        and the kernel's on its behalf (system: the writes, reads, epoll)."""
        delivered = self.result["delivered"] or 1
        user = float(self.result["server_user"])
        system = float(self.result["server_cpu"]) - user
        return user / delivered * 1e6, system / delivered * 1e6

    def cpu_share(self) -> float:
        return float(self.result["server_cpu"]) / float(self.result["wall"])

    def generator_share(self) -> float:
        return float(self.result["cpu"]) / float(self.result["wall"])

    def past_knee(self) -> bool:
        return (
            self.p(0.99) > KNEE_P99
            or self.delivered_share() < KNEE_DELIVERED
            or self.result["lost"] > 0
        )

    def generator_short(self) -> bool:
        """The generators did not send what the step offers: the server was
        not given the rate (the generators' cores are the limit)."""
        return self.lines() < GENERATOR_SHORT * self.offered


def open_loop(
    kind: Kind, directory: Path, channels: int, size: int, factors: list[int], seconds: float,
    generators: int,
) -> list[MixStep]:  # fmt: skip
    """Steps of rising rate until one is past the knee or the generators
    fall short (that one included)."""
    steps = []
    with Session(kind, directory, channels, size, generators) as session:
        for factor in factors:
            result = session.step(f"chat {BASE_INTERVAL / factor} {seconds}")
            offered = channels * size / BASE_INTERVAL * factor
            steps.append(MixStep(factor, offered, seconds, result))
            if steps[-1].past_knee() or steps[-1].generator_short():
                break
    return steps


def knee(steps: list[MixStep]) -> MixStep | None:
    """The last step before the first one past the knee (or short)."""
    good = list(itertools.takewhile(lambda s: not s.past_knee() and not s.generator_short(), steps))
    return good[-1] if good else None


def mix_tables(
    directory: Path, kinds: list[Kind], layouts: list[tuple[int, int]], members: int,
    factors: list[int], seconds: float, generators: int,
) -> list[str]:  # fmt: skip
    rows: list[str] = []
    for channels, size in layouts:
        offered_base = members / BASE_INTERVAL
        rows += [
            "",
            f"Open loop, {channels} channels of {size} ({members:,} members), each member a "
            f"line every {BASE_INTERVAL:.0f} s / step on average ({offered_base:,.0f} lines/s "
            f"at step 1); {seconds:.0f} s a step, {generators} generator processes",
            "",
            "| server | step | lines/s offered | lines/s sent | deliveries/s | delivered "
            "| p50 ms | p99 ms | p99.9 ms | server CPU | CPU-s per 100k | RSS MB "
            "| generators' CPU |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        found: dict[Kind, list[MixStep]] = {}
        for kind in kinds:
            steps = open_loop(kind, directory, channels, size, factors, seconds, generators)
            found[kind] = steps
            for step in steps:
                lost = f", {step.result['lost']} lost" if step.result["lost"] else ""
                lost += " (generators short)" if step.generator_short() else ""
                rows.append(
                    f"| {LABELS[kind]} | {step.factor}x | {offered_base * step.factor:,.0f} | "
                    f"{step.lines():,.0f} | {step.deliveries():,.0f} | "
                    f"{step.delivered_share():.1%}{lost} | {step.p(0.5) * 1000:.1f} | "
                    f"{step.p(0.99) * 1000:.1f} | {step.p(0.999) * 1000:.1f} | "
                    f"{step.cpu_share():.0%} | {step.cpu_per_100k():.3f} | "
                    f"{step.result['rss'] / 1024:.0f} | {step.generator_share():.0%} |"
                )
            print("\n".join(rows[-len(steps) :]), file=sys.stderr, flush=True)
        rows += ["", *knee_rows(found)]
    return rows


def knee_rows(found: dict[Kind, list[MixStep]]) -> list[str]:
    """Each server's knee, and its CPU per delivery at the same steps as
    InspIRCd's (the steps both ran below their knees)."""
    rows = [
        "| server | knee (last step under it) | lines/s there | deliveries/s there "
        "| CPU-s per 100k at step 1 | user / system us per delivery at step 1 "
        "| CPU / InspIRCd's, steps both under the knee |",
        "|---|---|---|---|---|---|---|",
    ]
    under = {kind: [s for s in steps if s is knee(steps) or s.factor < (knee(steps) or s).factor]
             for kind, steps in found.items()}  # fmt: skip
    theirs = {step.factor: step for step in under.get("inspircd", [])}
    for kind, steps in found.items():
        best = knee(steps)
        last = steps[-1]
        if best is last:
            reach = " (not reached)"
        elif last.generator_short() and not last.past_knee():
            reach = " (or more: the generators fell short)"
        else:
            reach = ""
        ratios = [
            f"{step.factor}x: {step.cpu_per_100k() / theirs[step.factor].cpu_per_100k():.2f}"
            for step in under[kind]
            if step.factor in theirs and kind != "inspircd"
        ]
        user, system = steps[0].split_us()
        rows.append(
            f"| {LABELS[kind]} | {f'{best.factor}x' if best else 'below step 1'}{reach} | "
            f"{best.lines() if best else 0:,.0f} | {best.deliveries() if best else 0:,.0f} | "
            f"{steps[0].cpu_per_100k():.3f} | {user:.1f} / {system:.1f} | "
            f"{', '.join(ratios) or '-'} |"
        )
    return rows


# ----- churn -----


def churn_row(kind: Kind, directory: Path, size: int, channels: int, rate: float, seconds: float,
              generators: int) -> dict[str, float]:  # fmt: skip
    per = rate / generators
    with Session(kind, directory, channels, size, generators) as session:
        quiet = session.step(f"chat 0 {seconds}")  # connected, silent: the floor
        joins = session.step(f"churn joins {per} {seconds} 0")
        leaves = session.step(f"churn leaves {per} {seconds} 0")
        chat = session.step(f"chat {BASE_INTERVAL} {seconds}")
        both = session.step(f"churn both {per} {seconds} {BASE_INTERVAL}")
    idle = quiet["server_cpu"] / quiet["wall"]
    return {
        "join_ms": (joins["server_cpu"] - idle * joins["wall"]) / joins["joined"] * 1000,
        "leave_ms": (leaves["server_cpu"] - idle * leaves["wall"]) / leaves["left"] * 1000,
        "pair_ms": (both["server_cpu"] - chat["server_cpu"] / chat["wall"] * both["wall"])
        / max(both["joined"], 1)
        * 1000,
        "quiet_p50": quantile(joins["joins"], 0.5),
        "quiet_p99": quantile(joins["joins"], 0.99),
        "p50": quantile(both["joins"], 0.5),
        "p99": quantile(both["joins"], 0.99),
        "joined": both["joined"],
        "lost": joins["lost"] + leaves["lost"] + chat["lost"] + both["lost"],
        "chat_p99": quantile(both["latencies"], 0.99),
    }


def churn_table(directory: Path, kinds: list[Kind], members: int, size: int, rate: float,
                seconds: float, runs: int, generators: int) -> list[str]:  # fmt: skip
    channels = members // size
    results: dict[Kind, list[dict[str, float]]] = {kind: [] for kind in kinds}
    for _ in range(runs):
        for kind in kinds:
            results[kind].append(
                churn_row(kind, directory, size, channels, rate, seconds, generators)
            )
    rows = [
        "",
        f"Churn: {members:,} members in {channels} channels of {size}; joins alone and "
        f"leaves alone at {rate:.0f}/s with nobody chatting, then {rate:.0f} joins/s and "
        f"{rate:.0f} leaves/s while everyone chats a line every {BASE_INTERVAL:.0f} s; "
        f"{seconds:.0f} s each, median of {runs}",
        "",
        "| server | CPU per join | per leave | per join+leave under chat | join p50 / p99 alone "
        "| join p50 / p99 under chat | chat p99 under churn | join CPU / InspIRCd's |",
        "|---|---|---|---|---|---|---|---|",
    ]
    medians = {
        kind: {key: median_of(found, key) for key in found[0]} for kind, found in results.items()
    }
    for kind, m in medians.items():
        ratio = (
            f"{m['join_ms'] / medians['inspircd']['join_ms']:.2f}x"
            if "inspircd" in medians and kind != "inspircd"
            else "-"
        )
        lost = f" ({m['lost']:.0f} lost)" if m["lost"] else ""
        rows.append(
            f"| {LABELS[kind]}{lost} | {m['join_ms']:.3f} ms | {m['leave_ms']:.3f} ms | "
            f"{m['pair_ms']:.3f} ms | {m['quiet_p50'] * 1000:.1f} / {m['quiet_p99'] * 1000:.1f} ms"
            f" | {m['p50'] * 1000:.1f} / {m['p99'] * 1000:.1f} ms | "
            f"{m['chat_p99'] * 1000:.1f} ms | {ratio} |"
        )
    return rows


# ----- the closed loop -----


class RingMember(Member):
    """A closed-loop member for a server without echo-message: its line has
    come back when the next member of the ring has it."""

    ring: list[RingMember]

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
                    sender = int(fields[1])
                    if (sender + 1) % len(self.ring) == self.index:
                        self.ring[sender].echoed.set()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass


async def ring_fan_out(port: int, members: int, messages: int) -> dict[str, float]:
    """bench/load.py's fan_out for a server without echo-message."""
    ring: list[RingMember] = []
    for index in range(members):
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        member = RingMember(index, stream, "irc")
        await stream.send_all(f"NICK u{index}\r\nUSER u{index} 0 * :u{index}\r\n".encode())
        await member.read_until(lambda message: " 001 " in message)
        await stream.send_all(b"JOIN #bench\r\n")
        await member.read_until(lambda message: " 366 " in message)
        ring.append(member)
    for member in ring:
        member.ring = ring
    async with trio.open_nursery() as readers:
        for member in ring:
            readers.start_soon(member.read_forever)
        start = time.perf_counter()
        async with trio.open_nursery() as senders:
            for member in ring:
                senders.start_soon(member.chat, messages)
        expected = (members - 1) * messages
        while any(member.received < expected for member in ring):
            await trio.sleep(0.001)
        elapsed = time.perf_counter() - start
        readers.cancel_scope.cancel()
    for member in ring:
        await member.stream.aclose()
    latencies = [latency for member in ring for latency in member.latencies]
    return {
        "deliveries": len(latencies) / elapsed,
        "total": len(latencies),
        "p50": percentile(latencies, 0.5),
        "p99": percentile(latencies, 0.99),
    }


def closed_once(kind: Kind, directory: Path, members: int, messages: int) -> dict[str, float]:
    capacity = members + 10
    if kind == "ngircd":
        server = NgircdProcess(directory)
        try:
            run = partial(trio.run, ring_fan_out, server.ports[0], members, messages)
            return measured_run(server.process, run)
        finally:
            server.stop()
    from bench.irc import TrioChatProcess

    start: Callable[[], ServerProcess]
    if kind == "inspircd":
        start = partial(InspircdProcess, directory)
    else:
        start = partial(TrioChatProcess, directory, capacity, "chat" if kind == "native" else "irc")
    return measured_fan_out(start, "chat" if kind == "native" else "irc", members, messages)


def closed_table(directory: Path, kinds: list[Kind], sizes: list[tuple[int, int]], runs: int
                 ) -> list[str]:  # fmt: skip
    rows = [
        "",
        f"Closed loop, one channel (bench/load.py's), median of {runs} alternating runs",
        "",
        "| members | messages each | server | deliveries/s | p50 ms | p99 ms | CPU-s per 100k "
        "| CPU / InspIRCd's |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for members, messages in sizes:
        results: dict[Kind, list[dict[str, float]]] = {kind: [] for kind in kinds}
        for _ in range(runs):
            for kind in kinds:
                results[kind].append(closed_once(kind, directory, members, messages))
        cpu = {kind: median_of(found, "cpu_per_100k") for kind, found in results.items()}
        for kind, found in results.items():
            ratio = (
                f"{cpu[kind] / cpu['inspircd']:.2f}x"
                if "inspircd" in cpu and kind != "inspircd"
                else "-"
            )
            rows.append(
                f"| {members} | {messages} | {LABELS[kind]} | "
                f"{median_of(found, 'deliveries'):,.0f} | {median_of(found, 'p50') * 1000:.1f} | "
                f"{median_of(found, 'p99') * 1000:.1f} | {cpu[kind]:.3f} | {ratio} |"
            )
    return rows


# ----- --profile: where trio-chat's time goes under one step -----


def profile_step(
    kind: Kind, directory: Path, channels: int, size: int, command: str, generators: int,
    rate: int,
) -> list[str]:  # fmt: skip
    """One step of the mix (``command``, as a generator takes it) against
    trio-chat under py-spy (``--nonblocking``: the server is not paused to be
    sampled), summarised as bench/irc.py's --profile summarises: by part of
    the path, by file, by function. The raw collapsed stacks are kept next
    to the summary for a flame graph (``flamegraph.pl`` or speedscope)."""
    from bench.irc import summarise

    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        raise SystemExit("--profile needs py-spy: pip install py-spy")
    output = Path(f"mix-profile-{kind}-{command.split()[0]}.txt").resolve()
    with Session(kind, directory, channels, size, generators) as session:
        recorder = subprocess.Popen(
            [spy, "record", "--pid", str(session.server.process.pid), "--rate", str(rate),
             "--format", "raw", "--nonblocking", "--output", str(output)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        time.sleep(1)  # it attaches
        result = session.step(command)
        recorder.send_signal(signal.SIGINT)
        recorder.wait()
    events = result["delivered"] + 100 * result["joined"] + 100 * result["left"]
    return [
        f"{LABELS[kind]}, {channels} channels of {size}, step `{command}`: "
        f"{result['delivered']:,} deliveries, {result['joined']:,} joins, "
        f"{result['left']:,} leaves; server CPU {result['server_cpu']:.2f} s in "
        f"{result['wall']:.1f} s; raw stacks in {output}",
        "(us per delivery below counts a join or a leave as 100 deliveries)"
        if result["joined"] or result["left"]
        else "",
        "",
        *summarise(output.read_text(), events, rate),
    ]


# ----- main -----


def machine() -> str:
    model = cpu_model()
    versions = []
    for kind, path in (("InspIRCd", INSPIRCD), ("ngIRCd", NGIRCD)):
        if path.exists():
            found = subprocess.run([str(path), "--version"], capture_output=True, text=True)
            text = (found.stdout or found.stderr).strip().splitlines()
            versions.append(text[0] if text else kind)
    return (
        f"Machine: {os.cpu_count()} CPUs, {model}; Python {platform.python_version()}; "
        f"{'; '.join(versions) or 'no IRC servers installed'}"
    )


def parse_kinds(text: str) -> list[Kind]:
    kinds = [word.strip() for word in text.split(",") if word.strip()]
    for kind in kinds:
        if kind not in KINDS:
            raise SystemExit(f"--servers: {kind!r} is not one of {', '.join(KINDS)}")
    return [kind for kind in KINDS if kind in kinds]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small and short, a smoke run")
    parser.add_argument("--servers", default=",".join(KINDS), help="which servers (default all)")
    parser.add_argument("--tables", default="mix,churn,closed", help="which tables")
    parser.add_argument("--runs", type=int, default=3, help="runs of churn and closed loop")
    parser.add_argument("--generators", type=int, default=2, help="generator processes")
    parser.add_argument("--generator", help=argparse.SUPPRESS)
    parser.add_argument(
        "--profile",
        choices=("native", "irc"),
        help="py-spy trio-chat (native or IRC port) under one step instead of the tables",
    )
    parser.add_argument(
        "--step",
        default="chat 0.5 10",
        help="the profiled step: 'chat INTERVAL SECONDS' or 'churn joins|leaves|both RATE "
        "SECONDS INTERVAL' (rates per generator; default chat 0.5 10: step 4x)",
    )
    parser.add_argument("--layout", default="100:10", help="CHANNELS:SIZE for --profile")
    parser.add_argument("--rate", type=int, default=500, help="py-spy samples a second")
    arguments = parser.parse_args()
    raise_fd_limit()
    if arguments.generator:
        trio.run(Generator(json.loads(arguments.generator)).run)
        return
    if arguments.profile:
        channels, size = map(int, arguments.layout.split(":"))
        with tempfile.TemporaryDirectory() as name:
            found = profile_step(
                arguments.profile, Path(name), channels, size, arguments.step,
                arguments.generators, arguments.rate,
            )  # fmt: skip
        print("\n".join(found))
        return
    kinds = [kind for kind in parse_kinds(arguments.servers) if installed(kind)]
    tables = {word.strip() for word in arguments.tables.split(",")}
    quick = arguments.quick
    runs = 1 if quick else arguments.runs
    members = 200 if quick else 1000
    print(machine())
    print(f"Command: {shlex.join([sys.executable, *sys.argv])}", flush=True)
    with tempfile.TemporaryDirectory() as name:
        directory = Path(name)
        if "mix" in tables:
            layouts = [(members // 10, 10), (members // 50, 50)]
            factors = [1, 4] if quick else [1, 2, 4, 8, 16, 32, 64]
            rows = mix_tables(
                directory, kinds, layouts, members, factors, 2 if quick else 8,
                arguments.generators,
            )  # fmt: skip
            print("\n".join(rows), flush=True)
        if "churn" in tables:
            rows = churn_table(
                directory, kinds, members, 50, 10 if quick else 50, 2 if quick else 8, runs,
                arguments.generators,
            )  # fmt: skip
            print("\n".join(rows), flush=True)
        if "closed" in tables:
            sizes = [(10, 50), (100, 10)] if quick else [(10, 1000), (100, 100)]
            # Not the bare relay: it writes each line to each member, which at
            # 100 members is no floor for a server that batches (bench/irc.py
            # has the batched bare relay for this one channel).
            looped: list[Kind] = [kind for kind in kinds if kind != "bare"]
            print("\n".join(closed_table(directory, looped, sizes, runs)), flush=True)


if __name__ == "__main__":
    main()
