"""The client's connection once trio runs: print what arrives, send what is typed.

stdout gets exactly the LINE frames the server sends; notices and the reason
for a disconnect go to stderr. The client exits when the server closes the
connection, with the status the server's BYE asked for (1 for a refused name).
"""

from __future__ import annotations

import argparse
import signal
import socket
import sys
from collections.abc import AsyncIterable, Awaitable, Callable
from typing import TYPE_CHECKING, Protocol

import trio

from .. import wire
from ..commands import Quit, Send, Usage, parse_client_line
from ..terminal_io import print_error, print_line, read_lines
from ..tls import describe_failure
from ..wire import FrameType, LineKind, ProtocolError
from . import PROGRAM, note_on_stderr
from .greeting import Greeting, print_history
from .transfers import ProgressListener, Transfers

if TYPE_CHECKING:
    import ssl

CONNECT_TIMEOUT = 5.0


def print_plain(line: str, kind: LineKind, subject: str) -> None:
    print_line(line)


class TerminalHooks(ProgressListener, Protocol):
    def show_help(self) -> None: ...

    def print_history(self, line: str, kind: LineKind, subject: str) -> None: ...

    def end_history(self) -> None: ...

    def set_channels(self, names: list[str]) -> None: ...

    def set_names(self, names: list[str]) -> None: ...


