"""What the server counts for ``--metrics``: plain numbers, bumped where things
happen, read only when Prometheus scrapes (server/metrics.py).

A delivery is an addition here, never a call into prometheus_client: one
channel's fan-out is the server's hot path (bench/load.py), and a server
started without ``--metrics`` never imports that library at all. Sans-I/O.
"""

from __future__ import annotations

from bisect import bisect_left

# Why a connection was refused (trio_chat_refused_connections_total's label):
# over --max-connections or --max-per-address (closed at once), or a ban
# at its hello (a banned address, or a name banned in that channel).
REFUSED_LIMIT = "limit"
REFUSED_PER_ADDRESS = "per_address"
REFUSED_BAN = "ban"
REFUSAL_REASONS = (REFUSED_LIMIT, REFUSED_PER_ADDRESS, REFUSED_BAN)

# Upper bounds, in seconds, of the Redis round-trip histogram's buckets: a
# local Redis answers in well under a millisecond, a remote one in a few, and
# the calls' deadline (cluster/keys.py) is a few seconds.
ROUND_TRIP_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class RoundTrips:
    """A histogram of round-trip times: a count per bucket, the sum, the count."""

    __slots__ = ("bounds", "count", "in_bucket", "total")

    def __init__(self, bounds: tuple[float, ...] = ROUND_TRIP_BUCKETS) -> None:
        self.bounds = bounds
        # One more than the bounds: the last is for times above every bound.
        self.in_bucket = [0] * (len(bounds) + 1)
        self.total = 0.0
        self.count = 0

    def observe(self, seconds: float) -> None:
        # bisect_left: a time equal to a bound belongs to that bound's bucket
        # (Prometheus's buckets are "less than or equal").
        self.in_bucket[bisect_left(self.bounds, seconds)] += 1
        self.total += seconds
        self.count += 1

    def cumulative(self) -> list[tuple[float, int]]:
        """Each bound with the times at or below it, then +Inf with all of them."""
        running = 0
        buckets: list[tuple[float, int]] = []
        for bound, count in zip((*self.bounds, float("inf")), self.in_bucket, strict=True):
            running += count
            buckets.append((bound, running))
        return buckets


class RedisCounts:
    """A cluster node's link to Redis (cluster/link.py keeps one)."""

    __slots__ = ("outages", "round_trips")

    def __init__(self) -> None:
        self.outages = 0  # times Redis stopped answering, each until it was back
        self.round_trips = RoundTrips()  # the lease renewals': one call each


class ServerCounts:
    """Counters of one server process since it started (each only grows)."""

    __slots__ = (
        "deliveries",
        "flood_disconnects",
        "lines_said",
        "redis",
        "refused",
        "slow_consumers_dropped",
    )

    def __init__(self) -> None:
        self.lines_said = 0  # chat lines said in a channel (IRC actions and notices too)
        self.deliveries = 0  # lines handed to members: a line to N members is N
        self.slow_consumers_dropped = 0  # connections dropped for not reading
        self.flood_disconnects = 0  # members disconnected by flood control
        self.refused: dict[str, int] = dict.fromkeys(REFUSAL_REASONS, 0)
        self.redis: RedisCounts | None = None  # a cluster node's (cluster/run.py)

    def refuse(self, reason: str) -> None:
        """A connection was refused, for ``reason`` (REFUSAL_REASONS)."""
        self.refused[reason] = self.refused.get(reason, 0) + 1
