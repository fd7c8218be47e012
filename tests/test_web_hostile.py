"""The web port against hostile peers (docs/web.md): every length a
peer declares is checked before a byte of its payload is read, nothing more is
read after a refusal, only the server's own names are answered, and every
response carries the security headers.

The first tests check the pieces alone (frame headers, names, the log
throttle, the option); the rest speak raw HTTP and WebSocket bytes to a real
server, with a member chatting beside them that must notice nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import trio
import trio.testing
from hypothesis import given
from hypothesis import strategies as st

from trio_chat import wire
from trio_chat.arguments import web_origin
from trio_chat.web.frames import MESSAGE_TOO_BIG, PROTOCOL_ERROR, FrameLimits, Refused
from trio_chat.web.guard import SEND_TIMEOUT, GuardedStream, close_frame
from trio_chat.web.origins import KnownOrigins
from trio_chat.web.serve import MAX_MESSAGE
from trio_chat.web.throttle import Throttle, throttled_logger

from .peers import WebMember, calm_member, still_fine
from .processes import Cluster, cluster
from .programs import SERVER, free_ports, run_program

DEADLINE = 15
MASK = bytes(4)  # a zero mask leaves the payload as it is
# More than the kernel's socket buffers could take for a closed connection
# (the client's send buffer and the server's receive buffer, at most 4 and
# 32 MiB here): a server that drops the connection stops a sender before this.
FAR_PAST_THE_LIMIT = 64 * 1024 * 1024
BINARY, TEXT, CONTINUATION, PING = 0x2, 0x1, 0x0, 0x9


def header(
    opcode: int, length: int, final: bool = True, masked: bool = True, rsv: int = 0
) -> bytes:
    """A client frame header declaring ``length`` bytes of payload."""
    first = bytes([(0x80 if final else 0) | rsv << 4 | opcode])
    mask_bit = 0x80 if masked else 0
    if length < 126:
        size = bytes([mask_bit | length])
    elif length < 1 << 16:
        size = bytes([mask_bit | 126]) + length.to_bytes(2, "big")
    else:
        size = bytes([mask_bit | 127]) + length.to_bytes(8, "big")
    return first + size + (MASK if masked else b"")


def frame(opcode: int, payload: bytes, final: bool = True) -> bytes:
    return header(opcode, len(payload), final) + payload


# The pieces alone.


def test_a_message_up_to_the_limit_passes_in_any_pieces() -> None:
    limits = FrameLimits(MAX_MESSAGE)
    data = frame(BINARY, bytes(1000), final=False)
    data += frame(PING, b"between the fragments")
    data += frame(CONTINUATION, bytes(MAX_MESSAGE - 1000))
    data += frame(BINARY, bytes(MAX_MESSAGE))  # the next message counts afresh
    for start in range(0, len(data), 7001):
        limits.feed(data[start : start + 7001])


@given(st.lists(st.integers(1, 20)))
def test_headers_split_anywhere_are_read_the_same(cuts: list[int]) -> None:
    data = frame(BINARY, bytes(300), final=False) + header(CONTINUATION, MAX_MESSAGE)
    limits = FrameLimits(MAX_MESSAGE)
    position = 0
    with pytest.raises(Refused) as refused:
        for cut in [*cuts, len(data)]:
            limits.feed(data[position : position + cut])
            position += cut
    assert refused.value.code == MESSAGE_TOO_BIG


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (header(BINARY, 2**62), MESSAGE_TOO_BIG),
        (header(BINARY, MAX_MESSAGE + 1), MESSAGE_TOO_BIG),
        (header(TEXT, 2**40), MESSAGE_TOO_BIG),
        (frame(BINARY, bytes(MAX_MESSAGE), final=False) + header(CONTINUATION, 1), MESSAGE_TOO_BIG),
        (
            b"".join(
                frame(BINARY if i == 0 else CONTINUATION, bytes(1024), False) for i in range(321)
            )
            + header(CONTINUATION, 1),
            MESSAGE_TOO_BIG,
        ),
        (header(BINARY, 2**62, masked=False), PROTOCOL_ERROR),
        (header(BINARY, 10, masked=False), PROTOCOL_ERROR),
        (header(PING, 126), PROTOCOL_ERROR),
        (header(PING, 10, final=False), PROTOCOL_ERROR),
        (header(BINARY, 10, rsv=4), PROTOCOL_ERROR),
        (header(0x3, 10), PROTOCOL_ERROR),
        (header(CONTINUATION, 10), PROTOCOL_ERROR),
        (frame(BINARY, b"x", final=False) + header(BINARY, 1), PROTOCOL_ERROR),
    ],
    ids=[
        "binary-2**62",
        "binary-one-past",
        "text-huge",
        "continuation-past",
        "many-fragments-past",
        "unmasked-huge",
        "unmasked-small",
        "control-over-125",
        "control-fragmented",
        "compressed",
        "reserved-opcode",
        "continuation-first",
        "new-message-mid-message",
    ],
)
def test_refused_at_the_header_before_any_payload(data: bytes, code: int) -> None:
    with pytest.raises(Refused) as refused:
        FrameLimits(MAX_MESSAGE).feed(data)
    assert refused.value.code == code


def test_names_known_and_unknown() -> None:
    known = KnownOrigins(("127.0.0.1", 8080), [web_origin("https://Chat.Example.org")])

    def scope(host: bytes, page: bytes | None = None) -> dict[str, object]:
        headers = [(b"host", host)] + ([(b"origin", page)] if page else [])
        return {"headers": headers, "server": ("10.0.0.5", 8080)}

    for host in [b"127.0.0.1:8080", b"localhost:8080", b"[::1]:8080", b"10.0.0.5:8080"]:
        assert known.host_known(scope(host))
    assert known.host_known(scope(b"chat.example.org"))
    assert known.host_known(scope(b"CHAT.example.org:443"))
    for host in [b"evil.example:8080", b"127.0.0.1:8081", b"localhost", b"chat.example.org:80"]:
        assert not known.host_known(scope(host))
    assert not known.host_known({"headers": [(b"host", b"localhost:8080")] * 2})
    assert not known.host_known({"headers": []})

    assert known.origin_allowed(scope(b"x", b"http://localhost:8080"))
    assert known.origin_allowed(scope(b"x", b"https://chat.example.org"))
    assert known.origin_allowed(scope(b"x", b"http://10.0.0.5:8080"))
    for page in [b"http://evil.example:8080", b"https://localhost:8080", b"null"]:
        assert not known.origin_allowed(scope(b"x", page))
    assert not known.origin_allowed(scope(b"x"))


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("https://chat.example.org", ("https", "chat.example.org", 443)),
        ("http://Chat.Example.org:8080/", ("http", "chat.example.org", 8080)),
        ("http://[::1]:9000", ("http", "::1", 9000)),
    ],
)
def test_web_origin_values(text: str, parsed: tuple[str, str, int]) -> None:
    assert web_origin(text) == parsed


@pytest.mark.parametrize(
    "text",
    [
        "chat.example.org",
        "ftp://chat.example.org",
        "https://chat.example.org/chat",
        "https://user@chat.example.org",
        "https://chat.example.org:0",
        "https://chat.example.org:99999",
        "https://",
        "https://exa mple.org",
    ],
)
def test_web_origin_refuses_what_is_not_an_origin(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        web_origin(text)


def test_web_origin_needs_web(tmp_path: Path) -> None:
    (tmp_path / "configfile").write_text(
        "".join(f"channel c{i} {port} 5\n" for i, port in enumerate(free_ports(3)))
    )
    result = run_program(SERVER, "configfile", "--web-origin", "https://x.org", cwd=tmp_path)
    assert result.returncode == 1 and "--web-origin goes with --web" in result.stderr
    result = run_program(SERVER, "configfile", "--web", "1", "--web-origin", "x.org", cwd=tmp_path)
    assert result.returncode == 1 and "is not an origin" in result.stderr


async def test_refusals_are_logged_at_most_once_an_interval(
    autojump_clock: trio.testing.MockClock,
) -> None:
    lines: list[str] = []
    complain = Throttle(lines.append, interval=10.0)
    for _ in range(1000):
        complain("refused")
    assert lines == ["refused"]
    autojump_clock.jump(10.0)
    complain("refused")
    assert lines == ["refused", "refused (and 999 more refused since the last such line)"]


async def test_hypercorns_errors_are_a_line_each_at_most_once_an_interval(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Out of file descriptors, hypercorn logged a 36-line traceback for each
    page it could not open."""
    lines: list[str] = []
    logger = throttled_logger(lines.append)
    error = OSError(errno.EMFILE, "Too many open files")
    for _ in range(100):
        logger.error("Error in ASGI Framework", exc_info=(OSError, error, None))
    assert lines == ["hypercorn: Error in ASGI Framework: OSError: [Errno 24] Too many open files"]
    autojump_clock.jump(10.0)
    logger.error("Error in ASGI Framework", exc_info=(OSError, error, None))
    assert lines[1].endswith("(and 99 more errors since the last such line)")


