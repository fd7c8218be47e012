"""End to end with the installed programs on one server: channel history as a
piped client prints it (docs/behaviour.md, "Channel history"). The cluster's
side is in test_e2e_cluster_history.py."""

from __future__ import annotations

import re
import socket
from pathlib import Path

from trio_chat import wire
from trio_chat.wire import FrameType, LineKind

from .processes import Program, cluster, srv

HISTORY = re.compile(r"\[History [0-9]{4}-[0-9]{2}-[0-9]{2}\] ")


def history(line: str) -> str:
    """A history line (behaviour.md, the exact text), its day checked and dropped."""
    return f"[History <day>] {line}"


def read_history(program: Program, count: int) -> list[str]:
    """The next ``count`` lines, which must be history lines, with their day as <day>."""
    lines = []
    for _ in range(count):
        line = program.next_line()
        assert HISTORY.match(line), line
        lines.append(HISTORY.sub("[History <day>] ", line, count=1))
    return lines


def test_late_joiner_queued_member_switch_and_reconnect(tmp_path: Path) -> None:
    with cluster(tmp_path, server_options=("--history", "3")) as chat:
        fillers = [chat.join(f"u{i}") for i in range(3)]
        alice = chat.join("alice")
        alice.type("one", "two")
        alice.expect("[alice (<time>)] one")
        alice.expect("[alice (<time>)] two")

        # A late joiner: the last 3 lines, before its welcome.
        bob = chat.client("bob")
        assert read_history(bob, 2) == [
            history("[alice (<time>)] one"),
            history("[alice (<time>)] two"),
        ]
        bob.expect(srv("Welcome to the general channel, bob."))
        bob.expect(srv("bob has joined the channel."))
        alice.expect(srv("bob has joined the channel."))

        # Queued: nothing until admitted, then what was said meanwhile too.
        carol = chat.client("carol")
        carol.expect(srv("Welcome to the general channel, carol."))
        carol.expect(srv("You are in the waiting queue and there are 0 user(s) ahead of you."))
        bob.type("three", "four")
        alice.expect("[bob (<time>)] three")
        alice.expect("[bob (<time>)] four")
        bob.type("/quit")
        assert bob.wait_exit() == 0
        assert read_history(carol, 3) == [
            history("[alice (<time>)] two"),
            history("[bob (<time>)] three"),
            history("[bob (<time>)] four"),
        ]
        carol.expect(srv("carol has joined the channel."))
        alice.expect(srv("bob has left the channel."))
        alice.expect(srv("carol has joined the channel."))

        # /switch: the other channel's own history, before its welcome.
        chat.server.expect_soon(srv("carol has joined the general channel."))
        dave = chat.join("dave", channel="random")
        dave.type("in random")
        dave.expect("[dave (<time>)] in random")
        alice.type("/switch random")
        assert read_history(alice, 1) == [history("[dave (<time>)] in random")]
        alice.expect(srv("Welcome to the random channel, alice."))
        alice.expect(srv("alice has joined the channel."))

        # A reconnect: bob comes back and reads what it missed.
        carol.expect(srv("alice has left the channel."))
        carol.type("bob left")
        carol.expect("[carol (<time>)] bob left")
        back = chat.client("bob")
        assert read_history(back, 3) == [
            history("[bob (<time>)] three"),
            history("[bob (<time>)] four"),
            history("[carol (<time>)] bob left"),
        ]
        back.expect(srv("Welcome to the general channel, bob."))
        chat.shutdown()
        # The server's stdout has each line once, as it always did.
        assert not any(HISTORY.match(line) for line in chat.server.lines)
        del fillers


