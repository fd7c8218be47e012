"""Standard streams for both programs: contract lines out, stdin lines in.

stdout carries contract lines only, each flushed at once, as UTF-8 whatever the
locale. stdin is read with ``os.read`` in a worker thread: that works for
terminals, pipes, regular files and /dev/null alike, and a thread left blocked
in ``os.read`` at exit holds no interpreter lock (a buffered ``sys.stdin`` would).

A program started with one of them closed (``>&-``) gets /dev/null in its place
before it opens anything (``open_standard_streams``): otherwise the first socket
it opens takes that number, and the server's log or the client's notes would
be written into a listening socket or a connection.
"""

from __future__ import annotations

import io
import os
import sys
from collections.abc import AsyncIterator, Callable

from .sanitize import clean

STANDARD_FDS = (0, 1, 2)

# The longest stdin line either program takes; also the wire's limit for a
# typed line (wire.MAX_LINE_BYTES), which a server enforces on its peers.
MAX_INPUT_LINE = 8 * 1024


def open_standard_streams() -> None:
    """Open /dev/null on each of fds 0-2 that is closed, and give Python a
    stream for it: call first thing, before anything else takes a number."""
    for fd in STANDARD_FDS:
        try:
            os.fstat(fd)
            continue
        except OSError:
            pass
        # The lowest free number: fd itself, the ones below it being open.
        null = os.open(os.devnull, os.O_RDWR)
        if null != fd:
            os.dup2(null, fd)
            os.close(null)
        os.set_inheritable(fd, True)  # the processes --workers starts share it
    # Python made no stream for a descriptor that was closed when it started.
    # They stay open for the program's whole life, as Python's own would.
    if sys.stdin is None:
        sys.stdin = open(0, encoding="utf-8", errors="replace", closefd=False)  # noqa: SIM115
    if sys.stdout is None:
        sys.stdout = _writer(1)
    if sys.stderr is None:
        sys.stderr = _writer(2)


def _writer(fd: int) -> io.TextIOWrapper:
    return open(fd, "w", encoding="utf-8", errors="backslashreplace", closefd=False)


def print_line(line: str) -> None:
    """Write one contract line to stdout and flush it."""
    if sys.stdout is None:
        return  # no stdout at all is /dev/null (open_standard_streams)
    try:
        sys.stdout.buffer.write(clean(line).encode("utf-8", "replace") + b"\n")
        sys.stdout.buffer.flush()
    except (BrokenPipeError, ValueError):
        pass  # nobody reads our stdout any more; carry on


# Set by the server's --log-format json (server/logs.py): makes each line
# print_error writes (the program's name, its text, its level) a JSON object.
stderr_format: Callable[[str, str, str], str] | None = None


def print_error(program: str, text: str, level: str = "info") -> None:
    """A line on stderr; ``level`` ("info", "warning", "error") shows only in JSON logs."""
    if sys.stderr is None:
        return
    as_json = stderr_format
    line = f"{program}: {text}" if as_json is None else as_json(program, text, level)
    try:
        sys.stderr.write(f"{clean(line)}\n")
        sys.stderr.flush()
    except (BrokenPipeError, ValueError):
        pass


async def read_lines(
    fd: int, complain: Callable[[str], None] | None = None, limit: int = MAX_INPUT_LINE
) -> AsyncIterator[str]:
    """Yield the lines of ``fd`` (without line ends) until EOF.

    A line longer than ``limit`` bytes is never held whole: it is skipped up to
    its newline and ``complain`` is told, so a stdin with no newline at all
    cannot fill memory.
    """
    import trio

    pending = bytearray()
    skipping = False
    while True:
        try:
            chunk = await trio.to_thread.run_sync(os.read, fd, 65536, abandon_on_cancel=True)
        except OSError:
            chunk = b""  # a closed or unusable stdin is an empty one
        if not chunk:
            break
        start = 0
        while start < len(chunk):
            end = chunk.find(b"\n", start)
            piece = chunk[start:] if end < 0 else chunk[start:end]
            if not skipping:
                pending += piece
                if len(pending) > limit:
                    skipping = True
                    pending.clear()
                    if complain is not None:
                        complain(f"a line longer than {limit} bytes was ignored")
            if end < 0:
                break
            if skipping:
                skipping = False
            else:
                yield pending.decode("utf-8", "replace")
                pending.clear()
            start = end + 1
    if pending and not skipping:
        yield pending.decode("utf-8", "replace")
