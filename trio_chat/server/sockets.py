"""Bind the server's ports, and say so once they all are; raise the open-file
limit they need first.

Imports no trio: a lone server binds every port before trio is imported, so
clients can connect (and wait in the backlog) meanwhile; a cluster node binds
them once it has joined its cluster (cluster/run.py).
"""

from __future__ import annotations

import argparse
import socket
from collections.abc import Sequence

from ..config import ChannelConfig
from .logs import say

BACKLOG = 4096


class BoundSockets:
    """Every listening socket of one server process."""

    # Not a dataclass: making one costs this path ~0.3 ms.
    __slots__ = ("channels", "irc", "metrics", "web")

    def __init__(
        self,
        channels: dict[str, list[socket.socket]],
        web: socket.socket | None,
        irc: list[socket.socket] | None = None,
        metrics: socket.socket | None = None,
    ) -> None:
        self.channels = channels
        self.web = web
        self.irc = irc or []  # the IRC port's, on every address of its host
        self.metrics = metrics  # --metrics' own port, when it has one


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


def bind_web(web: tuple[str, int] | None, reuse_port: bool = False) -> socket.socket | None:
    """The browser client's port (``--web``), if asked for; OSError with a readable reason."""
    if web is None:
        return None
    host, port = web
    try:
        family, kind, proto, address = listening_addresses(host, port)[0]
        return _listen(family, kind, proto, address, reuse_port)
    except OSError as error:
        reason = error.strerror or str(error)
        raise OSError(f"cannot listen for the web page on {host}:{port}: {reason}") from None


def bind_metrics(metrics: tuple[str, int] | str | None) -> socket.socket | None:
    """``--metrics``' own port, if it asked for one (not ``web``); OSError
    with a readable reason. Never shared (SO_REUSEPORT): a scrape must reach
    the process it asks about."""
    if not isinstance(metrics, tuple):
        return None
    host, port = metrics
    try:
        family, kind, proto, address = listening_addresses(host, port)[0]
        return _listen(family, kind, proto, address, reuse_port=False)
    except OSError as error:
        reason = error.strerror or str(error)
        raise OSError(f"cannot listen for the metrics on {host}:{port}: {reason}") from None


def bind_irc(irc: tuple[str, int] | None, reuse_port: bool = False) -> list[socket.socket]:
    """The IRC port (``--irc``) on every address of its host, if asked for;
    OSError with a readable reason (and none left bound)."""
    if irc is None:
        return []
    host, port = irc
    return listen_everywhere(host, port, reuse_port, "IRC")


def listen_everywhere(host: str, port: int, reuse_port: bool, what: str) -> list[socket.socket]:
    """Listen on ``port`` on every address of ``host``, or close what was
    bound and raise OSError saying ``what`` could not listen, and why."""
    bound: list[socket.socket] = []
    try:
        for family, kind, proto, address in listening_addresses(host, port):
            bound.append(_listen(family, kind, proto, address, reuse_port))
    except OSError as error:
        for sock in bound:
            sock.close()
        reason = error.strerror or str(error)
        raise OSError(f"cannot listen for {what} on {host}:{port}: {reason}") from None
    return bound


def bind_channels(
    channels: Sequence[ChannelConfig], host: str, reuse_port: bool = False
) -> dict[str, list[socket.socket]]:
    """Listen on every channel's port on every address of ``host``, or close them
    all and raise OSError with a readable reason."""
    bound: dict[str, list[socket.socket]] = {}
    try:
        for channel in channels:
            what = f"channel {channel.name}"
            bound[channel.name] = listen_everywhere(host, channel.port, reuse_port, what)
    except OSError:
        for sockets in bound.values():
            for sock in sockets:
                sock.close()
        raise
    return bound


def bind_all(
    channels: Sequence[ChannelConfig],
    host: str,
    web: tuple[str, int] | None,
    reuse_port: bool = False,
    irc: tuple[str, int] | None = None,
    metrics: tuple[str, int] | str | None = None,
) -> BoundSockets:
    """The web page's port, the IRC port, the metrics', then every channel's;
    or none of them bound and OSError with a readable reason."""
    web_socket = bind_web(web, reuse_port)
    irc_sockets: list[socket.socket] = []
    metrics_socket = None
    try:
        irc_sockets = bind_irc(irc, reuse_port)
        metrics_socket = bind_metrics(metrics)
        return BoundSockets(
            bind_channels(channels, host, reuse_port), web_socket, irc_sockets, metrics_socket
        )
    except OSError:
        if web_socket is not None:
            web_socket.close()
        for sock in irc_sockets:
            sock.close()
        if metrics_socket is not None:
            metrics_socket.close()
        raise


def announce_listening(
    channels: Sequence[ChannelConfig],
    host: str,
    web: tuple[str, int] | None,
    tls: bool,
    who: str = "",
    irc: tuple[str, int] | None = None,
    metrics: tuple[str, int] | str | None = None,
) -> None:
    """Once every port is bound (tests and scripts wait for this on stderr)."""
    web_page = ""
    if irc is not None:
        irc_host, irc_port = irc
        web_page += f"; IRC on {irc_host if ':' not in irc_host else f'[{irc_host}]'}:{irc_port}"
    if web is not None:
        web_host, web_port = web
        web_page += (
            f"; web page on http://{web_host if ':' not in web_host else f'[{web_host}]'}"
            f":{web_port}/"
        )
    if metrics is not None:
        metrics_host, metrics_port = metrics if isinstance(metrics, tuple) else web or ("", 0)
        web_page += (
            "; metrics on http://"
            f"{metrics_host if ':' not in metrics_host else f'[{metrics_host}]'}"
            f":{metrics_port}/metrics"
        )
    say(
        f"{who}listening{' (TLS)' if tls else ''} on {host}: "
        + ", ".join(f"{channel.name} {channel.port}" for channel in channels)
        + web_page,
        event="listening",
        host=host,
        channels={channel.name: channel.port for channel in channels},
        tls=tls,
        irc=None if irc is None else irc[1],
        web=None if web is None else web[1],
    )


def bind_and_announce(
    channels: Sequence[ChannelConfig], arguments: argparse.Namespace, tls: bool, who: str = ""
) -> BoundSockets:
    """Every port the config, ``--host``, ``--web``, ``--irc`` and ``--metrics``
    ask for, announced; or none bound and OSError with a readable reason."""
    irc = getattr(arguments, "irc", None)
    metrics = getattr(arguments, "metrics", None)
    bound = bind_all(channels, arguments.host, arguments.web, arguments.reuse_port, irc, metrics)
    announce_listening(channels, arguments.host, arguments.web, tls, who, irc, metrics)
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
