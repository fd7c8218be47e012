"""When this node may take another for dead (sans-I/O: the caller gives the time).

A lapsed lease is evidence only if every node could have renewed meanwhile.
This node cannot see the others' calls, but it sees its own: a Redis that
stalled or went away long enough to lapse anyone's lease also kept this node
from renewing. So evidence counts only once this node has renewed without a
failure and without a long gap for a whole lease plus two renewal periods.
"""

from __future__ import annotations

from . import keys

# How long this node must have renewed on schedule before a lapsed lease is
# evidence: the lease, plus time for every node to renew once more.
TRUST_AFTER = keys.LEASE_MS / 1000 + 2 * keys.RENEW_EVERY
# A gap longer than this between two of this node's renewals means Redis (or
# this node) was too slow for everyone to renew on schedule. A stall long
# enough to lapse a lease renewed every RENEW_EVERY is longer than this.
LONGEST_GAP = keys.LEASE_MS / 1000 / 2
# A node declared gone is not declared again for this long (its "gone" entry
# is on its way to the log).
DECLARE_AGAIN_AFTER = 2.0


class Liveness:
    def __init__(self, now: float) -> None:
        self.trusted_since = now
        self._last_renewal: float | None = None
        self._declared: dict[int, float] = {}

    def outage_over(self, now: float) -> None:
        """Redis answers again (after failing or not answering in time)."""
        self.trusted_since = now
        self._last_renewal = None

    def renewed(self, now: float) -> None:
        """This node's lease was renewed just now."""
        if self._last_renewal is not None and now - self._last_renewal > LONGEST_GAP:
            self.trusted_since = now
        self._last_renewal = now

    def may_declare(self, node: int, now: float) -> bool:
        """``node``'s lease lapsed: may it be taken for dead now? (Yes at most
        once every DECLARE_AGAIN_AFTER seconds.)"""
        if now - self.trusted_since < TRUST_AFTER:
            return False
        if now - self._declared.get(node, now - DECLARE_AGAIN_AFTER) < DECLARE_AGAIN_AFTER:
            return False
        self._declared[node] = now
        return True