async def guarded_pair() -> tuple[GuardedStream, trio.SocketStream, list[str]]:
    """A guard on one end of a socket pair, and the peer's end."""
    ours, theirs = trio.socket.socketpair()
    complaints: list[str] = []
    guard = GuardedStream(trio.SocketStream(ours), MAX_MESSAGE, 16 * 1024, complaints.append)
    return guard, trio.SocketStream(theirs), complaints


SWITCHING = b"HTTP/1.1 101 Switching Protocols\r\n\r\n"


async def test_the_guard_passes_a_handshake_without_extensions_and_its_frames() -> None:
    """Frames that come with the handshake reach hypercorn once it has answered:
    fed before, they throw its HTTP parser (and the server with it, once)."""
    guard, peer, _ = await guarded_pair()
    offer = "Sec-WebSocket-Extensions: permessage-deflate\r\n"
    frames = frame(BINARY, b"hello") + frame(BINARY, bytes(1000))
    await peer.send_all(handshake(80, extra=offer) + frames)
    head = await guard.receive_some()
    assert head.endswith(b"\r\n\r\n")
    assert b"Sec-WebSocket-Extensions" not in head and b"Sec-WebSocket-Key: " in head
    with trio.move_on_after(0.1) as early:
        await guard.receive_some()
    assert early.cancelled_caught  # nothing until the answer
    await guard.send_all(SWITCHING)
    rest = b""
    while len(rest) < len(frames):
        rest += await guard.receive_some()
    assert rest == frames


