"""Start trio and serve until shutdown: the set-up a lone server and a cluster
node share (cluster/run.py adds the node's parts)."""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import socket
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from functools import partial
from typing import TYPE_CHECKING, BinaryIO

import trio

from ..arguments import METRICS_ON_WEB
from ..config import ChannelConfig
from ..history import HistoryConfig
from ..hub import Hub
from . import accept_log
from .core import ChatServer
from .limits import Limits
from .listener import Backlog, BacklogListener
from .logs import JSON, WARNING, ServerLog
from .output import LineWriter
from .sockets import BoundSockets

if TYPE_CHECKING:
    import ssl

    from .logs import Log
    from .notify import Notifier
    from .state_dir import StateDir


def open_output(json_logs: bool = False) -> tuple[LineWriter, LineWriter, ServerLog]:
    """stdout and stderr writers that never block the event loop, and the
    log on stderr (JSON objects with ``json_logs``); trio's reports of failed
    accepts go to it, summarized."""
    sys.stdout.flush()
    sys.stderr.flush()
    errors = LineWriter(sys.stderr.fileno(), "stderr")
    log = log_to(errors, json_logs)

    def stdout_dropped(text: str) -> None:
        log(text, event="stdout_dropped", level=WARNING)

    output = LineWriter(sys.stdout.fileno(), "stdout", on_drop=stdout_dropped)

    def accept_failing(text: str) -> None:
        log(text, event="accept_failing", level=WARNING)

    accept_log.install(accept_failing)
    return output, errors, log


def close_output(output: LineWriter, errors: LineWriter) -> None:
    accept_log.remove()
    # Every line printed so far goes out, unless nobody reads the stream.
    output.close(timeout=2.0)
    errors.close(timeout=1.0)


def log_to(errors: LineWriter, json_logs: bool = False) -> ServerLog:
    """The server's log: a line on stderr, named, or a JSON object (--log-format json)."""
    return ServerLog(errors.write, json_logs)


def make_server(
    hub: Hub,
    arguments: argparse.Namespace,
    ssl_context: ssl.SSLContext | None,
    output: LineWriter,
    log: Log,
) -> ChatServer:
    server = ChatServer(
        hub,
        Limits(
            hello_timeout=arguments.hello_timeout,
            max_file_size=arguments.max_file_size,
            max_connections=arguments.max_connections,
            flood_burst=arguments.flood_burst,
            flood_rate=arguments.flood_rate,
            max_per_address=arguments.max_per_address,
        ),
        ssl_context=ssl_context,
        out=output.write,
        log=log,
    )
    # A reload binds new ports as the start-up did.
    server.listen_host = arguments.host
    server.reuse_port = arguments.reuse_port
    return server


def web_services(
    server: ChatServer, web: socket.socket | None, arguments: argparse.Namespace
) -> list[Callable[[], Awaitable[None]]]:
    """The browser client's server, when --web asked for it (imported only then)."""
    if web is None:
        return []
    from ..web.origins import KnownOrigins
    from ..web.serve import serve_web

    metrics = None
    if getattr(arguments, "metrics", None) == METRICS_ON_WEB:
        from .metrics import metrics_page

        metrics = metrics_page(server)
    origins = KnownOrigins(arguments.web, arguments.web_origin)
    return [partial(serve_web, server, web, origins, metrics)]


def metrics_services(
    server: ChatServer, bound: BoundSockets, arguments: argparse.Namespace
) -> list[Callable[[], Awaitable[None]]]:
    """The metrics' own port, when --metrics gave one (imported only then);
    ``--metrics web`` is served by the web page's port (web_services)."""
    if bound.metrics is None:
        return []
    from .metrics import serve_metrics

    return [partial(serve_metrics, server, bound.metrics)]


def socket_listeners(
    sockets: Mapping[str, Sequence[socket.socket]], backlog: Backlog
) -> dict[str, list[BacklogListener]]:
    """trio listeners on the bound sockets, channel by channel, counting what
    they have taken and not handed over in ``backlog`` (the server's)."""
    return {
        name: [BacklogListener(sock, backlog) for sock in socks] for name, socks in sockets.items()
    }


def irc_services(
    server: ChatServer, irc: Sequence[socket.socket], arguments: argparse.Namespace
) -> list[Callable[[], Awaitable[None]]]:
    """The IRC port, when --irc asked for it (imported only then)."""
    if not irc:
        return []
    from ..defaults import IRC_PING_INTERVAL, IRC_PING_TIMEOUT
    from ..irc.client import IrcSettings
    from ..irc.port import serve_irc

    settings = IrcSettings(
        server_name=arguments.irc_server_name or default_server_name(),
        password=getattr(arguments, "irc_password", None),
        ping_interval=IRC_PING_INTERVAL,
        ping_timeout=IRC_PING_TIMEOUT,
    )
    return [partial(serve_irc, server, irc, settings)]


