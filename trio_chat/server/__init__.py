"""The chat server: ``cli`` checks, ``sockets`` binds, ``run`` starts trio, ``core`` serves."""

PROGRAM = "trio-chat-server"  # how the server names itself on stderr
