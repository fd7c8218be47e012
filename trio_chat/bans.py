"""Bans: names refused in one channel, addresses refused everywhere (the
console's ``/ban``, ``/unban`` and ``/bans``; docs/behaviour.md, "/ban, /unban and /bans").

Sans-I/O and part of the rules' state (``Hub.bans``): the hub decides with
it, a cluster's snapshot carries it, a lone server's ``--state-dir`` keeps
it across a restart (server/bans_keeper.py). A ban's end is a time on the
rules' clock (``math.inf``: until ``/unban``); a ban whose end has passed is
no longer in force, and goes the next time the table is listed or saved.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Iterator
from typing import NamedTuple, TypeVar

from .names import fold_nick

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Key = TypeVar("Key")
Item = TypeVar("Item")


# (Named tuples, not frozen dataclasses: every server imports this module at
# start, and a slotted dataclass takes ten times as long to make.)
class NameBan(NamedTuple):
    """``user`` may not come into ``channel`` (by its port, ``/switch`` or IRC's JOIN)."""

    channel: str
    user: str

    def __str__(self) -> str:
        return f"{self.channel}:{self.user}"


class AddressBan(NamedTuple):
    """No connection from ``network`` (one address is a /32 or /128) is let in."""

    network: Network

    def __str__(self) -> str:
        # One address reads as itself, a wider network in CIDR notation.
        net = self.network
        return str(net.network_address) if net.prefixlen == net.max_prefixlen else str(net)


Target = NameBan | AddressBan


def parse_network(text: str) -> Network | None:
    """An IP address or CIDR network as the operator typed it, or None.
    Host bits are dropped (``10.1.2.3/8`` is ``10.0.0.0/8``); an
    IPv4-mapped IPv6 address is its IPv4 address; a zone (``%eth0``) is
    dropped, as a peer's address is compared without one."""
    address, slash, bits = text.partition("/")
    try:
        network = ipaddress.ip_network(address.partition("%")[0] + slash + bits, strict=False)
    except ValueError:
        return None
    if isinstance(network, ipaddress.IPv6Network):
        mapped = network.network_address.ipv4_mapped
        if mapped is not None and network.prefixlen >= 96:
            return ipaddress.IPv4Network((mapped, network.prefixlen - 96), strict=False)
    return network


def parse_target(text: str) -> Target | None:
    """``ADDRESS``/``NETWORK`` or ``CHANNEL:USER``; None for anything else.
    An address comes first: an IPv6 one has colons in it too (the rules
    take the other reading, ``name_reading``, where it names a channel)."""
    network = parse_network(text)
    if network is not None:
        return AddressBan(network)
    return name_reading(text)


def name_reading(text: str) -> NameBan | None:
    """``text`` read as ``CHANNEL:USER`` (usernames never contain ':',
    channel names may: split at the last one), whatever else it is: a
    channel ``a::b``'s ``a::b:c`` is an IPv6 address too."""
    channel, colon, user = text.rpartition(":")
    if colon and channel and user:
        return NameBan(channel, user)
    return None


def covers(ban: AddressBan, address: str | None) -> bool:
    """Whether ``ban`` covers a peer's address (its end aside)."""
    ip = peer_ip(address) if address is not None else None
    return ip is not None and ip in ban.network


def peer_ip(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """A peer's address as a ban compares it: an IPv4-mapped IPv6 address is
    its IPv4 address, a zone (``%eth0``) is dropped; None if it is none."""
    try:
        ip = ipaddress.ip_address(address.partition("%")[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


class Bans:
    """Every ban and when it ends, on the rules' clock.

    Every hello asks it, so both lookups are indexed: address bans by IP
    version and prefix length (an address is masked once for each length in
    use), name bans by channel and the name without ASCII case (IRC's)."""

    def __init__(self) -> None:
        self._ends: dict[Target, float] = {}
        self._networks: dict[tuple[int, int], set[Network]] = {}
        self._folded: dict[tuple[str, str], set[NameBan]] = {}

    def __len__(self) -> int:
        return len(self._ends)

    def add(self, target: Target, end: float) -> None:
        """Ban ``target`` until ``end`` (a later ``add`` replaces the end)."""
        if isinstance(target, AddressBan):
            net = target.network
            self._networks.setdefault((net.version, net.prefixlen), set()).add(net)
        else:
            self._folded.setdefault(_folded(target), set()).add(target)
        self._ends[target] = end

    def remove(self, target: Target) -> bool:
        """Lift the ban on ``target``; whether there was one."""
        if self._ends.pop(target, None) is None:
            return False
        if isinstance(target, AddressBan):
            net = target.network
            _discard(self._networks, (net.version, net.prefixlen), net)
        else:
            _discard(self._folded, _folded(target), target)
        return True

    def end(self, target: Target) -> float:
        """When the ban on ``target`` ends (``-math.inf``: there is none)."""
        return self._ends.get(target, -math.inf)

    def address_ban(self, address: str | None, now: float) -> AddressBan | None:
        """The ban in force that covers a peer's address, if any."""
        if not self._networks or address is None:
            return None
        ip = peer_ip(address)
        if ip is None:
            return None
        for (version, bits), networks in self._networks.items():
            if version != ip.version:
                continue
            network = ipaddress.ip_network((ip, bits), strict=False)
            if network in networks:
                ban = AddressBan(network)
                if self._ends[ban] > now:
                    return ban
        return None

    def name_ban(self, channel: str, user: str, now: float, fold: bool = False) -> NameBan | None:
        """The ban in force on ``user`` in ``channel``; ``fold``: a ban on the
        name in any ASCII case counts (an IRC nick is one in every case)."""
        exact = NameBan(channel, user)
        if self._ends.get(exact, -math.inf) > now:
            return exact
        if not fold:
            return None
        for target in self._folded.get((channel, fold_nick(user)), ()):
            if self._ends[target] > now:
                return target
        return None

    def expire(self, now: float) -> None:
        """Forget every ban whose end has passed."""
        for target in [t for t, end in self._ends.items() if end <= now]:
            self.remove(target)

    def keeping_out(self, channel: str, now: float) -> Iterator[Target]:
        """The bans in force that keep people out of ``channel``: every
        address ban, and the name bans there (IRC's ban list)."""
        for target, _ in self.items(now):
            if isinstance(target, AddressBan) or target.channel == channel:
                yield target

    def items(self, now: float) -> Iterator[tuple[Target, float]]:
        """Every ban in force and its end: addresses first, then names, each
        in the order they were made."""
        live = [(t, end) for t, end in self._ends.items() if end > now]
        yield from ((t, e) for t, e in live if isinstance(t, AddressBan))
        yield from ((t, e) for t, e in live if isinstance(t, NameBan))


def _folded(ban: NameBan) -> tuple[str, str]:
    return ban.channel, fold_nick(ban.user)


def _discard(index: dict[Key, set[Item]], key: Key, item: Item) -> None:
    items = index[key]
    items.discard(item)
    if not items:
        del index[key]


# ----- a ban as plain data (a cluster's snapshot, the --state-dir file) -----

FOREVER = None  # "left" of a ban without an end


def to_rows(bans: Bans, now: float) -> list[list[object]]:
    """Every ban in force as ``[kind, text, seconds left or None]``: relative
    to ``now``, so a reader on another clock (the next start) can place it."""
    rows: list[list[object]] = []
    for target, end in bans.items(now):
        left = FOREVER if math.isinf(end) else end - now
        kind = "address" if isinstance(target, AddressBan) else "name"
        rows.append([kind, str(target), left])
    return rows


def from_rows(rows: object, now: float) -> Bans:
    """The table ``to_rows`` wrote, placed on the clock where ``now`` is;
    raises ValueError for anything else."""
    if not isinstance(rows, list):
        raise ValueError("bans are not a list")
    bans = Bans()
    for row in rows:
        if not (isinstance(row, list) and len(row) == 3):
            raise ValueError(f"a ban is not [kind, target, seconds left]: {row!r:.80}")
        kind, text, left = row
        target = parse_target(text) if isinstance(text, str) else None
        expected = AddressBan if kind == "address" else NameBan if kind == "name" else None
        if expected is None or not isinstance(target, expected):
            raise ValueError(f"not a ban: {row!r:.80}")
        if left is FOREVER:
            bans.add(target, math.inf)
            continue
        if isinstance(left, bool) or not isinstance(left, int | float) or not math.isfinite(left):
            raise ValueError(f"a ban's seconds left are not a number: {row!r:.80}")
        if left > 0:  # (a ban that ended meanwhile is dropped)
            bans.add(target, now + left)
    return bans
