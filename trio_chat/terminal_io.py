"""Standard streams for both programs: contract lines out, stdin lines in.

stdout carries contract lines only, each flushed at once, as UTF-8 whatever the
locale. stdin is read with ``os.read`` in a worker thread: that works for
terminals, pipes, regular files and /dev/null alike, and a thread left blocked
in ``os.read`` at exit holds no interpreter lock (a buffered ``sys.stdin`` would).
"""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator


def print_line(line: str) -> None:
    """Write one contract line to stdout and flush it."""
    try:
        sys.stdout.buffer.write(line.encode("utf-8", "replace") + b"\n")
        sys.stdout.buffer.flush()
    except (BrokenPipeError, ValueError):
        pass  # nobody reads our stdout any more; carry on


def print_error(program: str, text: str) -> None:
    try:
        sys.stderr.write(f"{program}: {text}\n")
        sys.stderr.flush()
    except (BrokenPipeError, ValueError):
        pass


async def read_lines(fd: int) -> AsyncIterator[str]:
    """Yield the lines of ``fd`` (without line ends) until EOF."""
    import trio

    pending = b""
    while True:
        try:
            chunk = await trio.to_thread.run_sync(os.read, fd, 65536, abandon_on_cancel=True)
        except OSError:
            chunk = b""  # a closed or unusable stdin is an empty one
        if not chunk:
            break
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            yield line.decode("utf-8", "replace")
    if pending:
        yield pending.decode("utf-8", "replace")
