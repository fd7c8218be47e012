"""In process (behaviour.md, "Joining and the waiting queue" and "Chatting"):
joining, the waiting queue, chat, isolation, drops."""

from __future__ import annotations

from trio_chat.wire import FrameType, LineKind

from .harness import Harness, Peer, chat, settle, srv


async def fill(
    harness: Harness, count: int, channel: str = "general", prefix: str = "u"
) -> list[Peer]:
    return [await harness.join(f"{prefix}{i}", channel) for i in range(count)]


async def test_join_sees_welcome_then_joined(harness: Harness) -> None:
    alice = await harness.join("alice")
    assert alice.take() == [
        srv("Welcome to the general channel, alice."),
        srv("alice has joined the channel."),
    ]
    assert harness.printed_lines() == [srv("alice has joined the general channel.")]
    bob = await harness.join("bob")
    assert bob.take() == [
        srv("Welcome to the general channel, bob."),
        srv("bob has joined the channel."),
    ]
    assert alice.take() == [srv("bob has joined the channel.")]
    assert harness.printed_lines() == [srv("bob has joined the general channel.")]


async def test_joins_keep_connection_order(harness: Harness) -> None:
    for name in ["carol", "alice", "bob"]:
        await harness.connect(name)
    await settle()
    assert harness.printed_lines() == [
        srv("carol has joined the general channel."),
        srv("alice has joined the general channel."),
        srv("bob has joined the general channel."),
    ]


async def test_full_channel_queues_in_order_with_positions(harness: Harness) -> None:
    members = await fill(harness, 5)
    harness.printed_lines()
    for member in members:
        member.take()
    first = await harness.join("q0")
    second = await harness.join("q1")
    assert first.take() == [
        srv("Welcome to the general channel, q0."),
        srv("You are in the waiting queue and there are 0 user(s) ahead of you."),
    ]
    assert second.take() == [
        srv("Welcome to the general channel, q1."),
        srv("You are in the waiting queue and there are 1 user(s) ahead of you."),
    ]
    assert harness.printed_lines() == []
    for member in members:
        assert member.take() == []


async def test_place_frees_longest_waiting_moves_in(harness: Harness) -> None:
    members = await fill(harness, 5)
    first = await harness.join("q0")
    second = await harness.join("q1")
    third = await harness.join("q2")
    for peer in [*members, first, second, third]:
        peer.take()
    harness.printed_lines()

    await members[0].say("/quit")
    await settle()
    assert harness.printed_lines() == [
        srv("u0 has left the channel."),
        srv("q0 has joined the general channel."),
    ]
    assert members[1].take() == [srv("u0 has left the channel."), srv("q0 has joined the channel.")]
    assert first.take() == [srv("q0 has joined the channel.")]
    assert second.take() == [
        srv("You are in the waiting queue and there are 0 user(s) ahead of you.")
    ]
    assert third.take() == [
        srv("You are in the waiting queue and there are 1 user(s) ahead of you.")
    ]
    assert members[0].bye == (0, "you left the chat")


async def test_leaving_queue_updates_only_those_behind(harness: Harness) -> None:
    await fill(harness, 5)
    first = await harness.join("q0")
    second = await harness.join("q1")
    third = await harness.join("q2")
    for peer in (first, second, third):
        peer.take()
    harness.printed_lines()
    await second.say("/quit")
    await settle()
    assert harness.printed_lines() == [srv("q1 has left the channel.")]
    assert first.take() == []
    assert third.take() == [
        srv("You are in the waiting queue and there are 1 user(s) ahead of you.")
    ]
    assert second.closed


async def test_chat_reaches_channel_and_server_only(harness: Harness) -> None:
    alice = await harness.join("alice")
    bob = await harness.join("bob")
    other = await harness.join("zed", "random")
    for peer in (alice, bob, other):
        peer.take()
    harness.printed_lines()
    await alice.say("  hello   there  ")
    await settle()
    assert alice.take() == [chat("alice", "hello   there")]
    assert bob.take() == [chat("alice", "hello   there")]
    assert bob.kinds[-1] == LineKind.CHAT
    assert other.take() == []
    assert harness.printed_lines() == [chat("alice", "hello   there")]


