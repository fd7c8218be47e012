"""Server memory under a forged-acknowledgement attack, on loopback.

    python bench/hostile.py [--pairs 4] [--megabytes 1024] [--seconds 5]

Each pair is a sender that offers a large file to a receiver that acknowledges
far more than it can have received (2**62 bytes) right after the first chunk
and then never reads again, while the sender streams as fast as the server
takes its data. A server that trusted the acknowledgement would let the sender
fill its memory. Prints the server's RSS before, at its peak during the
attack, and after every socket has closed, as a Markdown table.
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pairs", type=int, default=4)
    parser.add_argument("--megabytes", type=int, default=1024)
    parser.add_argument("--seconds", type=float, default=5.0)
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as name:
        ports = free_ports(3)
        config = Path(name) / "configfile"
        config.write_text("".join(f"channel c{i} {p} 1000\n" for i, p in enumerate(ports)))
        server = subprocess.Popen(
            [SERVER, str(config)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_until_accepting(ports[0])
            time.sleep(0.5)
            before = rss_kb(server.pid)
            peak = before
            attackers = [
                threading.Thread(
                    target=attack,
                    args=(ports[0], pair, arguments.megabytes << 20, arguments.seconds),
                )
                for pair in range(arguments.pairs)
            ]
            for thread in attackers:
                thread.start()
            while any(thread.is_alive() for thread in attackers):
                peak = max(peak, rss_kb(server.pid))
                time.sleep(0.05)
            time.sleep(1.0)
            after = rss_kb(server.pid)
        finally:
            server.terminate()
            server.wait()
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
