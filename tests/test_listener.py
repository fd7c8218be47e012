"""A channel's listener takes the whole backlog when it wakes
(trio_chat/server/listener.py), so clients connecting together share rounds."""

from __future__ import annotations

import socket

import trio

from trio_chat.server.listener import BATCH, BacklogListener


def listening_socket() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    return sock


def connect_many(port: int, count: int) -> list[socket.socket]:
    """Blocking connects: the kernel completes them into the backlog."""
    return [socket.create_connection(("127.0.0.1", port)) for _ in range(count)]


async def test_connections_waiting_together_are_taken_in_one_round() -> None:
    sock = listening_socket()
    listener = BacklogListener(sock)
    clients = connect_many(sock.getsockname()[1], 10)
    first = await listener.accept()
    # The other nine were taken along with the first: handing them over does
    # not wait for another scheduling round (a task started now would run first).
    others_ran = False

    async def another_task() -> None:
        nonlocal others_ran
        others_ran = True

    async with trio.open_nursery() as nursery:
        nursery.start_soon(another_task)
        rest = [await listener.accept() for _ in range(9)]
        assert not others_ran
    streams = [first, *rest]
    for index, client in enumerate(clients):
        client.sendall(f"hello {index}".encode())
    for index, stream in enumerate(streams):
        assert await stream.receive_some(100) == f"hello {index}".encode()
        await stream.aclose()
    for client in clients:
        client.close()
    await listener.aclose()


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
