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
    """Line budgets by what a peer cannot shed by reconnecting: its address
    (IPv6 by /64, admission.address_key) and its name.

    A member's bucket is opened here at its hello and closed when the rules
    are done with it (or it hangs up). A bucket opened starts from the lowest
    budget filed under its keys: those of members still connected with the
    same address or name, and what members who went left, refilled by the time
    since. So reconnecting buys nothing: a loop that connects, sends its burst
    and quits gets the rate, not a burst per connection, however its
    connections overlap. A closed budget is forgotten once it has refilled to
    a whole burst (``burst / rate`` seconds at most, 2 s by default), so the
    ledger holds only the open buckets and the recently spent ones.
    (README, "Flood control".)
    """

    def __init__(self, burst: float, rate: float) -> None:
        self.burst = burst
        self.rate = rate
        self._open: dict[str, list[TokenBucket]] = {}
        self._left: dict[str, tuple[float, float]] = {}  # key: (tokens, stamp)
        self._sweep_at = SWEEP_FIRST

    def open(self, keys: tuple[str, ...], now: float) -> TokenBucket:
        """The bucket of a member arriving with ``keys``."""
        bucket = TokenBucket(self.burst, self.rate, now)
        bucket.tokens = self._lowest(keys, now, self.burst)
        for key in keys:
            self._open.setdefault(key, []).append(bucket)
        return bucket

    def close(self, keys: tuple[str, ...], bucket: TokenBucket, now: float) -> None:
        """The member with ``keys`` went, leaving ``bucket`` as it is."""
        for key in keys:
            buckets = self._open.get(key)
            if buckets is not None and bucket in buckets:
                buckets.remove(bucket)
                if not buckets:
                    del self._open[key]
        tokens = self._lowest(keys, now, bucket.level(now), live=False)
        if tokens >= self.burst - EPSILON:
            for key in keys:
                self._left.pop(key, None)
            return
        for key in keys:
            self._left[key] = (tokens, now)
        if len(self._left) >= self._sweep_at:
            self._sweep(now)

    def __len__(self) -> int:
        """Keys with a spent budget on file (open buckets aside)."""
        return len(self._left)

    def _lowest(self, keys: tuple[str, ...], now: float, tokens: float, live: bool = True) -> float:
        for key in keys:
            left = self._left.get(key)
            if left is not None:
                tokens_then, stamp = left
                tokens = min(tokens, tokens_then + (now - stamp) * self.rate)
            if live:
                for bucket in self._open.get(key, ()):
                    tokens = min(tokens, bucket.level(now))
        return tokens

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
