"""The chat server: ``cli`` checks and binds, ``run`` starts trio, ``core`` serves."""
