"""Where the answer to a console command goes when a control connection sent
it (server/control.py): the interface ``ChatServer`` routes answers through.

The hub marks a control connection's answer out with ``effects.AnswerBegins``
and ``effects.AnswerEnds``; the node where the command was typed (the one
``speaking``) copies to it every stdout line and every ``effects.Console``
text in between (``ChatServer.apply``). A command the server answers itself,
before the hub (such as a reload of the config), answers it directly.
"""

from __future__ import annotations

from typing import Protocol


class Answer(Protocol):
    def said(self, line: str) -> None:
        """A contract line the server printed on its stdout for the command."""

    def told(self, text: str, failed: bool) -> None:
        """A console line (the server's stderr); ``failed``: it says the command failed."""

    def ended(self, failed: bool) -> None:
        """The answer is complete; ``failed``: something in it failed."""
