"""A channel's listener takes the whole backlog when it wakes
(trio_chat/server/listener.py), so clients connecting together share rounds;
accepts that fail for want of descriptors are summarized (accept_log.py)."""

from __future__ import annotations

import errno
import logging
import socket
from functools import partial

import trio
import trio.testing

from trio_chat import wire
from trio_chat.config import ChannelConfig
from trio_chat.hub import Hub
from trio_chat.server import accept_log
from trio_chat.server.accept_log import QUIET, AcceptFailures
from trio_chat.server.core import ChatServer
from trio_chat.server.listener import BATCH, Backlog, BacklogListener


def listening_socket() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    return sock


def connect_many(port: int, count: int) -> list[socket.socket]:
    """Blocking connects: the kernel completes them into the backlog."""
    return [socket.create_connection(("127.0.0.1", port)) for _ in range(count)]


async def test_connections_waiting_together_are_taken_at_once_and_handed_over_in_order() -> None:
    sock = listening_socket()
    backlog = Backlog()  # the server's count, which its flush waits on
    listener = BacklogListener(sock, backlog)
    clients = connect_many(sock.getsockname()[1], 10)
    first = await listener.accept()
    assert listener.waiting == backlog.waiting == 9  # one wakeup took the whole backlog
    streams = [first, *[await listener.accept() for _ in range(9)]]
    assert listener.waiting == backlog.waiting == 0
    for index, client in enumerate(clients):
        client.sendall(f"hello {index}".encode())
    for index, stream in enumerate(streams):
        assert await stream.receive_some(100) == f"hello {index}".encode()
        await stream.aclose()
    for client in clients:
        client.close()
    await listener.aclose()


async def test_clients_that_connected_together_join_in_the_order_they_connected() -> None:
    """First come, first served holds for a burst too: the channel admits the
    first two and queues the rest in arrival order, whatever order trio runs
    the new sessions' tasks in."""
    for _ in range(10):  # trio runs a round's tasks in either order: try both
        sock = listening_socket()
        port = sock.getsockname()[1]
        hub = Hub([ChannelConfig("general", port, 2)])
        server = ChatServer(hub, out=lambda line: None, log=lambda text: None)
        clients = connect_many(port, 5)
        for index, client in enumerate(clients):
            client.sendall(wire.encode_hello(f"u{index}"))
        async with trio.open_nursery() as nursery:
            nursery.start_soon(
                partial(
                    server.serve,
                    {"general": [BacklogListener(sock, server.backlog)]},
                    console_fd=None,
                    handle_signals=False,
                )
            )
            channel = hub.channels["general"]
            with trio.fail_after(30):
                while len(channel.members) + len(channel.queue) < 5:
                    await trio.sleep(0.001)
            assert list(channel.members) == ["u0", "u1"]
            assert [member.name for member in channel.queue] == ["u2", "u3", "u4"]
            server.stop()
        for client in clients:
            client.close()


async def test_a_batch_is_bounded_and_the_rest_still_served() -> None:
    sock = listening_socket()
    listener = BacklogListener(sock)
    clients = connect_many(sock.getsockname()[1], BATCH + 20)
    streams = [await listener.accept() for _ in range(BATCH + 20)]
    assert len(streams) == BATCH + 20
    for stream in streams:
        await stream.aclose()
    for client in clients:
        client.close()
    await listener.aclose()


async def test_closing_hangs_up_on_connections_taken_but_not_handed_over() -> None:
    sock = listening_socket()
    listener = BacklogListener(sock)
    clients = connect_many(sock.getsockname()[1], 3)
    stream = await listener.accept()
    await listener.aclose()
    for client in clients[1:]:
        client.settimeout(10)
        assert client.recv(10) == b""  # closed, not left hanging
    await stream.aclose()
    for client in clients:
        client.close()


async def test_serve_listeners_serves_every_connection_of_a_burst() -> None:
    sock = listening_socket()
    port = sock.getsockname()[1]
    served: list[bytes] = []
    all_served = trio.Event()

    async def handler(stream: trio.SocketStream) -> None:
        served.append(await stream.receive_some(100))
        await stream.aclose()
        if len(served) == 200:
            all_served.set()

    async with trio.open_nursery() as nursery:
        await nursery.start(trio.serve_listeners, handler, [BacklogListener(sock)])
        clients = await trio.to_thread.run_sync(connect_many, port, 200)
        for index, client in enumerate(clients):
            client.sendall(b"%d" % index)
        with trio.fail_after(30):
            await all_served.wait()
        nursery.cancel_scope.cancel()
    assert sorted(served) == sorted(b"%d" % index for index in range(200))
    for client in clients:
        client.close()


def test_failed_accepts_make_one_line_when_they_begin_and_one_per_interval() -> None:
    failures = AcceptFailures(interval=10.0)
    lines = [failures.failed("EMFILE: Too many open files", 100.0 + i / 10) for i in range(250)]
    said = [(i, line) for i, line in enumerate(lines) if line is not None]
    assert [i for i, _ in said] == [0, 100, 200]  # 0.1 s apart: at 100 s, 110 s, 120 s
    assert said[0][1].startswith("cannot accept new connections (EMFILE: Too many open files)")
    assert said[1][1] == (
        "still cannot accept new connections (EMFILE: Too many open files): "
        "100 more failed accepts in the last 10 s"
    )
    assert failures.over() == (
        "accepting new connections again, after 250 failed accepts in 24.9 s"
    )
    # A new run of failures is said at once again.
    assert failures.failed("EMFILE: Too many open files", 500.0) is not None


async def test_trios_accept_records_become_a_summary_and_an_end(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The records trio.serve_listeners sends when accept fails for want of
    descriptors (its documented logger), summarized on the server's log."""
    said: list[str] = []
    accept_log.install(said.append)
    trio_logger = logging.getLogger(accept_log.TRIO_LOGGER)
    try:
        for _ in range(30):  # trio retries every 0.1 s
            try:
                raise OSError(errno.EMFILE, "Too many open files")
            except OSError:
                trio_logger.error("accept returned EMFILE", exc_info=True)
            await trio.sleep(0.1)
        assert len(said) == 1 and said[0].startswith("cannot accept new connections (EMFILE")
        await trio.sleep(QUIET)  # no more failures: they are over
        await trio.testing.wait_all_tasks_blocked()
        assert said[1:] == ["accepting new connections again, after 30 failed accepts in 2.9 s"]
    finally:
        accept_log.remove()
    assert trio_logger.propagate and not trio_logger.handlers
