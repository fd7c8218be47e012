"""End to end with the installed programs: a lone server's history file
(behaviour.md, "The history file"): kept across a restart, a file cut short
or from a newer trio-chat, and an /empty that leaves nothing behind."""

from __future__ import annotations

import json
from pathlib import Path

from trio_chat.history import SAID, Entry
from trio_chat.history_file import HEADER, entry_line
from trio_chat.text import history_date

from .processes import Program, cluster, srv
from .programs import SERVER, free_ports, run_program

FILE = "history.jsonl"
OPTIONS = ("--history", "5", "--history-file", FILE)


def entries_in(path: Path) -> list[tuple[str, Entry]]:
    """The file's entry lines, in order (an /empty's line fails the test)."""
    lines = path.read_text().splitlines()
    assert lines[0] == HEADER
    found = []
    for line in lines[1:]:
        record = json.loads(line)
        if set(record) == {"said"}:
            continue  # (a rewrite's last line number)
        found.append((record["channel"], Entry.from_list(record["entry"])))
    return found


def history(entry: Entry) -> str:
    """The line a piped client prints for ``entry`` from before it came."""
    return f"[History {history_date(entry.at)}] [{entry.user} (<time>)] {entry.message}"


def expect_admitted(client: Program, name: str, channel: str = "general") -> None:
    client.expect(srv(f"Welcome to the {channel} channel, {name}."))
    client.expect(srv(f"{name} has joined the channel."))


def test_the_history_survives_a_restart(tmp_path: Path) -> None:
    with cluster(tmp_path, server_options=OPTIONS) as chat:
        alice = chat.join("alice")
        alice.type(*(f"line {i}" for i in range(1, 8)))
        for i in range(1, 8):
            alice.expect(f"[alice (<time>)] line {i}")
        chat.shutdown()
    saved = entries_in(tmp_path / FILE)
    assert [entry.message for _, entry in saved] == [f"line {i}" for i in range(1, 8)]

    with cluster(tmp_path, server_options=OPTIONS) as chat:
        bob = chat.client("bob")
        for _, entry in saved[-5:]:  # --history 5
            bob.expect(history(entry))
        expect_admitted(bob, "bob")
        bob.type("and now")
        bob.expect("[bob (<time>)] and now")
        chat.shutdown()
        assert "corrupt" not in chat.server.errors()
    # Line numbers went on from the file's.
    last = entries_in(tmp_path / FILE)[-1][1]
    assert (last.message, last.seq) == ("and now", 8)


def test_a_file_cut_short_is_reported_and_its_prefix_replayed(tmp_path: Path) -> None:
    kept = [
        Entry(seq, 1_700_000_000.0 + seq, "12:00:00", SAID, "alice", f"line {seq}")
        for seq in (1, 2)
    ]
    cut = entry_line("general", Entry(3, 1_700_000_003.0, "12:00:00", SAID, "alice", "line 3"))
    path = tmp_path / FILE
    path.write_text(
        "".join(f"{line}\n" for line in [HEADER, *(entry_line("general", e) for e in kept)])
        + cut[: len(cut) // 2]
    )
    with cluster(tmp_path, server_options=OPTIONS) as chat:
        chat.server.wait_stderr(
            "trio-chat-server: history.jsonl: line 4 is corrupt (cut short); "
            "keeping the 2 entries before it"
        )
        bob = chat.client("bob")
        for entry in kept:
            bob.expect(history(entry))
        expect_admitted(bob, "bob")
        bob.type("after the cut")
        bob.expect("[bob (<time>)] after the cut")
        chat.shutdown()
    # Rewritten before anything was appended: the cut line is gone.
    saved = entries_in(path)
    assert [entry.message for _, entry in saved] == ["line 1", "line 2", "after the cut"]


def refused(tmp_path: Path) -> tuple[int, str, str]:
    """The server started with the history file as the test left it: its
    exit status, stdout and stderr."""
    ports = free_ports(3)
    (tmp_path / "configfile").write_text(
        "".join(
            f"channel {name} {port} 5\n" for name, port in zip(("a", "b", "c"), ports, strict=True)
        )
    )
    done = run_program(SERVER, "configfile", *OPTIONS, cwd=tmp_path)
    return done.returncode, done.stdout, done.stderr


def test_a_file_from_a_newer_trio_chat_is_refused_before_binding(tmp_path: Path) -> None:
    future = '{"trio-chat-history": 2}\n{"channel": "a", "something": "new"}\n'
    (tmp_path / FILE).write_text(future)
    assert refused(tmp_path) == (
        1,
        "",
        "trio-chat-server: history.jsonl was written by a newer trio-chat (format 2); "
        "this one reads format 1\n",
    )
    assert (tmp_path / FILE).read_text() == future


def test_a_file_not_ours_or_unreadable_is_refused(tmp_path: Path) -> None:
    (tmp_path / FILE).write_text("channel general 7000 5\n")
    assert refused(tmp_path) == (
        1,
        "",
        "trio-chat-server: history.jsonl is not a trio-chat history file "
        '(its first line is not {"trio-chat-history": 1})\n',
    )
    assert (tmp_path / FILE).read_text() == "channel general 7000 5\n"
    (tmp_path / FILE).unlink()
    (tmp_path / FILE).mkdir()
    assert refused(tmp_path) == (
        1,
        "",
        "trio-chat-server: cannot read the history file history.jsonl: Is a directory\n",
    )


def test_nothing_from_before_an_empty_comes_back_after_a_restart(tmp_path: Path) -> None:
    with cluster(tmp_path, server_options=OPTIONS) as chat:
        alice = chat.join("alice")
        carol = chat.join("carol", "random")
        alice.type("secret one", "secret two")
        alice.expect("[alice (<time>)] secret one")
        alice.expect("[alice (<time>)] secret two")
        carol.type("kept in random")
        carol.expect("[carol (<time>)] kept in random")
        chat.server.type("/empty general")
        chat.server.expect_soon(srv("general has been emptied."))
        assert alice.wait_exit() == 0
        dave = chat.join("dave")
        dave.type("said after")
        dave.expect("[dave (<time>)] said after")
        chat.shutdown()
    saved = entries_in(tmp_path / FILE)
    assert [(channel, entry.message) for channel, entry in saved] == [
        ("random", "kept in random"),
        ("general", "said after"),
    ]
    assert "secret" not in (tmp_path / FILE).read_text()

    with cluster(tmp_path, server_options=OPTIONS) as chat:
        erin = chat.client("erin")
        erin.expect(history(saved[1][1]))
        expect_admitted(erin, "erin")
        chat.shutdown()
        assert erin.rest() == []
