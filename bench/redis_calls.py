"""What one Redis command costs a cluster node: coredis against a bare socket.

    python bench/redis_calls.py [--calls N]

A node's line crosses Redis in three steps (trio_chat/cluster/link.py): the
append (one EVAL of ``scripts.APPEND``), the blocking XREAD that wakes with
it, and the GET of the trimmed marker asked after every read of the log.
Each row runs N of one step in sequence under trio against a redis-server of
its own on a Unix socket (as bench/cluster.py's) and gives the wall time and
this process's CPU per call. The first row is the physical baseline: the
same round trip as RESP bytes packed beforehand, over ``trio.SocketStream``,
nothing parsed but the reply's end; the last rows are trio_chat/cluster/resp.py,
the connection a node's hot path uses. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import trio.testing

from tests.redis_process import RedisProcess
from trio_chat.cluster import scripts
from trio_chat.cluster.link import connect
from trio_chat.cluster.resp import RespConnection, packed

STREAM = "bench:log"
EPOCH = "bench:epoch"


async def timed(calls: int, one: Callable[[], Awaitable[object]]) -> tuple[float, float]:
    """Microseconds of wall time and of this process's CPU per call."""
    for _ in range(min(200, calls)):  # warm: connections, script cache
        await one()
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(calls):
        await one()
    return (
        (time.perf_counter() - wall) / calls * 1e6,
        (time.process_time() - cpu) / calls * 1e6,
    )


async def measure(socket_path: str, url: str, calls: int) -> list[tuple[str, float, float]]:
    rows: list[tuple[str, float, float]] = []
    stream = await trio.open_unix_socket(socket_path)
    get = packed([(b"GET", b"bench:trimmed")])  # packed once: the loop only sends it

    async def bare_get() -> None:
        await stream.send_all(get)
        reply = b""
        while not reply.endswith(b"\r\n"):
            reply += await stream.receive_some(65536)

    rows.append(("GET, bare RESP on a trio socket (the floor)", *await timed(calls, bare_get)))

    redis = connect(url)
    reads = connect(url)
    async with redis, reads:
        await redis.set(EPOCH, b"e1")
        rows.append(("GET, coredis", *await timed(calls, lambda: redis.get("bench:trimmed"))))
        fields = [EPOCH, STREAM]
        args: list[bytes | str | int] = [b"e1", 1, b"e", b"x" * 60]

        async def append() -> None:
            await redis.eval(scripts.APPEND, fields, args)

        rows.append(("EVAL of the append script (one entry), coredis", *await timed(calls, append)))
        appender = redis.register_script(scripts.APPEND)

        async def append_sha() -> None:
            await appender(fields, args)

        rows.append(
            ("EVALSHA of the same (registered script), coredis", *await timed(calls, append_sha))
        )

        async def two_in_a_pipeline() -> None:
            async with redis.pipeline(transaction=False) as pipe:
                pipe.get("bench:trimmed")
                pipe.get(EPOCH)

        rows.append(("two GETs in one pipeline, coredis", *await timed(calls, two_in_a_pipeline)))

        last: list[bytes | str] = [b"$"]

        async def append_then_read() -> None:
            """The whole crossing: append, the blocked XREAD wakes, GET."""
            async with trio.open_nursery() as nursery:
                got = trio.Event()

                async def reader() -> None:
                    result = await reads.xread({STREAM: last[0]}, count=1000, block=1000)
                    assert result
                    last[0] = next(iter(result.values()))[-1].identifier
                    await redis.get("bench:trimmed")
                    got.set()

                nursery.start_soon(reader)
                await trio.testing.wait_all_tasks_blocked()
                await redis.eval(scripts.APPEND, fields, args)
                await got.wait()

        last[0] = (await redis.xrevrange(STREAM, count=1))[0].identifier
        rows.append(
            (
                "append, XREAD wakes, GET (a line's crossing), coredis",
                *await timed(max(1, calls // 5), append_then_read),
            )
        )

        lean, lean_reads = RespConnection(url), RespConnection(url)
        rows.append(("GET, resp.py", *await timed(calls, lambda: lean.call(b"GET", b"t"))))

        async def lean_append() -> None:
            await lean.call(b"EVAL", scripts.APPEND, 2, *fields, *args)

        rows.append(("EVAL of the append script, resp.py", *await timed(calls, lean_append)))

        async def lean_crossing() -> None:
            """As link.py does it: the GET queued behind the blocking XREAD."""
            async with trio.open_nursery() as nursery:
                got = trio.Event()

                async def reader() -> None:
                    reply, _ = await lean_reads.pipeline(
                        [
                            (b"XREAD", b"COUNT", 1000, b"BLOCK", 1000, b"STREAMS", STREAM, last[0]),
                            (b"GET", b"bench:trimmed"),
                        ]
                    )
                    last[0] = reply[0][1][-1][0]
                    got.set()

                nursery.start_soon(reader)
                await trio.testing.wait_all_tasks_blocked()
                await lean_append()
                await got.wait()

        rows.append(
            (
                "append, XREAD wakes with the GET behind it, resp.py",
                *await timed(max(1, calls // 5), lean_crossing),
            )
        )
        await lean.aclose()
        await lean_reads.aclose()
    await stream.aclose()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=5000)
    arguments = parser.parse_args()
    redis = RedisProcess(keep_data=False)
    try:
        rows = trio.run(measure, str(redis.socket), redis.url, arguments.calls)
    finally:
        redis.close()
    print(f"Redis per call, {arguments.calls} calls in sequence (this process's CPU)\n")
    print("| call | wall µs | client CPU µs |")
    print("|---|---|---|")
    for name, wall, cpu in rows:
        print(f"| {name} | {wall:.0f} | {cpu:.0f} |")


if __name__ == "__main__":
    main()
