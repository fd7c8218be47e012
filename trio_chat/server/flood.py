"""Flood control: a token bucket per member, and a ledger of the budgets that
members left with, so that reconnecting does not refill one; sans-I/O.

Every line a member sends — chat, whispers and commands alike, and file
offers — takes a token. A bucket holds at most ``burst`` tokens and gains
``rate`` tokens a second. When a member's bucket is empty the server stops
reading its connection until a token is back: TCP then slows the sender alone,
and nothing piles up in the server. File chunks take no tokens; they have their
own flow control. (docs/security.md, "Flood control".)
"""

from __future__ import annotations

import heapq

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
        wait = self.wait(now)
        if not wait:
            self.tokens = max(self.tokens - 1.0, 0.0)
        return wait

    def wait(self, now: float) -> float:
        """How many seconds until a token is there (0.0: one is); takes none."""
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0 - EPSILON:
            return 0.0
        return (1.0 - self.tokens) / self.rate

    def spend(self, now: float) -> None:
        """A line that went without asking (another node's): a token less, if any."""
        self.wait(now)
        self.tokens = max(self.tokens - 1.0, 0.0)

    def full(self, now: float) -> bool:
        return self.level(now) >= self.burst

    def level(self, now: float) -> float:
        """The tokens there are at ``now`` (taking none)."""
        return min(self.burst, self.tokens + (now - self.stamp) * self.rate)


def take_line(own: TokenBucket, shared: TokenBucket | None, now: float) -> float:
    """A line from a member: a token from its own bucket and from its
    address's shared one, both or neither; 0.0, or seconds to wait."""
    wait = own.wait(now)
    if shared is not None:
        wait = max(wait, shared.wait(now))
    if not wait:
        own.take(now)
        if shared is not None:
            shared.take(now)
    return wait


class LineLedger:
    """Line budgets by what a peer cannot shed by reconnecting: its address
    (IPv6 by /64, admission.address_key) and its name.

    Members from one address also share one more bucket, ``address_share``
    members' budgets in size and rate: however many connections an address
    holds at once, its lines together get that much (``share``).

    A member's bucket is opened here at its hello and closed when the rules
    are done with it (or it hangs up). A bucket opened starts from the lowest
    budget filed under its keys: those of members still connected with the
    same address or name, and what members who went left, refilled by the time
    since. So reconnecting buys nothing: a loop that connects, sends its burst
    and quits gets the rate, not a burst per connection, however its
    connections overlap. A closed budget is forgotten once it has refilled to
    a whole burst (``burst / rate`` seconds at most, 2 s by default), so the
    ledger holds only the open buckets and the recently spent ones.
    (docs/security.md, "Flood control".)
    """

    def __init__(self, burst: float, rate: float, address_share: float = 1.0) -> None:
        self.burst = burst
        self.rate = rate
        self.address_share = address_share
        self._open: dict[str, list[TokenBucket]] = {}
        self._left: dict[str, tuple[float, float]] = {}  # key: (tokens, stamp)
        # When each spent budget will have refilled: (time, key), soonest first.
        self._refilled: list[tuple[float, str]] = []
        self._sweep_at = SWEEP_FIRST
        # Each address's shared bucket, and how many members hold it.
        self._shared: dict[str, TokenBucket] = {}
        self._sharing: dict[str, int] = {}

    def share(self, address: str, now: float) -> TokenBucket:
        """The bucket the members from ``address`` share; ``unshare`` when done."""
        bucket = self._shared.get(address)
        if bucket is None:
            share = self.address_share
            bucket = self._shared[address] = TokenBucket(self.burst * share, self.rate * share, now)
        self._sharing[address] = self._sharing.get(address, 0) + 1
        return bucket

    def unshare(self, address: str) -> None:
        held = self._sharing[address] - 1
        if held:
            self._sharing[address] = held
        else:
            del self._sharing[address]  # the bucket stays until swept, refilled

    def charge_address(self, address: str, now: float) -> None:
        """A line from ``address`` that this process did not hold back (a
        member on another node of a cluster): its members here share less."""
        bucket = self._shared.get(address)
        if bucket is None:
            bucket = self.share(address, now)
            self.unshare(address)
        bucket.spend(now)
        if len(self) >= self._sweep_at:
            self._sweep(now)

    def open(self, keys: tuple[str, ...], now: float) -> TokenBucket:
        """The bucket of a member arriving with ``keys``."""
        self._expire(now)
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
        self._expire(now)
        level = bucket.level(now)
        for key in keys:
            tokens = self._lowest((key,), now, level, live=False)
            if tokens >= self.burst - EPSILON:
                self._left.pop(key, None)
                continue
            self._left[key] = (tokens, now)
            heapq.heappush(self._refilled, (now + (self.burst - tokens) / self.rate, key))
        if len(self) >= self._sweep_at:
            self._sweep(now)

    def _expire(self, now: float) -> None:
        """Forget the spent budgets that have refilled by now."""
        refilled = self._refilled
        while refilled and refilled[0][0] <= now:
            _, key = heapq.heappop(refilled)
            left = self._left.get(key)
            # (A key spent again since has a later entry of its own.)
            if left is not None and left[0] + (now - left[1]) * self.rate >= self.burst - EPSILON:
                del self._left[key]

    def __len__(self) -> int:
        """Budgets on file: spent ones, and addresses' shared buckets."""
        return len(self._left) + len(self._shared)

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
        """Forget the addresses' shared buckets that nobody holds and that have
        refilled; amortised, swept whenever the table has doubled since."""
        self._shared = {
            address: bucket
            for address, bucket in self._shared.items()
            if address in self._sharing or not bucket.full(now)
        }
        self._sweep_at = max(SWEEP_FIRST, 2 * (len(self._left) + len(self._shared)))
