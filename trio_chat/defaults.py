"""Defaults that both the chat rules and the command line need, written once.

Imports nothing: the command line reads these before it binds a port, and the
rules (hub.py) cost ~20 ms to import.
"""

# Seconds a member may stay idle in a channel (behaviour.md, "Inactivity (AFK)").
DEFAULT_AFK_TIMEOUT = 100.0

# The IRC port's keepalive (docs/irc.md, "Inactivity and keeping the
# connection"): after this many seconds without a line the server sends PING,
# and after this many more without one it drops the connection. Apart from
# the AFK timer.
IRC_PING_INTERVAL = 90.0
IRC_PING_TIMEOUT = 60.0

# Channel history (docs/behaviour.md, "Channel history"): the last lines kept
# for each channel, and the bytes of text they may hold at most. 0 lines keeps
# nothing, and then every program prints exactly what it did without history.
DEFAULT_HISTORY_LINES = 0
DEFAULT_HISTORY_BYTES = 256 * 1024
# What /history on the server console prints when not told how many.
DEFAULT_CONSOLE_HISTORY = 20
