"""The server's stderr log: a line of text, as always, or with
``--log-format json`` one JSON object a line (docs/behaviour.md, "Logs").

Every log site may say what happened as an event name, a level and fields:
``log(text, event="connection_refused", level="warning", reason="limit")``.
The text format prints the text alone, byte for byte as before; the JSON
format prints ``{"time", "level", "event", "message", ...fields}``. A site
that gives the text alone is event "message", level "info".

Imports no trio and, in the text format, not even json: the start-up before
trio writes through here too (server/cli.py), and must stay fast.
"""

from __future__ import annotations

import sys
import time

from .. import terminal_io
from ..sanitize import clean
from . import PROGRAM

TYPE_CHECKING = False  # (typing costs the start-up ~5 ms: see cli.py)
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from types import TracebackType
    from typing import Protocol

    class Log(Protocol):
        """What the server logs through: its text, and what it was."""

        def __call__(
            self, text: str, /, *, event: str = ..., level: str = ..., **fields: object
        ) -> None: ...


TEXT = "text"
JSON = "json"
LOG_FORMATS = (TEXT, JSON)
INFO = "info"
WARNING = "warning"
ERROR = "error"
MESSAGE = "message"  # the event of a line that names none
# The record's own keys: a field of the same name is written with a "_" after it.
RECORD_KEYS = frozenset({"time", "level", "event", "message"})


def iso_time(now: float) -> str:
    """``now`` (seconds since the epoch) as ISO 8601 in UTC, to the millisecond."""
    seconds = int(now)
    milliseconds = int((now - seconds) * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{milliseconds:03d}Z"


def json_record(text: str, event: str, level: str, fields: dict[str, object], now: float) -> str:
    """One log line as a JSON object. Control characters are escaped by the
    encoding (and a peer's text was sanitized before it got here)."""
    import json

    record: dict[str, object] = {
        "time": iso_time(now),
        "level": level,
        "event": event,
        "message": text,
    }
    for key, value in fields.items():
        record[f"{key}_" if key in RECORD_KEYS else key] = value
    # default=str: a field may be an address tuple, a path, an enum.
    return json.dumps(record, ensure_ascii=False, default=str)


class ServerLog:
    """The server's log: writes each line with ``write`` (a LineWriter's,
    which never blocks the event loop), in the format asked for."""

    __slots__ = ("_clock", "_json", "_write")

    def __init__(
        self,
        write: Callable[[str], None],
        json_format: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._write = write
        self._json = json_format
        self._clock = clock

    def __call__(
        self, text: str, /, *, event: str = MESSAGE, level: str = INFO, **fields: object
    ) -> None:
        if self._json:
            self._write(json_record(text, event, level, fields, self._clock()))
        else:
            self._write(f"{PROGRAM}: {text}")


class TextOnly:
    """A log that takes only text (a test's list.append, say), as a Log."""

    __slots__ = ("_write",)

    def __init__(self, write: Callable[[str], None]) -> None:
        self._write = write

    def __call__(
        self, text: str, /, *, event: str = MESSAGE, level: str = INFO, **fields: object
    ) -> None:
        self._write(text)


def as_log(log: Callable[[str], None]) -> Log:
    """``log`` as a Log: itself if it is one, else a wrapper that drops what it cannot take."""
    if isinstance(log, (ServerLog, TextOnly)):
        return log
    return TextOnly(log)


# ----- before trio, and every other stderr line of the process -----

_json_format = False


def wants_json(argv: Sequence[str]) -> bool:
    """Whether the command line asks for JSON logs, read before it is parsed,
    so that even a complaint about the arguments is a JSON line."""
    for index, arg in enumerate(argv):
        if arg == "--log-format=json":
            return True
        if arg == "--log-format" and argv[index + 1 : index + 2] == [JSON]:
            return True
    return False


def use_json() -> None:
    """From now on every line this process writes on stderr is a JSON object:
    ``print_error``'s (terminal_io), argparse's usage, warnings, a traceback."""
    global _json_format
    if _json_format:
        return
    _json_format = True
    terminal_io.stderr_format = _error_record
    sys.excepthook = _log_exception
    import warnings

    def show_warning(
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: object = None,
        line: str | None = None,
    ) -> None:
        say(
            warnings.formatwarning(message, category, filename, lineno, line).strip(),
            event="python_warning",
            level=WARNING,
        )

    warnings.showwarning = show_warning
    # The logging module's last resort (a library's warning with no handler).
    import logging

    class JsonFormatter(logging.Formatter):
        def format(self, record: logging.LogRecord) -> str:
            level = ERROR if record.levelno >= logging.ERROR else WARNING
            return json_record(
                super().format(record),
                "library_log",
                level,
                {"logger": record.name},
                record.created,
            )

    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    handler.setLevel(logging.WARNING)
    logging.lastResort = handler


def json_logs() -> bool:
    return _json_format


def _error_record(program: str, text: str, level: str) -> str:
    return json_record(text, MESSAGE, level, {}, time.time())


def say(text: str, /, *, event: str = MESSAGE, level: str = INFO, **fields: object) -> None:
    """A stderr line before trio (or from outside the event loop): text as
    ``print_error`` writes it, or a JSON object."""
    if not _json_format:
        terminal_io.print_error(PROGRAM, text)
        return
    stderr = sys.stderr
    if stderr is None:
        return
    try:
        stderr.write(clean(json_record(text, event, level, fields, time.time())) + "\n")
        stderr.flush()
    except (BrokenPipeError, ValueError):
        pass


def _log_exception(
    kind: type[BaseException], error: BaseException, trace: TracebackType | None
) -> None:
    import traceback

    text = "".join(traceback.format_exception(kind, error, trace))
    say(text.rstrip("\n"), event="crash", level=ERROR, error=kind.__name__)
