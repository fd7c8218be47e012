"""``trio-chat-server CONFIGFILE``: check everything, bind every port, then serve.

Start-up order matters (behaviour document, "Starting the programs"): arguments
and the whole config are checked before any port is bound, and the ports are
bound (so clients can connect and wait in the backlog) before trio is imported,
which costs ~0.1 s.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
from collections.abc import Sequence

from .. import __version__
from ..arguments import (
    ExitOneParser,
    byte_size,
    count_at_least,
    non_negative_number,
    positive_seconds,
    redis_url,
    web_address,
    web_origin,
)
from ..config import ChannelConfig, ConfigError, load_config
from ..terminal_io import open_standard_streams, print_error
from . import early_signals

# Not ``typing.TYPE_CHECKING``: importing typing costs this path ~5 ms, and a
# bad invocation must exit within milliseconds (mypy reads the same idiom).
TYPE_CHECKING = False
if TYPE_CHECKING:
    import ssl

PROGRAM = "trio-chat-server"
BACKLOG = 4096


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
        type=positive_seconds,
        default=100.0,
        metavar="SECONDS",
        help="remove clients idle in a channel this long (default: %(default)g)",
    )
    parser.add_argument(
        "--hello-timeout",
        type=positive_seconds,
        default=10.0,
        metavar="SECONDS",
        help="drop connections that have not said hello by then (default: %(default)g)",
    )
    parser.add_argument(
        "--max-file-size",
        type=byte_size,
        default=4 * 1024**3,
        metavar="BYTES",
        help="largest file /send relays, such as 500M or 2GiB; K, M, G and T are "
        "1024 apart (default: 4G)",
    )
    parser.add_argument(
        "--max-connections",
        type=count_at_least(1, "a number of connections"),
        default=20000,
        metavar="N",
        help="connections held at once; more are closed at once (default: %(default)s)",
    )
    parser.add_argument(
        "--flood-burst",
        type=count_at_least(0, "a number of lines"),
        default=10,
        metavar="LINES",
        help="lines a member may send at once before the rate applies; 0 turns "
        "flood control off (default: %(default)s)",
    )
    parser.add_argument(
        "--flood-rate",
        type=non_negative_number,
        default=5.0,
        metavar="LINES",
        help="lines a second a member may send after its burst; 0 turns flood "
        "control off (default: %(default)g)",
    )
    parser.add_argument(
        "--max-per-address",
        type=count_at_least(0, "a number of connections"),
        default=50,
        metavar="N",
        help="connections at once from one IP address, and N/10 new ones a second; "
        "0 turns the limit off (default: %(default)s)",
    )
    parser.add_argument(
        "--tls-cert", metavar="FILE", help="PEM certificate chain: every channel speaks TLS"
    )
    parser.add_argument("--tls-key", metavar="FILE", help="PEM private key for --tls-cert")
    parser.add_argument(
        "--redis",
        type=redis_url,
        metavar="URL",
        help="run as one node of a cluster that shares its channels through this Redis: "
        "redis://HOST:PORT/DB or unix:///PATH/redis.sock",
    )
    parser.add_argument(
        "--workers",
        type=count_at_least(1, "a number of processes"),
        metavar="N",
        help="start N server processes sharing each port (SO_REUSEPORT), one cluster; "
        "without --redis they share a private redis-server started for them",
    )
    parser.add_argument(
        "--web",
        type=web_address,
        metavar="[HOST:]PORT",
        help="also serve the browser client on this port (HOST defaults to 127.0.0.1)",
    )
    parser.add_argument(
        "--web-origin",
        type=web_origin,
        action="append",
        default=[],
        metavar="ORIGIN",
        help="another name the page is reached by, such as a proxy's "
        "https://chat.example.org (repeatable); the page answers only its own names",
    )
    # Set by --workers for the processes it starts: bind ports another process holds.
    parser.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--version", action="version", version=f"{PROGRAM} {__version__}")
    arguments = parser.parse_args(argv)
    if (arguments.tls_cert is None) != (arguments.tls_key is None):
        parser.error("--tls-cert and --tls-key go together")
    if arguments.web_origin and arguments.web is None:
        parser.error("--web-origin goes with --web")
    if arguments.reuse_port and arguments.redis is None:
        parser.error("--reuse-port is for the processes --workers starts")
    return arguments


def listening_addresses(host: str, port: int) -> list[tuple[int, int, int, tuple[object, ...]]]:
    """Every address ``host`` resolves to, as ``trio.open_tcp_listeners`` would bind:
    ``localhost`` is often both ::1 and 127.0.0.1, and clients may try either."""
    seen: set[tuple[int, tuple[object, ...]]] = set()
    addresses: list[tuple[int, int, int, tuple[object, ...]]] = []
    for family, kind, proto, _, address in socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    ):
        if (family, address) not in seen:
            seen.add((family, address))
            addresses.append((family, kind, proto, address))
    return addresses


def _listen(
    family: int, kind: int, proto: int, address: tuple[object, ...], reuse_port: bool
) -> socket.socket:
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            # The kernel spreads new connections over every process bound so.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            # Each family gets its own socket, so "::" must not claim IPv4 too.
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
        sock.listen(BACKLOG)
    except OSError:
        sock.close()
        raise
    return sock


def bind_web(arguments: argparse.Namespace) -> socket.socket | None:
    """The browser client's port, if asked for; OSError with a readable reason."""
    if arguments.web is None:
        return None
    host, port = arguments.web
    try:
        family, kind, proto, address = listening_addresses(host, port)[0]
        return _listen(family, kind, proto, address, arguments.reuse_port)
    except OSError as error:
        reason = error.strerror or str(error)
        raise OSError(f"cannot listen for the web page on {host}:{port}: {reason}") from None


