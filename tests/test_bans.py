"""Bans through the server (docs/behaviour.md, "/ban, /unban and /bans"): what a native
client, a browser and an IRC client are told when a ban drops or refuses
them, what is counted, and expiry on trio's clock (a MockClock here)."""

from __future__ import annotations

import trio
import trio.testing

from trio_chat.server.counts import REFUSED_BAN
from trio_chat.state import ClientProtocol

from .harness import Harness, Peer, running_server, settle, srv
from .irc_harness import IrcHarness


async def browser(harness: Harness, name: str, address: str, channel: str = "general") -> Peer:
    return await harness.join(name, channel, address, ClientProtocol.BROWSER)


async def test_a_name_ban_kicks_then_refuses_that_name_in_that_channel_only(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with running_server() as harness:
        alice = await harness.join("alice")
        bob = await harness.join("bob")
        harness.forget_printed()
        harness.console("/ban general:bob")
        await bob.wait_closed()
        assert bob.bye == (0, "banned from general by the server operator")
        assert harness.printed_lines() == [
            srv("Banned general:bob until unbanned."),
            srv("Kicked bob."),
        ]
        assert srv("bob has left the channel.") in alice.take()
        again = await harness.join("bob")
        await again.wait_closed()
        assert again.bye == (1, "refused: bob is banned from general")
        elsewhere = await harness.join("bob", "random")
        assert srv("Welcome to the random channel, bob.") in elsewhere.take()
        # /switch back into general is refused too.
        await elsewhere.say("/switch general")
        await settle()
        assert elsewhere.take() == [srv("Cannot switch to the general channel.")]
        assert elsewhere.notices == ["bob is banned from general"]
        assert harness.server.counts.refused[REFUSED_BAN] == 1


async def test_a_timed_ban_ends_by_itself(autojump_clock: trio.testing.MockClock) -> None:
    async with running_server() as harness:
        harness.console("/ban general:bob 60")
        await trio.sleep(59)
        early = await harness.join("bob")
        await early.wait_closed()
        assert early.bye == (1, "refused: bob is banned from general for 1 more seconds")
        await trio.sleep(1)
        late = await harness.join("bob")
        assert srv("Welcome to the general channel, bob.") in late.take()
        assert not late.closed


async def test_an_address_ban_drops_every_protocol_from_there_and_refuses_them_again(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with running_server() as harness:
        irc = IrcHarness(harness)
        native = await harness.join("alice", address="10.0.0.5")
        page = await browser(harness, "bob", "10.0.0.6")
        jay = await irc.join("jay", address="10.0.0.7")
        idle = await irc.register("kim", address="10.0.0.8")  # in no channel
        outsider = await harness.join("carol", address="10.1.0.1")
        outsider.take()
        jay.take()
        harness.forget_printed()
        harness.console("/ban 10.0.0.0/24")
        await settle()
        reason = "your address was banned by the server operator"
        assert native.closed and native.bye == (0, reason)
        assert page.closed and page.bye == (0, reason)
        assert harness.printed_lines()[0] == srv("Banned 10.0.0.0/24 until unbanned.")
        # IRC: a KICK from the channel, then 465 and the ERROR that closes it.
        await jay.wait_closed()
        said = jay.take_text()
        assert said[:3] == [
            "KICK #general alice kicked by the server operator",
            "KICK #general bob kicked by the server operator",
            f"KICK #general jay {reason}",
        ]
        assert said[3:] == [
            f"465 jay You are banned from this server ({reason})",
            f"ERROR Closing Link: {reason}",
        ]
        await idle.wait_closed()
        assert idle.take_text() == [
            f"465 kim You are banned from this server ({reason})",
            f"ERROR Closing Link: {reason}",
        ]
        assert not outsider.closed
        assert srv("alice has left the channel.") in outsider.take()

        # New connections from there: refused on every protocol, told why.
        refused = "refused: your address is banned from this server"
        again = await harness.join("alice", address="10.0.0.5")
        await again.wait_closed()
        assert again.bye == (1, refused)
        elsewhere = await harness.join("alice", "help", address="10.0.0.5")  # another port
        await elsewhere.wait_closed()
        assert elsewhere.bye == (1, refused)
        page_again = await browser(harness, "bob", "10.0.0.99")
        await page_again.wait_closed()
        assert page_again.bye == (1, refused)
        irc_again = await irc.connect("jay", address="10.0.0.7")
        await irc_again.send("NICK jay", "USER jay 0 * :jay")
        await irc_again.wait_closed()
        assert irc_again.take_text() == [
            "465 * You are banned from this server",  # (not registered: no nick yet)
            f"ERROR Closing Link: {refused.removeprefix('refused: ')}",
        ]
        assert harness.server.counts.refused[REFUSED_BAN] == 4

        # Lifted, the address is welcome again.
        harness.console("/unban 10.0.0.0/24")
        back = await harness.join("alice", address="10.0.0.5")
        assert srv("Welcome to the general channel, alice.") in back.take()


async def test_an_irc_join_of_a_banned_nick_is_474_and_the_connection_stays(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with running_server() as harness:
        irc = IrcHarness(harness)
        harness.console("/ban general:Jay 30")
        jay = await irc.register("jay")
        await jay.send("JOIN #general,#random")
        await settle()
        replies = jay.take_text()
        assert replies[0] == (
            "474 jay #general Cannot join channel (+b): jay is banned from general "
            "for 30 more seconds"
        )
        assert "JOIN #random" in replies
        assert not jay.closed
        # An IRC member in the channel is kicked by the ban on its nick.
        kim = await irc.join("kim")
        harness.console("/ban general:KIM")
        await settle()
        assert kim.take_text() == ["KICK #general kim banned from general by the server operator"]
        assert not kim.closed


async def test_an_irc_ban_list_shows_the_bans_that_keep_people_out(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with running_server() as harness:
        irc = IrcHarness(harness)
        harness.console("/ban general:mallory 30")
        harness.console("/ban random:trent")
        harness.console("/ban 203.0.113.0/24")
        jay = await irc.join("jay")
        await jay.send("MODE #general b")
        await settle()
        assert jay.take_text() == [
            "367 jay #general *!*@203.0.113.0/24",
            "367 jay #general mallory!*@*",
            "368 jay #general End of channel ban list",
        ]
        await trio.sleep(30)  # mallory's has ended
        await jay.send("MODE #general +b")
        await settle()
        assert jay.take_text() == [
            "367 jay #general *!*@203.0.113.0/24",
            "368 jay #general End of channel ban list",
        ]
