"""The web endpoint without a browser: a trio-websocket client speaking frames
(docs/protocol.md, "In a browser"). Each bad peer is dropped alone: a member
connected beside it keeps chatting."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import trio
from trio_websocket import (
    ConnectionClosed,
    ConnectionRejected,
    open_websocket_url,
)

from trio_chat import wire
from trio_chat.wire import FrameType

from .peers import WebMember, calm_member, origin, still_fine
from .processes import Cluster, cluster
from .programs import SERVER, free_ports, run_program

DEADLINE = 15


@pytest.fixture(params=[None, 1], ids=["one-server", "cluster-node"])
def served(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[Cluster, int]]:
    """A server with --web: alone, and as a node of a cluster (the page works there too)."""
    (port,) = free_ports(1)
    options = ("--web", str(port), "--hello-timeout", "1")
    with cluster(tmp_path, server_options=options, nodes=request.param) as chat:
        yield chat, port


@pytest.fixture
async def bystander(served: tuple[Cluster, int]) -> AsyncIterator[WebMember]:
    """A member in the channel the whole time: it must never notice the bad peers."""
    async with calm_member(served[1]) as member:
        yield member


async def dropped(port: int, send: bytes | str, headers: bool = True) -> None:
    """Connect, send ``send``, and see the server close the connection (while
    sending, if the server refuses a message at its first frame header)."""
    url = f"ws://127.0.0.1:{port}/ws/general"
    async with open_websocket_url(url, extra_headers=origin(port) if headers else []) as socket:
        with trio.fail_after(DEADLINE), pytest.raises(ConnectionClosed):
            if send:
                await socket.send_message(send)
            while True:
                await socket.get_message()


async def test_wrong_origin_is_refused(served: tuple[Cluster, int], bystander: WebMember) -> None:
    _, port = served
    url = f"ws://127.0.0.1:{port}/ws/general"
    headers: list[tuple[bytes, bytes]]
    for headers in ([(b"Origin", b"http://evil.example")], []):
        with pytest.raises(ConnectionRejected):
            async with open_websocket_url(url, extra_headers=headers):
                pass
    await still_fine(bystander)


async def test_unknown_channel_is_refused(served: tuple[Cluster, int]) -> None:
    _, port = served
    with pytest.raises(ConnectionRejected):
        async with open_websocket_url(
            f"ws://127.0.0.1:{port}/ws/nowhere", extra_headers=origin(port)
        ):
            pass


@pytest.mark.parametrize(
    "message",
    [
        wire.encode(FrameType.INPUT, b"chat before hello"),
        b"\xff\xff\xff\xff\x01",  # a frame that claims 4 GiB
        wire.encode(FrameType.HELLO, b"not the protocol"),
        "a text message",
    ],
    ids=["input-before-hello", "huge-length", "bad-hello", "text-message"],
)
async def test_malformed_messages_drop_only_that_connection(
    served: tuple[Cluster, int], bystander: WebMember, message: bytes | str
) -> None:
    await dropped(served[1], message)
    await still_fine(bystander)


async def test_oversize_message_drops_only_that_connection(
    served: tuple[Cluster, int], bystander: WebMember
) -> None:
    await dropped(served[1], b"\0" * (2 * 1024 * 1024))
    await still_fine(bystander)


async def test_no_hello_in_time_is_dropped(
    served: tuple[Cluster, int], bystander: WebMember
) -> None:
    await dropped(served[1], b"")
    await still_fine(bystander)
    served[0].server.wait_stderr("no hello within the time limit")


def test_web_port_in_use_exits_1_before_anything(tmp_path: Path) -> None:
    import socket

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        channels = free_ports(3)
        (tmp_path / "configfile").write_text(
            "".join(f"channel c{i} {p} 5\n" for i, p in enumerate(channels))
        )
        result = run_program(SERVER, "configfile", "--web", str(port), cwd=tmp_path)
    assert result.returncode == 1
    assert "cannot listen for the web page" in result.stderr
    assert "listening on" not in result.stderr
