"""The hot path's Redis connection: RESP on a trio stream, packed and parsed by hiredis.

A line crosses Redis in two calls made for every line (link.py): the append
script, and the blocking read of the log with the trimmed marker asked right
after it. Through coredis each call cost about 500 µs of the node's CPU
(its writer and reader tasks, a request object, cancel scopes and a pool
checkout per command), seven times the bare round trip on the same socket
(docs/benchmarks.md, "Cluster"). Here a call is one ``send_all`` of what
hiredis packed and the replies hiredis parsed: those two loops, each the
only user of its connection, use this; everything else stays on coredis.

Failures are what link.py already retries: an unreachable Redis raises
``OSError``, a connection that ends or speaks something other than RESP
raises ``coredis.exceptions.ConnectionError``, and an error reply raises
``coredis.exceptions.ResponseError``. A call that fails or is cancelled part
way (its deadline) leaves a reply in flight, so the connection is closed and
the next call opens a new one.
"""

from __future__ import annotations

import ssl
from typing import Any, cast

import coredis
import coredis.exceptions
import hiredis
import trio
from coredis.connection import TCPLocation, UnixDomainSocketLocation

from . import keys

Word = bytes | str | int
RECEIVE_BYTES = 65536


class _Stale(Exception):
    """The connection had closed before this call got a byte of answer."""


def packed(commands: list[tuple[Word, ...]]) -> bytes:
    # (hiredis's stubs type the argument as a tuple of one word)
    return b"".join(hiredis.pack_command(cast(Any, command)) for command in commands)


class RespConnection:
    """One connection to the Redis at ``url`` (``redis://``, ``rediss://`` or
    ``unix://``, as ``--redis`` takes it), opened on first use. coredis reads
    the URL (a pool made from it opens nothing): where to connect, the
    credentials, the database and, for ``rediss://``, the TLS context from
    its query options, so that a node's connections all agree."""

    def __init__(self, url: str) -> None:
        self.url = url
        pool = coredis.ConnectionPool.from_url(url, decode_responses=False)
        self._location = pool.location
        settings = pool.connection_kwargs
        self._ssl_context: ssl.SSLContext | None = settings.get("ssl_context")
        self._username: str | None = settings.get("username")
        self._password: str | None = settings.get("password")
        self._db: int | None = settings.get("db")
        self._stream: trio.abc.Stream | None = None
        self._reader: Any = None  # hiredis.Reader (untyped)
        self._busy = False
        self._answering = False  # whether this call's replies have begun

    async def call(self, *words: Word) -> Any:
        """One command's reply."""
        return (await self.pipeline([words]))[0]

    async def pipeline(self, commands: list[tuple[Word, ...]]) -> list[Any]:
        """Each command's reply, the commands sent together in one write: a
        command after a blocking one runs when that one has answered."""
        if self._busy:
            raise RuntimeError("one call at a time on a RespConnection")
        self._busy = True
        try:
            data = packed(commands)
            if self._stream is not None:
                try:
                    return await self._exchange(self._stream, data, len(commands))
                except _Stale:
                    # Closed while idle (a Redis restart): Redis never saw
                    # this, or it closed before answering; link.py's readers
                    # skip an append that lands twice.
                    await self._drop()
            try:
                return await self._exchange(await self._connect(), data, len(commands))
            except _Stale as stale:
                raise coredis.exceptions.ConnectionError(str(stale)) from None
        except BaseException:
            await self._drop()
            raise
        finally:
            self._busy = False

    async def _exchange(self, stream: trio.abc.Stream, data: bytes, replies: int) -> list[Any]:
        try:
            await stream.send_all(data)
        except trio.BrokenResourceError as error:
            raise _Stale(f"Redis at {self.url} closed the connection ({error})") from None
        self._answering = False
        return [await self._reply(stream) for _ in range(replies)]

    async def aclose(self) -> None:
        await self._drop()

    async def _connect(self) -> trio.abc.Stream:
        location = self._location
        stream: trio.abc.Stream
        with trio.fail_after(keys.CONNECT_TIMEOUT):
            if isinstance(location, UnixDomainSocketLocation):
                stream = await trio.open_unix_socket(location.path)
            elif isinstance(location, TCPLocation):
                stream = await trio.open_tcp_stream(location.host, location.port)
                if self._ssl_context is not None:
                    secure = trio.SSLStream(
                        stream, self._ssl_context, server_hostname=location.host
                    )
                    try:
                        await secure.do_handshake()
                    except BaseException:
                        await trio.aclose_forcefully(stream)
                        raise
                    stream = secure
            else:
                raise coredis.exceptions.ConnectionError(f"no connection to {self.url}")
        self._stream = stream
        self._reader = hiredis.Reader(
            protocolError=coredis.exceptions.ConnectionError,
            replyError=coredis.exceptions.ResponseError,
        )
        # As coredis does it: AUTH when there is a user or a password, then
        # SELECT for a database other than 0.
        setup: list[tuple[Word, ...]] = []
        if self._username or self._password:
            setup.append((b"AUTH", self._username or "default", self._password or ""))
        if self._db:
            setup.append((b"SELECT", self._db))
        if setup:
            await stream.send_all(packed(setup))
            for _ in setup:
                await self._reply(stream)
        return stream

    async def _reply(self, stream: trio.abc.Stream) -> Any:
        reader = self._reader
        while True:
            reply = reader.gets()
            if reply is not False:
                if isinstance(reply, coredis.exceptions.ResponseError):
                    raise reply
                return reply
            try:
                data = await stream.receive_some(RECEIVE_BYTES)
            except trio.BrokenResourceError as error:
                data, why = b"", f" ({error})"
            else:
                why = ""
            if not data:
                closed = f"Redis at {self.url} closed the connection{why}"
                if not self._answering:
                    raise _Stale(closed)
                raise coredis.exceptions.ConnectionError(closed)
            self._answering = True
            reader.feed(data)

    async def _drop(self) -> None:
        stream, self._stream = self._stream, None
        self._reader = None
        if stream is not None:
            with trio.CancelScope(shield=True):
                await trio.aclose_forcefully(stream)
