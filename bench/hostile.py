"""Server memory under a forged-acknowledgement attack, on loopback.

    python bench/hostile.py [--pairs 4] [--megabytes 1024] [--seconds 5]

Each pair is a sender that offers a large file to a receiver that acknowledges
far more than it can have received (2**62 bytes) right after the first chunk
and then never reads again, while the sender streams as fast as the server
takes its data. A server that trusted the acknowledgement would let the sender
fill its memory. Prints the server's RSS before, at its peak during the
attack, and after every socket has closed, as a Markdown table.

    python bench/hostile.py --web-frame [--megabytes 300]

instead runs the browser port's attack (a server with ``--web``): one
WebSocket says hello, then sends one binary frame header that claims 2**62
bytes and streams zeros behind it until the server drops the connection or
MEGABYTES have gone. A server that buffered the frame would hold it all.
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import SERVER, free_ports, wait_until_accepting
from bench.load import rss_kb
from trio_chat import wire
from trio_chat.wire import FrameType


def frames(sock: socket.socket, decoder: wire.FrameDecoder) -> list[tuple[int, bytes]]:
    data = sock.recv(1 << 20)
    if not data:
        raise ConnectionError("closed")
    return [(kind, bytes(payload)) for kind, payload, _ in decoder.feed(data)]


def wait_for(sock: socket.socket, decoder: wire.FrameDecoder, wanted: int) -> bytes:
    while True:
        for kind, payload in frames(sock, decoder):
            if kind == wanted:
                return payload


def attack(port: int, pair: int, size: int, seconds: float) -> None:
    receiver = socket.create_connection(("127.0.0.1", port))
    receiver.sendall(wire.encode_hello(f"victim{pair}"))
    receiving = wire.FrameDecoder()
    wait_for(receiver, receiving, FrameType.LINE)  # joined: the offer finds it
    sender = socket.create_connection(("127.0.0.1", port))
    sender.sendall(wire.encode_hello(f"sender{pair}"))
    offer = {"ref": 1, "target": f"victim{pair}", "path": "f", "name": "f", "size": size}
    sender.sendall(wire.encode_json(FrameType.SEND_OFFER, {**offer, "readable": True}))
    state = wait_for(sender, wire.FrameDecoder(), FrameType.SEND_STATE)
    ident = wire.ID.unpack(state[5:9])[0]
    chunk = wire.encode_with_id(FrameType.FILE_DATA, ident, b"\0" * wire.CHUNK_SIZE)
    sender.sendall(chunk)
    wait_for(receiver, receiving, FrameType.FILE_DATA)
    receiver.sendall(wire.encode_ack(ident, 2**62))  # and never reads again
    sender.settimeout(0.5)
    end = time.monotonic() + seconds
    with contextlib.suppress(OSError):
        for _ in range(size // wire.CHUNK_SIZE - 1):
            if time.monotonic() > end:
                break
            try:
                sender.sendall(chunk)
            except TimeoutError:
                continue  # the server is not taking more: that is the point
    time.sleep(0.2)
    sender.close()
    receiver.close()


def web_frame_attack(port: int, size: int) -> int:
    """The bytes of zeros the server took after the frame header before it
    dropped the connection (``size`` if it never did)."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(
        f"GET /ws/c0 HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Origin: http://127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    response = b""
    while b"\r\n\r\n" not in response:
        response += sock.recv(4096)
    hello = wire.encode_hello("attacker")
    # Client frames are masked; a zero mask leaves the payload as it is.
    sock.sendall(bytes([0x82, 0x80 | len(hello)]) + bytes(4) + hello)
    sock.sendall(bytes([0x82, 0x80 | 127]) + (2**62).to_bytes(8, "big") + bytes(4))
    zeros = bytes(1 << 20)
    sent = 0
    with contextlib.suppress(OSError):
        while sent < size:
            sent += sock.send(zeros)
    sock.close()
    return min(sent, size)


def server_rss_under(
    extra: list[str], attackers: Callable[[list[int]], list[threading.Thread]], settle: float
) -> tuple[int, int, int]:
    """A server with three channels (and ``extra`` options; ports[3] is
    free for them): its RSS in KiB before, at the peak while ``attackers``
    (given the ports) run, and ``settle`` seconds after they are done."""
    with tempfile.TemporaryDirectory() as name:
        ports = free_ports(4)
        config = Path(name) / "configfile"
        config.write_text("".join(f"channel c{i} {p} 1000\n" for i, p in enumerate(ports[:3])))
        arguments = [arg.replace("{port}", str(ports[3])) for arg in extra]
        server = subprocess.Popen(
            [SERVER, str(config), *arguments],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_until_accepting(ports[3] if arguments else ports[0])
            time.sleep(0.5)
            before = rss_kb(server.pid)
            peak = before
            threads = attackers(ports)
            for thread in threads:
                thread.start()
            while any(thread.is_alive() for thread in threads):
                peak = max(peak, rss_kb(server.pid))
                time.sleep(0.05)
            time.sleep(settle)
            after = rss_kb(server.pid)
        finally:
            server.terminate()
            server.wait()
    return before, peak, after


def web_frame(megabytes: int) -> None:
    taken: list[int] = []
    before, peak, after = server_rss_under(
        ["--web", "{port}"],
        lambda ports: [
            threading.Thread(
                target=lambda: taken.append(web_frame_attack(ports[3], megabytes << 20))
            )
        ],
        settle=2.0,
    )
    print(f"| one WebSocket frame claiming 2**62 bytes ({megabytes} MiB sent) | server RSS |")
    print("|---|---|")
    print(f"| before | {before / 1024:.1f} MB |")
    print(f"| peak during the attack | {peak / 1024:.1f} MB |")
    print(f"| two seconds after the socket closed | {after / 1024:.1f} MB |")
    print(f"| zeros sent before the server dropped it | {taken[0] / 1024**2:.1f} MiB |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pairs", type=int, default=4)
    parser.add_argument(
        "--megabytes", type=int, help="offered by each sender (default: 1024; 300 with --web-frame)"
    )
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument(
        "--web-frame", action="store_true", help="the WebSocket frame attack instead"
    )
    arguments = parser.parse_args()
    if arguments.web_frame:
        web_frame(arguments.megabytes or 300)
        return
    arguments.megabytes = arguments.megabytes or 1024
    before, peak, after = server_rss_under(
        [],
        lambda ports: [
            threading.Thread(
                target=attack,
                args=(ports[0], pair, arguments.megabytes << 20, arguments.seconds),
            )
            for pair in range(arguments.pairs)
        ],
        settle=1.0,
    )
    print(
        f"| forged acknowledgements ({arguments.pairs} pairs, "
        f"{arguments.megabytes} MiB offered each) | server RSS |"
    )
    print("|---|---|")
    print(f"| before | {before / 1024:.1f} MB |")
    print(f"| peak during the attack | {peak / 1024:.1f} MB |")
    print(f"| after the sockets closed | {after / 1024:.1f} MB |")


if __name__ == "__main__":
    main()
