"""An IRC client for end-to-end tests, synchronous like ``processes.Program``:
a socket, a thread that reads and parses its lines (irctokens), and waits
for expected messages with generous deadlines, never a fixed sleep.

``expect`` waits for the first message that matches and takes it, leaving
every other message for later: what a test never asked for stays in
``rest()``, so a test that ends with ``assert peer.rest() == [...]`` sees
everything the server sent that it did not expect.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Sequence

from irctokens.line import Line, tokenise

from .processes import DEADLINE

# What a registration burst holds between 001 and its last line (422, no MOTD).
BURST = frozenset({"002", "003", "004", "005"})


class IrcPeer:
    """One IRC connection to the server's IRC port."""

    def __init__(
        self, port: int, name: str = "irc", host: str = "127.0.0.1", hang_up: bool = True
    ) -> None:
        """``hang_up``: close the socket as soon as the server closes its side
        (as clients do); False keeps it open until ``close``."""
        self.name = name
        self.hang_up = hang_up
        self.nick = "*"
        self.sock = socket.create_connection((host, port), timeout=DEADLINE)
        self.sock.settimeout(None)  # the reader blocks; waits have their own deadlines
        self.messages: list[Line] = []  # arrived, not yet taken by expect/next_message
        self.received: list[str] = []  # every line as it came, for failure messages
        self.closed = False  # the server closed the connection
        self._changed = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        pending = b""
        try:
            while data := self.sock.recv(65536):
                pending += data
                *lines, pending = pending.split(b"\n")
                with self._changed:
                    for raw in lines:
                        text = raw.rstrip(b"\r").decode()
                        self.received.append(text)
                        self.messages.append(tokenise(text))
                    self._changed.notify_all()
        except OSError:
            pass  # closed by close(), or reset: the connection is over either way
        # The server hung up (at the latest when the test's processes are
        # killed): the socket goes with the connection, whatever the test did.
        if self.hang_up:
            self.sock.close()
        with self._changed:
            self.closed = True
            self._changed.notify_all()

    # ----- sending -----

    def send(self, *lines: str) -> None:
        """Each of ``lines`` with its CR LF."""
        self.sock.sendall("".join(f"{line}\r\n" for line in lines).encode())

    def register(self, nick: str, caps: Sequence[str] = ()) -> None:
        """NICK and USER (and CAP REQ for ``caps``), then wait for the burst
        (001 to 422) and take it."""
        if caps:
            self.send("CAP LS 302")
        self.send(f"NICK {nick}", f"USER {nick} 0 * :{nick} in a test")
        if caps:
            # CAP replies name the client by its nick once it has one, else "*".
            self.expect("CAP", where=lambda line: line.params[1] == "LS")
            asked = " ".join(caps)
            self.send(f"CAP REQ :{asked}")
            self.expect("CAP", where=lambda line: line.params[1:] == ["ACK", asked])
            self.send("CAP END")
        self.welcome(nick)

    def welcome(self, nick: str) -> None:
        """The registration burst (001 to 422) as ``nick`` is what comes next: take it."""
        first = self.next_message()
        assert first.command == "001" and first.params[:1] == [nick], (
            f"{self.name}: not registered as {nick}: {first.format()!r}"
        )
        while (line := self.next_message()).command != "422":
            assert line.command in BURST, f"{self.name}: {line.format()!r} in the burst"
        self.nick = nick

    def join(self, channel: str, names: str) -> None:
        """JOIN ``channel`` with room in it: its JOIN, then NAMES ``names``."""
        self.send(f"JOIN {channel}")
        self.expect_joined(channel, names)

    def expect_joined(self, channel: str, names: str) -> None:
        """Our JOIN of ``channel``, and its NAMES (``names``, space-separated)."""
        self.expect("JOIN", channel, source=self.mask)
        self.expect("353", self.nick, "=", channel, names)
        self.expect("366", self.nick, channel, "End of /NAMES list")

    @property
    def mask(self) -> str:
        return mask(self.nick)

    # ----- waiting -----

    def expect(
        self,
        command: str,
        *params: str,
        source: str | None = None,
        where: Callable[[Line], bool] | None = None,
        deadline: float = DEADLINE,
    ) -> Line:
        """Wait for the first message with ``command`` whose parameters are
        ``params`` (with ``where``: whose first parameters are ``params`` and
        that ``where`` accepts), from ``source`` if given; take it."""

        def matches(line: Line) -> bool:
            if line.command != command or (source is not None and line.source != source):
                return False
            if where is None:
                return line.params == list(params)
            return line.params[: len(params)] == list(params) and where(line)

        wanted = " ".join([command, *params])
        return self._take(matches, wanted, deadline)

    def poll(self, command: str, *params: str, deadline: float) -> Line | None:
        """``expect`` for a while: the message if it comes by then, else None.
        (For a test that keeps doing something until a message comes.)"""
        try:
            return self.expect(command, *params, deadline=deadline)
        except AssertionError:
            if self.closed:
                raise
            return None

    def next_message(self, deadline: float = DEADLINE) -> Line:
        """The next message, whatever it is."""
        return self._take(lambda _: True, "a message", deadline)

    def _take(self, matches: Callable[[Line], bool], wanted: str, deadline: float) -> Line:
        end = time.monotonic() + deadline
        with self._changed:
            while True:
                for index, line in enumerate(self.messages):
                    if matches(line):
                        del self.messages[index]
                        return line
                remaining = end - time.monotonic()
                if self.closed or remaining <= 0:
                    raise AssertionError(
                        f"{self.name}: no {wanted!r} "
                        f"({'closed' if self.closed else 'still open'}; not taken "
                        f"{[line.format() for line in self.messages]!r}; "
                        f"received {self.received!r})"
                    )
                self._changed.wait(remaining)

    def expect_closed(self, deadline: float = DEADLINE) -> None:
        """Wait until the server closes the connection."""
        with self._changed:
            if not self._changed.wait_for(lambda: self.closed, deadline):
                raise AssertionError(f"{self.name}: still open; received {self.received!r}")

    def rest(self) -> list[str]:
        """The messages not taken yet, formatted (and now taken)."""
        with self._changed:
            rest = [line.format() for line in self.messages]
            self.messages.clear()
        return rest

    def close(self) -> None:
        """Hang up (the reader thread sees the end and stops)."""
        with contextlib.suppress(OSError):  # the server hung up first
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()


SERVER_NAME = "irc.test"  # what the tests' servers are named (--irc-server-name)


def mask(name: str) -> str:
    """A member's ``nick!user@host`` as the server shows it (render.py)."""
    return f"{name}!{name[:16]}@{SERVER_NAME}"
