"""/send throughput and memory: a file sender -> server -> receiver on loopback.

    python bench/transfer.py [--megabytes 256]

Also times, in the same run, a plain socket copy of the same bytes between two
bare Python processes, a bare three-process relay of /send's shape (sender
-> relay -> receiver that writes and fsyncs), the same three processes
framing each chunk and taking its CRC-32 as /send's protocol does (written
lean: buffers reused, no copy but the kernel's), and those three written with
trio, and reports our throughput as a fraction of each. Every baseline's
clock starts once its sender has started and connected, as /send's does.
Peak RSS is each process's high-water mark (VmHWM) minus its RSS once idle.

Every run, ours and the baselines', writes and deletes a scratch file twice as
large as the payload just before its clock starts (warm_freed_memory): on the VM
this was measured on, memory freed for a while has been handed back to the
host (free page reporting), and the first write into it runs at ~430 MB/s
instead of ~5,000, so without this a run's speed depended on how long ago
the previous one had deleted its copy.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import CLIENT, SERVER, cpu_seconds, free_ports, sha256, wait_until_accepting

PLAIN_RECEIVER = """
import socket, sys
listener = socket.create_server(("127.0.0.1", 0))
print(listener.getsockname()[1], flush=True)
connection, _ = listener.accept()
with open(sys.argv[1], "wb") as out:
    while data := connection.recv(65536):
        out.write(data)
print("done", flush=True)
"""

# Every baseline's sender connects, says "ready" and waits for a line before
# it sends, so that its start-up is not timed (/send's client is running
# already when it is timed).
PLAIN_SENDER = """
import socket, sys
address = ("127.0.0.1", int(sys.argv[2]))
with socket.create_connection(address) as sock, open(sys.argv[1], "rb") as f:
    print("ready", flush=True)
    sys.stdin.readline()
    while data := f.read(65536):
        sock.sendall(data)
"""

# The same shape as /send, bare: sender -> relay process -> receiver that writes
# the file and fsyncs it, 256 KiB at a time, blocking sockets, no framing.
RELAY = """
import socket
listener = socket.create_server(("127.0.0.1", 0))
print(listener.getsockname()[1], flush=True)
receiver, _ = listener.accept()
sender, _ = listener.accept()
while data := sender.recv(262144):
    receiver.sendall(data)
receiver.close()
"""

RELAYED_RECEIVER = """
import os, socket, sys
with socket.create_connection(("127.0.0.1", int(sys.argv[2]))) as sock:
    print("connected", flush=True)
    with open(sys.argv[1], "wb") as out:
        while data := sock.recv(262144):
            out.write(data)
        out.flush()
        os.fsync(out.fileno())
print("done", flush=True)
"""

RELAYED_SENDER = """
import socket, sys
with socket.create_connection(("127.0.0.1", int(sys.argv[2]))) as sock:
    with open(sys.argv[1], "rb") as f:
        print("ready", flush=True)
        sys.stdin.readline()
        while data := f.read(262144):
            sock.sendall(data)
"""

# The same three processes doing the per-chunk work /send's protocol asks for,
# still bare (blocking sockets, no trio, no flow control) and written lean:
# the sender reads each 256 KiB chunk into one reused frame after its header
# and takes its CRC-32; the relay receives into one buffer and forwards whole
# frames; the receiver reads each header, then the chunk into one reused
# buffer, writes it in 64 KiB pieces as /send's receiver does (see
# WRITE_PIECE in trio_chat/client/transfers.py), takes its CRC-32, and fsyncs
# at the end.
# Both framed relays forward whole frames: where the last whole one ends.
WHOLE_FRAMES_END = """
import struct
HEADER = struct.Struct("!IB")
def whole_frames_end(buffer, held):
    start = 0
    while held - start >= HEADER.size:
        length, _ = HEADER.unpack_from(buffer, start)
        if start + HEADER.size + length > held:
            break
        start += HEADER.size + length
    return start
"""

FRAMED_RELAY = (
    WHOLE_FRAMES_END
    + """
import socket
listener = socket.create_server(("127.0.0.1", 0))
print(listener.getsockname()[1], flush=True)
receiver, _ = listener.accept()
sender, _ = listener.accept()
buffer = bytearray(1 << 20)
view = memoryview(buffer)
held = 0
while count := sender.recv_into(view[held:]):
    held += count
    start = whole_frames_end(buffer, held)
    if start:
        receiver.sendall(view[:start])
        view[: held - start] = view[start:held]
        held -= start
receiver.close()
"""
)

FRAMED_RECEIVER = """
import os, socket, struct, sys, zlib
HEADER = struct.Struct("!IBI")
def fill(sock, view):
    got = 0
    while got < len(view) and (count := sock.recv_into(view[got:])):
        got += count
    return got
