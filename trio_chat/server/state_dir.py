"""A lone server's ``--state-dir DIR``: what it keeps across a restart
(docs/behaviour.md, "Bans" and "The history file").

``DIR/bans.json`` holds the bans, each with the seconds it had left when
the file was written and the wall-clock time of that write, so a ban keeps
running while the server is down. With ``--history N`` (and no
``--history-file``) the history file is ``DIR/history``.

Checked and read here before any port is bound, without trio: a directory
that cannot be written, or a bans file that cannot be read, stops the start
with the reason (a server that forgot its bans would let everyone back in).
"""

from __future__ import annotations

import contextlib
import os
import stat
import time
from dataclasses import dataclass

BANS_FILE = "bans.json"
HISTORY_FILE = "history"
# The bans file's own format: a later one must be refused, not misread.
BANS_FORMAT = 1
# The largest bans file read (a million bans is about 40 MB).
MAX_BANS_FILE = 64 * 1024 * 1024


class StateDirError(Exception):
    """Why the state directory cannot be the server's."""


@dataclass(frozen=True)
class StateDir:
    path: str
    # The bans as bans.to_rows wrote them, and how long ago (wall clock):
    # their seconds left are that much fewer now.
    bans: list[object]
    elapsed: float

    @property
    def bans_path(self) -> str:
        return os.path.join(self.path, BANS_FILE)


def open_state_dir(path: str) -> StateDir:
    """The directory, made (mode 0700) if its parent is there, with what it
    holds; raises StateDirError."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        try:
            os.mkdir(path, 0o700)
        except OSError as error:
            raise StateDirError(
                f"cannot create the state directory {path}: {error.strerror or error}"
            ) from None
        info = os.stat(path)
    except OSError as error:
        raise StateDirError(f"cannot use the state directory {path}: {error.strerror}") from None
    if not stat.S_ISDIR(info.st_mode):
        raise StateDirError(f"the state directory {path} is not a directory")
    if not os.access(path, os.W_OK | os.X_OK):
        raise StateDirError(f"the state directory {path} is not writable")
    bans, elapsed = read_bans(os.path.join(path, BANS_FILE))
    return StateDir(path, bans, elapsed)


def read_bans(path: str) -> tuple[list[object], float]:
    """The rows of a bans file and the seconds since it was written; none
    if there is no file yet."""
    try:
        with open(path, "rb") as file:
            data = file.read(MAX_BANS_FILE + 1)
    except FileNotFoundError:
        return [], 0.0
    except OSError as error:
        raise StateDirError(f"cannot read the bans file {path}: {error.strerror}") from None
    if len(data) > MAX_BANS_FILE:
        raise StateDirError(f"the bans file {path} is larger than {MAX_BANS_FILE} bytes")
    import json  # (only now: a start without a bans file has no need of it)

    try:
        saved = json.loads(data)
    except (UnicodeDecodeError, ValueError) as error:
        raise StateDirError(f"the bans file {path} is not JSON: {error}") from None
    if not isinstance(saved, dict) or saved.get("format") != BANS_FORMAT:
        raise StateDirError(
            f"the bans file {path} is not a bans file of format {BANS_FORMAT} "
            "(written by another version of trio-chat?)"
        )
    written = saved.get("written")
    rows = saved.get("bans")
    if isinstance(written, bool) or not isinstance(written, int | float):
        raise StateDirError(f"the bans file {path} is damaged: no 'written' time")
    if not isinstance(rows, list):
        raise StateDirError(f"the bans file {path} is damaged: no 'bans' list")
    from ..bans import from_rows

    try:
        from_rows(rows, 0.0)  # every row checked now, before a port is bound
    except ValueError as error:
        raise StateDirError(
            f"the bans file {path} is damaged: {error} (move it away to start without it)"
        ) from None
    # A clock set back since: the bans have not run backwards.
    return rows, max(0.0, time.time() - float(written))


def bans_document(rows: list[list[object]], written: float) -> bytes:
    """What the bans file holds: ``rows`` from bans.to_rows, written at ``written``."""
    import json

    document = {"format": BANS_FORMAT, "written": written, "bans": rows}
    return json.dumps(document, ensure_ascii=False, indent=0).encode() + b"\n"


def write_atomically(path: str, data: bytes) -> None:
    """Replace the file at ``path`` with ``data`` at once, on disk when this
    returns: a crash leaves the old file or the new one, never a part, and
    a write that fails leaves no temporary file behind."""
    directory = os.path.dirname(os.path.abspath(path))
    temporary = f"{path}.{os.getpid()}.tmp"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):  # (the error that matters is the one raised)
            os.unlink(temporary)
        raise
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
