"""In-process IRC peers: an IRC connection to a harness's ChatServer over a
memory stream, its messages parsed with irctokens.

Like harness.Peer, nothing here sleeps: a test waits for the message it
expects (time may autojump meanwhile on a MockClock) or settles.
"""

from __future__ import annotations

from collections.abc import Callable

import trio
import trio.testing
from irctokens.line import Line, tokenise

from trio_chat.irc.client import IrcSettings
from trio_chat.irc.port import open_irc, serve_connection
from trio_chat.irc.render import IrcRenderer

from .harness import Harness, settle

SERVER_NAME = "irc.test"
SETTINGS = IrcSettings(
    server_name=SERVER_NAME, password=None, ping_interval=90.0, ping_timeout=60.0
)


class IrcPeer:
    """An IRC client over a memory stream: what it sends, what it got."""

    def __init__(self, nick: str, stream: trio.abc.Stream) -> None:
        self.nick = nick
        self.stream = stream
        self.messages: list[Line] = []
        self.raw: list[bytes] = []
        self.closed = False
        self.closed_at: float | None = None
        self._cursor = 0
        self._changed = trio.Event()

    async def read_loop(self) -> None:
        pending = b""
        try:
            while True:
                data = await self.stream.receive_some(65536)
                if not data:
                    break
                pending += data
                *lines, pending = pending.split(b"\r\n")
                for raw in lines:
                    self.raw.append(raw)
                    self.messages.append(tokenise(raw.decode()))
                self._wake()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        self.closed = True
        self.closed_at = trio.current_time()
        self._wake()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def send(self, *lines: str) -> None:
        await self.stream.send_all(b"".join(line.encode() + b"\r\n" for line in lines))

    async def send_raw(self, data: bytes) -> None:
        await self.stream.send_all(data)

    def take(self) -> list[Line]:
        fresh = self.messages[self._cursor :]
        self._cursor = len(self.messages)
        return fresh

    def take_text(self) -> list[str]:
        """What arrived since the last take, as ``COMMAND param param ...`` strings
        (source and tags left out), for compact assertions."""
        return [" ".join([m.command, *m.params]) for m in self.take()]

    async def next(self) -> Line:
        while self._cursor >= len(self.messages):
            if self.closed:
                raise AssertionError(f"{self.nick}: closed while waiting for a message")
            await self._changed.wait()
        message = self.messages[self._cursor]
        self._cursor += 1
        return message

    async def expect(self, wanted: str | Callable[[Line], bool]) -> Line:
        """Skip to the next message that is ``wanted`` (``COMMAND param ...``, or a test)."""
        while True:
            message = await self.next()
            text = " ".join([message.command, *message.params])
            if wanted(message) if callable(wanted) else text == wanted:
                return message

    async def wait_closed(self) -> None:
        while not self.closed:
            await self._changed.wait()


class IrcHarness:
    """The IRC port of a harness's server, reached over memory streams."""

    def __init__(self, harness: Harness, settings: IrcSettings = SETTINGS) -> None:
        self.harness = harness
        self.settings = settings
        self.renderer: IrcRenderer = open_irc(harness.server, settings)

    async def connect(self, nick: str, address: str | None = None) -> IrcPeer:
        """``address``: the IP address the server is told it comes from."""
        client_stream, server_stream = trio.testing.memory_stream_pair()
        server = self.harness.server
        self.harness.nursery.start_soon(
            serve_connection, server, server_stream, self.settings, self.renderer, address
        )
        peer = IrcPeer(nick, client_stream)
        self.harness.nursery.start_soon(peer.read_loop)
        return peer

    async def register(
        self, nick: str, caps: str = "", user: str = "", address: str | None = None
    ) -> IrcPeer:
        """Connect, register as ``nick`` (asking for ``caps``) and settle;
        the registration burst is taken."""
        peer = await self.connect(nick, address)
        lines = []
        if caps:
            lines += ["CAP LS 302", f"CAP REQ :{caps}"]
        lines += [f"NICK {nick}", f"USER {user or nick} 0 * :{nick} the tester"]
        if caps:
            lines.append("CAP END")
        await peer.send(*lines)
        await peer.expect(lambda m: m.command == "422")
        await settle()
        peer.take()
        return peer

    async def join(
        self, nick: str, channel: str = "general", caps: str = "", address: str | None = None
    ) -> IrcPeer:
        """Registered and in ``#channel`` (its JOIN burst taken)."""
        peer = await self.register(nick, caps, address=address)
        await peer.send(f"JOIN #{channel}")
        await peer.expect(lambda m: m.command == "366")
        await settle()
        peer.take()
        return peer
