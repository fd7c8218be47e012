"""Several server processes that make one chat, through Redis.

Every node keeps a replica of the hub and applies one shared, ordered log of
events (a Redis stream) to it: joins, lines, leavings, console commands,
timers. The hub is deterministic given the same events and the time each was
logged, so every replica makes the same decisions; each node carries out only
those that concern its own connections and prints only the lines of events
that began on it. File chunks go from node to node through one stream per
node. Imported only with ``--redis`` or ``--workers``.
"""