async def test_the_guard_passes_no_frame_of_a_refused_handshake() -> None:
    """Refused (403): hypercorn gets the end of the stream, so it closes the
    connection, and never the frames that came with the handshake."""
    guard, peer, _ = await guarded_pair()
    await peer.send_all(handshake(80) + frame(BINARY, b"hello"))
    await guard.receive_some()
    await guard.send_all(b"HTTP/1.1 403 Forbidden\r\n\r\n")
    assert await guard.receive_some() == b""
    assert await guard.receive_some() == b""


async def test_the_guard_reads_nothing_after_a_refused_header() -> None:
    guard, peer, complaints = await guarded_pair()
    await peer.send_all(handshake(80) + header(BINARY, 2**62) + bytes(1000))
    with pytest.raises(trio.BrokenResourceError):
        await guard.receive_some()
    assert await peer.receive_some() == b""  # closed (no 101 went out: no close frame)
    assert complaints == [
        f"closing a WebSocket from ? that sent a message of at least {2**62} bytes "
        f"(the limit is {MAX_MESSAGE})"
    ]


async def test_the_guard_never_reads_a_body() -> None:
    guard, peer, _ = await guarded_pair()
    head = b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\n"
    await peer.send_all(head + bytes(100))
    assert await guard.receive_some() == head
    async with trio.open_nursery() as nursery:

        async def reads_more() -> None:
            with pytest.raises(trio.ClosedResourceError):
                await guard.receive_some()

        nursery.start_soon(reads_more)
        await trio.testing.wait_all_tasks_blocked()
        await guard.aclose()  # as hypercorn does once it has answered


async def test_the_guard_hands_over_pipelined_heads_one_at_a_time() -> None:
    guard, peer, _ = await guarded_pair()
    first = b"GET /channels HTTP/1.1\r\nHost: h\r\n\r\n"
    second = b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"
    await peer.send_all(first + second)
    assert await guard.receive_some() == first
    assert await guard.receive_some() == second


async def test_the_guard_drops_http2() -> None:
    guard, peer, complaints = await guarded_pair()
    await peer.send_all(b"GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n")
    with pytest.raises(trio.BrokenResourceError):
        await guard.receive_some()
    assert await peer.receive_some() == b""
    assert complaints == ["dropping a request from ? for HTTP/2 or another upgrade"]


# A real server.


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Cluster, int]]:
    (port,) = free_ports(1)
    with cluster(tmp_path, server_options=("--web", str(port))) as chat:
        yield chat, port


@pytest.fixture
async def calm(served: tuple[Cluster, int]) -> AsyncIterator[WebMember]:
    """A member in the channel the whole time: it must never notice the attacks."""
    async with calm_member(served[1]) as member:
        yield member


