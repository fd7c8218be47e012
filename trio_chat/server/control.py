"""The control socket's connections (--control; docs/protocol.md, "The
control protocol"): console commands in, their answers out.

Each connection sends console lines, one a line; each is handed to the
server as the stdin console's are (``ChatServer.console_command``), and what
the console prints for it comes back tagged, then an ``end`` line; the next
line is read only once that answer is written. Everything is bounded: a line's length, the
connections at once, and what waits to be written to one (a client that
does not read its answers is dropped, never waited for: answers are written
while the rules' effects are applied, which never await).
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Callable

import trio

from ..sanitize import clean
from ..terminal_io import MAX_INPUT_LINE
from .core import ChatServer

# Connections served at once; one more is told so and closed.
MAX_CONNECTIONS = 16
# The longest command line (the stdin console's limit too).
MAX_COMMAND_LINE = MAX_INPUT_LINE
# Answer bytes a connection may leave unread before it is dropped. The next
# command is read only once an answer is written, so this bounds one answer:
# far more than the longest the rules make with their defaults (/who of a full
# server, /history of a whole channel).
MAX_UNSENT = 64 * 1024 * 1024
RECEIVE_SIZE = 4096

# The tags of the answer lines (docs/protocol.md).
STDOUT = "stdout"
STDERR = "stderr"
FAILED = "failed"
END = "end"
END_OK = "ok"


class ControlConnection:
    """One connection to the control socket; the ``answers.Answer`` its
    commands' answers are copied to."""

    def __init__(self, stream: trio.abc.Stream, log: Callable[[str], None]) -> None:
        self.stream = stream
        self.log = log
        # A plain socket is written at once where it takes the bytes (so an
        # answer is out even if a /shutdown cancels everything right after);
        # what it does not take, and every other stream, goes to write_loop.
        self._fd = stream.socket.fileno() if isinstance(stream, trio.SocketStream) else -1
        self._unsent = bytearray()
        self._writing = False  # write_loop owns the stream until _unsent is empty
        self._wake = trio.Event()
        self._idle = trio.Event()
        self._idle.set()
        self.answered = trio.Event()
        self.scope = trio.CancelScope()
        self.dropped = False

    # ----- answers.Answer: called while the server applies effects -----

    def said(self, line: str) -> None:
        self._send(STDOUT, line)

    def told(self, text: str, failed: bool) -> None:
        self._send(FAILED if failed else STDERR, text)

    def ended(self, failed: bool) -> None:
        self._send(END, FAILED if failed else END_OK)
        self.answered.set()

    # -----

    def _send(self, tag: str, text: str) -> None:
        if self.dropped:
            return
        self._unsent += f"{tag} {clean(text)}\n".encode("utf-8", "replace")
        if not self._writing:
            self._write_now()
        if len(self._unsent) > MAX_UNSENT:
            self.drop(f"a control connection left {len(self._unsent)} bytes unread: dropped")

    def _write_now(self) -> None:
        if self._fd >= 0:
            try:
                written = os.write(self._fd, self._unsent)
            except BlockingIOError:
                written = 0
            except OSError:
                self.drop()  # it hung up
                return
            del self._unsent[:written]
        if self._unsent:
            self._writing = True
            self._idle = trio.Event()
            self._wake.set()

    def drop(self, reason: str | None = None) -> None:
        """Stop serving it (``reason`` for the log, if it is worth one)."""
        if self.dropped:
            return
        self.dropped = True
        self._unsent.clear()
        self.answered.set()
        if reason is not None:
            self.log(reason)
        self.scope.cancel()

    async def write_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake = trio.Event()
            while self._unsent:
                data = bytes(self._unsent)
                self._unsent.clear()
                try:
                    await self.stream.send_all(data)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    self.drop()
                    return
            self._writing = False
            self._idle.set()

    async def written(self) -> None:
        """Until everything queued has been written."""
        await self._idle.wait()


class TooLong(Exception):
    pass


class LineReader:
    """Command lines from a stream, at most MAX_COMMAND_LINE bytes each;
    nothing is read ahead of the line asked for beyond one receive."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.buffer = bytearray()
        self.eof = False

    async def next_line(self) -> str | None:
        """The next line without its line end; None at the end; TooLong."""
        while True:
            end = self.buffer.find(b"\n")
            if end >= 0:
                raw = bytes(self.buffer[:end])
                del self.buffer[: end + 1]
                return self._text(raw)
            if len(self.buffer) > MAX_COMMAND_LINE:
                raise TooLong
            if self.eof:
                if not self.buffer:
                    return None
                raw = bytes(self.buffer)
                self.buffer.clear()
                return self._text(raw)
            try:
                chunk = await self.stream.receive_some(RECEIVE_SIZE)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                chunk = b""
            if not chunk:
                self.eof = True
            self.buffer += chunk

    @staticmethod
    def _text(raw: bytes) -> str:
        if len(raw) > MAX_COMMAND_LINE + 1:
            raise TooLong
        return clean(raw.decode("utf-8", "replace").removesuffix("\r"))


async def serve_connection(server: ChatServer, stream: trio.abc.Stream) -> None:
    """Answer its command lines in order until it is done sending, then close."""
    conn = ControlConnection(stream, server.log)
    with conn.scope:
        async with stream, trio.open_nursery() as nursery:
            nursery.start_soon(conn.write_loop)
            reader = LineReader(stream)
            while True:
                try:
                    line = await reader.next_line()
                except TooLong:
                    conn.told(f"a command line is longer than {MAX_COMMAND_LINE} bytes", True)
                    conn.ended(True)
                    break
                if line is None:
                    break
                conn.answered = trio.Event()
                name = server.console_command(line, conn)
                try:
                    await conn.answered.wait()
                finally:
                    server.forget_answer(name)
                if conn.dropped:
                    return
                # A client that sends commands and never reads holds one answer at most.
                await conn.written()
            nursery.cancel_scope.cancel()


def refusal() -> bytes:
    return (
        f"{FAILED} too many control connections at once (the limit is {MAX_CONNECTIONS})\n"
        f"{END} {FAILED}\n"
    ).encode()


async def serve_control(server: ChatServer, sock: socket.socket) -> None:
    """Accept on the bound control socket (control_socket.py) until shutdown."""
    listener = trio.SocketListener(trio.socket.from_stdlib_socket(sock))
    serving = 0

    async def handle(stream: trio.SocketStream) -> None:
        nonlocal serving
        if serving >= MAX_CONNECTIONS:
            with contextlib.suppress(OSError):
                os.write(stream.socket.fileno(), refusal())
            await stream.aclose()
            return
        serving += 1
        try:
            await serve_connection(server, stream)
        finally:
            serving -= 1

    await trio.serve_listeners(handle, [listener])
