"""The hot path's Redis connection (trio_chat/cluster/resp.py) against a real
redis-server, and against peers on its socket that are not Redis."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Iterator
from functools import partial
from pathlib import Path

import coredis.exceptions
import pytest
import trio

from trio_chat.cluster.link import FAILURES, stream_entries
from trio_chat.cluster.resp import RespConnection

from .redis_process import RedisProcess


@pytest.fixture
def redis() -> Iterator[RedisProcess]:
    process = RedisProcess(keep_data=False)
    yield process
    process.close()


@pytest.fixture
async def connection(redis: RedisProcess) -> AsyncIterator[RespConnection]:
    lean = RespConnection(redis.url)
    yield lean
    await lean.aclose()


async def test_replies_come_back_as_redis_gave_them(connection: RespConnection) -> None:
    assert await connection.call(b"SET", b"k", b"v") == b"OK"
    assert await connection.call(b"GET", b"k") == b"v"
    assert await connection.call(b"GET", b"missing") is None
    assert await connection.call(b"INCRBY", b"n", 5) == 5
    assert await connection.pipeline([(b"GET", b"k"), (b"EXISTS", "k", "missing")]) == [b"v", 1]


async def test_an_error_reply_raises_and_the_next_call_works(connection: RespConnection) -> None:
    await connection.call(b"SET", b"k", b"v")
    with pytest.raises(coredis.exceptions.ResponseError, match="WRONGTYPE"):
        await connection.call(b"LPUSH", b"k", b"x")
    assert await connection.call(b"GET", b"k") == b"v"


async def test_a_command_queued_behind_a_blocking_read_runs_when_it_answers(
    redis: RedisProcess, connection: RespConnection
) -> None:
    """What link.py's read relies on: the trimmed marker is asked after the read."""
    other = RespConnection(redis.url)
    await other.call(b"SET", b"marker", b"before")
    replies: list[object] = []

    async def read() -> None:
        replies.extend(
            await connection.pipeline(
                [
                    (b"XREAD", b"COUNT", 10, b"BLOCK", 10_000, b"STREAMS", b"s", b"$"),
                    (b"GET", b"marker"),
                ]
            )
        )

    async with trio.open_nursery() as nursery:
        nursery.start_soon(read)
        while b"blocked_clients:1" not in await other.call(b"INFO", b"clients"):
            await trio.sleep(0.01)  # until Redis holds the XREAD blocked
        await other.call(b"SET", b"marker", b"after")
        await other.call(b"XADD", b"s", b"*", b"e", b"one")
    await other.aclose()
    entries = stream_entries(replies[0])
    assert [entry.field_values for entry in entries[b"s"]] == [{b"e": b"one"}]
    assert replies[1] == b"after"


async def test_a_redis_restart_costs_no_failed_call(
    redis: RedisProcess, connection: RespConnection
) -> None:
    assert await connection.call(b"PING") == b"PONG"
    redis.stop()
    redis.start()
    # The idle connection died with the old Redis: the call takes a new one.
    assert await connection.call(b"PING") == b"PONG"


async def test_a_redis_that_is_gone_is_a_failure_link_retries(
    redis: RedisProcess, connection: RespConnection
) -> None:
    assert await connection.call(b"PING") == b"PONG"
    redis.stop()
    with pytest.raises(FAILURES):
        await connection.call(b"PING")
    with pytest.raises(FAILURES):
        await connection.call(b"PING")
    redis.start()
    assert await connection.call(b"PING") == b"PONG"


async def test_a_call_cut_off_by_its_deadline_leaves_no_reply_for_the_next(
    connection: RespConnection,
) -> None:
    with trio.move_on_after(0.05):
        await connection.call(b"BLPOP", b"never", 5)
    # Had the connection stayed, this would read BLPOP's late nil.
    assert await connection.call(b"SET", b"k", b"v") == b"OK"
    assert await connection.call(b"GET", b"k") == b"v"


async def fake_redis(path: Path) -> trio.SocketListener:
    listening = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    await listening.bind(str(path))
    listening.listen()
    return trio.SocketListener(listening)


