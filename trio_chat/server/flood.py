"""Flood control: a token bucket per member, and a ledger of the budgets that
members left with, so that reconnecting does not refill one; sans-I/O.

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
# The ledger is first swept when it holds this many budgets.
SWEEP_FIRST = 1024


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
        return self.level(now) >= self.burst

    def level(self, now: float) -> float:
        """The tokens there are at ``now`` (taking none)."""
        return min(self.burst, self.tokens + (now - self.stamp) * self.rate)


class LineLedger:
    """The line budgets that members left with, by address and by name.

    A member's bucket is its own while it is connected; when it goes, what is
    left of it is written here under the member's address (IPv6 by /64,
    admission.address_key) and its name, and a member who arrives with either
    starts from the lowest of those budgets instead of a fresh burst. So
    reconnecting buys nothing: a loop that connects, sends its burst and quits
    gets the rate, not a burst per connection. An entry is forgotten once it
    has refilled to a full burst (``burst / rate`` seconds at most, 2 s by
    default), so the ledger holds only the recent, the spent budgets.
    (README, "Flood control".)
    """

    def __init__(self, burst: float, rate: float) -> None:
        self.burst = burst
        self.rate = rate
        self._left: dict[str, tuple[float, float]] = {}  # key: (tokens, stamp)
        self._sweep_at = SWEEP_FIRST

    def bucket(self, keys: tuple[str, ...], now: float) -> TokenBucket:
        """The bucket a member arriving with ``keys`` starts with."""
        bucket = TokenBucket(self.burst, self.rate, now)
        for key in keys:
            left = self._left.get(key)
            if left is not None:
                tokens, stamp = left
                bucket.tokens = min(bucket.tokens, tokens + (now - stamp) * self.rate)
        return bucket

    def remember(self, keys: tuple[str, ...], bucket: TokenBucket, now: float) -> None:
        """A member with ``keys`` went, leaving ``bucket`` as it is."""
        tokens = bucket.level(now)
        for key in keys:
            left = self._left.get(key)
            if left is not None:
                tokens_then, stamp = left
                tokens = min(tokens, tokens_then + (now - stamp) * self.rate)
        if tokens >= self.burst - EPSILON:
            for key in keys:
                self._left.pop(key, None)
            return
        for key in keys:
            self._left[key] = (tokens, now)
        if len(self._left) >= self._sweep_at:
            self._sweep(now)

    def __len__(self) -> int:
        return len(self._left)

    def _sweep(self, now: float) -> None:
        """Forget the budgets that have refilled; amortised, the table is swept
        whenever it has doubled since the last sweep."""
        full = self.burst - EPSILON
        self._left = {
            key: (tokens, stamp)
            for key, (tokens, stamp) in self._left.items()
            if tokens + (now - stamp) * self.rate < full
        }
        self._sweep_at = max(SWEEP_FIRST, 2 * len(self._left))
