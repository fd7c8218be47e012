"""Client commands in process (behaviour.md, "Client commands"): /whisper, /quit,
/list, /switch and bad argument counts."""

from __future__ import annotations

from trio_chat.wire import LineKind

from .harness import STAMP, Harness, Peer, settle, srv


async def fill(
    harness: Harness, count: int, channel: str = "general", prefix: str = "u"
) -> list[Peer]:
    peers = [await harness.join(f"{prefix}{i}", channel) for i in range(count)]
    return peers


def clear(*peers: Peer) -> None:
    for peer in peers:
        peer.take()


async def test_whisper_reaches_only_target(harness: Harness) -> None:
    alice = await harness.join("alice")
    bob = await harness.join("bob")
    carol = await harness.join("carol")
    clear(alice, bob, carol)
    harness.printed_lines()
    await alice.say("/whisper   bob   meet me  at noon ")
    await settle()
    assert bob.take() == [f"[alice whispers to you: ({STAMP})] meet me  at noon"]
    assert bob.kinds[-1] == LineKind.WHISPER
    assert alice.take() == []
    assert carol.take() == []
    assert harness.printed_lines() == [f"[alice whispers to bob: ({STAMP})] meet me  at noon"]


async def test_whisper_to_absent_queued_or_other_channel_is_not_here(harness: Harness) -> None:
    alice = await harness.join("alice")
    await harness.join("elsewhere", "random")
    members = await fill(harness, 4)
    queued = await harness.join("queued")
    clear(alice, queued, *members)
    harness.printed_lines()
    for target in ("nobody", "elsewhere", "queued"):
        await alice.say(f"/whisper {target} hi")
        await settle()
        assert alice.take() == [srv(f"{target} is not here.")]
        assert harness.printed_lines() == [f"[alice whispers to {target}: ({STAMP})] hi"]
    assert queued.take() == []


async def test_whisper_with_too_few_arguments_does_nothing(harness: Harness) -> None:
    alice = await harness.join("alice")
    bob = await harness.join("bob")
    clear(alice, bob)
    harness.printed_lines()
    await alice.say("/whisper bob")
    await settle()
    assert alice.take() == [] and bob.take() == []
    assert harness.printed_lines() == []
    assert alice.notices == ["usage: /whisper <username> <message>"]


async def test_quit_from_channel(harness: Harness) -> None:
    alice = await harness.join("alice")
    bob = await harness.join("bob")
    clear(alice, bob)
    harness.printed_lines()
    await alice.say("/quit")
    await settle()
    assert alice.take() == []
    assert alice.closed and alice.bye == (0, "you left the chat")
    assert bob.take() == [srv("alice has left the channel.")]
    assert harness.printed_lines() == [srv("alice has left the channel.")]


async def test_wrong_argument_counts_do_nothing(harness: Harness) -> None:
    alice = await harness.join("alice")
    bob = await harness.join("bob")
    clear(alice, bob)
    harness.printed_lines()
    for line in ("/quit now", "/list all", "/switch", "/switch random help", "/send bob"):
        await alice.say(line)
    await settle()
    assert alice.take() == [] and bob.take() == []
    assert harness.printed_lines() == []
    assert not alice.closed


async def test_list_counts_members_capacity_and_queue(harness: Harness) -> None:
    members = await fill(harness, 5)
    await harness.join("q0")
    await harness.join("q1")
    await harness.join("r", "random")
    clear(*members)
    await members[0].say("/list")
    await settle()
    assert members[0].take() == [
        "[Channel] general 5/5/2.",
        "[Channel] random 1/5/0.",
        "[Channel] help 0/5/0.",
    ]
    assert members[0].kinds[-1] == LineKind.LISTING


async def test_list_works_from_queue(harness: Harness) -> None:
    await fill(harness, 5)
    queued = await harness.join("q0")
    queued.take()
    await queued.say("/list")
    await settle()
    assert queued.take()[0] == "[Channel] general 5/5/1."


