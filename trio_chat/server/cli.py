"""``trio-chat-server CONFIGFILE``: check everything, bind every port, then serve.

Start-up order matters (SPEC §1): arguments and the whole config are checked
before any port is bound, and the ports are bound (so clients can connect and
wait in the backlog) before trio is imported, which costs ~0.1 s.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
from collections.abc import Sequence

from .. import __version__
from ..arguments import ExitOneParser, parse_decimal
from ..config import ChannelConfig, ConfigError, load_config
from ..terminal_io import print_error

PROGRAM = "trio-chat-server"
BACKLOG = 4096


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of seconds")
    return value


def _size(text: str) -> int:
    units = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3}
    number, unit = text.upper().rstrip("B"), ""
    if number and number[-1] in units:
        number, unit = number[:-1], number[-1]
    value = parse_decimal(number)
    if value is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size such as 500M or 2G")
    return value * units[unit]


def parse_arguments(argv: Sequence[str]) -> argparse.Namespace:
    parser = ExitOneParser(
        prog=PROGRAM,
        description="Serve trio-chat channels; each channel of CONFIGFILE on its own port.",
        epilog="Console commands on stdin: /kick CHANNEL:USER, /mute CHANNEL:USER SECONDS, "
        "/empty CHANNEL, /shutdown.",
    )
    parser.add_argument("configfile", help="lines of 'channel <name> <port> <capacity>'")
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: %(default)s)"
    )
    parser.add_argument(
        "--afk-timeout",
        type=_positive_seconds,
        default=100.0,
        metavar="SECONDS",
        help="remove clients idle in a channel this long (default: %(default)g)",
    )
    parser.add_argument(
        "--hello-timeout",
        type=_positive_seconds,
        default=10.0,
        metavar="SECONDS",
        help="drop connections that have not said hello by then (default: %(default)g)",
    )
    parser.add_argument(
        "--max-file-size",
        type=_size,
        default=4 * 1024**3,
        metavar="BYTES",
        help="largest file /send relays; K, M, G suffixes allowed (default: 4G)",
    )
    parser.add_argument(
        "--max-connections",
        type=int,
        default=20000,
        metavar="N",
        help="connections held at once; more are closed at once (default: %(default)s)",
    )
    parser.add_argument("--version", action="version", version=f"{PROGRAM} {__version__}")
    return parser.parse_args(argv)


def bind_channels(channels: Sequence[ChannelConfig], host: str) -> dict[str, socket.socket]:
    """Listen on every channel's port, or close them all and raise OSError."""
    bound: dict[str, socket.socket] = {}
    try:
        for channel in channels:
            try:
                family, kind, proto, _, address = socket.getaddrinfo(
                    host, channel.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
                )[0]
                sock = socket.socket(family, kind, proto)
                try:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    sock.bind(address)
                    sock.listen(BACKLOG)
                except OSError:
                    sock.close()
                    raise
            except OSError as error:
                reason = error.strerror or str(error)
                raise OSError(
                    f"cannot listen for channel {channel.name} on {host}:{channel.port}: {reason}"
                ) from None
            bound[channel.name] = sock
    except OSError:
        for sock in bound.values():
            sock.close()
        raise
    return bound


def raise_open_file_limit() -> None:
    """Allow as many sockets as the system lets us: thousands of clients need it."""
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard == resource.RLIM_INFINITY or hard > soft:
            wanted = 1 << 20 if hard == resource.RLIM_INFINITY else hard
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    except (ImportError, ValueError, OSError):
        pass  # keep the limit we have; accept() errors are logged and retried


def _stop_before_trio(signum: int, frame: object) -> None:
    # Until trio's own signal watcher runs, SIGTERM must still be a clean exit.
    raise SystemExit(0)


def main(argv: Sequence[str] | None = None) -> int:
    arguments = parse_arguments(sys.argv[1:] if argv is None else argv)
    try:
        channels = load_config(arguments.configfile)
    except ConfigError as error:
        print_error(PROGRAM, str(error))
        return 1
    try:
        sockets = bind_channels(channels, arguments.host)
    except OSError as error:
        print_error(PROGRAM, str(error))
        return 1
    raise_open_file_limit()
    signal.signal(signal.SIGTERM, _stop_before_trio)
    try:
        from .run import run_server

        run_server(channels, sockets, arguments)
    except KeyboardInterrupt:
        pass
    # The console thread may still be blocked reading stdin; do not wait for it.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
