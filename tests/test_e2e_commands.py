"""End to end: /whisper, /quit, /list, /switch with the installed programs (behaviour.md,
"Client commands")."""

from __future__ import annotations

from pathlib import Path

from .processes import cluster, srv


def test_whisper_good_and_bad(tmp_path: Path, nodes: int | None) -> None:
    with cluster(tmp_path, nodes=nodes) as chat:
        alice = chat.join("alice")
        bob = chat.join("bob")
        carol = chat.join("carol")
        alice.type("/whisper bob  secret  plan", "/whisper nobody hi", "/whisper bob")
        bob.expect(srv("carol has joined the channel."))
        bob.expect("[alice whispers to you: (<time>)] secret  plan")
        alice.expect(srv("bob has joined the channel."))
        alice.expect(srv("carol has joined the channel."))
        alice.expect(srv("nobody is not here."))
        alice.type("done")
        carol.expect("[alice (<time>)] done")
        chat.shutdown()
        assert chat.server.rest() == [
            "[alice whispers to bob: (<time>)] secret  plan",
            "[alice whispers to nobody: (<time>)] hi",
            "[alice (<time>)] done",
        ]
        assert alice.rest() == ["[alice (<time>)] done"]
        assert carol.rest() == []
        assert "usage: /whisper" in alice.stderr


def test_quit_from_channel_and_from_queue(tmp_path: Path, nodes: int | None) -> None:
    with cluster(tmp_path, nodes=nodes) as chat:
        members = [chat.join(f"u{i}") for i in range(5)]
        first = chat.client("q0")
        first.expect(srv("Welcome to the general channel, q0."))
        first.expect(srv("You are in the waiting queue and there are 0 user(s) ahead of you."))
        second = chat.client("q1")
        second.expect(srv("Welcome to the general channel, q1."))
        second.expect(srv("You are in the waiting queue and there are 1 user(s) ahead of you."))

        first.type("/quit")
        assert first.wait_exit() == 0
        chat.server.expect(srv("q0 has left the channel."))
        second.expect(srv("You are in the waiting queue and there are 0 user(s) ahead of you."))

        members[4].type("/quit")
        assert members[4].wait_exit() == 0
        second.expect(srv("q1 has joined the channel."))
        chat.shutdown()
        assert chat.server.rest() == [
            srv("u4 has left the channel."),
            srv("q1 has joined the general channel."),
        ]
        assert members[0].rest()[-2:] == [
            srv("u4 has left the channel."),
            srv("q1 has joined the channel."),
        ]
        assert first.rest() == []


def test_list_with_full_channel_and_two_queued(tmp_path: Path, nodes: int | None) -> None:
    with cluster(tmp_path, nodes=nodes) as chat:
        members = [chat.join(f"u{i}") for i in range(5)]
        for name in ("q0", "q1"):
            queued = chat.client(name)
            queued.expect(srv(f"Welcome to the general channel, {name}."))
            queued.next_line()
        chat.join("r", "random")
        members[0].type("/list")
        for _ in range(4):
            members[0].next_line()  # u1..u4 joined
        members[0].expect("[Channel] general 5/5/2.")
        members[0].expect("[Channel] random 1/5/0.")
        members[0].expect("[Channel] help 0/5/0.")
        chat.shutdown()


def test_switch_outcomes(tmp_path: Path, nodes: int | None) -> None:
    with cluster(tmp_path, nodes=nodes) as chat:
        alice = chat.join("alice")
        randoms = [chat.join(f"r{i}", "random") for i in range(5)]
        chat.join("alice", "help")
        alice.type("/switch nowhere", "/switch general", "/switch help", "/switch random")
        alice.expect(srv("nowhere does not exist."))
        alice.expect(srv("Cannot switch to the general channel."))
        alice.expect(srv("Cannot switch to the help channel."))
        alice.expect(srv("Welcome to the random channel, alice."))
        alice.expect(srv("You are in the waiting queue and there are 0 user(s) ahead of you."))
        chat.server.expect(srv("alice has left the channel."))

        randoms[2].type("/quit")
        alice.expect(srv("alice has joined the channel."))
        chat.server.expect(srv("r2 has left the channel."))
        chat.server.expect(srv("alice has joined the random channel."))
        alice.type("hello random")
        alice.expect("[alice (<time>)] hello random")
        chat.shutdown()
        assert randoms[0].rest()[-3:] == [
            srv("r2 has left the channel."),
            srv("alice has joined the channel."),
            "[alice (<time>)] hello random",
        ]
