"""``trio-chat-client PORT USERNAME``: check, connect, say hello, then start trio.

The connection and the hello happen before trio is imported (~0.1 s), so the
client has joined by the time the heavy imports finish (behaviour.md, "Starting
the programs").
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
from collections.abc import Sequence

from .. import __version__
from ..arguments import ExitOneParser, parse_decimal
from ..names import username_problem
from ..terminal_io import open_standard_streams, print_error
from ..wire import encode_hello
from . import PROGRAM

CONNECT_TIMEOUT = 5.0


def _port(text: str) -> int:
    port = parse_decimal(text)
    if port is None or not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"PORT {text!r} is not an integer in 1..65535")
    return port


def _username(text: str) -> str:
    problem = username_problem(text)
    if problem is not None:
        raise argparse.ArgumentTypeError(f"USERNAME {text!r} is unusable: {problem}")
    return text


def parse_arguments(argv: Sequence[str]) -> argparse.Namespace:
    parser = ExitOneParser(
        prog=PROGRAM,
        description="Join the trio-chat channel listening on PORT as USERNAME. "
        "Type lines to chat; commands: /whisper USER MESSAGE, /list, "
        "/switch CHANNEL, /send USER FILE, /quit.",
    )
    parser.add_argument("port", type=_port, metavar="PORT", help="the channel's port")
    parser.add_argument("username", type=_username, metavar="USERNAME", help="your name")
    parser.add_argument(
        "--host", default="localhost", help="the server's address (default: %(default)s)"
    )
    parser.add_argument(
        "--download-dir",
        default=".",
        metavar="DIR",
        help="where files sent to you are saved (default: the working directory)",
    )
    parser.add_argument(
        "--tls",
        action="store_true",
        help="speak TLS and verify the server's certificate with the system's CA store",
    )
    parser.add_argument(
        "--ca",
        metavar="FILE",
        help="speak TLS and trust the certificate authority in FILE (PEM)",
    )
    parser.add_argument("--version", action="version", version=f"{PROGRAM} {__version__}")
    return parser.parse_args(argv)


def connect(host: str, port: int, username: str) -> socket.socket:
    """Connect and say hello; OSError with a readable reason if nobody answers."""
    try:
        sock = socket.create_connection((host, port), timeout=CONNECT_TIMEOUT)
    except OSError as error:
        reason = error.strerror or str(error)
        raise OSError(f"no server accepting on {host}:{port}: {reason}") from None
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.sendall(encode_hello(username))
    except OSError as error:
        sock.close()
        raise OSError(f"lost the server at {host}:{port}: {error.strerror or error}") from None
    return sock


def _is_interrupt(error: BaseException) -> bool:
    if isinstance(error, KeyboardInterrupt):
        return True
    inner = getattr(error, "exceptions", None)  # an exception group (3.11+, or trio's)
    if isinstance(inner, (list, tuple)) and inner:
        return all(_is_interrupt(e) for e in inner if isinstance(e, BaseException))
    return False


def main(argv: Sequence[str] | None = None) -> int:
    # Before the connection takes a number (behaviour.md, "Standard output and
    # standard error"): a closed stdin, stdout or stderr is /dev/null.
    open_standard_streams()
    arguments = parse_arguments(sys.argv[1:] if argv is None else argv)
    if not os.path.isdir(arguments.download_dir):
        print_error(PROGRAM, f"download directory {arguments.download_dir!r} is not a directory")
        return 1
    tls = arguments.tls or arguments.ca is not None
    if tls:
        # The TLS handshake needs the event loop: the fast path (connect and
        # say hello before importing trio) is for plain TCP.
        from ..tls import TLSSetupError, client_context

        try:
            context = client_context(arguments.ca)
        except TLSSetupError as error:
            print_error(PROGRAM, str(error))
            return 1
    else:
        try:
            sock = connect(arguments.host, arguments.port, arguments.username)
        except OSError as error:
            print_error(PROGRAM, str(error))
            return 1
    greeting = None
    if not tls and not (sys.stdin.isatty() and sys.stdout.isatty()):
        from .greeting import read_greeting

        greeting = read_greeting(sock, arguments.username)
        if greeting.bye is not None:
            status, reason = greeting.bye
            print_error(PROGRAM, f"disconnected: {reason}")
            return status
    status = 0
    try:
        from .session import run_client, run_tls_client

        if tls:
            status = run_tls_client(context, arguments)
        else:
            status = run_client(sock, arguments, greeting)
    except BaseException as error:
        if not _is_interrupt(error):
            raise
        status = 130
    # A stdin reader thread may still be blocked; do not wait for it.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


if __name__ == "__main__":
    sys.exit(main())