with socket.create_connection(("127.0.0.1", int(sys.argv[2]))) as sock:
    print("connected", flush=True)
    header = memoryview(bytearray(HEADER.size))
    chunk = memoryview(bytearray(262144))
    crc = 0
    with open(sys.argv[1], "wb", buffering=0) as out:
        while fill(sock, header) == HEADER.size:
            length, _, _ = HEADER.unpack(header)
            body = chunk[: length - 4]
            fill(sock, body)
            for start in range(0, len(body), 65536):
                out.write(body[start : start + 65536])
            crc = zlib.crc32(body, crc)
        os.fsync(out.fileno())
print("done", flush=True)
"""

FRAMED_SENDER = """
import socket, struct, sys, zlib
HEADER = struct.Struct("!IBI")
frame = memoryview(bytearray(HEADER.size + 262144))
with socket.create_connection(("127.0.0.1", int(sys.argv[2]))) as sock:
    with open(sys.argv[1], "rb", buffering=0) as f:
        print("ready", flush=True)
        sys.stdin.readline()
        crc = 0
        while count := f.readinto(frame[HEADER.size :]):
            crc = zlib.crc32(frame[HEADER.size : HEADER.size + count], crc)
            HEADER.pack_into(frame, 0, 4 + count, 32, 1)
            sock.sendall(frame[: HEADER.size + count])
"""


# The lean framed pipeline again, each process written with trio (as /send's
# are) but with nothing else of /send's: no worker threads, no flow control,
# no sessions. The difference from the lean pipeline is trio's own cost.
TRIO_RELAY = (
    WHOLE_FRAMES_END
    + """
import trio
async def main():
    listener = (await trio.open_tcp_listeners(0, host="127.0.0.1"))[0]
    print(listener.socket.getsockname()[1], flush=True)
    receiver = await listener.accept()
    sender = await listener.accept()
    buffer = bytearray(1 << 20)
    view = memoryview(buffer)
    held = 0
    while count := await sender.socket.recv_into(view[held:]):
        held += count
        start = whole_frames_end(buffer, held)
        if start:
            await receiver.send_all(view[:start])
            view[: held - start] = view[start:held]
            held -= start
    await receiver.aclose()
trio.run(main)
"""
)

TRIO_RECEIVER = """
import os, struct, sys, trio, zlib
HEADER = struct.Struct("!IBI")
async def fill(sock, view):
    got = 0
    while got < len(view) and (count := await sock.recv_into(view[got:])):
        got += count
    return got
async def main():
    sock = trio.socket.socket()
    await sock.connect(("127.0.0.1", int(sys.argv[2])))
    print("connected", flush=True)
    header = memoryview(bytearray(HEADER.size))
    chunk = memoryview(bytearray(262144))
    crc = 0
    with open(sys.argv[1], "wb", buffering=0) as out:
        while await fill(sock, header) == HEADER.size:
            length, _, _ = HEADER.unpack(header)
            body = chunk[: length - 4]
            await fill(sock, body)
            for start in range(0, len(body), 65536):
                out.write(body[start : start + 65536])
            crc = zlib.crc32(body, crc)
        os.fsync(out.fileno())
    print("done", flush=True)
trio.run(main)
"""

TRIO_SENDER = """
import socket, struct, sys, trio, zlib
HEADER = struct.Struct("!IBI")
async def main(connected):
    stream = trio.SocketStream(trio.socket.from_stdlib_socket(connected))
    frame = memoryview(bytearray(HEADER.size + 262144))
    with open(sys.argv[1], "rb", buffering=0) as f:
        crc = 0
        while count := f.readinto(frame[HEADER.size :]):
            crc = zlib.crc32(frame[HEADER.size : HEADER.size + count], crc)
            HEADER.pack_into(frame, 0, 4 + count, 32, 1)
            await stream.send_all(frame[: HEADER.size + count])
    await stream.aclose()
