"""End to end /send between real client processes (behaviour.md, "/send")."""

from __future__ import annotations

import os
from pathlib import Path

from bench.common import sha256

from .processes import cluster, srv


def test_send_small_text_and_50_mb_random(tmp_path: Path, nodes: int | None) -> None:
    (tmp_path / "notes.txt").write_text("hello bob\n")
    big = tmp_path / "random.bin"
    with big.open("wb") as file:
        for _ in range(50):
            file.write(os.urandom(1 << 20))
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    with cluster(tmp_path, nodes=nodes) as chat:
        alice = chat.join("alice")
        bob = chat.client("bob", "general", "--download-dir", str(downloads))
        chat.server.expect(srv("bob has joined the general channel."))
        alice.expect(srv("bob has joined the channel."))
        alice.type("/send bob notes.txt", "/send bob ./random.bin", "/send bob nothing.txt")
        alice.expect(srv("nothing.txt does not exist."))
        sent = {alice.next_line(deadline=60), alice.next_line(deadline=60)}
        assert sent == {srv("You sent notes.txt to bob."), srv("You sent ./random.bin to bob.")}
        chat.shutdown()
        assert set(chat.server.rest()) == {
            srv("alice sent notes.txt to bob."),
            srv("alice sent ./random.bin to bob."),
        }
        assert bob.rest() == [
            srv("Welcome to the general channel, bob."),
            srv("bob has joined the channel."),
        ]
        assert "received random.bin" in bob.stderr
    assert (downloads / "notes.txt").read_text() == "hello bob\n"
    assert sha256(downloads / "random.bin") == sha256(big)
    assert sorted(p.name for p in downloads.iterdir()) == ["notes.txt", "random.bin"]
