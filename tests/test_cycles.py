"""A departed connection leaves no cyclic garbage (issue 28).

Under churn, every connection that stayed alive in a reference cycle until
the cyclic collector's full pass made that pass long (~100 ms with the
server stopped). Here each kind of departure (native hang-up and /quit, IRC
QUIT and hang-up, and a few more) happens with the collector off; then a
collection must find nothing at all: the connection was freed by reference
counting the moment it ended.

The streams are socket pairs, as in production, not trio.testing's memory
streams: those make cycles of their own (each one-way pair's
``send_all_hook`` and ``close_hook`` are closures over its streams,
trio/testing/_memory_streams.py, ``memory_stream_one_way_pair``), 21
objects a direction, which would hide ours.
"""

from __future__ import annotations

import gc
import itertools
import socket
from collections.abc import Awaitable, Callable

import pytest
import trio
import trio.testing

from trio_chat import wire
from trio_chat.irc.port import serve_connection

from .harness import Harness, Peer, running_server, settle
from .irc_harness import SETTINGS, IrcHarness, IrcPeer

Clock = trio.testing.MockClock
# Each IRC peer its own address: one address's peers share a line budget.
ADDRESSES = (f"192.0.2.{n % 250 + 1}" for n in itertools.count())


def socket_stream_pair() -> tuple[trio.SocketStream, trio.SocketStream]:
    ours, theirs = socket.socketpair()
    return (
        trio.SocketStream(trio.socket.from_stdlib_socket(ours)),
        trio.SocketStream(trio.socket.from_stdlib_socket(theirs)),
    )


async def native(harness: Harness, name: str, channel: str = "general") -> Peer:
    """A native peer on a socket pair that said hello, settled."""
    client, server = socket_stream_pair()
    harness.nursery.start_soon(harness.server.handle_connection, server, channel)
    peer = Peer(name, client)
    harness.nursery.start_soon(peer.read_loop)
    await client.send_all(wire.encode_hello(name))
    await settle()
    return peer


async def irc_peer(irc: IrcHarness, nick: str, join: bool = True) -> IrcPeer:
    """An IRC peer on a socket pair: registered and, with ``join``, in #general."""
    client, server = socket_stream_pair()
    harness = irc.harness
    harness.nursery.start_soon(
        serve_connection, harness.server, server, SETTINGS, irc.renderer, next(ADDRESSES)
    )
    peer = IrcPeer(nick, client)
    harness.nursery.start_soon(peer.read_loop)
    await peer.send(f"NICK {nick}", f"USER {nick} 0 * :{nick} the tester")
    await peer.expect(lambda m: m.command == "422")
    if join:
        await peer.send("JOIN #general")
        await peer.expect(lambda m: m.command == "366")
    await settle()
    return peer


async def irc_gone(peer: IrcPeer) -> None:
    """Once the server closed its end: it is done with the connection."""
    await peer.wait_closed()
    await peer.stream.aclose()
    await settle()


async def hang_up(peer: Peer | IrcPeer) -> None:
    """Hang up (the server reads its end of the stream), and wait for the
    server to close its side: the connection's teardown is over."""
    stream = peer.stream
    assert isinstance(stream, trio.SocketStream)
    await stream.send_eof()
    await peer.wait_closed()
    await stream.aclose()
    await settle()


# Each departure: it connects, talks, and is gone (the server done with it).


async def native_hang_up(irc: IrcHarness) -> None:
    peer = await native(irc.harness, "alice")
    await peer.say("hello")
    await settle()
    await hang_up(peer)


async def native_quit(irc: IrcHarness) -> None:
    peer = await native(irc.harness, "bob")
    await peer.say("hello")
    await peer.say("/quit")
    await peer.wait_closed()
    await settle()


async def native_switch_and_kick(irc: IrcHarness) -> None:
    peer = await native(irc.harness, "carl")
    await peer.say("/switch random")
    await settle()
    await peer.say("/whisper stayer psst")
    irc.harness.console("/kick random:carl")
    await peer.wait_closed()
    await settle()


async def native_afk(irc: IrcHarness) -> None:
    peer = await native(irc.harness, "dora")
    await peer.wait_closed()  # (the MockClock jumps to the AFK timeout)
    await settle()


async def native_no_hello(irc: IrcHarness) -> None:
    client, server = socket_stream_pair()
    irc.harness.nursery.start_soon(irc.harness.server.handle_connection, server, "general")
    peer = Peer("?", client)
    irc.harness.nursery.start_soon(peer.read_loop)
    await peer.wait_closed()  # the hello timeout
    await settle()


async def irc_quit(irc: IrcHarness) -> None:
    peer = await irc_peer(irc, "erin")
    await peer.send("PRIVMSG #general :hi", "PRIVMSG stayer :psst", "QUIT :bye")
    await irc_gone(peer)


async def irc_hang_up(irc: IrcHarness) -> None:
    peer = await irc_peer(irc, "fred")
    await peer.send("CAP REQ :echo-message server-time", "JOIN #random", "PART #general")
    await peer.send("PRIVMSG #random :hi", "WHO #random", "WHOIS stayer")
    await settle()
    await hang_up(peer)


async def irc_kicked_then_timeout(irc: IrcHarness) -> None:
    peer = await irc_peer(irc, "gina")
    irc.harness.console("/kick general:gina")
    await irc_gone(peer)  # the ping timeout, once the MockClock jumps


async def irc_unregistered(irc: IrcHarness) -> None:
    client, server = socket_stream_pair()
    harness = irc.harness
    harness.nursery.start_soon(
        serve_connection, harness.server, server, SETTINGS, irc.renderer, next(ADDRESSES)
    )
    peer = IrcPeer("?", client)
    harness.nursery.start_soon(peer.read_loop)
    await peer.send("NICK stayer")  # taken
    await settle()
    await hang_up(peer)


DEPARTURES: dict[str, Callable[[IrcHarness], Awaitable[None]]] = {
    "native-hang-up": native_hang_up,
    "native-quit": native_quit,
    "native-switch-kick": native_switch_and_kick,
    "native-afk": native_afk,
    "native-no-hello": native_no_hello,
    "irc-quit": irc_quit,
    "irc-hang-up": irc_hang_up,
    "irc-kicked-timeout": irc_kicked_then_timeout,
    "irc-unregistered": irc_unregistered,
}


def type_name(thing: object) -> str:
    kind = type(thing)
    return f"{kind.__module__}.{kind.__qualname__}"


@pytest.mark.parametrize("departure", list(DEPARTURES))
async def test_a_departed_connection_leaves_no_cyclic_garbage(
    departure: str, autojump_clock: Clock
) -> None:
    depart = DEPARTURES[departure]
    async with running_server() as harness:
        irc = IrcHarness(harness)
        await native(harness, "stayer")  # (who may go AFK meanwhile)
        await depart(irc)  # once first: whatever is made once is made
        was_enabled = gc.isenabled()
        gc.collect()
        gc.disable()
        try:
            gc.collect()
            for _ in range(3):
                await depart(irc)
            await settle()
            gc.set_debug(gc.DEBUG_SAVEALL)
            gc.collect()
            garbage = [type_name(thing) for thing in gc.garbage]
        finally:
            gc.set_debug(0)
            gc.garbage.clear()
            if was_enabled:
                gc.enable()
        ours = sorted(name for name in garbage if name.startswith("trio_chat."))
        assert ours == []
        # Nor any of trio's: with socket streams, nothing is left to the collector.
        assert sorted(garbage) == []