def default_server_name() -> str:
    """This machine's host name, where it makes a server name."""
    from ..arguments import irc_server_name

    try:
        return irc_server_name(socket.gethostname())
    except (OSError, argparse.ArgumentTypeError):
        return "trio-chat"


def control_services(
    server: ChatServer, arguments: argparse.Namespace
) -> list[Callable[[], Awaitable[None]]]:
    """The control socket, when --control asked for it (cli bound it; the
    module is imported only then)."""
    control = getattr(arguments, "control_socket", None)
    if control is None:
        return []
    from .control import serve_control

    return [partial(serve_control, server, control.sock)]


async def serve_bound(
    server: ChatServer, bound: BoundSockets, arguments: argparse.Namespace
) -> None:
    """Every channel on its bound sockets, and the web page, IRC port and
    control socket if asked for, until shutdown; SIGHUP and /reload reload the config; a
    service manager that gave $NOTIFY_SOCKET hears when it is ready."""
    notifier = None
    if "NOTIFY_SOCKET" in os.environ:  # (notify.py is imported only then)
        from .notify import from_environment

        notifier = from_environment(server.log)

    def reload(answer: Callable[[str, bool], None]) -> None:
        from .reload import reload

        reload(server, arguments, notifier, answer)

    server.reloader = reload

    async def serve(task_status: trio.TaskStatus[None]) -> None:
        await server.serve(
            socket_listeners(bound.channels, server.backlog),
            services=[
                *web_services(server, bound.web, arguments),
                *irc_services(server, bound.irc, arguments),
                *control_services(server, arguments),
                *metrics_services(server, bound, arguments),
            ],
            task_status=task_status,
        )
        nursery.cancel_scope.cancel()

    async with trio.open_nursery() as nursery:
        await nursery.start(serve)
        if notifier is not None:
            from .reload import serving_status

            notifier.ready(serving_status(len(server.hub.channels)))
            nursery.start_soon(say_stopping, server, notifier)


async def say_stopping(server: ChatServer, notifier: Notifier) -> None:
    await server.stopped.wait()
    notifier.stopping()


def history_config(arguments: argparse.Namespace) -> HistoryConfig:
    return HistoryConfig(arguments.history, arguments.history_bytes, arguments.history_events)


def run_until_stopped(
    channels: Sequence[ChannelConfig],
    arguments: argparse.Namespace,
    ssl_context: ssl.SSLContext | None,
    main: Callable[[ChatServer, Hub], Awaitable[int]],
) -> int:
    """The hub, output that never blocks the event loop and the server, then
    trio running ``main`` with the server and its hub: ``main``'s exit status."""
    hub = Hub(channels, afk_timeout=arguments.afk_timeout, history=history_config(arguments))
    output, errors, log = open_output(arguments.log_format == JSON)
    server = make_server(hub, arguments, ssl_context, output, log)
    # What start-up made (modules, the hub, the server) lives as long as the
    # server does: frozen, the cyclic collector's full passes no longer walk
    # it each time, and a pass, which stops everything, is that much shorter
    # (docs/benchmarks.md, "Mixed load": the tail of a busy server's latency).
    gc.freeze()
    try:
        return trio.run(main, server, hub)
    except KeyboardInterrupt:
        return 0
    finally:
        close_output(output, errors)


def run_server(
    channels: Sequence[ChannelConfig],
    bound: BoundSockets,
    arguments: argparse.Namespace,
    ssl_context: ssl.SSLContext | None = None,
    history_source: BinaryIO | None = None,
    state: StateDir | None = None,
) -> int:
    """A lone server, on the sockets ``cli`` bound before trio was imported;
    with --history-file, ``history_source`` is the file read past its header
    (None when there is none yet); with --state-dir, ``state`` is what it held."""

    async def serve(server: ChatServer, hub: Hub) -> int:
        async with contextlib.AsyncExitStack() as keepers:
            if state is not None:
                from .bans_keeper import keeping_bans

                await keepers.enter_async_context(keeping_bans(server, state))
            if arguments.history_file is not None:
                from .history_keeper import keeping_history

                await keepers.enter_async_context(
                    keeping_history(server, arguments.history_file, history_source)
                )
            await serve_bound(server, bound, arguments)
        return 0

    return run_until_stopped(channels, arguments, ssl_context, serve)
