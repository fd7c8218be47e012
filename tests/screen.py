"""A terminal for pexpect tests: what a program shows, as a screen would show it.

A thread reads the program's pseudo-terminal as it writes, into a pyte screen
(a VT100 emulator), and answers its cursor-position requests at once with the
real position, as a terminal emulator does: prompt_toolkit draws its bottom
toolbar only once it knows where the cursor is, and asks again after every
line it prints above the prompt. Tests wait for what the screen shows (a
redraw writes only what changed, so a word is not always in the byte stream
whole), or for text in everything written (``transcript``), with a deadline.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pexpect
import pyte

DEADLINE = 15.0


class _Emulator(pyte.Screen):
    """A pyte screen whose answers (the cursor position) go back to the program."""

    def __init__(self, child: pexpect.spawn) -> None:
        rows, columns = child.getwinsize()
        super().__init__(columns, rows)
        self.child = child

    def write_process_input(self, data: str) -> None:
        self.child.send(data)


class Screen:
    def __init__(self, child: pexpect.spawn) -> None:
        self.child = child
        self.screen = _Emulator(child)
        self.stream = pyte.Stream(self.screen)
        self.transcript = ""
        self.ended = False
        self._seen = 0  # how much of the transcript find() has passed
        self._changed = threading.Condition()
        self._wanted: Callable[[Screen], bool] | None = None
        self._met = False
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        while True:
            try:
                data = self.child.read_nonblocking(65536, timeout=None)
            except (pexpect.EOF, OSError):
                break
            with self._changed:
                self.transcript += data
                self.stream.feed(data)
                # Checked after every read, so a state the screen passes
                # through (a bar that comes and goes) is not missed.
                if self._wanted is not None and self._wanted(self):
                    self._met = True
                self._changed.notify_all()
        with self._changed:
            self.ended = True
            self._changed.notify_all()

    # ----- what is shown -----

    @property
    def rows(self) -> list[str]:
        return [row.rstrip() for row in self.screen.display]

    @property
    def bottom(self) -> str:
        """The last row: the status bar."""
        return self.rows[-1]

    def shows(self, text: str) -> bool:
        return any(text in row for row in self.rows)

    # ----- waiting -----

    def wait(self, wanted: Callable[[Screen], bool], what: str, deadline: float = DEADLINE) -> None:
        """Until ``wanted(self)`` holds (``what`` says what for, if it never does)."""
        end = time.monotonic() + deadline
        with self._changed:
            self._wanted, self._met = wanted, wanted(self)
            try:
                while not self._met:
                    left = end - time.monotonic()
                    if left <= 0 or self.ended:
                        raise AssertionError(f"never on screen: {what}\n" + "\n".join(self.rows))
                    self._changed.wait(left)
            finally:
                self._wanted = None

    def expect(self, text: str, deadline: float = DEADLINE) -> None:
        """Until a row of the screen shows ``text``."""
        self.wait(lambda screen: screen.shows(text), repr(text), deadline)

    def expect_status(self, text: str, deadline: float = DEADLINE) -> None:
        """Until the status bar (the bottom row) shows ``text``."""
        self.wait(lambda screen: text in screen.bottom, f"status {text!r}", deadline)

    def find(self, text: str, deadline: float = DEADLINE) -> str:
        """Until ``text`` is in what was written since the last find; what came
        before it (escape sequences and all)."""
        with self._changed:
            found = self._changed.wait_for(
                lambda: text in self.transcript[self._seen :] or self.ended, deadline
            )
            at = self.transcript.find(text, self._seen)
            if not found or at < 0:
                raise AssertionError(f"never written: {text!r}\n" + "\n".join(self.rows))
            before = self.transcript[self._seen : at]
            self._seen = at + len(text)
            return before

    def send(self, keys: str) -> None:
        self.child.send(keys)

    def wait_exit(self, deadline: float = DEADLINE) -> int:
        """Until the program has ended; its exit status."""
        with self._changed:
            if not self._changed.wait_for(lambda: self.ended, deadline):
                raise AssertionError("the program did not end\n" + "\n".join(self.rows))
        self.child.close()
        assert self.child.exitstatus is not None, self.child.signalstatus
        return int(self.child.exitstatus)
