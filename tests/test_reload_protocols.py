"""What each protocol sees of a reload (events.Reconfigure through the
server's apply): IRC's KICK and channel table, a native client's channel
list for tab completion."""

from __future__ import annotations

import json

import trio
import trio.testing

from trio_chat import events as ev
from trio_chat.wire import FrameType

from .harness import running_server, settle, srv
from .irc_harness import IrcHarness

# The harness's channels, with help gone and lobby new.
RELOADED = (("general", 41001, 5), ("random", 41002, 5), ("lobby", 41004, 5))


async def test_irc_members_of_a_removed_channel_are_kicked_and_join_finds_new_ones(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with running_server() as harness:
        irc = IrcHarness(harness)
        jay = await irc.join("jay", "help")
        await jay.send("JOIN #general")
        await settle()
        jay.take()
        harness.server.gateway.submit(ev.Reconfigure(RELOADED))
        await settle()
        assert jay.take_text() == ["KICK #help jay the operator removed the channel help"]
        assert harness.printed_lines()[-1] == srv("help has been removed.")
        await jay.send("JOIN #lobby", "JOIN #help")
        await settle()
        replies = [line.command for line in jay.take()]
        assert "JOIN" in replies and "366" in replies  # lobby's burst
        assert replies[-1] == "403"  # help: no such channel
        assert not jay.closed


async def test_a_native_member_learns_the_new_channel_list(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with running_server() as harness:
        alice = await harness.join("alice")
        harness.server.gateway.submit(ev.Reconfigure(RELOADED))
        await settle()
        channels = [
            json.loads(payload)["channels"]
            for kind, payload in alice.other_frames
            if kind == FrameType.CHANNELS
        ]
        assert channels[-1] == ["general", "random", "lobby"]
        assert srv("help has been removed.") not in alice.take()  # (the server's line)
        assert not alice.closed
