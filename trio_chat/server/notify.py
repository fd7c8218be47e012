"""sd_notify with the standard library: state changes as datagrams to
``$NOTIFY_SOCKET``, for a service manager (systemd's Type=notify or
notify-reload; contrib/systemd/).

Imported only when ``NOTIFY_SOCKET`` is set (``from_environment``'s callers
check first), so a server started without it pays nothing. A failed send is
said once on stderr and never stops the server: the manager's own timeouts
deal with a server that never said it was ready.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable

ENVIRONMENT = "NOTIFY_SOCKET"


class Notifier:
    """Sends ``KEY=VALUE`` lines to the manager's datagram socket."""

    def __init__(self, address: str, log: Callable[[str], None]) -> None:
        # "@name" is the abstract namespace (a leading NUL byte).
        self.address = "\0" + address[1:] if address.startswith("@") else address
        self._log = log
        self._failed = False

    def send(self, *fields: str) -> None:
        message = "\n".join(fields).encode()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.connect(self.address)
                sock.sendall(message)
        except OSError as error:
            if not self._failed:
                self._failed = True
                self._log(f"cannot notify the service manager at {self.address!r}: {error}")

    def ready(self, status: str) -> None:
        """Every port is bound and served (again, after a reload). Under
        --workers the parent says it, for all of them: it is the main process."""
        self.send("READY=1", f"STATUS={status}")

    def reloading(self) -> None:
        # notify-reload wants the time of the request on CLOCK_MONOTONIC, in µs.
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        self.send("RELOADING=1", f"MONOTONIC_USEC={usec}", "STATUS=reloading the config")

    def stopping(self) -> None:
        self.send("STOPPING=1", "STATUS=shutting down")


def from_environment(log: Callable[[str], None]) -> Notifier | None:
    """The manager's notifier, if it gave a socket (an absolute path or an
    abstract "@name"; anything else is ignored, as sd_notify does)."""
    address = os.environ.get(ENVIRONMENT, "")
    if not address.startswith(("/", "@")) or len(address) < 2:
        return None
    return Notifier(address, log)
