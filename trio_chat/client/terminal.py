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
from collections.abc import AsyncIterator, Callable
from functools import partial
from typing import TextIO

import trio
from prompt_toolkit import PromptSession
from prompt_toolkit.application import run_in_terminal
from prompt_toolkit.formatted_text import FormattedText, StyleAndTextTuples
from prompt_toolkit.history import InMemoryHistory
from prompt_toolkit.input.vt100 import Vt100Input
from prompt_toolkit.output import ColorDepth, create_output
from prompt_toolkit.renderer import print_formatted_text
from prompt_toolkit.styles import Style

from ..sanitize import clean
from ..text import HISTORY_DIVIDER
from ..wire import LineKind
from . import note_on_stderr
from .completion import ChatCompleter, completion_bindings
from .status import Progress, Status
from .transfers import human_size

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
        "note": "italic dim",
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


class TerminalUI:
    def __init__(self, username: str, stdin: TextIO | None = None, stdout: TextIO | None = None):
        self.username = username
        # Owned by the prompt thread (what trio learns crosses over in order
        # with the lines, _call_in_loop), so Tab and the status bar never see
        # them change under them.
        self.names: set[str] = set()
        self.channels: list[str] = []
        self.status = Status(username)
        self.progress: dict[object, Progress] = {}
        # The trio thread's: the answer to the /list sent at the start (for
        # the status bar's capacities) is not shown (see lines()).
        self._hidden_listing = False
        self._hidden_rows = 0
        self._channel_count = 0
        self._stderr_is_terminal = sys.stderr.isatty()
        self.input = StaysRawInput(stdin or sys.stdin)
        self.output = create_output(stdout or sys.stdout)
        self.session: PromptSession[str] = PromptSession(
            input=self.input,
            output=self.output,
            history=InMemoryHistory(),
            completer=ChatCompleter(
                username, lambda: self.names, lambda: self.channels, lambda: self.status.channel
            ),
            complete_while_typing=False,
            key_bindings=completion_bindings(),
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
        hidden = self._hides(kind)
        self._in_loop(partial(self._learn, line, kind, subject))
        if not hidden:
            self._show(self._fragments(line, kind, subject))

    def _hides(self, kind: LineKind) -> bool:
        """Whether this line is one of the answer to our own /list. The server
        answers in order, with a row for each channel in a row: the rows up to
        the channel count, or up to the first other line, are ours."""
        if not self._hidden_listing:
            return False
        if kind != LineKind.LISTING:
            if self._hidden_rows:
                self._hidden_listing = False  # our answer is over
            return False
        self._hidden_rows += 1
        if self._hidden_rows >= self._channel_count:
            self._hidden_listing = False
        return True

    def print_history(self, line: str, kind: LineKind, subject: str = "") -> None:
        """A line said before we came: dimmed (behaviour.md, "Channel history")."""
        line = clean(line)
        subject = clean(subject)
        self._in_loop(partial(self._learn_names, kind, subject))
        if self.output.get_default_color_depth() == ColorDepth.DEPTH_1_BIT:
            self._show([("", line)])
        else:
            self._show([("class:history", line)])

    def end_history(self) -> None:
        self._show([("class:divider", HISTORY_DIVIDER)])

    def note(self, text: str) -> None:
        """A notice (the server's, or the client's own): on stderr, with the
        program's name, unless stderr is this terminal too; then it is shown
        above the prompt as part of the chat, so the prompt stays intact and
        the trio thread never blocks on a write."""
        if not self._stderr_is_terminal:
            note_on_stderr(text)
            return
        line = f"— {clean(text)}"
        if self.output.get_default_color_depth() == ColorDepth.DEPTH_1_BIT:
            self._show([("", line)])  # NO_COLOR: as plain as the rest
        else:
            self._show([("class:note", line)])

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

    def _in_loop(self, change: Callable[[], None]) -> None:
        """Change the prompt thread's state there, in order with the lines;
        here when there is no prompt thread."""
        if self._loop is None:
            change()
        else:
            self._call_in_loop(change)

    # (In the prompt thread.)
    def _learn(self, line: str, kind: LineKind, subject: str) -> None:
        self._learn_names(kind, subject)
        self.status.learn(line, kind, subject)
        self.session.app.invalidate()

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

    def offered(self, key: object, path: str, target: str, total: int) -> None:
        self.note(f"offering {path} ({human_size(total)}) to {target}…")
        progress = Progress(f"{path} -> {target}", 0, total, waiting="offering…", peer=target)
        self._in_loop(partial(self._track, key, progress))

    def accepted(self, key: object) -> None:
        def in_loop() -> None:
            progress = self.progress.get(key)
            if progress is not None:
                progress.waiting = f"waiting for {progress.peer} to take it…"
                self.session.app.invalidate()

        self._in_loop(in_loop)

    def update(self, key: object, label: str, done: int, total: int) -> None:
        current = self.progress.get(key)
        if current is not None and not current.waiting:
            current.move(done)  # redrawn with the toolbar's next refresh
            return

        def in_loop() -> None:
            progress = self.progress.get(key)
            if progress is None:
                self._track(key, Progress(label, done, total))
            else:
                progress.move(done)
                self.session.app.invalidate()

        self._in_loop(in_loop)

    def _track(self, key: object, progress: Progress) -> None:
        self.progress[key] = progress
        self.session.app.invalidate()

    def finish(self, key: object) -> None:
        """The transfer is over: its bar stays a moment in its last state, so even
        a file that took a fraction of a second is seen to have moved (one that
        never moved goes at once)."""

        def in_loop() -> None:
            progress = self.progress.get(key)
            if progress is None:
                return
            if not progress.done:
                drop()
            elif self._loop is not None:
                self._loop.call_later(BAR_LINGERS, drop)

        def drop() -> None:
            if self.progress.pop(key, None) is not None:
                self.session.app.invalidate()

        self._in_loop(in_loop)

    def set_channels(self, names: list[str]) -> None:
        cleaned = [clean(name) for name in names]
        self._channel_count = len(cleaned)

        def in_loop() -> None:
            self.channels[:] = cleaned

        self._in_loop(in_loop)

    def set_names(self, names: list[str]) -> None:
        cleaned = [clean(name) for name in names]

        def in_loop() -> None:
            self.names.clear()
            self.names.update(cleaned)
            self.status.set_members(cleaned)

        self._in_loop(in_loop)

    def show_help(self) -> None:
        self._show([("", HELP)])

    # (In the prompt thread.)
    def _toolbar(self) -> str:
        """Each transfer's bar, then the status line (status.py)."""
        transfers = list(self.progress.values())
        return "\n".join([*(p.render() for p in transfers), self.status.render(transfers)])

    # ----- input -----

    async def lines(self) -> AsyncIterator[str]:
        """What the user types; Ctrl-D and Ctrl-C end it as /quit."""
        async with self._typed_out:
            async for line in self._typed_out:
                yield line

    async def chat_lines(self) -> AsyncIterator[str]:
        """What the session sends: first a /list of our own, whose answer is
        not shown (_hides) but gives the status bar each channel's capacity,
        then what the user types."""
        self._hidden_listing = True
        yield "/list"
        async for line in self.lines():
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