async def test_three_channels_are_isolated(harness: Harness) -> None:
    peers = {}
    for channel in ("general", "random", "help"):
        peers[channel] = [await harness.join(f"{channel}-{i}", channel) for i in range(2)]
    for group in peers.values():
        for peer in group:
            peer.take()
    for channel, group in peers.items():
        await group[0].say(f"in {channel}")
    await settle()
    for channel, group in peers.items():
        for peer in group:
            assert peer.take() == [chat(f"{channel}-0", f"in {channel}")]


async def test_unknown_slash_line_is_chat(harness: Harness) -> None:
    alice = await harness.join("alice")
    alice.take()
    await alice.say("/dance now")
    await settle()
    assert alice.take() == [chat("alice", "/dance now")]


async def test_queued_client_cannot_chat(harness: Harness) -> None:
    members = await fill(harness, 5)
    waiting = await harness.join("waiting")
    waiting.take()
    for member in members:
        member.take()
    harness.printed_lines()
    await waiting.say("let me in")
    await settle()
    assert waiting.take() == [
        srv("You are in the waiting queue and there are 0 user(s) ahead of you.")
    ]
    assert harness.printed_lines() == []
    for member in members:
        assert member.take() == []


async def test_duplicate_name_in_channel_is_refused(harness: Harness) -> None:
    await harness.join("alice")
    harness.printed_lines()
    twin = await harness.join("alice")
    assert twin.take() == [srv("Cannot connect to the general channel.")]
    assert twin.bye is not None and twin.bye[0] == 1
    assert twin.closed
    assert harness.printed_lines() == []


async def test_duplicate_name_in_queue_is_refused(harness: Harness) -> None:
    await fill(harness, 5)
    await harness.join("waiting")
    twin = await harness.join("waiting")
    assert twin.take() == [srv("Cannot connect to the general channel.")]
    assert twin.bye is not None and twin.bye[0] == 1


async def test_same_name_in_another_channel_is_fine(harness: Harness) -> None:
    await harness.join("alice")
    other = await harness.join("alice", "random")
    assert other.take()[-1] == srv("alice has joined the channel.")


async def test_drop_is_silent_and_queue_advances(harness: Harness) -> None:
    members = await fill(harness, 5)
    waiting = await harness.join("waiting")
    behind = await harness.join("behind")
    for peer in (*members, waiting, behind):
        peer.take()
    harness.printed_lines()
    await members[2].hang_up()
    await settle()
    assert harness.printed_lines() == [srv("waiting has joined the general channel.")]
    assert members[0].take() == [srv("waiting has joined the channel.")]
    assert waiting.take() == [srv("waiting has joined the channel.")]
    assert behind.take() == [
        srv("You are in the waiting queue and there are 0 user(s) ahead of you.")
    ]


async def test_drop_from_queue_is_silent(harness: Harness) -> None:
    await fill(harness, 5)
    waiting = await harness.join("waiting")
    behind = await harness.join("behind")
    behind.take()
    harness.printed_lines()
    await waiting.hang_up()
    await settle()
    assert harness.printed_lines() == []
    assert behind.take() == [
        srv("You are in the waiting queue and there are 0 user(s) ahead of you.")
    ]
    # The name is free again.
    again = await harness.join("waiting")
    assert again.take()[0] == srv("Welcome to the general channel, waiting.")


async def test_the_channel_list_comes_once_after_the_hello_not_after_a_switch(
    harness: Harness,
) -> None:
    alice = await harness.join("alice")
    await alice.say("/switch random")
    await settle()
    assert alice.take()[-2:] == [
        srv("Welcome to the random channel, alice."),
        srv("alice has joined the channel."),
    ]
    channels = [frame for frame in alice.other_frames if frame[0] == FrameType.CHANNELS]
    assert len(channels) == 1
    # Each line says what it is about, for clients that follow the channel.
    assert alice.kinds[-1] == LineKind.JOINED