connected = socket.create_connection(("127.0.0.1", int(sys.argv[2])))
print("ready", flush=True)
sys.stdin.readline()
trio.run(main, connected)
"""

PIPELINES = {
    "bare": (RELAY, RELAYED_RECEIVER, RELAYED_SENDER),
    "framed": (FRAMED_RELAY, FRAMED_RECEIVER, FRAMED_SENDER),
    "trio": (TRIO_RELAY, TRIO_RECEIVER, TRIO_SENDER),
}


def start_sender(script: str, source: Path, port: str) -> subprocess.Popen[bytes]:
    """A baseline's sender, connected and waiting for go()."""
    sender = subprocess.Popen(
        [sys.executable, "-c", script, str(source), port],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    wait_line(sender, b"ready")
    return sender


def warm_freed_memory(directory: Path, source: Path) -> None:
    """Write and delete a file twice the size of ``source``: the receiver that
    starts next writes its copy into memory the kernel has just freed, as
    every run does (twice, so that what else the processes allocate meanwhile
    does not leave the end of the copy to cold memory)."""
    block = bytes(1 << 20)
    scratch = directory / "scratch.bin"
    with scratch.open("wb") as file:
        for _ in range(0, 2 * source.stat().st_size, len(block)):
            file.write(block)
    scratch.unlink()


def go(sender: subprocess.Popen[bytes]) -> None:
    assert sender.stdin is not None
    sender.stdin.write(b"go\n")
    sender.stdin.close()


def memory_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def wait_line(process: subprocess.Popen[bytes], ending: bytes, anywhere: bool = False) -> bytes:
    """The first line that ends with ``ending`` (or holds it, ``anywhere``)."""
    assert process.stdout is not None
    for line in process.stdout:
        text = line.rstrip(b"\n")
        if (ending in text) if anywhere else text.endswith(ending):
            return line
    raise RuntimeError(f"process ended before {ending!r}")


def certificates(directory: Path) -> tuple[list[str], list[str]]:
    """trustme certificates for localhost: (server options, client options)."""
    import trustme  # from the test extra: only the TLS run needs it

    authority = trustme.CA()
    leaf = authority.issue_cert("localhost", "127.0.0.1")
    authority.cert_pem.write_to_path(str(directory / "ca.pem"))
    leaf.private_key_pem.write_to_path(str(directory / "key.pem"))
    (directory / "cert.pem").write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    server = ["--tls-cert", str(directory / "cert.pem"), "--tls-key", str(directory / "key.pem")]
    return server, ["--ca", str(directory / "ca.pem")]


def ours(
    directory: Path, source: Path, tls: bool = False
) -> tuple[float, dict[str, int], dict[str, float]]:
    ports = free_ports(3)
    server_options, client_options = certificates(directory) if tls else ([], [])
    (directory / "configfile").write_text(
        "".join(f"channel c{i} {port} 5\n" for i, port in enumerate(ports))
    )
    downloads = directory / "downloads"
    downloads.mkdir()

    def spawn(*args: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            list(args),
            cwd=directory,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )

    server = spawn(SERVER, "configfile", *server_options)
    processes = {"server": server}
    try:
        wait_until_accepting(ports[0])
        receiver = spawn(
            CLIENT, str(ports[0]), "bob", "--download-dir", str(downloads), *client_options
        )
        processes["receiver"] = receiver
        wait_line(receiver, b"bob has joined the channel.")
        sender = spawn(CLIENT, str(ports[0]), "alice", *client_options)
        processes["sender"] = sender
        wait_line(sender, b"alice has joined the channel.")
        # A piped client prints its first lines before it has imported trio:
        # "has joined" comes some 50 ms before it reads stdin. Its start-up is
        # not timed (the baselines' is not either): the clock starts once both
        # clients have answered a /list from inside their sessions.
        for client in (receiver, sender):
            assert client.stdin is not None
            client.stdin.write(b"/list\n")
            client.stdin.flush()
            wait_line(client, f"[Channel] c{len(ports) - 1} ".encode(), anywhere=True)
        idle = {name: memory_kb(p.pid, "VmRSS") for name, p in processes.items()}
        warm_freed_memory(directory, source)
        cpu_before = {name: cpu_seconds(p.pid) for name, p in processes.items()}
        assert sender.stdin is not None
        start = time.perf_counter()
        sender.stdin.write(f"/send bob {source}\n".encode())
        sender.stdin.flush()
        wait_line(sender, b"to bob.")
        elapsed = time.perf_counter() - start
        cpu = {name: cpu_seconds(p.pid) - cpu_before[name] for name, p in processes.items()}
        growth = {name: memory_kb(p.pid, "VmHWM") - idle[name] for name, p in processes.items()}
        assert sha256(downloads / source.name) == sha256(source), "file differs"
        # As the baselines do: a copy left behind holds memory the next run's
        # page cache would otherwise reuse (which is much faster to write into
        # on a VM than memory the host has taken back).
        (downloads / source.name).unlink()
        assert server.stdin is not None
        server.stdin.write(b"/shutdown\n")
        server.stdin.flush()
        return elapsed, growth, cpu
    finally:
        for process in processes.values():
            process.kill()
            process.wait()


def plain_copy(directory: Path, source: Path) -> float:
    target = directory / "plain-copy.bin"
    receiver = subprocess.Popen(
        [sys.executable, "-c", PLAIN_RECEIVER, str(target)], stdout=subprocess.PIPE
    )
    assert receiver.stdout is not None
    port = receiver.stdout.readline().strip().decode()
    sender = start_sender(PLAIN_SENDER, source, port)
    warm_freed_memory(directory, source)
    start = time.perf_counter()
    go(sender)
    receiver.stdout.readline()
    elapsed = time.perf_counter() - start
    assert sender.wait() == 0
    receiver.wait()
    target.unlink()
    return elapsed


def three_processes(directory: Path, source: Path, pipeline: str = "bare") -> float:
    """sender -> relay -> receiver (write + fsync): /send's shape, bare, or
    with its per-chunk framing and CRC-32 ("framed"), or that in trio."""
    target = directory / "relayed-copy.bin"
    relay_script, receiver_script, sender_script = PIPELINES[pipeline]
    relay = subprocess.Popen([sys.executable, "-c", relay_script], stdout=subprocess.PIPE)
    assert relay.stdout is not None
    port = relay.stdout.readline().strip().decode()
    receiver = subprocess.Popen(
        [sys.executable, "-c", receiver_script, str(target), port], stdout=subprocess.PIPE
    )
    wait_line(receiver, b"connected")
    sender = start_sender(sender_script, source, port)
    warm_freed_memory(directory, source)
    start = time.perf_counter()
    go(sender)
    wait_line(receiver, b"done")
    elapsed = time.perf_counter() - start
    assert sender.wait() == 0
    receiver.wait()
    relay.wait()
    target.unlink()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--megabytes", type=int, default=256)
    parser.add_argument("--runs", type=int, default=3, help="report the median run")
    arguments = parser.parse_args()
    megabytes = arguments.megabytes
    plains: list[float] = []
    relayed: list[float] = []
    framed: list[float] = []
    in_trio: list[float] = []
    runs: list[tuple[float, dict[str, int], dict[str, float]]] = []
    tls_runs: list[float] = []
    with tempfile.TemporaryDirectory() as name:
        directory = Path(name)
        source = directory / "payload.bin"
        with source.open("wb") as file:
            for _ in range(megabytes):
                file.write(os.urandom(1 << 20))
        for run in range(arguments.runs):
            plains.append(plain_copy(directory, source))
            relayed.append(three_processes(directory, source))
            framed.append(three_processes(directory, source, "framed"))
            in_trio.append(three_processes(directory, source, "trio"))
            workdir = directory / f"run{run}"
            workdir.mkdir()
            runs.append(ours(workdir, source))
            tls_workdir = directory / f"tls{run}"
            tls_workdir.mkdir()
            tls_runs.append(ours(tls_workdir, source, tls=True)[0])
    plain = statistics.median(plains)
    elapsed, growth, cpu = sorted(runs, key=lambda result: result[0])[len(runs) // 2]
    print(f"| /send of {megabytes} MB on loopback, median of {arguments.runs} runs | value |")
    print("|---|---|")
    print(
        f"| trio-chat: sender -> server -> receiver | {megabytes / elapsed:.0f} MB/s "
        f"({elapsed:.2f} s, until 'You sent') |"
    )
    print(
        f"| plain socket copy, two bare processes | {megabytes / plain:.0f} MB/s ({plain:.2f} s) |"
    )
    print(f"| trio-chat as a fraction of the plain copy | {plain / elapsed:.0%} (target >= 50%) |")
    three = statistics.median(relayed)
    print(
        f"| sender -> relay -> receiver with fsync, three bare processes | "
        f"{megabytes / three:.0f} MB/s ({three:.2f} s) |"
    )
    print(
        f"| trio-chat as a fraction of the three-process relay | {three / elapsed:.0%} "
        "(target >= 70%) |"
    )
    framed_time = statistics.median(framed)
    print(
        f"| the same three bare processes, framing and CRC-32 each chunk | "
        f"{megabytes / framed_time:.0f} MB/s ({framed_time:.2f} s) |"
    )
    print(
        "| trio-chat as a fraction of the framed three-process relay | "
        f"{framed_time / elapsed:.0%} |"
    )
    trio_time = statistics.median(in_trio)
    print(
        f"| the framed three processes written with trio (no threads, no flow control) | "
        f"{megabytes / trio_time:.0f} MB/s ({trio_time:.2f} s) |"
    )
    print(
        "| trio-chat as a fraction of the framed three processes in trio | "
        f"{trio_time / elapsed:.0%} |"
    )
    tls = statistics.median(tls_runs)
    print(
        f"| trio-chat over TLS (TLS 1.3, trustme certificate) | {megabytes / tls:.0f} MB/s "
        f"({tls:.2f} s; {elapsed / tls:.0%} of plain trio-chat) |"
    )
    for role in ("sender", "server", "receiver"):
        print(f"| peak RSS above idle, {role} | {growth[role] / 1024:.1f} MB (target <= 64 MB) |")
    for role in ("sender", "server", "receiver"):
        print(f"| CPU time during the transfer, {role} | {cpu[role]:.2f} s |")


if __name__ == "__main__":
    main()
