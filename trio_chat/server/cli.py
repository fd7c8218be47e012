"""``trio-chat-server CONFIGFILE``: check everything, bind every port, then serve.

Start-up order matters (behaviour document, "Starting the programs"): arguments
and the whole config are checked before any port is bound, and the ports are
bound (so clients can connect and wait in the backlog) before trio is imported,
which costs ~0.1 s.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from .. import __version__
from ..arguments import (
    DEFAULT_HOST,
    ExitOneParser,
    byte_size,
    count_at_least,
    irc_address,
    irc_server_name,
    metrics_address,
    non_negative_number,
    positive_seconds,
    redis_url,
    size_text,
    web_address,
    web_origin,
)
from ..config import ChannelConfig, ConfigError, load_config
from ..defaults import DEFAULT_AFK_TIMEOUT, DEFAULT_HISTORY_BYTES, DEFAULT_HISTORY_LINES
from ..terminal_io import open_standard_streams
from . import PROGRAM, early_signals
from .limits import Limits
from .logs import ERROR, LOG_FORMATS, TEXT, say, use_json, wants_json

# Not ``typing.TYPE_CHECKING``: importing typing costs this path ~5 ms, and a
# bad invocation must exit within milliseconds (mypy reads the same idiom).
TYPE_CHECKING = False
if TYPE_CHECKING:
    import ssl
    from typing import BinaryIO


def parse_arguments(argv: Sequence[str]) -> argparse.Namespace:
    # The limits' defaults are Limits's own (a dataclass keeps each field's
    # default as a class attribute): written once, read without trio.
    parser = ExitOneParser(
        prog=PROGRAM,
        description="Serve trio-chat channels; each channel of CONFIGFILE on its own port.",
        epilog="Console commands on stdin (and --control's socket): /kick CHANNEL:USER, "
        "/mute CHANNEL:USER SECONDS, /empty CHANNEL, /history CHANNEL [N], /who [CHANNEL], "
        "/reload (as SIGHUP does), /shutdown.",
    )
    parser.add_argument("configfile", help="lines of 'channel <name> <port> <capacity>'")
    parser.add_argument(
        "--host", default=DEFAULT_HOST, help="address to listen on (default: %(default)s)"
    )
    parser.add_argument(
        "--afk-timeout",
        type=positive_seconds,
        default=DEFAULT_AFK_TIMEOUT,
        metavar="SECONDS",
        help="remove clients idle in a channel this long (default: %(default)g)",
    )
    parser.add_argument(
        "--hello-timeout",
        type=positive_seconds,
        default=Limits.hello_timeout,
        metavar="SECONDS",
        help="drop connections that have not said hello by then (default: %(default)g)",
    )
    parser.add_argument(
        "--max-file-size",
        type=byte_size,
        default=Limits.max_file_size,
        metavar="BYTES",
        help="largest file /send relays, such as 500M or 2GiB; K, M, G and T are "
        f"1024 apart (default: {size_text(Limits.max_file_size)})",
    )
    parser.add_argument(
        "--max-connections",
        type=count_at_least(1, "a number of connections"),
        default=Limits.max_connections,
        metavar="N",
        help="connections held at once; more are closed at once (default: %(default)s)",
    )
    parser.add_argument(
        "--flood-burst",
        type=count_at_least(0, "a number of lines"),
        default=Limits.flood_burst,
        metavar="LINES",
        help="lines a member may send at once before the rate applies; 0 turns "
        "flood control off (default: %(default)s)",
    )
    parser.add_argument(
        "--flood-rate",
        type=non_negative_number,
        default=Limits.flood_rate,
        metavar="LINES",
        help="lines a second a member may send after its burst; 0 turns flood "
        "control off (default: %(default)g)",
    )
    parser.add_argument(
        "--max-per-address",
        type=count_at_least(0, "a number of connections"),
        default=Limits.max_per_address,
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
        "redis://HOST:PORT/DB, rediss://... or unix:///PATH/redis.sock",
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
        help=f"also serve the browser client on this port (HOST defaults to {DEFAULT_HOST})",
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
    parser.add_argument(
        "--irc",
        type=irc_address,
        metavar="[HOST:]PORT",
        help=f"also serve IRC clients on this port (HOST defaults to {DEFAULT_HOST}); "
        "with --tls-cert it speaks TLS, as every port does",
    )
    parser.add_argument(
        "--irc-server-name",
        type=irc_server_name,
        metavar="NAME",
        help="the server's name in IRC replies (default: this machine's host name)",
    )
    parser.add_argument(
        "--irc-password-file",
        metavar="FILE",
        help="IRC clients must give the password in FILE (its first line) with PASS",
    )
    parser.add_argument(
        "--history",
        type=count_at_least(0, "a number of lines"),
        default=DEFAULT_HISTORY_LINES,
        metavar="N",
        help="keep the last N lines said in each channel and send them to whoever "
        "is admitted later; 0 keeps nothing (default: %(default)s)",
    )
    parser.add_argument(
        "--history-bytes",
        type=byte_size,
        default=DEFAULT_HISTORY_BYTES,
        metavar="BYTES",
        help="and at most this much text in each channel's history, such as 256K "
        f"(default: {size_text(DEFAULT_HISTORY_BYTES)})",
    )
    parser.add_argument(
        "--history-events",
        action="store_true",
        help="keep joins and leaves in the history too",
    )
    parser.add_argument(
        "--history-file",
        metavar="FILE",
        help="a lone server keeps its history in FILE (appended, compacted) and "
        "reloads it at start; a cluster keeps it in Redis",
    )
    parser.add_argument(
        "--state-dir",
        metavar="DIR",
        help="a lone server keeps its bans in DIR across restarts (and with --history N, "
        "its history: DIR/history unless --history-file says otherwise)",
    )
    parser.add_argument(
        "--control",
        metavar="PATH",
        help="also take console commands on a Unix socket at PATH, mode 0600, for "
        "trio-chat-ctl; with --workers N, worker I's is PATH.I",
    )
    parser.add_argument(
        "--metrics",
        type=metrics_address,
        metavar="[HOST:]PORT",
        help="serve Prometheus metrics at /metrics on this port (HOST defaults to "
        f"{DEFAULT_HOST}), or 'web' for the --web port's /metrics",
    )
    parser.add_argument(
        "--log-format",
        choices=LOG_FORMATS,
        default=TEXT,
        help="stderr as lines of text, or one JSON object a line (default: %(default)s)",
    )
    # Set by --workers for the processes it starts: bind ports another process holds.
    parser.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--version", action="version", version=f"{PROGRAM} {__version__}")
    arguments = parser.parse_args(argv)
    if (arguments.tls_cert is None) != (arguments.tls_key is None):
        parser.error("--tls-cert and --tls-key go together")
    if arguments.web_origin and arguments.web is None:
        parser.error("--web-origin goes with --web")
    if arguments.irc is None and (
        arguments.irc_server_name is not None or arguments.irc_password_file is not None
    ):
        parser.error("--irc-server-name and --irc-password-file go with --irc")
    metrics_problem = metrics_option_problem(arguments)
    if metrics_problem is not None:
        parser.error(metrics_problem)
    if arguments.reuse_port and arguments.redis is None:
        parser.error("--reuse-port is for the processes --workers starts")
    if arguments.history == 0 and (arguments.history_events or arguments.history_file is not None):
        parser.error("--history-events and --history-file go with --history N (N > 0)")
    if arguments.history_file is not None and (
        arguments.redis is not None or arguments.workers is not None
    ):
        parser.error(
            "--history-file is for a lone server: a cluster keeps its history in Redis "
            "(with appendonly yes, it survives a restart of every node)"
        )
    if arguments.state_dir is not None:
        if arguments.redis is not None or arguments.workers is not None:
            parser.error(
                "--state-dir is for a lone server: a cluster keeps its bans and history "
                "in Redis (with appendonly yes, they survive a restart of every node)"
            )
        from .state_dir import BANS_FILE, HISTORY_FILE, LOCK_FILE

        if arguments.history and arguments.history_file is None:
            arguments.history_file = os.path.join(arguments.state_dir, HISTORY_FILE)
        if arguments.history_file is not None:
            own = {
                os.path.realpath(os.path.join(arguments.state_dir, f))
                for f in (BANS_FILE, LOCK_FILE)
            }
            if os.path.realpath(arguments.history_file) in own:
                parser.error(
                    f"--history-file {arguments.history_file} is the state directory's own file"
                )
    return arguments


def main(argv: Sequence[str] | None = None) -> int:
    # Before anything opens a file or a socket (behaviour.md, "Standard output
    # and standard error"): a closed stdin, stdout or stderr is /dev/null.
    open_standard_streams()
    argv = sys.argv[1:] if argv is None else argv
    if wants_json(argv):
        use_json()  # before parsing: even a complaint about the arguments is JSON
    arguments = parse_arguments(argv)
    early_signals.install()
    try:
        channels = load_config(arguments.configfile)
    except ConfigError as error:
        say_error(str(error))
        return 1
    if arguments.irc is not None:
        from .irc_check import irc_problem

        problem = irc_problem(channels, arguments)
        if problem is not None:
            say_error(problem)
            return 1
    missing = missing_extra(arguments)
    if missing is not None:
        say_error(missing)
        return 1
    ssl_context = None
    if arguments.tls_cert is not None:
        from ..tls import TLSSetupError, server_context

        try:
            ssl_context = server_context(arguments.tls_cert, arguments.tls_key)
        except TLSSetupError as error:
            say_error(str(error))
            return 1
    control = None
    if arguments.control is not None and arguments.workers is None:
        # Before any port: a control socket in use or in the way refuses the start.
        from .control_socket import ControlSocket, ControlSocketError

        try:
            control = ControlSocket(arguments.control)
        except ControlSocketError as error:
            say_error(str(error))
            return 1
    arguments.control_socket = control
    # Imported only now: socket and the module cost a bad invocation ~2 ms.
    from .sockets import raise_open_file_limit

    # Before binding: a thousand channels need more than the common soft limit.
    raise_open_file_limit()
    if arguments.workers is not None:
        from ..cluster.workers import run_workers

        status = run_workers(arguments, list(argv))
    elif arguments.redis is not None:
        from ..cluster.run import run_node

        status = run_node(channels, arguments, ssl_context)
    else:
        status = serve_alone(channels, arguments, ssl_context)
    if control is not None:
        control.remove()
    # The console thread may still be blocked reading stdin; do not wait for it.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def say_error(text: str) -> None:
    """Why the server cannot start (it exits 1)."""
    say(text, event="cannot_start", level=ERROR)


def missing_extra(arguments: argparse.Namespace) -> str | None:
    """What an option asked for that is not installed (the extras in
    pyproject.toml), said before any port is bound."""
    wanted: list[tuple[str, str, tuple[str, ...]]] = []
    if arguments.irc is not None:
        wanted.append(("--irc", "irc", ("irctokens",)))
    if arguments.web is not None:
        wanted.append(("--web", "web", ("hypercorn", "starlette")))
    if arguments.metrics is not None:
        wanted.append(("--metrics", "metrics", ("prometheus_client", "h11")))
    if not wanted:
        return None
    from importlib.util import find_spec

    for option, extra, modules in wanted:
        absent = [module for module in modules if find_spec(module) is None]
        if absent:
            return (
                f"{option} needs {', '.join(absent)}, which is not installed: "
                f"pip install 'trio-chat[{extra}]'"
            )
    return None


def metrics_option_problem(arguments: argparse.Namespace) -> str | None:
    """Why --metrics cannot be served as asked, or None."""
    from ..arguments import METRICS_ON_WEB

    if arguments.metrics == METRICS_ON_WEB and arguments.web is None:
        return "--metrics web serves the metrics on the --web port: it goes with --web"
    if arguments.metrics is not None and arguments.workers is not None:
        # The processes would share the port, and each scrape would reach one of them.
        return (
            "--metrics is for one process: with --workers each would answer for itself "
            "on a shared port; run the nodes with --redis, each with its own --metrics port"
        )
    return None


def serve_alone(
    channels: Sequence[ChannelConfig],
    arguments: argparse.Namespace,
    ssl_context: ssl.SSLContext | None,
) -> int:
    """One process serves every channel; its ports are bound before trio is imported."""
    state = None
    if arguments.state_dir is not None:
        from .state_dir import StateDirError, open_state_dir

        try:
            state = open_state_dir(arguments.state_dir)
        except StateDirError as error:
            say_error(str(error))
            return 1
    history_source = None
    if arguments.history_file is not None:
        history_source, problem = open_history_file(arguments.history_file)
        if problem is not None:
            say_error(problem)
            return 1
    from .sockets import bind_and_announce

    try:
        bound = bind_and_announce(channels, arguments, tls=ssl_context is not None)
    except OSError as error:
        say_error(str(error))
        return 1
    from .run import run_server

    return run_server(channels, bound, arguments, ssl_context, history_source, state)


def open_history_file(path: str) -> tuple[BinaryIO | None, str | None]:
    """The history file open and read past its header (None if there is
    none yet: it is created), or why it cannot be the server's, said before
    any port is bound (behaviour.md, "The history file")."""
    import errno
    import stat

    from ..history_file import MAX_FILE_LINE, header_problem

    directory = os.path.dirname(os.path.abspath(path))
    try:
        # (Following links: a rewrite replaces the file they lead to.)
        info = os.stat(path)
    except FileNotFoundError:
        info = None
    except OSError as error:
        return None, f"cannot read the history file {path}: {error.strerror or error}"
    if info is not None and not stat.S_ISREG(info.st_mode):
        # A FIFO would hang the start, a device would be read for ever or
        # replaced by the first rewrite.
        reason = os.strerror(errno.EISDIR) if stat.S_ISDIR(info.st_mode) else "not a regular file"
        return None, f"cannot read the history file {path}: {reason}"
    if not os.path.isdir(directory):
        return None, f"cannot create the history file {path}: there is no directory {directory}"
    if not os.access(directory, os.W_OK | os.X_OK):
        return None, f"the history file {path} cannot be written: {directory} is not writable"
    if info is None:
        return None, None
    try:
        file = open(path, "rb")  # noqa: SIM115 (the server reads the rest, then closes it)
    except FileNotFoundError:
        return None, None
    except OSError as error:
        return None, f"cannot read the history file {path}: {error.strerror or error}"
    try:
        problem = header_problem(path, file.readline(MAX_FILE_LINE))
    except OSError as error:
        problem = f"cannot read the history file {path}: {error.strerror or error}"
    if problem is not None:
        file.close()
        return None, problem
    return file, None


if __name__ == "__main__":
    sys.exit(main())
