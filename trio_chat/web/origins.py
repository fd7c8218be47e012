"""The names the web port is reached by, and the pages allowed to chat.

A browser sends the ``Host`` it looked up and the ``Origin`` of the page, and
both are the peer's claims: a page on a domain that resolves to this machine
(DNS rebinding) sends its own name in both, so comparing one with the other
proves nothing. The server accepts only names it knows itself: the ``--web``
address, the loopback names at its port, the address the connection actually
reached, and each ``--web-origin`` (a proxy's public name); a WebSocket's
``Origin`` must be one of those origins too.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from starlette.types import Scope

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
DEFAULT_PORTS = {"http": 80, "https": 443}


def authority(name: str, port: int, scheme: str = "http") -> list[str]:
    """The ``Host`` values a browser sends for ``name`` at ``port``: without
    the port when it is the scheme's default, as browsers write it, and with it."""
    name = f"[{name}]" if ":" in name else name
    forms = [f"{name}:{port}".lower()]
    if port == DEFAULT_PORTS[scheme]:
        forms.append(name.lower())
    return forms


class KnownOrigins:
    def __init__(self, web: tuple[str, int], extra: Iterable[tuple[str, str, int]] = ()) -> None:
        """``web`` is --web's (HOST, PORT); ``extra`` every --web-origin as
        (scheme, host, port), as ``trio_chat.arguments.web_origin`` gives it."""
        host, port = web
        self.hosts: set[str] = set()
        self.origins: set[str] = set()
        for name in (host, *LOOPBACK_NAMES):
            self._add("http", name, port)
        for scheme, name, origin_port in extra:
            self._add(scheme, name, origin_port)

    def _add(self, scheme: str, name: str, port: int) -> None:
        forms = authority(name, port, scheme)
        self.hosts.update(forms)
        self.origins.update(f"{scheme}://{form}" for form in forms)

    def host_known(self, scope: Scope) -> bool:
        """The request names this server (one ``Host``, a known one)."""
        host = only(scope, b"host")
        return host is not None and (host in self.hosts or host in reached(scope))

    def origin_allowed(self, scope: Scope) -> bool:
        """The page that opens a WebSocket came from this server."""
        origin = only(scope, b"origin")
        return origin is not None and (
            origin in self.origins or origin in (f"http://{form}" for form in reached(scope))
        )


def only(scope: Scope, name: bytes) -> str | None:
    """The value of header ``name`` (lower case), if it was sent exactly once."""
    values: Sequence[bytes] = [value for key, value in scope.get("headers", []) if key == name]
    if len(values) != 1:
        return None
    return values[0].decode("latin-1").strip().lower()


def reached(scope: Scope) -> list[str]:
    """The address the connection reached (its local end), which the server
    knows without asking the peer: a page loaded by IP address on the LAN."""
    server = scope.get("server")
    if not server or server[1] is None:
        return []
    return authority(str(server[0]), int(server[1]))
