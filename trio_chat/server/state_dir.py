"""A lone server's ``--state-dir DIR``: what it keeps across a restart
(docs/behaviour.md, "/ban, /unban and /bans" and "The history file").

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
import math
import os
import stat
import time
from dataclasses import dataclass

BANS_FILE = "bans.json"
HISTORY_FILE = "history"
LOCK_FILE = "lock"
# The most seconds a saved ban can have left: /ban's longest time.
MAX_LEFT = 365 * 24 * 60 * 60
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
    # The lock that keeps a second server out, held open until the process
    # ends (-1: none, a test's).
    lock: int = -1

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
    if info.st_mode & stat.S_IWOTH:
        # Anyone could put a file or a link where the server writes.
        raise StateDirError(f"the state directory {path} is writable by every user")
    if not os.access(path, os.W_OK | os.X_OK):
        raise StateDirError(f"the state directory {path} is not writable")
    lock = lock_state_dir(path)
    try:
        bans, elapsed = read_bans(os.path.join(path, BANS_FILE))
    except BaseException:
        os.close(lock)
        raise
    return StateDir(path, bans, elapsed, lock)


def lock_state_dir(path: str) -> int:
    """An open descriptor holding ``DIR/lock`` locked: two servers on one
    directory would each overwrite what the other kept. The kernel lets go
    of it when the process ends, however it ends."""
    import fcntl

    lock_path = os.path.join(path, LOCK_FILE)
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as error:
        raise StateDirError(f"cannot lock the state directory {path}: {error.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise StateDirError(
            f"the state directory {path} is in use: another server keeps its state there"
        ) from None
    except OSError as error:
        os.close(fd)
        raise StateDirError(f"cannot lock the state directory {path}: {error.strerror}") from None
    return fd


def read_bans(path: str) -> tuple[list[object], float]:
    """The rows of a bans file and the seconds since it was written; none
    if there is no file yet."""
    try:
        # Not blocking: a FIFO put there would hang the start for ever.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return [], 0.0
    except OSError as error:
        raise StateDirError(f"cannot read the bans file {path}: {error.strerror}") from None
    with open(fd, "rb") as file:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise StateDirError(f"the bans file {path} is not a regular file")
        try:
            data = file.read(MAX_BANS_FILE + 1)
        except OSError as error:
            raise StateDirError(f"cannot read the bans file {path}: {error.strerror}") from None
    if len(data) > MAX_BANS_FILE:
        raise StateDirError(f"the bans file {path} is larger than {MAX_BANS_FILE} bytes")
    import json  # (only now: a start without a bans file has no need of it)

    try:
        saved = json.loads(data)
    except (UnicodeDecodeError, ValueError) as error:
        raise StateDirError(f"the bans file {path} is not JSON: {error}") from None
    except RecursionError:
        raise StateDirError(f"the bans file {path} is not JSON a server writes") from None
    if not isinstance(saved, dict) or saved.get("format") != BANS_FORMAT:
        raise StateDirError(
            f"the bans file {path} is not a bans file of format {BANS_FORMAT} "
            "(written by another version of trio-chat?)"
        )
    written = saved.get("written")
    rows = saved.get("bans")
    if (
        isinstance(written, bool)
        or not isinstance(written, int | float)
        or not math.isfinite(written)
    ):
        raise StateDirError(f"the bans file {path} is damaged: no 'written' time")
    if not isinstance(rows, list):
        raise StateDirError(f"the bans file {path} is damaged: no 'bans' list")
    from ..bans import from_rows

    try:
        from_rows(rows, 0.0)  # every row checked now, before a port is bound
        longest = max((row[2] for row in rows if row[2] is not None), default=0.0)
        if longest > MAX_LEFT:
            raise ValueError(f"a ban with {longest:.0f} seconds left, more than a /ban gives")
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


def write_bans(path: str, rows: list[list[object]], written: float) -> None:
    """The bans file anew (in a worker thread: the JSON of many bans takes a while)."""
    write_atomically(path, bans_document(rows, written))


def write_atomically(path: str, data: bytes) -> None:
    """Replace the file at ``path`` with ``data`` at once, on disk when this
    returns: a crash leaves the old file or the new one, never a part, and
    a write that fails leaves no temporary file behind."""
    import tempfile

    directory = os.path.dirname(os.path.abspath(path))
    # A new file of a name nobody could guess (O_EXCL, mode 0600): no link
    # put in the directory can make the write land elsewhere.
    fd, temporary = tempfile.mkstemp(prefix=os.path.basename(path) + ".", dir=directory)
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
