"""The terminal client: ``cli`` checks and connects, ``session`` runs the chat."""