@pytest.mark.parametrize(
    "answer",
    [
        b"hello, I am not Redis\r\n",  # not RESP
        b"$100\r\nshort",  # a reply cut off by the close
        b"",  # closes without a word
    ],
)
async def test_a_peer_that_is_not_redis_is_a_failure_not_a_crash(
    tmp_path: Path, answer: bytes
) -> None:
    listener = await fake_redis(tmp_path / "fake.sock")

    async def serve(stream: trio.SocketStream) -> None:
        async with stream:
            await stream.receive_some(65536)
            await stream.send_all(answer)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.serve_listeners, serve, [listener])
        connection = RespConnection(f"unix://{tmp_path / 'fake.sock'}")
        for _ in range(2):  # and again, on a new connection
            with pytest.raises(coredis.exceptions.ConnectionError):
                await connection.call(b"GET", b"k")
        await connection.aclose()
        nursery.cancel_scope.cancel()


def test_a_malformed_stream_reply_is_a_failure() -> None:
    with pytest.raises(coredis.exceptions.ConnectionError):
        stream_entries([[b"s", [[b"1-0", [b"odd"]]]]])
    with pytest.raises(coredis.exceptions.ConnectionError):
        stream_entries(b"not a list of streams")
    assert stream_entries(None) == {}


async def test_rediss_speaks_tls_with_coredis_context_and_selects_the_database(
    redis: RedisProcess, tmp_path: Path
) -> None:
    """``rediss://`` through a TLS relay in front of the real Redis (its
    build here has no TLS of its own), trusting the URL's ``ssl_ca_certs``
    as coredis reads it."""
    import ssl

    import trustme

    authority = trustme.CA()
    authority.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("localhost").configure_cert(server_context)

    async def relay(client: trio.SocketStream) -> None:
        # (https_compatible: the client may hang up without a TLS goodbye)
        secure = trio.SSLStream(client, server_context, server_side=True, https_compatible=True)
        upstream = await trio.open_unix_socket(str(redis.socket))

        async def pump(source: trio.abc.Stream, sink: trio.abc.Stream) -> None:
            async for data in source:
                await sink.send_all(data)
            nursery.cancel_scope.cancel()

        async with secure, upstream, trio.open_nursery() as nursery:
            nursery.start_soon(pump, secure, upstream)
            nursery.start_soon(pump, upstream, secure)

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, relay, 0, host="127.0.0.1"))
        port = listeners[0].socket.getsockname()[1]
        url = f"rediss://localhost:{port}/2?ssl_ca_certs={tmp_path / 'ca.pem'}"
        lean = RespConnection(url)
        assert await lean.call(b"SET", b"where", b"db 2") == b"OK"
        await lean.aclose()
        plain = RespConnection(redis.url + "?db=2")
        assert await plain.call(b"GET", b"where") == b"db 2"
        assert await plain.call(b"SELECT", 0) == b"OK"
        assert await plain.call(b"GET", b"where") is None
        await plain.aclose()
        nursery.cancel_scope.cancel()


async def test_credentials_and_database_are_read_from_the_url_as_coredis_reads_them(
    redis: RedisProcess, connection: RespConnection
) -> None:
    """A node's lean connections must log in where its coredis connection
    does, or every line would fail while the node looked alive."""
    assert await connection.call(b"ACL", b"SETUSER", b"node", b"on", b">p@ss", b"~*", b"+@all")
    assert await connection.call(b"CONFIG", b"SET", b"requirepass", b"s3cret") == b"OK"
    as_user = RespConnection(f"{redis.url}?username=node&password=p@ss&db=1")
    assert await as_user.call(b"SET", b"who", b"node") == b"OK"
    as_default = RespConnection(f"{redis.url}?password=s3cret&db=1")
    assert await as_default.call(b"GET", b"who") == b"node"
    nobody = RespConnection(redis.url)
    with pytest.raises(coredis.exceptions.ResponseError, match="NOAUTH"):
        await nobody.call(b"GET", b"who")
    for lean in (as_user, as_default, nobody):
        await lean.aclose()
