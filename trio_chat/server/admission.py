"""Who may open a connection: per-address limits, sans-I/O.

At most ``max_open`` connections at once from one address, and a connect
rate per address: a bucket of ``max_open`` connections that refills at a tenth
of that each second (50 at once, then 5 a second, by default). Past either,
new connections from that address are closed at once. Loopback counts like any
other address. An address is one IPv4 address, or one IPv6 /64 prefix
(``address_key``). (docs/security.md, "Per-address limits".)
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field

from ..bans import peer_ip
from .flood import TokenBucket

# At most one log line per address per this many seconds.
LOG_INTERVAL = 10.0
# One IPv6 subscriber gets a /64 at least (RFC 6177), and can pick any address
# in it: IRC servers count IPv6 connections per /64 for that reason.
IPV6_PREFIX = 64


def address_key(address: str) -> str:
    """What one peer cannot step out of by changing its address: an IPv4
    address as it is, an IPv6 address as its /64 (an IPv4-mapped one as the
    IPv4 address); anything that is not an IP address (a Unix socket's
    empty name) as it is."""
    ip = peer_ip(address)  # (an IPv4-mapped one is its IPv4 address already)
    if ip is None:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((ip, IPV6_PREFIX), strict=False))
    return str(ip)


def budget_keys(username: str, address: str | None) -> tuple[str, ...]:
    """What a member's line budget is filed under (flood.LineLedger)."""
    if address is None:
        return ("name " + username,)
    return ("name " + username, "address " + address_key(address))


@dataclass
class _Address:
    bucket: TokenBucket
    open: int = 0
    refused: int = 0  # since the last log line
    logged: float = -LOG_INTERVAL


@dataclass
class AddressGate:
    max_open: int  # 0: no limits at all
    # False: only the connections open at once count, not the connect rate.
    rate_limited: bool = True
    _addresses: dict[str, _Address] = field(default_factory=dict)
    _new_since_sweep: int = 0

    def admit(
        self, address: str | None, now: float, elsewhere: Callable[[str], int] | None = None
    ) -> tuple[bool, str | None]:
        """Whether a new connection from ``address`` may stay, and a line for the
        log when one is due (at most one per address per LOG_INTERVAL).
        ``elsewhere``: how many connections from an address (as address_key
        gives it) other nodes of a cluster hold, which count too."""
        if self.max_open <= 0 or address is None:
            return True, None
        address = address_key(address)
        entry = self._addresses.get(address)
        if entry is None:
            self._sweep(now)
            entry = self._addresses[address] = _Address(
                TokenBucket(self.max_open, self.max_open / 10, now)
            )
        held = entry.open + (elsewhere(address) if elsewhere is not None else 0)
        if held >= self.max_open:
            why = f"{held} connections open, the limit is {self.max_open}"
        elif self.rate_limited and entry.bucket.take(now) > 0:
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
        if self.max_open <= 0 or address is None:
            return
        entry = self._addresses.get(address_key(address))
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