def handshake(
    port: int, host: str | None = None, page: str | None = None, extra: str = ""
) -> bytes:
    host = host or f"127.0.0.1:{port}"
    return (
        f"GET /ws/general HTTP/1.1\r\nHost: {host}\r\nOrigin: {page or f'http://{host}'}\r\n"
        "Upgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    ).encode()


async def response_head(stream: trio.SocketStream) -> bytes:
    """The response head, and leave the rest for the caller."""
    data = b""
    with trio.fail_after(DEADLINE):
        while b"\r\n\r\n" not in data:
            more = await stream.receive_some(1)
            if not more:
                break
            data += more
    return data


async def until_closed(stream: trio.SocketStream) -> bytes:
    """Everything the server sends until it closes the connection."""
    data = b""
    with trio.fail_after(DEADLINE):
        while True:
            try:
                more = await stream.receive_some()
            except trio.BrokenResourceError:  # reset: the server closed with bytes unread
                return data
            if not more:
                return data
            data += more


async def sent_before_the_drop(stream: trio.SocketStream) -> int:
    """Stream zeros until the server's close stops us; how many went."""
    zeros = bytes(64 * 1024)
    sent = 0
    with trio.fail_after(DEADLINE):
        try:
            while sent < FAR_PAST_THE_LIMIT:
                await stream.send_all(zeros)
                sent += len(zeros)
        except trio.BrokenResourceError:
            return sent
    raise AssertionError(f"the server took {sent} bytes and still reads")


async def chatting(
    port: int, page: str | None = None, host: str | None = None, calm: WebMember | None = None
) -> trio.SocketStream:
    """A raw WebSocket that has said hello (and joined, as ``calm`` sees)."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    await stream.send_all(handshake(port, host, page))
    assert (await response_head(stream)).startswith(b"HTTP/1.1 101 ")
    await stream.send_all(frame(BINARY, wire.encode_hello("mallory")))
    if calm is not None:
        await calm.expect("joined", user="mallory")
    return stream


@pytest.mark.parametrize(
    ("prefix", "code"),
    [
        (header(BINARY, 2**62), MESSAGE_TOO_BIG),
        (header(TEXT, 2**62), MESSAGE_TOO_BIG),
        (header(BINARY, MAX_MESSAGE + 1), MESSAGE_TOO_BIG),
        (
            frame(BINARY, bytes(200 * 1024), False) + header(CONTINUATION, 200 * 1024),
            MESSAGE_TOO_BIG,
        ),
        (
            b"".join(
                frame(BINARY if i == 0 else CONTINUATION, bytes(1024), False) for i in range(321)
            )
            + header(CONTINUATION, 1),
            MESSAGE_TOO_BIG,
        ),
        (header(BINARY, 2**62, masked=False), PROTOCOL_ERROR),
    ],
    ids=["binary-2**62", "text-2**62", "one-past", "continuation", "many-fragments", "unmasked"],
)
async def test_an_oversize_frame_header_closes_the_connection_at_once(
    served: tuple[Cluster, int], calm: WebMember, prefix: bytes, code: int
) -> None:
    """The header alone, no payload sent: the server closes with a close frame."""
    stream = await chatting(served[1], calm=calm)
    await stream.send_all(prefix)
    assert (await until_closed(stream)).endswith(close_frame(code))
    await still_fine(calm)


async def test_streaming_past_a_refused_header_meets_a_closed_connection(
    served: tuple[Cluster, int], calm: WebMember
) -> None:
    stream = await chatting(served[1], calm=calm)
    await stream.send_all(header(BINARY, 2**62))
    await sent_before_the_drop(stream)
    await still_fine(calm)


async def test_compression_is_not_agreed(served: tuple[Cluster, int]) -> None:
    """A compressed frame's declared length says nothing of what it inflates to."""
    port = served[1]
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    offer = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
    await stream.send_all(handshake(port, extra=offer))
    head = (await response_head(stream)).lower()
    assert head.startswith(b"http/1.1 101 ") and b"sec-websocket-extensions" not in head


SECURITY = b"content-security-policy: default-src 'self'"


async def response_to(port: int, request: bytes) -> bytes:
    """The head of the answer to ``request`` (a kept-alive connection stays open)."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    await stream.send_all(request)
    return await response_head(stream)


def at_own_host(port: int, request: bytes) -> bytes:
    """``request`` with its ``Host: H`` made the server's own name."""
    return request.replace(b"Host: H", f"Host: 127.0.0.1:{port}".encode())


async def exchange(port: int, request: bytes) -> bytes:
    """Send ``request``; all the server answers before it closes."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    await stream.send_all(request)
    return await until_closed(stream)


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET / HTTP/1.1\r\nHost: H\r\nX-Big: " + b"x" * 20000 + b"\r\n\r\n", b"431"),
        (b"GET / HTTP/1.1\r\nHost: H\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", b"400"),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n", b"400"),
        (handshake(0, "H", "http://evil.example"), b"403"),
    ],
    ids=["header-too-large", "two-content-lengths", "garbage", "websocket-refused"],
)
async def test_the_http_layers_own_answers_carry_the_security_headers(
    served: tuple[Cluster, int], calm: WebMember, request_bytes: bytes, status: bytes
) -> None:
    port = served[1]
    answer = await exchange(port, at_own_host(port, request_bytes))
    assert answer.startswith(b"HTTP/1.1 " + status), answer
    assert SECURITY in answer.lower()
    await still_fine(calm)


@pytest.mark.parametrize(
    "body_header",
    ["Content-Length: 1099511627776", "Transfer-Encoding: chunked"],
    ids=["content-length", "chunked"],
)
async def test_a_declared_body_is_refused_and_never_read(
    served: tuple[Cluster, int], calm: WebMember, body_header: str
) -> None:
    port = served[1]
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    await stream.send_all(
        f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{body_header}\r\n\r\n".encode()
    )
    head = (await response_head(stream)).lower()
    assert head.startswith(b"http/1.1 413 ") and SECURITY in head
    await sent_before_the_drop(stream)
    await still_fine(calm)


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET / HTTP/1.1\r\nHost: H\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
        b"HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    ],
    ids=["h2c-upgrade", "h2-preface"],
)
async def test_http2_which_would_bypass_the_checks_is_not_spoken(
    served: tuple[Cluster, int], request_bytes: bytes
) -> None:
    port = served[1]
    answer = await exchange(port, at_own_host(port, request_bytes))
    assert answer == b"" or answer.startswith(b"HTTP/1.1 4"), answer


async def test_a_rebinding_domain_is_refused(served: tuple[Cluster, int], calm: WebMember) -> None:
    """A page on evil.example that resolves to this machine: its own name in both."""
    chat, port = served
    evil = f"evil.example:{port}"
    answer = await exchange(port, handshake(port, evil, f"http://{evil}"))
    assert answer.startswith(b"HTTP/1.1 403 ") and SECURITY in answer.lower()
    for path in ("/channels", "/", "/static/main.js"):
        request = f"GET {path} HTTP/1.1\r\nHost: {evil}\r\n\r\n".encode()
        answer = await exchange(port, request)
        assert answer.startswith(b"HTTP/1.1 421 ") and SECURITY in answer.lower(), answer
        assert b"general" not in answer
    chat.server.wait_stderr("refusing a request for an unknown host b'evil.example:")
    await still_fine(calm)


async def test_the_servers_own_names_are_answered(served: tuple[Cluster, int]) -> None:
    port = served[1]
    for host, page in [
        (f"localhost:{port}", f"http://localhost:{port}"),
        (f"127.0.0.1:{port}", f"http://localhost:{port}"),
    ]:
        stream = await chatting(port, page, host)
        await stream.aclose()
        answer = await response_to(port, f"GET /channels HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        assert answer.startswith(b"HTTP/1.1 200 ")


async def test_a_proxys_name_is_answered_when_given(tmp_path: Path) -> None:
    (port,) = free_ports(1)
    options = ("--web", str(port), "--web-origin", "https://chat.example.org")
    with cluster(tmp_path, server_options=options):
        page = "https://chat.example.org"
        # The proxy passes the public name on, or its own way to this port.
        for host in ("chat.example.org", f"127.0.0.1:{port}"):
            await (await chatting(port, page, host)).aclose()
        answer = await exchange(port, handshake(port, "chat.example.org", "http://evil.example"))
        assert answer.startswith(b"HTTP/1.1 403 ")
        answer = await response_to(port, b"GET / HTTP/1.1\r\nHost: chat.example.org\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 200 ")


async def test_kept_alive_requests_are_each_answered(served: tuple[Cluster, int]) -> None:
    """Requests one after another on one connection, pipelined: each head is
    read and vetted on its own."""
    port = served[1]
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    good = f"GET /channels HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
    evil = b"GET /channels HTTP/1.1\r\nHost: evil.example\r\n\r\n"
    await stream.send_all(good + evil)
    assert (await response_head(stream)).startswith(b"HTTP/1.1 200 ")
    rest = await until_closed(stream)
    assert b"HTTP/1.1 421 " in rest and rest.count(b"HTTP/1.1") == 1


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET / HTTP/1.1\r\nHost: H\r\nConnection: close\r\n\r\n",
        b"GET / HTTP/1.0\r\nHost: H\r\n\r\n",
    ],
    ids=["connection-close", "http-1.0"],
)
async def test_a_connection_not_kept_alive_is_closed_after_the_page(
    served: tuple[Cluster, int], request_bytes: bytes
) -> None:
    port = served[1]
    answer = await exchange(port, at_own_host(port, request_bytes))
    assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(b"</html>\n")


async def until_seen(stream: trio.SocketStream, wanted: bytes) -> bytes:
    """Read until ``wanted`` has come (the server's frames carry text as it is)."""
    data = b""
    with trio.fail_after(DEADLINE):
        while wanted not in data:
            more = await stream.receive_some()
            assert more, f"closed before {wanted!r}: {data!r}"
            data += more
    return data


@pytest.mark.parametrize("together", [True, False], ids=["one-send", "before-the-answer"])
async def test_a_hello_sent_before_the_handshake_is_answered_joins(
    served: tuple[Cluster, int], calm: WebMember, together: bool
) -> None:
    """A client may send frames right behind its handshake (it used to crash
    the whole server: hypercorn's HTTP parser met them before it answered)."""
    port = served[1]
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    hello = frame(BINARY, wire.encode_hello("eager"))
    if together:
        await stream.send_all(handshake(port) + hello)
    else:
        await stream.send_all(handshake(port))
        await stream.send_all(hello)
    answer = await until_seen(stream, b'"event":"welcome"')
    assert answer.startswith(b"HTTP/1.1 101 ")
    await calm.expect("joined", user="eager")
    await still_fine(calm)


async def test_bytes_behind_a_refused_handshake_disturb_nobody(
    served: tuple[Cluster, int], calm: WebMember
) -> None:
    port = served[1]
    for host in ("evil.example", f"127.0.0.1:{port}"):
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        page = "http://evil.example"
        await stream.send_all(handshake(port, host=host, page=page) + b"x")
        assert (await response_head(stream)).startswith(b"HTTP/1.1 4")
    await still_fine(calm)
    chat = served[0]
    assert chat.server.process.poll() is None  # still serving


async def test_a_peer_that_does_not_read_does_not_hold_the_shutdown(
    served: tuple[Cluster, int], calm: WebMember
) -> None:
    """hypercorn shields its writes from cancellation: a peer that asks for
    pages and never reads them must not keep the server from stopping."""
    chat, port = served
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    request = f"GET /static/style.css HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
    await stream.send_all(request * 700)  # 6.6 MB of answers: far past the socket buffers
    await still_fine(calm)
    await trio.to_thread.run_sync(chat.shutdown)  # exits 0 within its deadline
    await stream.aclose()


async def test_a_write_that_waits_for_a_peer_that_does_not_read_ends_the_connection(
    autojump_clock: trio.testing.MockClock,
) -> None:
    guard, _, complaints = await guarded_pair()
    with pytest.raises(trio.BrokenResourceError):
        while True:  # until the socket buffers are full and the write waits
            await guard.send_all(bytes(64 * 1024))
    assert trio.current_time() == pytest.approx(SEND_TIMEOUT)
    assert complaints == ["closing a web connection from ? that does not read"]
    with pytest.raises(trio.ClosedResourceError):
        await guard.receive_some()


async def test_connections_to_the_web_port_count_toward_the_per_address_limit(
    tmp_path: Path,
) -> None:
    (port,) = free_ports(1)
    options = ("--web", str(port), "--max-per-address", "3")
    with cluster(tmp_path, server_options=options):
        idle = [await trio.open_tcp_stream("127.0.0.1", port) for _ in range(3)]
        extra = await trio.open_tcp_stream("127.0.0.1", port)
        assert await until_closed(extra) == b""  # closed at once, not after a keep-alive
        await idle[0].aclose()
        with trio.fail_after(DEADLINE):
            while True:  # the server sees the close, then there is room again
                again = await trio.open_tcp_stream("127.0.0.1", port)
                request = f"GET /channels HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n"
                with contextlib.suppress(trio.BrokenResourceError):  # refused: reset
                    await again.send_all(request.encode())
                    if (await response_head(again)).startswith(b"HTTP/1.1 200 "):
                        break
                await trio.sleep(0.05)
        for stream in idle[1:]:
            await stream.aclose()
