"""The IRC port (``--irc``): IRC clients and bots as members of the same channels.

An IRC connection is a new kind of connection around the same hub, never a
second copy of the rules: it turns IRC commands into the hub's events
(``client.py``) and renders the hub's effects as IRC messages
(``render.py``). docs/irc.md says what maps to what. Nothing here is imported
unless ``--irc`` asks for it.

- ``lines.py``: IRC lines in (limits, UTF-8, tokenizing with irctokens) and out;
- ``nicks.py``: which nicks IRC takes, and how other names are shown on IRC;
- ``numerics.py``: the numeric replies, and the registration burst;
- ``render.py``: the hub's effects as IRC messages;
- ``client.py``: one IRC connection, and its memberships (one per channel);
- ``port.py``: the listening sockets and the accept loop.
"""