def bind_channels(
    channels: Sequence[ChannelConfig], host: str, reuse_port: bool = False
) -> dict[str, list[socket.socket]]:
    """Listen on every channel's port on every address of ``host``, or close them
    all and raise OSError with a readable reason."""
    bound: dict[str, list[socket.socket]] = {}
    try:
        for channel in channels:
            bound[channel.name] = sockets = []
            try:
                for family, kind, proto, address in listening_addresses(host, channel.port):
                    sockets.append(_listen(family, kind, proto, address, reuse_port))
            except OSError as error:
                reason = error.strerror or str(error)
                raise OSError(
                    f"cannot listen for channel {channel.name} on {host}:{channel.port}: {reason}"
                ) from None
    except OSError:
        for sockets in bound.values():
            for sock in sockets:
                sock.close()
        raise
    return bound


def announce_listening(
    arguments: argparse.Namespace,
    channels: Sequence[ChannelConfig],
    ssl_context: object,
    who: str = "",
) -> None:
    """Once every port is bound (tests and scripts wait for this on stderr)."""
    web = ""
    if arguments.web is not None:
        host, port = arguments.web
        web = f"; web page on http://{host if ':' not in host else f'[{host}]'}:{port}/"
    print_error(
        PROGRAM,
        f"{who}listening{' (TLS)' if ssl_context else ''} on {arguments.host}: "
        + ", ".join(f"{channel.name} {channel.port}" for channel in channels)
        + web,
    )


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


def main(argv: Sequence[str] | None = None) -> int:
    # Before anything opens a file or a socket (behaviour.md, "Standard output
    # and standard error"): a closed stdin, stdout or stderr is /dev/null.
    open_standard_streams()
    arguments = parse_arguments(sys.argv[1:] if argv is None else argv)
    early_signals.install()
    try:
        channels = load_config(arguments.configfile)
    except ConfigError as error:
        print_error(PROGRAM, str(error))
        return 1
    ssl_context = None
    if arguments.tls_cert is not None:
        from ..tls import TLSSetupError, server_context

        try:
            ssl_context = server_context(arguments.tls_cert, arguments.tls_key)
        except TLSSetupError as error:
            print_error(PROGRAM, str(error))
            return 1
    # Before binding: a thousand channels need more than the common soft limit.
    raise_open_file_limit()
    if arguments.workers is not None:
        from ..cluster.workers import run_workers

        status = run_workers(arguments, sys.argv[1:] if argv is None else list(argv))
    elif arguments.redis is not None:
        from ..cluster.run import run_node

        status = run_node(channels, arguments, ssl_context)
    else:
        status = serve_alone(channels, arguments, ssl_context)
    # The console thread may still be blocked reading stdin; do not wait for it.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def serve_alone(
    channels: Sequence[ChannelConfig],
    arguments: argparse.Namespace,
    ssl_context: ssl.SSLContext | None,
) -> int:
    """One process serves every channel."""
    try:
        web = bind_web(arguments)
        try:
            sockets = bind_channels(channels, arguments.host)
        except OSError:
            if web is not None:
                web.close()
            raise
    except OSError as error:
        print_error(PROGRAM, str(error))
        return 1
    announce_listening(arguments, channels, ssl_context)
    try:
        from .run import run_server

        run_server(channels, sockets, arguments, ssl_context, web)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
