"""Who may open a connection: per-address limits, sans-I/O.

At most ``max_open`` connections at once from one IP address, and a connect
rate per address: a bucket of ``max_open`` connections that refills at a tenth
of that each second (50 at once, then 5 a second, by default). Past either,
new connections from that address are closed at once. Loopback counts like any
other address. (README, "Per-address limits".)
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .flood import TokenBucket

# At most one log line per address per this many seconds.
LOG_INTERVAL = 10.0


@dataclass
class _Address:
    bucket: TokenBucket
    open: int = 0
    refused: int = 0  # since the last log line
    logged: float = -LOG_INTERVAL


@dataclass
class AddressGate:
    max_open: int  # 0: no limits at all
    _addresses: dict[str, _Address] = field(default_factory=dict)
    _new_since_sweep: int = 0

    def admit(self, address: str | None, now: float) -> tuple[bool, str | None]:
        """Whether a new connection from ``address`` may stay, and a line for the
        log when one is due (at most one per address per LOG_INTERVAL)."""
        if self.max_open <= 0 or address is None:
            return True, None
        entry = self._addresses.get(address)
        if entry is None:
            self._sweep(now)
            entry = self._addresses[address] = _Address(
                TokenBucket(self.max_open, self.max_open / 10, now)
            )
        if entry.open >= self.max_open:
            why = f"{entry.open} connections open, the limit is {self.max_open}"
        elif entry.bucket.take(now) > 0:
            why = f"more than {self.max_open / 10:g} new connections a second"
        else:
            entry.open += 1
            return True, None
        entry.refused += 1
        if now - entry.logged < LOG_INTERVAL:
            return False, None
        line = f"refusing connections from {address}: {why} ({entry.refused} refused)"
        entry.logged = now
        entry.refused = 0
        return False, line

    def release(self, address: str | None) -> None:
        entry = self._addresses.get(address) if address is not None else None
        if entry is not None:
            entry.open -= 1

    def _sweep(self, now: float) -> None:
        """Forget idle addresses now and then, so the table stays small."""
        self._new_since_sweep += 1
        if self._new_since_sweep < 1000:
            return
        self._new_since_sweep = 0
        for address in [a for a, e in self._addresses.items() if e.open == 0]:
            if self._addresses[address].bucket.full(now):
                del self._addresses[address]
