"""End to end with the installed programs: joining, queueing, chat (behaviour.md,
"Joining and the waiting queue", "Chatting", "The client's life")."""

from __future__ import annotations

from pathlib import Path

from .processes import cluster, srv


def test_join_queue_chat_and_quit_transcripts(tmp_path: Path, nodes: int | None) -> None:
    with cluster(tmp_path, nodes=nodes) as chat:
        members = [chat.join(f"u{i}") for i in range(5)]
        waiting = chat.client("waiting")
        waiting.expect(srv("Welcome to the general channel, waiting."))
        waiting.expect(srv("You are in the waiting queue and there are 0 user(s) ahead of you."))
        behind = chat.client("behind")
        behind.expect(srv("Welcome to the general channel, behind."))
        behind.expect(srv("You are in the waiting queue and there are 1 user(s) ahead of you."))

        members[0].type("hello   everyone", "/quit")
        members[0].close_stdin()
        assert members[0].wait_exit() == 0
        waiting.expect(srv("waiting has joined the channel."))
        behind.expect(srv("You are in the waiting queue and there are 0 user(s) ahead of you."))

        members[1].type("welcome waiting")
        members[1].close_stdin()  # stdin EOF: the client stays connected
        waiting.expect("[u1 (<time>)] welcome waiting")
        chat.shutdown()

        assert chat.server.rest() == [
            "[u0 (<time>)] hello   everyone",
            srv("u0 has left the channel."),
            srv("waiting has joined the general channel."),
            "[u1 (<time>)] welcome waiting",
        ]
        assert members[0].rest() == [
            *(srv(f"u{i} has joined the channel.") for i in range(1, 5)),
            "[u0 (<time>)] hello   everyone",
        ]
        assert members[1].rest() == [
            srv("u2 has joined the channel."),
            srv("u3 has joined the channel."),
            srv("u4 has joined the channel."),
            "[u0 (<time>)] hello   everyone",
            srv("u0 has left the channel."),
            srv("waiting has joined the channel."),
            "[u1 (<time>)] welcome waiting",
        ]
        assert behind.rest() == []
        for program in [*members[1:], waiting, behind]:
            assert program.process.returncode == 0


def test_duplicate_name_exits_1(tmp_path: Path, nodes: int | None) -> None:
    with cluster(tmp_path, nodes=nodes) as chat:
        chat.join("alice")
        twin = chat.client("alice")
        twin.expect(srv("Cannot connect to the general channel."))
        assert twin.wait_exit() == 1
        assert twin.rest() == []
        chat.shutdown()
        assert chat.server.rest() == []


def test_killed_client_leaves_silently(tmp_path: Path, nodes: int | None) -> None:
    with cluster(tmp_path, nodes=nodes) as chat:
        alice = chat.join("alice")
        bob = chat.join("bob")
        alice.expect(srv("bob has joined the channel."))
        bob.process.kill()
        bob.wait_exit()
        carol = chat.join("carol")  # the server is still serving
        alice.expect(srv("carol has joined the channel."))
        carol.type("bob?")
        alice.expect("[carol (<time>)] bob?")
        chat.shutdown()
        assert chat.server.rest() == ["[carol (<time>)] bob?"]


def test_channels_are_isolated(tmp_path: Path, nodes: int | None) -> None:
    with cluster(tmp_path, nodes=nodes) as chat:
        general = chat.join("g")
        random = chat.join("r", "random")
        general.type("only general")
        general.expect("[g (<time>)] only general")
        random.type("only random")
        random.expect("[r (<time>)] only random")
        chat.shutdown()
        assert general.rest() == []
        assert random.rest() == []


def test_client_with_dev_null_stdin_keeps_printing(tmp_path: Path, nodes: int | None) -> None:
    with cluster(tmp_path, nodes=nodes) as chat:
        quiet = chat.client("quiet")
        quiet.close_stdin()
        chat.server.expect(srv("quiet has joined the general channel."))
        talker = chat.join("talker")
        talker.type("still there?")
        quiet.expect(srv("Welcome to the general channel, quiet."))
        quiet.expect(srv("quiet has joined the channel."))
        quiet.expect(srv("talker has joined the channel."))
        quiet.expect("[talker (<time>)] still there?")
        chat.shutdown()
