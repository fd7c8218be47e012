"""The terminal client: ``cli`` checks and connects, ``session`` runs the chat."""

PROGRAM = "trio-chat-client"  # how the client names itself on stderr
