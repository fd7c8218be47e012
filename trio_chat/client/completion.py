"""Tab completion at the terminal, as irssi and WeeChat do it.

Tab completes at once, in the key's own handler: prompt_toolkit's own Tab
starts its completion as a background task, so keys typed quickly after it
(``/switch `` Tab Tab Enter) were handled before the completion was there and
Enter sent the half-typed line. Here each key sees the line as the keys before
it left it. One completion is inserted at once; several insert their common
part and open the menu, which the next Tab walks. A completed word gets a
space after it (a directory a ``/`` instead), so typing goes on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prompt_toolkit.buffer import Buffer, CompletionState
from prompt_toolkit.completion import (
    CompleteEvent,
    Completer,
    Completion,
    PathCompleter,
    get_common_complete_suffix,
)
from prompt_toolkit.document import Document
from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent

COMMANDS = ["/whisper", "/send", "/switch", "/list", "/quit", "/help"]


class ChatCompleter(Completer):
    """Commands; channel names after /switch (not the one we are in); names
    after /whisper and /send (not our own); local paths after /send USER."""

    def __init__(
        self,
        username: str,
        names: Callable[[], Iterable[str]],
        channels: Callable[[], Iterable[str]],
        current_channel: Callable[[], str],
    ) -> None:
        self.username = username
        self.names = names
        self.channels = channels
        self.current_channel = current_channel
        self._paths = PathCompleter(expanduser=True)

    def get_completions(
        self, document: Document, complete_event: CompleteEvent
    ) -> Iterable[Completion]:
        text = document.text_before_cursor
        words = text.split()
        if not words or text.endswith(" "):
            words.append("")
        current = words[-1]
        if len(words) == 1:
            yield from _words(COMMANDS, current)
            return
        command = words[0]
        if command == "/switch" and len(words) == 2:
            here = self.current_channel()
            yield from _words([name for name in self.channels() if name != here], current)
        elif command in ("/whisper", "/send") and len(words) == 2:
            yield from _words(sorted(set(self.names()) - {self.username}), current)
        elif command == "/send" and len(words) == 3:
            for path in self._paths.get_completions(
                Document(current, len(current)), complete_event
            ):
                # A directory goes on with "/", a file ends the word.
                end = "/" if path.display_text.endswith("/") else " "
                yield Completion(path.text + end, path.start_position, display=path.display_text)


def _words(choices: Iterable[str], current: str) -> Iterable[Completion]:
    for choice in choices:
        if choice.startswith(current):
            yield Completion(choice + " ", start_position=-len(current), display=choice)


def complete_now(buffer: Buffer, backward: bool = False) -> None:
    """Tab (Shift-Tab with ``backward``): complete the word before the cursor now."""
    state = buffer.complete_state
    if state is not None and state.completions:
        if backward:
            buffer.complete_previous()
        else:
            buffer.complete_next()
        return
    if buffer.completer is None:
        return
    document = buffer.document
    event = CompleteEvent(completion_requested=True)
    found = list(buffer.completer.get_completions(document, event))
    if not found:
        return
    if len(found) == 1:
        buffer.apply_completion(found[0])
        return
    common = get_common_complete_suffix(document, found)
    if common:
        buffer.insert_text(common)  # (which closes any menu)
        found = [completion.new_completion_from_position(len(common)) for completion in found]
    buffer.complete_state = CompletionState(original_document=buffer.document, completions=found)
    if backward:
        buffer.go_to_completion(len(found) - 1)


def completion_bindings() -> KeyBindings:
    """Tab and Shift-Tab, completing synchronously (see the module's docstring)."""
    bindings = KeyBindings()

    @bindings.add("tab")
    def _(event: KeyPressEvent) -> None:
        complete_now(event.current_buffer)

    @bindings.add("s-tab")
    def _(event: KeyPressEvent) -> None:
        complete_now(event.current_buffer, backward=True)

    return bindings