class ClientConnection:
    """One joined client; ``lines`` is what the user types, ``out`` gets stdout lines."""

    def __init__(
        self,
        stream: trio.abc.Stream,
        download_dir: str,
        lines: AsyncIterable[str] | None = None,
        out: Callable[[str, LineKind, str], None] = print_plain,
        terminal: TerminalHooks | None = None,
        note: Callable[[str], None] = note_on_stderr,
        greeting: Greeting | None = None,
    ) -> None:
        self.stream = stream
        self.greeting = greeting
        self.lines = read_lines(0, note) if lines is None else lines
        self.out = out
        self.note = note
        self.terminal = terminal
        self.status = 0
        self.quitting = False
        self.welcomed = bool(greeting and greeting.printed)  # the server has sent us a line
        self.said_bye = False
        self._send_lock = trio.Lock()
        self.transfers = Transfers(self.send, download_dir, terminal, note)

    async def send(self, frame: bytes | memoryview) -> None:
        # One frame at a time: file chunks and typed lines interleave whole.
        async with self._send_lock:
            await self.stream.send_all(frame)

    async def run(self) -> int:
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._type_loop, nursery)
                self.transfers.write_behind(nursery)
                await self._receive_loop()
                nursery.cancel_scope.cancel()
        finally:
            self.transfers.discard_partials()
        if not self.welcomed and not self.said_bye:
            # Closed before a word: the server refused us (it may be full).
            self.note(
                "the server closed the connection before letting us in "
                "(it may be full, or speak TLS: then add --tls)"
            )
            self.status = 1
        elif not self.said_bye:
            self.note("the server closed the connection")
        self.transfers.report_undelivered()
        return self.status

    async def _receive_loop(self) -> None:
        greeting = self.greeting
        reader = wire.FrameReader() if greeting is None else greeting.reader
        if greeting is not None:
            # Frames read before trio that were not lines already printed.
            try:
                for kept_type, kept_payload in greeting.kept:
                    await self._handle(kept_type, kept_payload)
            except ProtocolError as error:
                self.note(f"the server broke the protocol: {error}")
                self.status = 1
                return
            if greeting.closed:
                return
        receive_into = _receiver(self.stream)
        # File chunks are written while the next batch is received (see
        # Transfers.write_behind). The reader has two buffers and hands out the
        # one a batch came from again two receives later, so a batch that
        # started no write must first let the previous batch's write finish;
        # one that did, already waited for it (writes go one at a time).
        started_a_write = False
        while True:
            if not started_a_write:
                await self.transfers.writes_done()
            try:
                count = await receive_into(reader.space())
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return
            if not count:
                return
            started_a_write = False
            try:
                # File chunks in a row are written together.
                chunks: list[wire.Payload] = []
                for frame_type, payload, _ in reader.received(count):
                    if frame_type == FrameType.FILE_DATA:
                        chunks.append(payload)
                        continue
                    if chunks:
                        await self.transfers.on_data(*chunks)
                        started_a_write = True
                        chunks = []
                    await self._handle(frame_type, payload)
                    if self.said_bye:
                        # The server closes next; over TLS it cannot half-close,
                        # so the BYE itself ends the conversation.
                        return
                if chunks:
                    await self.transfers.on_data(*chunks)
                    started_a_write = True
            except ProtocolError as error:
                self.note(f"the server broke the protocol: {error}")
                self.status = 1
                return
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return

    async def _handle(self, frame_type: int, payload: wire.Payload) -> None:
        transfers = self.transfers
        if frame_type == FrameType.LINE:
            self.welcomed = True
            kind, subject, line = wire.decode_line(payload)
            self.out(line, kind, subject)
        elif frame_type == FrameType.HISTORY:
            if self.terminal is None:
                print_history(payload)
            else:
                kind, subject, _, line = wire.decode_history(payload)
                self.terminal.print_history(line, kind, subject)
        elif frame_type == FrameType.HISTORY_END:
            if self.terminal is not None:
                self.terminal.end_history()
        elif frame_type == FrameType.FILE_DATA:
            await transfers.on_data(payload)
        elif frame_type == FrameType.FILE_ACK:
            transfers.on_ack(payload)
        elif frame_type == FrameType.NOTICE:
            self.note(wire.decode_text(payload))
        elif frame_type == FrameType.BYE and payload:
            self.said_bye = True
            self.status = payload[0]
            if not self.quitting:
                self.note(f"disconnected: {wire.decode_text(payload[1:])}")
        elif frame_type == FrameType.CHANNELS:
            channels = wire.field(wire.decode_json(payload), "channels", list)
            if self.terminal is not None:
                self.terminal.set_channels([str(name) for name in channels])
        elif frame_type == FrameType.ROSTER:
            names = wire.field(wire.decode_json(payload), "names", list)
            if self.terminal is not None:
                self.terminal.set_names([str(name) for name in names])
        elif frame_type == FrameType.SEND_STATE:
            transfers.on_send_state(payload)
        elif frame_type == FrameType.FILE_INCOMING:
            await transfers.on_incoming(payload)
        elif frame_type == FrameType.FILE_END:
            await transfers.on_end(payload)
        elif frame_type == FrameType.FILE_ABORT:
            await transfers.on_abort(payload)
        else:
            raise ProtocolError(f"unexpected frame type {frame_type}")

    async def _type_loop(self, nursery: trio.Nursery) -> None:
        async for raw in self.lines:
            line = raw.strip()
            command = parse_client_line(line)
            if command is None:
                continue
            if isinstance(command, Usage):
                self.note(command.hint)
                continue
            if self.terminal is not None and line == "/help":
                self.terminal.show_help()  # on a terminal only: elsewhere it is chat
                continue
            encoded = line.encode()
            if len(encoded) > wire.MAX_LINE_BYTES:
                self.note(
                    f"line not sent: {len(encoded)} bytes is over the limit of "
                    f"{wire.MAX_LINE_BYTES}",
                )
                continue
            try:
                if isinstance(command, Send):
                    await self.transfers.send_file(command.target, command.path, nursery)
                    continue
                if isinstance(command, Quit):
                    # Leave only once the files offered before /quit are through.
                    await self.transfers.wait_sent()
                    self.quitting = True
                await self.send(wire.encode_input(encoded))
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return
            if isinstance(command, Quit):
                return  # the server closes the connection; nothing more to send


def run_client(
    sock: socket.socket, arguments: argparse.Namespace, greeting: Greeting | None = None
) -> int:
    """Run the chat on a connected socket that has already said hello (and, when
    piped, already printed the server's first lines: ``greeting``)."""

    async def main() -> int:
        return await _chat(_stream(sock), arguments, greeting)

    return trio.run(main)


