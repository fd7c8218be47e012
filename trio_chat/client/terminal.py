"""The client on a terminal: a prompt that incoming lines never break.

Used only when stdin and stdout are both terminals, and imported only then, so
piped start-up stays fast. prompt_toolkit runs its own asyncio loop, so the
prompt lives in a worker thread with that loop; typed lines cross into trio
through a memory channel, and every line trio wants shown crosses the other way
into that loop, where prompt_toolkit prints it above the prompt, in order, in
colour at the terminal's colour depth (none with ``NO_COLOR``). The text of
every contract line is unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from functools import partial
from typing import TextIO

import trio
from prompt_toolkit import PromptSession
from prompt_toolkit.application import run_in_terminal
from prompt_toolkit.completion import (
    CompleteEvent,
    Completer,
    Completion,
    PathCompleter,
    WordCompleter,
)
from prompt_toolkit.document import Document
from prompt_toolkit.formatted_text import FormattedText, StyleAndTextTuples
from prompt_toolkit.history import InMemoryHistory
from prompt_toolkit.input.vt100 import Vt100Input
from prompt_toolkit.output import ColorDepth, create_output
from prompt_toolkit.renderer import print_formatted_text
from prompt_toolkit.styles import Style

from ..sanitize import clean
from ..text import HISTORY_DIVIDER
from ..wire import LineKind
from . import PROGRAM, note_on_stderr
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

# Seconds a finished transfer's progress bar stays on screen.
BAR_LINGERS = 1.0

STYLE = Style.from_dict(
    {
        "server": "ansiyellow dim",
        "own": "ansigreen",
        "name": "ansicyan",
        "whisper": "ansimagenta bold",
        "listing": "ansiblue",
        "note": "italic",
        "history": "dim",
        "divider": "dim italic",
    }
)
_KIND_STYLE = {
    LineKind.SERVER: "class:server",
    LineKind.JOINED: "class:server",
    LineKind.LEFT: "class:server",
    LineKind.QUEUED: "class:server",
    LineKind.WHISPER: "class:whisper",
    LineKind.LISTING: "class:listing",
}


class StaysRawInput(Vt100Input):
    """Terminal input that stays in raw mode while lines print above the prompt.

    prompt_toolkit's ``run_in_terminal`` puts the terminal back into cooked
    mode while it prints. A Ctrl-D typed in that window is taken by the tty's
    line discipline as an end of file that nobody reads, so the key is lost and
    the client never leaves (a Ctrl-C there becomes a SIGINT). Printing needs
    nothing from cooked mode: output processing (newline to CR LF) is on in
    raw mode too.
    """

    def cooked_mode(self) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()


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
    def __init__(self, username: str, stdin: TextIO | None = None, stdout: TextIO | None = None):
        self.username = username
        self.names: set[str] = set()
        self.channels: list[str] = []
        self.progress: dict[object, Progress] = {}
        self._stderr_is_terminal = sys.stderr.isatty()
        self.input = StaysRawInput(stdin or sys.stdin)
        self.output = create_output(stdout or sys.stdout)
        self.session: PromptSession[str] = PromptSession(
            input=self.input,
            output=self.output,
            history=InMemoryHistory(),
            completer=ChatCompleter(self.names, self.channels),
            complete_while_typing=False,
            erase_when_done=True,
            bottom_toolbar=self._toolbar,
            refresh_interval=0.5,
        )
        # Everything below belongs to the prompt thread's asyncio loop.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._to_print: asyncio.Queue[FormattedText | None] | None = None
        self._closing = False
        self._interrupted = False
        self._ready = threading.Event()
        self._stopped = threading.Event()
        self._typed_in, self._typed_out = trio.open_memory_channel[str](0)

    # ----- the prompt thread -----

    async def start(self) -> None:
        """Start the prompt thread; return once it can take lines to print."""
        token = trio.lowlevel.current_trio_token()
        threading.Thread(
            target=self._thread_main, args=(token,), name="prompt", daemon=True
        ).start()
        await trio.to_thread.run_sync(self._ready.wait)

    def _thread_main(self, token: trio.lowlevel.TrioToken) -> None:
        try:
            asyncio.run(self._prompt_main(token))
        finally:
            self._ready.set()
            self._stopped.set()

    async def _prompt_main(self, token: trio.lowlevel.TrioToken) -> None:
        self._loop = asyncio.get_running_loop()
        self._to_print = asyncio.Queue()
        printer = asyncio.create_task(self._print_loop())
        self._ready.set()
        # Raw mode for the whole session, not only while a prompt shows: a
        # Ctrl-D or Ctrl-C typed between two prompts stays a key the next
        # prompt reads, instead of a tty EOF or a SIGINT.
        with self.input.raw_mode():
            try:
                await self._prompt_loop(token)
            finally:
                # Show every line that arrived before leaving.
                self._to_print.put_nowait(None)
                await printer

    async def _prompt_loop(self, token: trio.lowlevel.TrioToken) -> None:
        loop = asyncio.get_running_loop()
        while not self._closing:
            try:
                if self._interrupted:
                    raise KeyboardInterrupt
                line = await self.session.prompt_async("> ")
            except (EOFError, KeyboardInterrupt):
                line = "/quit"
            if self._closing:
                return
            # Wait in another thread, so lines keep printing meanwhile.
            try:
                await loop.run_in_executor(
                    None, partial(trio.from_thread.run, self._typed_in.send, line, trio_token=token)
                )
            except (trio.RunFinishedError, trio.Cancelled, trio.BrokenResourceError):
                return
            if line.strip() == "/quit":
                return

    async def _print_loop(self) -> None:
        assert self._to_print is not None
        while True:
            batch = [await self._to_print.get()]
            while not self._to_print.empty():
                batch.append(self._to_print.get_nowait())
            texts = [text for text in batch if text is not None]
            if texts:
                if self.session.app.is_running:
                    await run_in_terminal(partial(self._render, texts))
                else:
                    self._render(texts)
            if None in batch:
                return

    def _render(self, texts: list[FormattedText]) -> None:
        """Write lines at the cursor (above the prompt when one is showing)."""
        for text in texts:
            print_formatted_text(
                self.output, text, STYLE, color_depth=self.output.get_default_color_depth()
            )
        self.output.flush()

    def _end_prompt(self, reason: BaseException) -> None:
        """In the prompt thread: end the prompt showing now, if one is, with ``reason``."""
        app = self.session.app
        if app.is_running:
            app.exit(exception=reason)

    def _call_in_loop(self, function: Callable[[], object]) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop has just ended
                loop.call_soon_threadsafe(function)

    # ----- output, from the trio thread -----

    def print_line(self, line: str, kind: LineKind, subject: str = "") -> None:
        line = clean(line)
        subject = clean(subject)
        self._learn_names(kind, subject)
        self._show(self._fragments(line, kind, subject))

    def print_history(self, line: str, kind: LineKind, subject: str = "") -> None:
        """A line said before we came: dimmed (behaviour.md, "Channel history")."""
        line = clean(line)
        self._learn_names(kind, clean(subject))
        if self.output.get_default_color_depth() == ColorDepth.DEPTH_1_BIT:
            self._show([("", line)])
        else:
            self._show([("class:history", line)])

    def end_history(self) -> None:
        self._show([("class:divider", HISTORY_DIVIDER)])

    def note(self, text: str) -> None:
        """A notice for stderr: above the prompt when stderr is this terminal too,
        so the prompt stays intact and the trio thread never blocks on a write."""
        if not self._stderr_is_terminal:
            note_on_stderr(text)
            return
        self._show([("class:note", f"{PROGRAM}: {clean(text)}")])

    def _show(self, fragments: StyleAndTextTuples) -> None:
        text = FormattedText([*fragments, ("", "\n")])
        if self._to_print is None:
            self._render([text])  # no prompt thread: nothing else writes
            return
        queue = self._to_print
        self._call_in_loop(lambda: queue.put_nowait(text))

    def _fragments(self, line: str, kind: LineKind, subject: str) -> StyleAndTextTuples:
        if self.output.get_default_color_depth() == ColorDepth.DEPTH_1_BIT:
            return [("", line)]  # NO_COLOR or a monochrome terminal: one plain run
        style = _KIND_STYLE.get(kind)
        if style is not None:
            return [(style, line)]
        if kind == LineKind.CHAT and subject and line.startswith(f"[{subject} ("):
            # The sender's name, where the line has it (the subject says whose).
            colour = "class:own" if subject == self.username else "class:name"
            rest = line[len(subject) + 1 :]
            return [("", "["), (colour, subject), ("", rest)]
        return [("", line)]

    def _learn_names(self, kind: LineKind, subject: str) -> None:
        """Follow who is in the channel (for Tab) from what each line is about."""
        if not subject:
            return
        if kind in (LineKind.CHAT, LineKind.WHISPER, LineKind.JOINED):
            self.names.add(subject)
        elif kind == LineKind.LEFT:
            self.names.discard(subject)
        elif kind == LineKind.LISTING and subject not in self.channels:
            self.channels.append(subject)

    def update(self, key: object, label: str, done: int, total: int) -> None:
        current = self.progress.get(key)
        if current is not None:
            current.done = done  # redrawn with the toolbar's next refresh
            return
        self.progress[key] = Progress(label, done, total, time.monotonic())
        self._call_in_loop(self.session.app.invalidate)

    def finish(self, key: object) -> None:
        """The transfer is over: its bar stays a moment in its last state, so even
        a file that took a fraction of a second is seen to have moved."""
        if key not in self.progress:
            return

        def later() -> None:
            assert self._loop is not None
            self._loop.call_later(BAR_LINGERS, drop)

        def drop() -> None:
            if self.progress.pop(key, None) is not None:
                self.session.app.invalidate()

        self._call_in_loop(later)

    def set_channels(self, names: list[str]) -> None:
        self.channels[:] = names

    def set_names(self, names: list[str]) -> None:
        self.names.clear()
        self.names.update(names)

    def show_help(self) -> None:
        self._show([("", HELP)])

    def _toolbar(self) -> str:
        if not self.progress:
            return ""
        return " | ".join(p.render() for p in list(self.progress.values()))

    # ----- input -----

    async def lines(self) -> AsyncIterator[str]:
        """What the user types; Ctrl-D and Ctrl-C end it as /quit."""
        async with self._typed_out:
            async for line in self._typed_out:
                yield line

    def interrupt(self) -> None:
        """A signal: leave as Ctrl-D does, whether or not a prompt is showing."""

        def in_loop() -> None:
            self._interrupted = True
            self._end_prompt(KeyboardInterrupt())

        self._call_in_loop(in_loop)

    async def aclose(self) -> None:
        """Take the prompt down (restoring the terminal) before the process exits."""

        def in_loop() -> None:
            self._closing = True
            self._end_prompt(EOFError())

        self._call_in_loop(in_loop)
        with trio.move_on_after(2.0, shield=True):
            await trio.to_thread.run_sync(self._stopped.wait, abandon_on_cancel=True)
