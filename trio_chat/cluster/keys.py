"""Where the cluster keeps things in Redis, what a node must agree on, and
how the log names a connection."""

from __future__ import annotations

import json
from collections.abc import Sequence

from ..config import ChannelConfig
from ..history import HistoryConfig


def connection_ref(node: int, number: int) -> str:
    """How the log names connection ``number`` of ``node``: "NODE.NUMBER"."""
    return f"{node}.{number}"


def split_ref(ref: str) -> tuple[int, int]:
    """A connection reference's node and number (ValueError if it is none)."""
    node, number = ref.split(".")
    return int(node), int(number)


def node_of(ref: str) -> int:
    return split_ref(ref)[0]


PREFIX = "trio-chat:"
LOG = PREFIX + "log"  # the events every node applies, in order
SNAPSHOT = PREFIX + "snapshot"  # the hub's state and the last event it includes
CONFIG = PREFIX + "config"  # the rules every node of the running cluster uses
NODES = PREFIX + "nodes"  # the numbers of the nodes that joined
APPLIED = PREFIX + "applied"  # node -> the last event it applied
COUNTER = PREFIX + "node-counter"
BOOT = PREFIX + "boot"  # held while a node joins
# Which cluster the keys belong to, "ID:GENERATION": written when the first
# node founds it (generation 0), checked by every write. If it vanishes,
# Redis lost the cluster's state; the first node to see that writes it back
# with the next generation (link.py).
EPOCH = PREFIX + "epoch"
# The log entry up to which the node that wrote the epoch back had applied the
# log: the state it re-published. Another node whose replica has applied
# exactly as far re-registers too.
RESTORED = PREFIX + "restored"
# The last log entry a snapshot trimmed away (scripts.SNAPSHOT). A node whose
# position is older has missed entries it can never read: its replica is no
# longer the cluster's (link.py).
TRIMMED = PREFIX + "trimmed"
# The stream field of every log and data entry that names its cluster's epoch.
EPOCH_FIELD = b"x"
# A node's lease lives this long unless renewed; renewed this often.
LEASE_MS = 2000
RENEW_EVERY = 0.5
# Every call to Redis must answer within this, or Redis counts as lost (a
# stall is an outage): a node whose calls answer renews at least every
# RENEW_EVERY + CALL_DEADLINE seconds, within its lease.
CALL_DEADLINE = 1.0
# Seconds to open a connection to Redis (coredis's and resp.py's alike), and
# for a node's first answer at start-up.
CONNECT_TIMEOUT = 5.0
assert RENEW_EVERY + CALL_DEADLINE < LEASE_MS / 1000
# Raised whenever log entries change shape or what applying one does.
# 2: entries carry the epoch; a node's death ends the transfers of its
# members' partners too; joins carry the member's address.
# 3: entries are the hub's events by their field names (codec.py); data
# headers name their fields too (origin, seq, to, from: routes.py).
# 4: IRC's events (say, tell, leave, claim_nick; join's via_irc) and the
# hub's nicks in snapshots.
# 5: the hub's line numbers and each channel's history in snapshots.
# 6: reconfigure (a reload), and the channels' config in snapshots.
# 7: the console's /ban and /unban, and the bans in snapshots.
LOG_FORMAT = 7


LEASES = PREFIX + "lease:"  # + a node's number


def epoch_parts(epoch: bytes) -> tuple[bytes, int]:
    """The cluster's id and the epoch's generation."""
    ident, _, generation = epoch.partition(b":")
    return ident, int(generation or 0)


def lease(node: int) -> str:
    return f"{LEASES}{node}"


def data(node: int) -> str:
    """File frames (and the like) addressed to one node's connections."""
    return f"{PREFIX}data:{node}"


def fingerprint(
    channels: Sequence[ChannelConfig], afk_timeout: float, history: HistoryConfig
) -> str:
    """What every node must share: the channels, the rules' timer and
    history, and the log format."""
    return json.dumps(
        {
            "channels": [[c.name, c.port, c.capacity] for c in channels],
            "afk_timeout": afk_timeout,
            "history": [history.lines, history.max_bytes, history.events],
            # Nodes that write the log differently must not share one.
            "log_format": LOG_FORMAT,
        },
        sort_keys=True,
    )


def kept_history(fingerprint: str) -> bool:
    """Whether the cluster of config ``fingerprint`` kept channel history
    (False for a config this version cannot read)."""
    try:
        history = json.loads(fingerprint).get("history")
        return isinstance(history, list) and int(history[0]) > 0
    except (ValueError, TypeError, AttributeError, IndexError):
        return False
