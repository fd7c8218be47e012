"""``--control PATH``: the control socket's file, bound before trio is
imported (docs/behaviour.md, "The control socket"; no trio here).

The socket is created with a umask that leaves it mode 0600, so there is no
moment when anyone but the server's user could connect: access to the
console is the permission of this file (docs/security.md). A file already at
PATH is taken only if it is a stale socket (nothing accepts on it: a server
that was killed); a live one is another server's, anything else is not ours
to replace.
"""

from __future__ import annotations

import errno
import os
import socket
import stat

# Connections waiting to be accepted; the server takes only so many at once
# anyway (control.MAX_CONNECTIONS).
LISTEN_BACKLOG = 16


class ControlSocketError(Exception):
    """Why PATH cannot be the control socket (said before any port is bound)."""


def clear_stale(path: str) -> None:
    """Make room for a control socket at ``path``: nothing there, or a stale
    socket (removed); else ControlSocketError."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    except OSError as error:
        raise ControlSocketError(f"cannot use {path}: {error.strerror or error}") from None
    if stat.S_ISDIR(info.st_mode):
        raise ControlSocketError(f"cannot use {path}: it is a directory")
    if not stat.S_ISSOCK(info.st_mode):
        raise ControlSocketError(f"cannot use {path}: it exists and is not a socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.setblocking(False)  # a full backlog must not hang the start
    try:
        probe.connect(path)
    except ConnectionRefusedError:
        pass  # nobody accepts on it: a server that did not remove it
    except BlockingIOError:
        raise ControlSocketError(f"{path} is in use: another server answers on it") from None
    except OSError as error:
        raise ControlSocketError(f"cannot use {path}: {error.strerror or error}") from None
    else:
        raise ControlSocketError(f"{path} is in use: another server answers on it")
    finally:
        probe.close()
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as error:
        raise ControlSocketError(
            f"cannot remove the stale socket {path}: {error.strerror or error}"
        ) from None


class ControlSocket:
    """The bound, listening control socket and the file it made."""

    def __init__(self, path: str) -> None:
        if not path:
            # (An empty name would bind a socket with no file: Linux's abstract names.)
            raise ControlSocketError("the control socket needs a path")
        clear_stale(path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        previous = os.umask(0o177)  # rw for the owner only, from the start
        try:
            sock.bind(path)
        except OSError as error:
            sock.close()
            reason = error.strerror or str(error)
            if error.errno == errno.EADDRINUSE:
                reason = "another process created it meanwhile"
            raise ControlSocketError(f"cannot open the control socket {path}: {reason}") from None
        finally:
            os.umask(previous)
        sock.listen(LISTEN_BACKLOG)
        self.path = path
        self.sock = sock
        info = os.stat(path)
        self._identity = (info.st_dev, info.st_ino)

    def remove(self) -> None:
        """Remove the file, if it is still this socket's (not one a later server made)."""
        try:
            info = os.stat(self.path)
            if (info.st_dev, info.st_ino) == self._identity:
                os.unlink(self.path)
        except OSError:
            pass
        self.sock.close()
