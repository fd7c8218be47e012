"""Defaults that both the chat rules and the command line need, written once.

Imports nothing: the command line reads these before it binds a port, and the
rules (hub.py) cost ~20 ms to import.
"""

# Seconds a member may stay idle in a channel (behaviour.md, "Inactivity (AFK)").
DEFAULT_AFK_TIMEOUT = 100.0
