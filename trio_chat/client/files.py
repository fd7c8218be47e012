"""Files on the client's disk for /send: what to offer, where to save, no partials.

Receiving writes into a hidden temporary file in the download directory and
links it to its final name only once size and CRC-32 match, and only under a
name nobody has taken: the final name never holds a partial or someone else's
file. The name comes from the sender, so it is reduced to a plain base name that
cannot leave the download directory.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from dataclasses import dataclass
from typing import BinaryIO

FALLBACK_NAME = "received-file"
MAX_NAME_BYTES = 200
TEMP_PREFIX = ".trio-chat-"
TEMP_SUFFIX = ".part"


@dataclass
class LocalFile:
    """A file the user asked to send: open for reading, or None if unusable."""

    handle: BinaryIO | None
    size: int
    name: str
    problem: str = ""  # why it cannot be sent, beyond "does not exist"


def open_for_sending(typed_path: str) -> LocalFile:
    """Resolve ``typed_path`` as a shell would (``~``, relative to the cwd)."""
    path = os.path.expanduser(typed_path)
    name = os.path.basename(os.path.normpath(path)) or FALLBACK_NAME
    try:
        # stat first: opening a FIFO or a device could block or never end.
        if not stat.S_ISREG(os.stat(path).st_mode):
            return LocalFile(None, 0, name)
        handle = open(path, "rb")  # noqa: SIM115 - the transfer closes it
        size = os.fstat(handle.fileno()).st_size
        if size == 0 and handle.read(1):
            # /proc and /sys files say they are empty and are not: their size
            # is unknown until read to the end, so they cannot be offered.
            handle.close()
            return LocalFile(None, 0, name, "its size is unknown (a pseudo-file?); copy it first")
    except OSError:
        return LocalFile(None, 0, name)
    return LocalFile(handle, size, name)


def safe_file_name(claimed: str) -> str:
    """A plain file name from whatever a peer claims; never a path."""
    name = claimed.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c for c in name if c.isprintable() and c not in "\x00")
    name = name.strip().lstrip(".")  # no hidden files, no '.' or '..'
    while len(name.encode()) > MAX_NAME_BYTES:
        name = name[:-1]
    return name or FALLBACK_NAME


def _candidates(name: str) -> list[str]:
    stem, dot, extension = name.rpartition(".")
    if not stem:
        stem, dot, extension = name, "", ""
    return [name] + [f"{stem} ({n}){dot}{extension}" for n in range(1, 1000)]


def create_temporary(directory: str) -> tuple[BinaryIO, str]:
    descriptor, path = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=TEMP_SUFFIX, dir=directory)
    os.fchmod(descriptor, 0o644)  # mkstemp's 0600 is for the temporary only
    return os.fdopen(descriptor, "wb"), path


def publish(temporary: str, directory: str, claimed: str) -> str:
    """Give the finished temporary file a free final name; return its path.

    ``os.link`` fails rather than replace an existing file, so even a file that
    appears meanwhile is never overwritten.
    """
    name = safe_file_name(claimed)
    for candidate in _candidates(name):
        final = os.path.join(directory, candidate)
        try:
            os.link(temporary, final)
        except FileExistsError:
            continue
        except OSError:
            # No hard links here (some filesystems): claim the name exclusively,
            # then move the finished file over our own empty claim.
            try:
                descriptor = os.open(final, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                continue
            os.close(descriptor)
            os.replace(temporary, final)
            return final
        os.unlink(temporary)
        return final
    raise FileExistsError(f"no free name for {name!r} in {directory}")


def discard(temporary: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(temporary)
