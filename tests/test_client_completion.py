"""Tab at the terminal, in process (client/completion.py); tests/test_terminal.py
types it into the real client."""

from __future__ import annotations

from pathlib import Path

import pytest
from prompt_toolkit.buffer import Buffer

from trio_chat.client.completion import ChatCompleter, complete_now


def typed(text: str, names: tuple[str, ...] = ("alice", "bob")) -> Buffer:
    completer = ChatCompleter(
        "alice", lambda: names, lambda: ["general", "random", "help"], lambda: "general"
    )
    buffer = Buffer(completer=completer)
    buffer.insert_text(text)
    return buffer


@pytest.mark.parametrize(
    ("text", "completed"),
    [
        ("/wh", "/whisper "),
        ("/whisper ", "/whisper bob "),  # alice is the one typing
        ("/whisper b", "/whisper bob "),
        ("/send ", "/send bob "),
        ("/switch r", "/switch random "),
        ("/q", "/quit "),
    ],
)
def test_one_completion_goes_in_at_once_with_a_space(text: str, completed: str) -> None:
    buffer = typed(text)
    complete_now(buffer)
    assert buffer.text == completed
    assert buffer.complete_state is None


def test_several_insert_their_common_part_then_tab_walks_the_menu() -> None:
    buffer = typed("/whisper b", ("alice", "bob", "bobby"))
    complete_now(buffer)
    assert buffer.text == "/whisper bob"
    assert buffer.complete_state is not None
    assert [c.display_text for c in buffer.complete_state.completions] == ["bob", "bobby"]
    complete_now(buffer)
    assert buffer.text == "/whisper bob "
    complete_now(buffer)
    assert buffer.text == "/whisper bobby "
    complete_now(buffer, backward=True)
    assert buffer.text == "/whisper bob "


def test_switch_offers_the_other_channels() -> None:
    buffer = typed("/switch ")
    complete_now(buffer)
    assert buffer.text == "/switch "
    assert buffer.complete_state is not None
    assert [c.display_text for c in buffer.complete_state.completions] == ["random", "help"]


def test_nothing_to_complete_changes_nothing() -> None:
    for text in ("/whisper bob ", "hello", "/list "):
        buffer = typed(text)
        complete_now(buffer)
        assert buffer.text == text
        assert buffer.complete_state is None


def test_paths_end_in_a_space_and_directories_in_a_slash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "cat.jpg").write_text("")
    (tmp_path / "report.txt").write_text("")
    monkeypatch.chdir(tmp_path)
    buffer = typed("/send bob ph")
    complete_now(buffer)
    assert buffer.text == "/send bob photos/"
    complete_now(buffer)
    assert buffer.text == "/send bob photos/cat.jpg "
    buffer = typed("/send bob re")
    complete_now(buffer)
    assert buffer.text == "/send bob report.txt "