def test_joins_and_leaves_with_history_events(tmp_path: Path) -> None:
    options = ("--history", "3", "--history-events")
    with cluster(tmp_path, server_options=options) as chat:
        alice = chat.join("alice")
        bob = chat.client("bob")
        assert read_history(bob, 1) == [history(srv("alice has joined the channel."))]
        alice.expect(srv("bob has joined the channel."))
        bob.type("/quit")
        assert bob.wait_exit() == 0
        alice.expect(srv("bob has left the channel."))
        carol = chat.client("carol")
        assert read_history(carol, 3) == [
            history(srv("alice has joined the channel.")),
            history(srv("bob has joined the channel.")),
            history(srv("bob has left the channel.")),
        ]
        carol.expect(srv("Welcome to the general channel, carol."))
        chat.shutdown()


def test_without_history_nothing_changes_and_empty_forgets(tmp_path: Path) -> None:
    with cluster(tmp_path) as chat:
        alice = chat.join("alice")
        alice.type("unseen")
        alice.expect("[alice (<time>)] unseen")
        chat.server.expect("[alice (<time>)] unseen")
        chat.join("bob")  # (join checks its welcome is its first line)
        chat.shutdown()
    with cluster(tmp_path, server_options=("--history", "10")) as chat:
        alice = chat.join("alice")
        alice.type("private")
        alice.expect("[alice (<time>)] private")
        chat.server.expect("[alice (<time>)] private")
        chat.server.type("/history general")
        chat.server.type("/empty general")
        chat.server.expect(srv("general has been emptied."))
        assert alice.wait_exit() == 0
        chat.join("bob")  # nothing from before the /empty
        chat.shutdown()
        assert re.search(r"\[History [0-9-]+\] \[alice \([0-9:]+\)\] private", chat.server.stderr)


def test_a_long_history_reaches_a_newcomer_whole_and_it_stays(tmp_path: Path) -> None:
    """More history than one admission sends: the newest lines that fit its
    outbox (history.SEND_LINES, SEND_BYTES), and the newcomer is not taken
    for a client that does not read."""
    options = ("--history", "5000", "--history-bytes", "4M", "--flood-rate", "0")
    with cluster(tmp_path, server_options=options) as chat:
        alice = chat.join("alice")
        lines = [f"{index:05d} " + "y" * 94 for index in range(3000)]
        alice.type(*lines)
        for line in lines:
            alice.expect(f"[alice (<time>)] {line}")
        bob = chat.client("bob")
        # 256 KiB of lines that count 5 + 100 + 32 bytes each.
        sent = (256 * 1024) // (len("alice") + 100 + 32)
        got = read_history(bob, sent)
        assert got[0] == history(f"[alice (<time>)] {lines[-sent]}")
        assert got[-1] == history(f"[alice (<time>)] {lines[-1]}")
        bob.expect(srv("Welcome to the general channel, bob."))
        bob.expect(srv("bob has joined the channel."))
        bob.type("still here")
        alice.expect(srv("bob has joined the channel."))
        alice.expect("[bob (<time>)] still here")
        chat.shutdown()


def test_a_client_of_protocol_2_is_served_without_history(tmp_path: Path) -> None:
    """A client from before history (trio-chat/2) joins and chats as ever; it
    is sent no HISTORY frame, which it would not know."""
    with cluster(tmp_path, server_options=("--history", "10")) as chat:
        alice = chat.join("alice")
        alice.type("kept")
        alice.expect("[alice (<time>)] kept")
        with socket.create_connection(("127.0.0.1", chat.ports["general"])) as old:
            old.sendall(wire.encode(FrameType.HELLO, b"trio-chat/2 oldie"))
            reader = wire.FrameDecoder()
            kinds: list[int] = []
            old.settimeout(15)
            while LineKind.JOINED not in kinds:
                for frame in reader.feed(old.recv(65536)):
                    assert frame.type not in (FrameType.HISTORY, FrameType.HISTORY_END)
                    if frame.type == FrameType.LINE:
                        kinds.append(wire.decode_line(frame.payload)[0])
            assert kinds == [LineKind.SERVER, LineKind.JOINED]  # welcome, joined
        chat.shutdown()