async def test_switch_unknown_channel(harness: Harness) -> None:
    alice = await harness.join("alice")
    clear(alice)
    harness.printed_lines()
    await alice.say("/switch nowhere")
    await settle()
    assert alice.take() == [srv("nowhere does not exist.")]
    assert harness.printed_lines() == []


async def test_switch_to_own_channel_or_taken_name_is_refused(harness: Harness) -> None:
    alice = await harness.join("alice")
    await harness.join("alice", "random")
    clear(alice)
    harness.printed_lines()
    await alice.say("/switch general")
    await alice.say("/switch random")
    await settle()
    assert alice.take() == [
        srv("Cannot switch to the general channel."),
        srv("Cannot switch to the random channel."),
    ]
    assert harness.printed_lines() == []


async def test_switch_to_name_queued_in_target_is_refused(harness: Harness) -> None:
    await fill(harness, 5, "random", prefix="r")
    await harness.join("alice", "random")  # queued there
    alice = await harness.join("alice")
    clear(alice)
    await alice.say("/switch random")
    await settle()
    assert alice.take() == [srv("Cannot switch to the random channel.")]


async def test_switch_into_free_channel(harness: Harness) -> None:
    alice = await harness.join("alice")
    bob = await harness.join("bob")
    carol = await harness.join("carol", "random")
    clear(alice, bob, carol)
    harness.printed_lines()
    await alice.say("/switch  random")
    await settle()
    assert bob.take() == [srv("alice has left the channel.")]
    assert alice.take() == [
        srv("Welcome to the random channel, alice."),
        srv("alice has joined the channel."),
    ]
    assert carol.take() == [srv("alice has joined the channel.")]
    assert harness.printed_lines() == [
        srv("alice has left the channel."),
        srv("alice has joined the random channel."),
    ]
    await alice.say("now here")
    await settle()
    assert carol.take() == [f"[alice ({STAMP})] now here"]
    assert bob.take() == []


async def test_switch_into_full_channel_waits_then_moves_in(harness: Harness) -> None:
    randoms = await fill(harness, 5, "random", prefix="r")
    alice = await harness.join("alice")
    clear(alice, *randoms)
    harness.printed_lines()
    await alice.say("/switch random")
    await settle()
    assert alice.take() == [
        srv("Welcome to the random channel, alice."),
        srv("You are in the waiting queue and there are 0 user(s) ahead of you."),
    ]
    assert harness.printed_lines() == [srv("alice has left the channel.")]
    await randoms[0].say("/quit")
    await settle()
    assert alice.take() == [srv("alice has joined the channel.")]
    assert harness.printed_lines() == [
        srv("r0 has left the channel."),
        srv("alice has joined the random channel."),
    ]


async def test_switch_from_queue_advances_old_queue(harness: Harness) -> None:
    await fill(harness, 5)
    first = await harness.join("q0")
    second = await harness.join("q1")
    clear(first, second)
    harness.printed_lines()
    await first.say("/switch help")
    await settle()
    assert harness.printed_lines() == [
        srv("q0 has left the channel."),
        srv("q0 has joined the help channel."),
    ]
    assert second.take() == [
        srv("You are in the waiting queue and there are 0 user(s) ahead of you.")
    ]
    assert first.take() == [
        srv("Welcome to the help channel, q0."),
        srv("q0 has joined the channel."),
    ]


async def test_switch_out_of_full_channel_admits_queue_head(harness: Harness) -> None:
    members = await fill(harness, 5)
    waiting = await harness.join("waiting")
    clear(waiting, *members)
    harness.printed_lines()
    await members[0].say("/switch help")
    await settle()
    assert harness.printed_lines() == [
        srv("u0 has left the channel."),
        srv("waiting has joined the general channel."),
        srv("u0 has joined the help channel."),
    ]
    assert waiting.take() == [srv("waiting has joined the channel.")]
    assert members[1].take() == [
        srv("u0 has left the channel."),
        srv("waiting has joined the channel."),
    ]
