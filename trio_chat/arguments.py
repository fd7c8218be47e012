"""Shared by both programs' argument checks: strict values, exit status 1.

Every option value is checked as strictly as the positional arguments: Python's
own ``int`` and ``float`` would take ``" 5"``, ``"+7"``, ``"1_000"``, ``"nan"``
and ``"inf"``, none of which a person means as a count, a size or a duration.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from collections.abc import Callable

from . import terminal_io
from .terminal_io import print_error

_SECONDS = re.compile(r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)", re.ASCII)
_SIZE = re.compile(r"([0-9]+)(?:([KMGT])(I?B)?|B)?", re.ASCII | re.IGNORECASE)
_ORIGIN = re.compile(
    r"(https?)://([a-z0-9](?:[a-z0-9.-]*[a-z0-9])?|\[[0-9a-f:.]+\])(?::([0-9]+))?/?",
    re.ASCII | re.IGNORECASE,
)
_SIZE_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
# Where the server listens, and serves its web page, unless told otherwise.
DEFAULT_HOST = "127.0.0.1"


def parse_decimal(text: str) -> int | None:
    """A plain decimal integer, or None: int() alone would accept "+5", " 5",
    "5_000" and non-ASCII digits."""
    if text.isascii() and text.isdigit():
        return int(text)
    return None


def count_at_least(minimum: int, what: str) -> Callable[[str], int]:
    """An argparse ``type`` for a plain decimal count of at least ``minimum``."""

    def parse(text: str) -> int:
        value = parse_decimal(text)
        if value is None or value < minimum:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not {what} (a plain whole number of at least {minimum})"
            )
        return value

    return parse


def _plain_number(text: str) -> float:
    """A plain decimal such as ``5``, ``0.5`` or ``.5``; NaN for anything else."""
    value = float(text) if _SECONDS.fullmatch(text) else math.nan
    return value if math.isfinite(value) else math.nan


def positive_seconds(text: str) -> float:
    """An argparse ``type``: a plain positive decimal such as ``5``, ``0.5`` or ``100``."""
    value = _plain_number(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a positive number of seconds (such as 5 or 0.5)"
        )
    return value


def non_negative_number(text: str) -> float:
    """An argparse ``type``: a plain decimal of at least 0, such as ``5`` or ``0.5``."""
    value = _plain_number(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a plain number such as 5 or 0.5")
    return value


def byte_size(text: str) -> int:
    """An argparse ``type``: digits, then optionally K, M, G or T (binary multiples,
    1024 apart) followed by nothing, ``B`` or ``iB``; a plain ``B`` is bytes."""
    match = _SIZE.fullmatch(text)
    if match is None:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a size such as 500000, 500K, 64MiB or 2G"
        )
    digits, unit, _ = match.groups()
    return int(digits) * _SIZE_UNITS[(unit or "").upper()]


def size_text(size: int) -> str:
    """``size`` as ``byte_size`` reads it, in the largest unit it is a whole
    number of: 4G for 4 * 1024**3, 1536K, 1000."""
    for unit in ("T", "G", "M", "K"):
        if size and size % _SIZE_UNITS[unit] == 0:
            return f"{size // _SIZE_UNITS[unit]}{unit}"
    return str(size)


class ExitOneParser(argparse.ArgumentParser):
    """argparse, but bad arguments exit 1 as the behaviour document's "Starting the
    programs" section asks (argparse itself uses 2)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        if terminal_io.stderr_format is None:  # (JSON logs: one object, the reason)
            self.print_usage(sys.stderr)
        print_error(self.prog, message, level="error")
        sys.exit(1)


def redis_url(text: str) -> str:
    """``redis://HOST[:PORT][/DB]``, ``rediss://...`` or ``unix:///PATH``,
    checked before anything is started."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"{text!r} is not a Redis URL: {error}") from None
    if parts.scheme == "unix":
        if not parts.path or parts.netloc:
            raise argparse.ArgumentTypeError(
                f"{text!r}: a Unix socket URL is unix:///path/to/redis.sock"
            )
        return text
    if parts.scheme not in ("redis", "rediss") or not parts.hostname:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a Redis URL such as redis://localhost:6379/0 "
            "or unix:///run/redis.sock"
        )
    database = parts.path.lstrip("/")
    if database and not database.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r}: the database is a number, not {database!r}")
    del port
    return text


def web_origin(text: str) -> tuple[str, str, int]:
    """``http[s]://HOST[:PORT]`` (a page's origin: no path, no user) as
    (scheme, host, port), the port the scheme's default when left out."""
    match = _ORIGIN.fullmatch(text)
    port = parse_decimal(match[3]) if match and match[3] is not None else None
    if match is None or (match[3] is not None and (port is None or not 1 <= port <= 65535)):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an origin such as https://chat.example.org or http://HOST:PORT"
        )
    scheme = match[1].lower()
    host = match[2].lower().strip("[]")
    return scheme, host, port if port is not None else (443 if scheme == "https" else 80)


def listen_address(what: str) -> Callable[[str], tuple[str, int]]:
    """A parser of ``PORT`` (on DEFAULT_HOST), ``HOST:PORT`` or ``[IPV6]:PORT``
    for ``what`` listens there."""

    def parse(text: str) -> tuple[str, int]:
        host, _, port_text = text.rpartition(":")
        host = host.strip("[]") or DEFAULT_HOST
        port = parse_decimal(port_text)
        if port is None or not 1 <= port <= 65535 or any(c.isspace() for c in host):
            raise argparse.ArgumentTypeError(
                f"{text!r} is not a port (1-65535) or HOST:PORT for {what}"
            )
        return host, port

    return parse


web_address = listen_address("the web page")
irc_address = listen_address("the IRC port")
# --metrics' value that serves them on the --web port instead of a port of their own.
METRICS_ON_WEB = "web"


def metrics_address(text: str) -> tuple[str, int] | str:
    """``--metrics``: ``[HOST:]PORT`` as for --web, or ``web`` (METRICS_ON_WEB)."""
    if text == METRICS_ON_WEB:
        return METRICS_ON_WEB
    try:
        return _metrics_port(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a port (1-65535), HOST:PORT or 'web' for the metrics"
        ) from None


_metrics_port = listen_address("the metrics")

# An IRC server's name: what a DNS name may hold (it is a prefix on IRC).
_SERVER_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,62}[A-Za-z0-9])?", re.ASCII)


def irc_server_name(text: str) -> str:
    if _SERVER_NAME.fullmatch(text) is None:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a server name: letters, digits, '.' and '-', up to 64"
        )
    return text
