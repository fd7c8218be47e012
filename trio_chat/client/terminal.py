"""The client on a terminal: a prompt that incoming lines never break.

Used only when stdin and stdout are both terminals, and imported only then, so
piped start-up stays fast. prompt_toolkit runs its own asyncio loop, so the
prompt lives in a worker thread; typed lines cross into trio through a memory
channel, and what trio prints goes through prompt_toolkit's stdout proxy, which
draws it above the prompt. The bytes of every contract line are unchanged; on
a terminal they may be wrapped in colour (not with ``NO_COLOR`` set).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass

import trio
from prompt_toolkit import PromptSession
from prompt_toolkit.completion import (
    CompleteEvent,
    Completer,
    Completion,
    PathCompleter,
    WordCompleter,
)
from prompt_toolkit.document import Document
from prompt_toolkit.history import InMemoryHistory
from prompt_toolkit.patch_stdout import patch_stdout

from ..wire import LineKind
from .transfers import human_size

COMMANDS = ["/whisper", "/send", "/switch", "/list", "/quit", "/help"]

HELP = """\
/whisper USER MESSAGE   say MESSAGE to USER only
/send USER FILE         send FILE to USER (Tab completes names and paths)
/switch CHANNEL         leave this channel for CHANNEL
/list                   channels with members/capacity/queue
/quit                   leave (Ctrl-D or Ctrl-C do the same)
/help                   this list
anything else           said to everyone in the channel"""

RESET = "\x1b[0m"
SERVER = "\x1b[2;33m"  # dim yellow
OWN = "\x1b[32m"  # green
WHISPER = "\x1b[1;35m"  # bold magenta
NAME = "\x1b[36m"  # cyan
LISTING = "\x1b[34m"  # blue


@dataclass
class Progress:
    label: str
    done: int
    total: int
    started: float

    def render(self) -> str:
        elapsed = max(time.monotonic() - self.started, 1e-3)
        speed = self.done / elapsed
        fraction = self.done / self.total if self.total else 1.0
        width = 20
        bar = "#" * int(fraction * width)
        left = (self.total - self.done) / speed if speed > 0 else 0.0
        return (
            f"{self.label} [{bar:<{width}}] {fraction:4.0%} of {human_size(self.total)}, "
            f"{human_size(speed)}/s, {left:.0f} s left"
        )


class ChatCompleter(Completer):
    """Commands; channel names after /switch; names after /whisper and /send;
    local paths after /send USER."""

    def __init__(self, names: set[str], channels: list[str]) -> None:
        self.names = names
        self.channels = channels
        self._paths = PathCompleter(expanduser=True)

    def get_completions(
        self, document: Document, complete_event: CompleteEvent
    ) -> Iterable[Completion]:
        text = document.text_before_cursor
        words = text.split()
        if text.endswith(" "):
            words.append("")
        if len(words) <= 1:
            yield from WordCompleter(COMMANDS, WORD=True).get_completions(document, complete_event)
            return
        command, current = words[0], words[-1]
        choices: list[str] = []
        if command == "/switch" and len(words) == 2:
            choices = self.channels
        elif command in ("/whisper", "/send") and len(words) == 2:
            choices = sorted(self.names)
        elif command == "/send" and len(words) == 3:
            path_document = Document(current, len(current))
            yield from self._paths.get_completions(path_document, complete_event)
            return
        for choice in choices:
            if choice.startswith(current):
                yield Completion(choice, start_position=-len(current))


class TerminalUI:
    def __init__(self, username: str) -> None:
        self.username = username
        self.colour = not os.environ.get("NO_COLOR")
        self.names: set[str] = set()
        self.channels: list[str] = []
        self.progress: dict[object, Progress] = {}
        self.session: PromptSession[str] = PromptSession(
            history=InMemoryHistory(),
            completer=ChatCompleter(self.names, self.channels),
            complete_while_typing=False,
            erase_when_done=True,
            bottom_toolbar=self._toolbar,
            refresh_interval=0.5,
        )
        self._closing = threading.Event()
        self._interrupted = threading.Event()
        self._stopped = threading.Event()

    # ----- output, from the trio thread -----

    def print_line(self, line: str, kind: LineKind) -> None:
        self._learn_names(line, kind)
        sys.stdout.write(self._paint(line, kind) + "\n")
        sys.stdout.flush()

    def _paint(self, line: str, kind: LineKind) -> str:
        if not self.colour:
            return line
        if kind == LineKind.SERVER:
            return SERVER + line + RESET
        if kind == LineKind.WHISPER:
            return WHISPER + line + RESET
        if kind == LineKind.LISTING:
            return LISTING + line + RESET
        name, _, rest = line[1:].partition(" (")
        colour = OWN if name == self.username else NAME
        return f"[{colour}{name}{RESET} ({rest}"

    def _learn_names(self, line: str, kind: LineKind) -> None:
        if kind in (LineKind.CHAT, LineKind.WHISPER) and line.startswith("["):
            self.names.add(line[1:].split(" ", 1)[0])
        elif kind == LineKind.SERVER and "] " in line:
            body = line.split("] ", 1)[1]
            if body.endswith(" has joined the channel."):
                self.names.add(body.split(" ", 1)[0])
            elif body.endswith((" has left the channel.", " went AFK.")):
                self.names.discard(body.split(" ", 1)[0])
        if kind == LineKind.LISTING:
            channel = line.split(" ")[1]
            if channel not in self.channels:
                self.channels.append(channel)

    def update(self, key: object, label: str, done: int, total: int) -> None:
        current = self.progress.get(key)
        if current is None:
            self.progress[key] = Progress(label, done, total, time.monotonic())
        else:
            current.done = done
        self._invalidate()

    def finish(self, key: object) -> None:
        if self.progress.pop(key, None) is not None:
            self._invalidate()

    def _invalidate(self) -> None:
        app = self.session.app
        if app.is_running and app.loop is not None:
            app.loop.call_soon_threadsafe(app.invalidate)

    def set_channels(self, names: list[str]) -> None:
        self.channels[:] = names

    def set_names(self, names: list[str]) -> None:
        self.names.clear()
        self.names.update(names)

    def show_help(self) -> None:
        sys.stdout.write(HELP + "\n")
        sys.stdout.flush()

    def _toolbar(self) -> str:
        if not self.progress:
            return ""
        return " | ".join(p.render() for p in list(self.progress.values()))

    # ----- input -----

    async def lines(self) -> AsyncIterator[str]:
        """What the user types; Ctrl-D and Ctrl-C end it as /quit."""
        send, receive = trio.open_memory_channel[str](0)
        token = trio.lowlevel.current_trio_token()

        def prompt_loop() -> None:
            try:
                # Raw mode for the whole session, not only while a prompt shows:
                # a Ctrl-D or Ctrl-C typed between two prompts stays a key the
                # next prompt reads, instead of a tty EOF or a SIGINT.
                with patch_stdout(raw=True), self.session.input.raw_mode():
                    while not self._closing.is_set():
                        try:
                            if self._interrupted.is_set():
                                raise KeyboardInterrupt
                            line = self.session.prompt("> ")
                        except (EOFError, KeyboardInterrupt):
                            line = "/quit"
                        if self._closing.is_set():
                            break
                        try:
                            trio.from_thread.run(send.send, line, trio_token=token)
                        except (trio.RunFinishedError, trio.Cancelled):
                            break
                        if line.strip() == "/quit":
                            break
            finally:
                self._stopped.set()

        threading.Thread(target=prompt_loop, name="prompt", daemon=True).start()
        async with receive:
            async for line in receive:
                yield line

    def interrupt(self) -> None:
        """A SIGINT: leave as Ctrl-D does, whether or not a prompt is showing."""
        self._interrupted.set()
        app = self.session.app
        if app.is_running and app.loop is not None:
            app.loop.call_soon_threadsafe(lambda: app.exit(exception=KeyboardInterrupt()))

    def close(self) -> None:
        """Take the prompt down (restoring the terminal) before the process exits."""
        self._closing.set()
        app = self.session.app
        if app.is_running and app.loop is not None:
            app.loop.call_soon_threadsafe(lambda: app.exit(exception=EOFError()))
        self._stopped.wait(2.0)