def run_tls_client(context: ssl.SSLContext, arguments: argparse.Namespace) -> int:
    """Connect over TLS, verify the server, say hello, then run the chat."""

    async def main() -> int:
        where = f"{arguments.host}:{arguments.port}"
        try:
            with trio.fail_after(CONNECT_TIMEOUT):
                stream = await trio.open_ssl_over_tcp_stream(
                    arguments.host, arguments.port, ssl_context=context
                )
        except (OSError, trio.TooSlowError) as error:
            reason = getattr(error, "strerror", None) or "no answer"
            print_error(PROGRAM, f"no server accepting on {where}: {reason}")
            return 1
        try:
            with trio.fail_after(CONNECT_TIMEOUT):
                await stream.do_handshake()
                await stream.send_all(wire.encode_hello(arguments.username))
        except (trio.BrokenResourceError, trio.TooSlowError) as error:
            print_error(PROGRAM, f"{where}: {describe_failure(error)}")
            return 1
        return await _chat(stream, arguments)

    return trio.run(main)


def _receiver(stream: trio.abc.Stream) -> Callable[[memoryview], Awaitable[int]]:
    """How to receive into the frame reader's buffer: straight from a plain
    socket, or by copying what a TLS stream hands out."""
    if isinstance(stream, trio.SocketStream):
        sock = stream.socket

        async def receive_into(space: memoryview) -> int:
            try:
                return await sock.recv_into(space)
            except OSError as error:
                raise trio.BrokenResourceError from error

        return receive_into

    async def receive_copy(space: memoryview) -> int:
        data = await stream.receive_some(len(space))
        space[: len(data)] = data
        return len(data)

    return receive_copy


def _stream(sock: socket.socket) -> trio.SocketStream:
    return trio.SocketStream(trio.socket.from_stdlib_socket(sock))


async def _chat(
    stream: trio.abc.Stream, arguments: argparse.Namespace, greeting: Greeting | None = None
) -> int:
    if sys.stdin.isatty() and sys.stdout.isatty():
        return await _interactive(stream, arguments)
    return await _plain(stream, arguments.download_dir, greeting)


# Off a terminal these end the client at once, as a lost connection would
# (behaviour.md, "The client's life"); at a terminal they leave as /quit does.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


async def _plain(
    stream: trio.abc.Stream, download_dir: str, greeting: Greeting | None = None
) -> int:
    connection = ClientConnection(stream, download_dir, greeting=greeting)
    status: int | None = None
    with trio.open_signal_receiver(*STOP_SIGNALS) as signals:
        async with trio.open_nursery() as nursery:

            async def run() -> None:
                nonlocal status
                status = await connection.run()
                nursery.cancel_scope.cancel()

            nursery.start_soon(run)
            async for signum in signals:
                # Cancelling the connection removes any half-received file.
                nursery.cancel_scope.cancel()
                return 128 + signum
    assert status is not None
    return status


async def _interactive(stream: trio.abc.Stream, arguments: argparse.Namespace) -> int:
    from .terminal import TerminalUI  # only here: piped start-up stays fast

    ui = TerminalUI(arguments.username)
    await ui.start()
    connection = ClientConnection(
        stream,
        arguments.download_dir,
        lines=ui.chat_lines(),
        out=ui.print_line,
        terminal=ui,
        note=ui.note,
    )
    # Ctrl-C on the terminal is a key (raw mode); SIGINT, SIGTERM and SIGHUP
    # from elsewhere (kill, a closed terminal window) leave as /quit does too,
    # so the terminal is restored and no half-received file stays behind.
    with trio.open_signal_receiver(*STOP_SIGNALS) as interrupts:
        async with trio.open_nursery() as nursery:

            async def on_interrupt() -> None:
                async for _ in interrupts:
                    ui.interrupt()

            nursery.start_soon(on_interrupt)
            try:
                return await connection.run()
            finally:
                await ui.aclose()
                nursery.cancel_scope.cancel()
