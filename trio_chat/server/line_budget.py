"""One connection's line budget, as flood control keeps it (sans-I/O).

A member's own bucket is filed in the server's ledger under its name and
address, and the members from one address share a second bucket
(flood.LineLedger; docs/security.md, "Flood control"). Both kinds of
connection, the native session and the IRC connection, hold one of these
from their hello (or registration) until they go.
"""

from __future__ import annotations

from typing import Protocol

from .admission import address_key, budget_keys
from .flood import LineLedger, TokenBucket, take_line


class FloodLimits(Protocol):
    @property
    def flood_rate(self) -> float: ...
    @property
    def flood_patience(self) -> float: ...


def flood_reason(limits: FloodLimits) -> str:
    """What a member held back too long is told, and the operator."""
    return (
        f"excess flood: more than {limits.flood_rate:g} lines a second "
        f"for {limits.flood_patience:g} s"
    )


class LineBudget:
    def __init__(
        self, ledger: LineLedger, name: str, address: str | None, now: float, patience: float
    ) -> None:
        """A full burst, unless the name or the address left a spent budget a
        moment ago (the ledger remembers it)."""
        self._ledger = ledger
        self._keys = budget_keys(name, address)
        self.own: TokenBucket = ledger.open(self._keys, now)
        self._address = address_key(address) if address is not None else ""
        self._shared = ledger.share(self._address, now) if address is not None else None
        self._patience = patience
        self._held_back_since: float | None = None
        self.closed = False

    def next_line(self, now: float) -> float | None:
        """Take a token for one line: 0 when it may go now, else the seconds
        to wait before ``retry``; None when the member has been held back
        for longer than its patience without a break (it floods)."""
        wait = take_line(self.own, self._shared, now)
        if not wait:
            self._held_back_since = None
            return 0.0
        if self._held_back_since is None:
            self._held_back_since = now
        if now + wait - self._held_back_since > self._patience:
            return None
        return wait

    def retry(self, now: float) -> float:
        """After waiting: 0 once the token is there, else the seconds more."""
        return take_line(self.own, self._shared, now)

    def lower(self, tokens: float, now: float) -> None:
        """The cluster's ledger knows of a lower budget for this name or
        address (spent through another node)."""
        self.own.tokens = min(self.own.level(now), tokens)
        self.own.stamp = now

    def close(self, now: float) -> None:
        """File what is left, for whoever comes next with this name or
        address (once; later calls do nothing)."""
        if self.closed:
            return
        self.closed = True
        self._ledger.close(self._keys, self.own, now)
        if self._shared is not None:
            self._ledger.unshare(self._address)
