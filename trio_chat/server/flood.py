"""Flood control: a token bucket per member, per connection address; sans-I/O.

Every line a member sends — chat, whispers and commands alike, and file
offers — takes a token. A bucket holds at most ``burst`` tokens and gains
``rate`` tokens a second. When a member's bucket is empty the server stops
reading its connection until a token is back: TCP then slows the sender alone,
and nothing piles up in the server. File chunks take no tokens; they have their
own flow control. (README, "Flood control".)
"""

from __future__ import annotations

# Sleeping exactly the time a token needs must find it there, rounding aside.
EPSILON = 1e-9


class TokenBucket:
    """``burst`` tokens at most, ``rate`` more each second; times are trio's clock."""

    def __init__(self, burst: float, rate: float, now: float) -> None:
        self.burst = burst
        self.rate = rate
        self.tokens = burst
        self.stamp = now

    def take(self, now: float) -> float:
        """Take one token and return 0.0, or take nothing and return how many
        seconds until one is there."""
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0 - EPSILON:
            self.tokens = max(self.tokens - 1.0, 0.0)
            return 0.0
        return (1.0 - self.tokens) / self.rate

    def full(self, now: float) -> bool:
        return self.tokens + (now - self.stamp) * self.rate >= self.burst
