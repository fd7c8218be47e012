"""Lines for a whole channel are shared by its members' sessions within one
scheduling round (trio_chat/server/broadcast.py): each member still gets
exactly its own lines, in the order the rules decided them."""

from __future__ import annotations

import trio
import trio.testing

from trio_chat import effects, wire
from trio_chat.hub import Member
from trio_chat.server.core import Limits
from trio_chat.server.session import Session

from .harness import STAMP, Harness, Peer, running_server, settle

SPEAKER = "op"
SAID = f"[{SPEAKER} ({STAMP})] "


async def joined(harness: Harness, *names: str, channel: str = "general") -> list[Peer]:
    peers = [await harness.join(name, channel) for name in names]
    await settle()
    for peer in peers:
        peer.take()
    return peers


def member(harness: Harness, name: str) -> Member:
    for channel in harness.server.hub.channels.values():
        if name in channel.members:
            return channel.members[name]
    raise KeyError(name)


def say(recipients: tuple[Member, ...], line: str) -> effects.Chat:
    """A chat line for exactly these recipients, as the rules would decide it."""
    return effects.Chat(STAMP, recipients, SPEAKER, line)


def heard(peer: Peer) -> list[str]:
    """The messages of the chat lines ``peer`` got since the last look."""
    return [line.removeprefix(SAID) for line in peer.take()]


async def test_private_lines_between_channel_lines_keep_their_place() -> None:
    async with running_server() as harness:
        alice, bob, carol = await joined(harness, "alice", "bob", "carol")
        a, b, c = (member(harness, name) for name in ("alice", "bob", "carol"))
        # One round: nothing awaits between these, so no flush comes between.
        harness.server.apply([say((a, b, c), "one"), say((c,), "to carol alone")])
        harness.server.apply([say((a, b, c), "two"), say((a, b), "three")])
        harness.server.apply([say((a, b, c), "four")])
        await settle()
        assert heard(alice) == ["one", "two", "three", "four"]
        assert heard(bob) == ["one", "two", "three", "four"]
        assert heard(carol) == ["one", "to carol alone", "two", "four"]


async def test_a_member_in_two_audiences_in_one_round_gets_each_line_once() -> None:
    async with running_server() as harness:
        alice, bob = await joined(harness, "alice", "bob")
        (dave,) = await joined(harness, "dave", channel="random")
        a, b, d = (member(harness, name) for name in ("alice", "bob", "dave"))
        # bob is told about another channel's line between two of his own
        # channel's lines (as a member who switched in mid-round would be).
        harness.server.apply([say((a, b), "general 1"), say((d, b), "random 1")])
        harness.server.apply([say((a, b), "general 2"), say((d, b), "random 2")])
        harness.server.apply([say((d, b), "random 3")])
        await settle()
        assert heard(alice) == ["general 1", "general 2"]
        assert heard(bob) == ["general 1", "random 1", "general 2", "random 2", "random 3"]
        assert heard(dave) == ["random 1", "random 2", "random 3"]


async def test_a_round_longer_than_a_broadcast_s_cap_arrives_whole_and_in_order() -> None:
    limits = Limits()
    cap = limits.low_water_frames
    async with running_server(limits=limits) as harness:
        peers = await joined(harness, "alice", "bob", "carol")
        everyone = tuple(member(harness, peer.name) for peer in peers)
        lines = [f"line {i}" for i in range(3 * cap + 5)]
        harness.server.apply([say(everyone, line) for line in lines])
        await settle()
        for peer in peers:
            assert heard(peer) == lines


async def test_a_round_over_the_outbox_limit_drops_its_recipients_as_before() -> None:
    limits = Limits(outbox_frames=64, flood_rate=0)
    async with running_server(limits=limits) as harness:
        peers = await joined(harness, "alice", "bob")
        everyone = tuple(member(harness, peer.name) for peer in peers)
        # Within the limit, together with what joining left queued: delivered.
        harness.server.apply([say(everyone, f"fits {i}") for i in range(40)])
        await settle()
        for peer in peers:
            assert heard(peer) == [f"fits {i}" for i in range(40)]
        # More than the outbox holds in one round: not reading, as far as
        # the server can tell; each is dropped, and nothing else is written.
        harness.server.apply([say(everyone, f"over {i}") for i in range(200)])
        await settle()
        for peer in peers:
            assert peer.closed
            assert heard(peer) == []
            assert peer.bye is None
        assert harness.server.sessions == set()


async def test_a_member_dropped_mid_round_leaves_the_others_their_lines() -> None:
    async with running_server() as harness:
        alice, bob, carol = await joined(harness, "alice", "bob", "carol")
        a, b, c = (member(harness, name) for name in ("alice", "bob", "carol"))
        harness.server.apply([say((a, b, c), "one")])
        assert isinstance(b.conn, Session)
        b.conn.abort("test: dropped")
        harness.server.apply([say((a, b, c), "two")])
        await settle()
        assert heard(alice) == ["one", "two"]
        assert heard(carol) == ["one", "two"]
        assert bob.closed and heard(bob) == []


async def test_sockets_get_the_same_lines_as_memory_streams() -> None:
    """Plain TCP sessions write a round's lines themselves (not through the
    writer task); the shared bytes reach every socket."""
    async with running_server() as harness:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        port = listeners[0].socket.getsockname()[1]

        async def handler(stream: trio.SocketStream) -> None:
            await harness.server.handle_connection(stream, "general")

        harness.nursery.start_soon(trio.serve_listeners, handler, listeners)
        streams = [await trio.open_tcp_stream("127.0.0.1", port) for _ in range(3)]
        for index, stream in enumerate(streams):
            await stream.send_all(wire.encode_hello(f"s{index}"))
            await _read_lines(stream, lambda got, i=index: f"s{i} has joined" in got[-1])
        everyone = tuple(member(harness, f"s{index}") for index in range(3))
        lines = [f"socket line {i}" for i in range(1000)]
        harness.server.apply([say(everyone, line) for line in lines])
        for stream in streams:
            got: list[str] = []
            got = await _read_lines(stream, lambda got: got[-1:] == [lines[-1]])
            assert [line for line in got if line.startswith("socket line")] == lines
            await stream.aclose()


async def _read_lines(stream: trio.SocketStream, done: object) -> list[str]:
    decoder = wire.FrameDecoder()
    got: list[str] = []
    with trio.fail_after(30):
        while True:
            data = await stream.receive_some(65536)
            assert data, "the server closed the connection"
            for frame_type, payload, _ in decoder.feed(data):
                if frame_type == wire.FrameType.LINE:
                    got.append(wire.decode_line(payload)[2].removeprefix(SAID))
            if got and done(got):  # type: ignore[operator]
                return got
