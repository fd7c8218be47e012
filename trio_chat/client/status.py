"""What the terminal client's status bar shows, learnt from what the server sends.

The server sends no status: the channel's name comes from the Welcome line, the
place in the queue from the queue line, who is in the channel from the roster
(on admission) and the joined and left lines since, the capacity from a
``/list`` answer (the terminal client asks for one when it starts, and learns
from every answer). Plain state, no I/O: the prompt thread owns it and draws
it (terminal.py). Every text in it came from a peer, so it is cleaned when drawn.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

from ..sanitize import clean
from ..wire import LineKind
from .transfers import human_size

# The contract lines this reads (behaviour.md, "Joining and the waiting queue"
# and "/list"); text.py formats them on the server.
_WELCOME = re.compile(r"\[Server message \([^)]*\)\] Welcome to the (.+) channel, (.+)\.")
_QUEUED = re.compile(r".* there are (\d+) user\(s\) ahead of you\.")
_LISTING = re.compile(r"\[Channel\] .* (\d+)/(\d+)/(\d+)\.")

# Characters of a progress bar.
BAR_WIDTH = 20


@dataclass
class Progress:
    """One transfer in flight. ``waiting`` says why it has not moved yet."""

    label: str
    done: int
    total: int
    started: float = field(default_factory=time.monotonic)
    waiting: str = ""
    peer: str = ""  # whom an offer waits for

    def move(self, done: int) -> None:
        if not self.done and done:
            self.started = time.monotonic()  # the speed counts from the first byte
            self.waiting = ""
        self.done = done

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 1.0

    def render(self) -> str:
        label = clean(self.label)
        if self.waiting and not self.done:
            return f"{label}: {clean(self.waiting)}"
        elapsed = max(time.monotonic() - self.started, 1e-3)
        speed = self.done / elapsed
        bar = "#" * int(self.fraction * BAR_WIDTH)
        left = (self.total - self.done) / speed if speed > 0 else 0.0
        return (
            f"{label} [{bar:<{BAR_WIDTH}}] {self.fraction:4.0%} of {human_size(self.total)}, "
            f"{human_size(speed)}/s, {left:.0f} s left"
        )


@dataclass
class Status:
    """The client's channel, its members, its place in the queue."""

    username: str
    channel: str = ""
    admitted: bool = False
    ahead: int | None = None  # queued: how many are before us
    members: set[str] = field(default_factory=set)
    # How many are in the channel: the roster's count, followed by the joined
    # and left lines. A member whose connection is lost leaves without a line
    # (behaviour.md, "Chatting"), so a /list answer sets it again.
    count: int = 0
    # From /list answers: channel -> (members, capacity, queued).
    listed: dict[str, tuple[int, int, int]] = field(default_factory=dict)

    def learn(self, line: str, kind: LineKind, subject: str) -> None:
        """Follow one LINE frame (``line`` and ``subject`` as the server sent them)."""
        if kind == LineKind.SERVER:
            welcome = _WELCOME.fullmatch(line)
            if welcome is not None and welcome.group(2) == self.username:
                # A new channel (at the start, or after /switch): nothing known yet.
                self.channel = welcome.group(1)
                self.admitted = False
                self.ahead = None
                self.members.clear()
                self.count = 0
        elif kind == LineKind.QUEUED:
            place = _QUEUED.fullmatch(line)
            if place is not None:
                self.ahead = int(place.group(1))
        elif kind == LineKind.JOINED:
            if subject not in self.members:
                self.members.add(subject)
                self.count += 1
            if subject == self.username:
                self.admitted = True
                self.ahead = None
        elif kind == LineKind.LEFT:
            if subject in self.members:
                self.members.discard(subject)
                self.count = max(0, self.count - 1)
        elif kind == LineKind.LISTING:
            row = _LISTING.fullmatch(line)
            if row is not None:
                current, capacity, queued = (int(number) for number in row.groups())
                self.listed[subject] = (current, capacity, queued)
                if subject == self.channel and self.admitted:
                    self.count = current

    def set_members(self, names: list[str]) -> None:
        """The roster, sent on admission, just before our own joined line."""
        self.members = set(names)
        self.count = len(self.members)

    def render(self, transfers: list[Progress]) -> str:
        """The one status line: channel, members/capacity, queue, transfers."""
        if not self.channel:
            return " connecting…"
        parts = [clean(self.channel)]
        row = self.listed.get(self.channel)
        capacity = f"/{row[1]}" if row is not None else ""
        if self.admitted:
            parts.append(f"{self.count}{capacity} members")
        elif self.ahead is not None:
            parts.append(f"queued, {self.ahead} ahead")
            if row is not None:
                parts.append(f"{row[0]}{capacity} members")
        else:
            parts.append("joining…")
        if transfers:
            total = sum(p.total for p in transfers)
            done = sum(p.done for p in transfers)
            share = done / total if total else 0.0
            count = len(transfers)
            parts.append(f"{count} transfer{'s' if count > 1 else ''} {share:.0%}")
        return " " + " · ".join(parts)
