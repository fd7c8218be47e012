"""The IRC port's sans-I/O parts: lines in and out, nicks and escapes, and
the renderer's effect lists (docs/irc.md)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from hypothesis import given
from hypothesis import strategies as st
from irctokens.line import tokenise

from trio_chat import effects as fx
from trio_chat.config import ChannelConfig
from trio_chat.events import ACTION, NOTICE
from trio_chat.irc.lines import MAX_LINE, LineReader, TooLong, encode, strip_formatting, word
from trio_chat.irc.nicks import member_name, nick_problem, shown
from trio_chat.irc.render import WANTS_MSGID, WANTS_TIME, IrcRenderer, split_text
from trio_chat.state import Channel, ClientProtocol, Member

# ----- lines -----


def test_lines_are_split_on_lf_with_or_without_cr_and_across_reads() -> None:
    reader = LineReader()
    first = reader.feed(b"NICK a\r\nUSER u 0 * :real name\nPI")
    assert [(m.command, m.params) for m in first] == [  # type: ignore[union-attr]
        ("NICK", ["a"]),
        ("USER", ["u", "0", "*", "real name"]),
    ]
    (ping,) = reader.feed(b"NG :x y\r\n")
    assert not isinstance(ping, TooLong) and ping.params == ["x y"]


def test_the_limits_are_512_bytes_and_4094_of_tags() -> None:
    reader = LineReader()
    at_limit = b"PRIVMSG #a :" + b"x" * (MAX_LINE - 2 - 12)
    (fits,) = reader.feed(at_limit + b"\r\n")
    assert not isinstance(fits, TooLong)
    assert reader.feed(at_limit + b"x\r\n") == [TooLong("line")]
    tags = b"@+a=" + b"t" * 4091
    assert not isinstance(reader.feed(tags + b" PING x\r\n")[0], TooLong)
    assert reader.feed(tags + b"t PING x\r\n") == [TooLong("tags")]


def test_a_line_without_end_costs_one_refusal_and_bounded_memory() -> None:
    reader = LineReader()
    refusals = [r for _ in range(100) for r in reader.feed(b"y" * 10_000)]
    assert refusals == [TooLong("line")]
    (after,) = reader.feed(b"rest of it\r\nPING ok\r\n")
    assert not isinstance(after, TooLong) and after.command == "PING"


def test_empty_and_command_less_lines_are_ignored_and_bad_utf8_replaced() -> None:
    reader = LineReader()
    (line,) = reader.feed(b"\r\n   \r\n:only.a.prefix\r\nPRIVMSG #a :caf\xe9\0\r\n")
    assert not isinstance(line, TooLong) and line.params[1] == "caf\ufffd\ufffd"


def test_formatting_codes_are_stripped() -> None:
    text = "\x02bold\x02 \x0304,12red\x03 \x04ff00ffhex\x04 \x1funder\x0f \x0399"
    assert strip_formatting(text) == "bold red hex under "
    assert strip_formatting("plain") == "plain"


def test_a_peers_word_fits_a_middle_parameter() -> None:
    assert word("a b") == "a"
    assert word(":x") == "x"
    assert word("") == word(":") == "*"
    assert word("a\r\nQUIT") == "a\ufffd\ufffdQUIT"
    assert len(word("z" * 500)) == 64


def test_encode_puts_the_last_parameter_after_a_colon_when_it_must() -> None:
    assert encode("PRIVMSG", ["#a", "hi there"], "n!u@h") == b":n!u@h PRIVMSG #a :hi there\r\n"
    assert encode("PONG", ["srv", ""]) == b"PONG srv :\r\n"
    assert encode("JOIN", ["#a"], "n!u@h", {"time": "t"}) == b"@time=t :n!u@h JOIN #a\r\n"


# ----- nicks -----


def test_nicks_follow_irc_grammar_and_our_names() -> None:
    for nick in ["alice", "[bot]", "a-1", "`x", "_", "a" * 32]:
        assert nick_problem(nick) is None, nick
    for nick in ["", "1a", "-a", "a b", "a\\b", "zoë", "a:b", "a" * 33, "a,b", "#a"]:
        assert nick_problem(nick) is not None, nick


def test_names_irc_can_carry_are_shown_as_they_are() -> None:
    assert shown("alice") == "alice"
    assert shown("zoë") == "zo\\c3\\ab"
    assert shown("7up") == "\\37up"
    assert shown("a.b") == "a\\2eb"
    assert shown("back\\slash") == "back\\5cslash"


@given(st.text(min_size=1, max_size=32))
def test_an_escaped_name_reaches_the_member_it_names(name: str) -> None:
    irc_form = shown(name)
    assert member_name(irc_form) == name
    assert "\\" not in irc_form or nick_problem(irc_form) is not None  # never anyone's nick


def test_split_text_cuts_between_characters() -> None:
    assert split_text("short", 10) == ["short"]
    pieces = split_text("é" * 10, 5)
    assert pieces == ["éé", "éé", "éé", "éé", "éé"]


# ----- the renderer -----


@dataclass
class FakeClient:
    nick: str
    echo: bool = False
    wants_time: bool = False
    wants_msgid: bool = False
    caps: set[str] = field(default_factory=set)  # (beyond what the flags above say)

    def sees_elsewhere(self, name: str, channel: str) -> bool:
        return False

    @property
    def tags(self) -> int:
        return (WANTS_TIME if self.wants_time else 0) | (WANTS_MSGID if self.wants_msgid else 0)


@dataclass
class FakeMembership:
    client: FakeClient
    channel: str = "general"
    member: Member | None = None
    protocol: ClientProtocol = ClientProtocol.IRC


@dataclass
class NativeConn:
    protocol: ClientProtocol = ClientProtocol.TERMINAL
    lines: list[bytes] = field(default_factory=list)


def members(*specs: tuple[str, FakeClient | None]) -> tuple[Channel, list[Member]]:
    channel = Channel(ChannelConfig("general", 1, 10))
    made = []
    for name, client in specs:
        conn = FakeMembership(client) if client is not None else NativeConn()
        member = Member(name, name, conn, channel=channel, admitted=True)  # type: ignore[arg-type]
        if isinstance(conn, FakeMembership):
            conn.member = member
        channel.admit(member)
        made.append(member)
    return channel, made


def rendered(frames: Sequence[tuple[Sequence[Member], bytes]]) -> list[tuple[list[str], bytes]]:
    return [([m.name for m in audience], frame) for audience, frame in frames]


RENDERER = IrcRenderer("srv")


def test_chat_goes_to_irc_members_and_back_to_the_sender_only_with_echo() -> None:
    _, (alice, bob, carol) = members(
        ("alice", FakeClient("alice")), ("bob", None), ("carol", FakeClient("carol", echo=True))
    )
    audience = (alice, bob, carol)
    said = rendered(RENDERER.frames(fx.Chat("t", audience, "alice", "hi")))
    assert said == [(["carol"], b":alice!alice@srv PRIVMSG #general hi\r\n")]
    echoed = rendered(RENDERER.frames(fx.Chat("t", audience, "carol", "yo", ACTION)))
    assert echoed == [
        (["alice", "carol"], b":carol!carol@srv PRIVMSG #general :\x01ACTION yo\x01\r\n")
    ]
    noticed = rendered(RENDERER.frames(fx.Chat("t", audience, "bob", "n", NOTICE)))
    assert noticed == [(["alice", "carol"], b":bob!bob@srv NOTICE #general n\r\n")]


def test_tags_go_only_to_clients_that_asked_and_share_one_msgid() -> None:
    _, (alice, bob) = members(
        ("alice", FakeClient("alice", echo=True, wants_time=True, wants_msgid=True)),
        ("bob", FakeClient("bob", wants_msgid=True)),
    )
    frames = RENDERER.frames(fx.Chat("t", (alice, bob), "alice", "hi"))
    tags = [tokenise(frame.decode().rstrip()).tags or {} for _, frame in frames]
    assert [set(t) for t in tags] == [{"time", "msgid"}, {"msgid"}]
    assert tags[0]["msgid"] == tags[1]["msgid"]


def test_a_long_message_is_cut_to_fit_irc_lines() -> None:
    _, (alice, bob) = members(("alice", None), ("bob", FakeClient("bob")))
    frames = RENDERER.frames(fx.Chat("t", (alice, bob), "alice", "w" * 2000))
    assert len(frames) > 3 and all(len(frame) <= MAX_LINE for _, frame in frames)
    text = "".join(tokenise(frame.decode().rstrip()).params[1] for _, frame in frames)
    assert text == "w" * 2000


def test_leaving_renders_as_part_quit_or_kick() -> None:
    _, (bob,) = members(("bob", FakeClient("bob")))
    cases: list[tuple[fx.Said, bytes]] = [
        (fx.Left("t", (bob,), "al", True), b":al!al@srv PART #general\r\n"),
        (
            fx.Left("t", (bob,), "al", True, reason="bye now"),
            b":al!al@srv PART #general :bye now\r\n",
        ),
        (
            fx.Left("t", (bob,), "al", True, reason="Quit: x", quit=True),
            b":al!al@srv QUIT :Quit: x\r\n",
        ),
        (
            fx.Left("t", (bob,), "al", False, quiet=True),
            b":al!al@srv PART #general :connection closed\r\n",
        ),
        (fx.WentAfk("t", (bob,), "al"), b":al!al@srv PART #general :went AFK\r\n"),
        (fx.Kicked("t", (bob,), "al"), b":srv KICK #general al :kicked by the server operator\r\n"),
    ]
    for effect, line in cases:
        assert rendered(RENDERER.frames(effect)) == [(["bob"], line)], effect


def test_the_rules_refusals_become_numerics_and_notices() -> None:
    _, (bob,) = members(("bob", FakeClient("bob")))
    assert rendered(RENDERER.frames(fx.StillMuted("t", bob, 12))) == [
        (["bob"], b":srv 404 bob #general :You are still muted for 12 seconds.\r\n")
    ]
    assert rendered(RENDERER.frames(fx.NotHere("t", bob, "zoë"))) == [
        (["bob"], b":srv 401 bob zo\\c3\\ab :No such nick/channel\r\n")
    ]
    assert rendered(RENDERER.frames(fx.QueuePosition("t", bob, 2))) == [
        (
            ["bob"],
            b":srv NOTICE bob :#general: You are in the waiting queue and there are 2 "
            b"user(s) ahead of you.\r\n",
        )
    ]


def test_natives_get_nothing_from_the_irc_renderer() -> None:
    _, (alice,) = members(("alice", None))
    assert RENDERER.frames(fx.Chat("t", (alice,), "alice", "hi")) == []
    assert RENDERER.frames(fx.Joined("t", (alice,), "alice", "general")) == []


def test_an_irc_action_reaches_the_browser_marked_as_one() -> None:
    from trio_chat.render import browser

    _, (alice,) = members(("alice", None))
    (plain,) = browser.frames(fx.Chat("t", (alice,), "bob", "hi"))
    (action,) = browser.frames(fx.Chat("t", (alice,), "bob", "waves", ACTION))
    assert b'"action"' not in plain[1] and b'"action":true' in action[1]


def test_a_long_source_leaves_little_room_and_nothing_is_cut() -> None:
    renderer = IrcRenderer("ip-172-31-20-144.eu-west-1.compute.internal")
    name = "\U0001f600" * 32  # shown as 32 escapes of 12 characters each
    _, (bob,) = members(("bob", FakeClient("bob")))
    frames = renderer.frames(fx.Chat("t", (bob,), name, "m" * 400))
    assert all(len(frame) <= MAX_LINE for _, frame in frames)
    text = "".join(tokenise(frame.decode().rstrip()).params[1] for _, frame in frames)
    assert text == "m" * 400
