"""Standard streams for both programs: contract lines out, stdin lines in.

stdout carries contract lines only, each flushed at once, as UTF-8 whatever the
locale. stdin is read with ``os.read`` in a worker thread: that works for
terminals, pipes, regular files and /dev/null alike, and a thread left blocked
in ``os.read`` at exit holds no interpreter lock (a buffered ``sys.stdin`` would).
"""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator, Callable

from .sanitize import clean

# The longest stdin line either program takes; also the wire's limit for a
# typed line (wire.MAX_LINE_BYTES), which a server enforces on its peers.
MAX_INPUT_LINE = 8 * 1024


def print_line(line: str) -> None:
    """Write one contract line to stdout and flush it."""
    try:
        sys.stdout.buffer.write(clean(line).encode("utf-8", "replace") + b"\n")
        sys.stdout.buffer.flush()
    except (BrokenPipeError, ValueError):
        pass  # nobody reads our stdout any more; carry on


def print_error(program: str, text: str) -> None:
    try:
        sys.stderr.write(f"{program}: {clean(text)}\n")
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
