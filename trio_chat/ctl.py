"""``trio-chat-ctl PATH [COMMAND...]``: a console command through a server's
control socket (--control PATH), and its answer (docs/behaviour.md, "The
control socket"; docs/protocol.md, "The control protocol").

The answer's stdout lines (the server's contract lines) and console lines go
to this program's stdout, in order, its failed lines to stderr; the status is
1 if anything failed or the server could not be reached or did not answer.
With no COMMAND, the lines of stdin are the commands, each answered before
the next is sent. Plain blocking sockets: no trio, so it starts at once.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import time
from collections.abc import Iterable, Sequence
from typing import BinaryIO

from . import __version__
from .arguments import ExitOneParser, positive_seconds
from .sanitize import clean
from .terminal_io import MAX_INPUT_LINE, open_standard_streams, print_error, print_line

PROGRAM = "trio-chat-ctl"
# Seconds to wait for an answer: generous, for a cluster whose Redis is slow
# to come back (an answer there waits for the shared log).
ANSWER_TIMEOUT = 30.0
# The longest answer line taken (the server's are far shorter).
MAX_ANSWER_LINE = 1024 * 1024


class CtlError(Exception):
    """Why the command could not be sent or answered (status 1)."""


def parse_arguments(argv: Sequence[str]) -> tuple[str, str | None, float]:
    parser = ExitOneParser(
        prog=PROGRAM,
        description="Send a console command to a trio-chat server's control socket "
        "(--control PATH) and print its answer; with no COMMAND, send each line of stdin.",
        epilog="Commands: /kick CHANNEL:USER, /mute CHANNEL:USER SECONDS, /empty CHANNEL, "
        "/history CHANNEL [N], /who [CHANNEL], /ban CHANNEL:USER|ADDRESS [SECONDS], "
        "/unban CHANNEL:USER|ADDRESS, /bans, /reload, /shutdown.",
    )
    parser.add_argument("--version", action="version", version=f"{PROGRAM} {__version__}")
    parser.add_argument("path", metavar="PATH", help="the server's --control socket")
    parser.add_argument(
        "--timeout",
        type=positive_seconds,
        default=ANSWER_TIMEOUT,
        metavar="SECONDS",
        help="give up on an answer after this long (default: %(default)g)",
    )
    # Everything after PATH is the command, as typed (options go before PATH).
    parser.add_argument(
        "command", nargs=argparse.REMAINDER, metavar="COMMAND", help="such as /who general"
    )
    arguments = parser.parse_args(argv)
    command = " ".join(arguments.command) if arguments.command else None
    if command is not None and any(c in command for c in "\r\n"):
        # On the socket a line break ends a command: the rest would be a
        # second one, sent unseen (a script's argument must not /shutdown).
        parser.error("COMMAND is one line: an argument has a line break in it")
    return arguments.path, command, arguments.timeout


def connect(path: str, timeout: float) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(path)
    except FileNotFoundError:
        sock.close()
        raise CtlError(
            f"there is no control socket {path} (is the server started with --control?)"
        ) from None
    except PermissionError:
        sock.close()
        raise CtlError(f"permission denied: {path} is open to the server's own user only") from None
    except ConnectionRefusedError:
        sock.close()
        raise CtlError(f"no server is listening on {path}") from None
    except TimeoutError:
        sock.close()
        raise CtlError(f"the server at {path} does not accept connections") from None
    except OSError as error:
        sock.close()
        raise CtlError(f"cannot connect to {path}: {error.strerror or error}") from None
    return sock


def send_command(sock: socket.socket, answers: BinaryIO, command: str, timeout: float) -> bool:
    """Send one command line and print its answer; whether it failed."""
    line = command.encode("utf-8", "replace")
    if len(line) > MAX_INPUT_LINE:
        raise CtlError(f"a command is at most {MAX_INPUT_LINE} bytes")
    try:
        sock.sendall(line + b"\n")
    except OSError as error:
        raise CtlError(f"the server closed the connection: {error.strerror or error}") from None
    return print_answer(sock, answers, timeout)


def print_answer(sock: socket.socket, answers: BinaryIO, timeout: float) -> bool:
    """Print answer lines up to the end line; whether the answer failed."""
    failed = False
    deadline = time.monotonic() + timeout
    while True:
        try:
            # The whole answer within the timeout, however it trickles in.
            sock.settimeout(max(deadline - time.monotonic(), 0.001))
            raw = answers.readline(MAX_ANSWER_LINE)
        except TimeoutError:
            raise CtlError(
                f"no answer within {timeout:g} s (a cluster waits for its Redis)"
            ) from None
        except OSError as error:
            raise CtlError(f"lost the server: {error.strerror or error}") from None
        if not raw.endswith(b"\n"):
            if len(raw) >= MAX_ANSWER_LINE:
                raise CtlError(f"an answer line is longer than {MAX_ANSWER_LINE} bytes")
            raise CtlError("the server closed the connection before it answered")
        tag, _, text = raw[:-1].decode("utf-8", "replace").partition(" ")
        if tag == "end":
            return failed or text != "ok"
        if tag in ("stdout", "stderr"):
            print_line(text)
        elif tag == "failed":
            failed = True
            print_failed(text)
        else:
            raise CtlError(f"an answer line this program does not know: {clean(tag[:40])!r}")


def print_failed(text: str) -> None:
    try:
        sys.stderr.write(clean(text) + "\n")
        sys.stderr.flush()
    except (BrokenPipeError, ValueError):
        pass


def stdin_commands() -> Iterable[str]:
    for raw in sys.stdin.buffer:
        yield raw.decode("utf-8", "replace").rstrip("\r\n")


def run(path: str, command: str | None, timeout: float) -> int:
    try:
        sock = connect(path, timeout)
    except CtlError as error:
        print_error(PROGRAM, str(error))
        return 1
    failed = False
    with sock, sock.makefile("rb") as answers:
        try:
            for line in [command] if command is not None else stdin_commands():
                if not line.strip() and command is None:
                    continue  # a blank line asks nothing
                failed = send_command(sock, answers, line, timeout) or failed
        except CtlError as error:
            print_error(PROGRAM, str(error))
            return 1
    return 1 if failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    open_standard_streams()
    path, command, timeout = parse_arguments(sys.argv[1:] if argv is None else argv)
    try:
        status = run(path, command, timeout)
    except KeyboardInterrupt:
        status = 130
    sys.stdout.flush()
    os._exit(status)


if __name__ == "__main__":
    sys.exit(main())
