"""Which usernames are acceptable (behaviour.md, "Usernames"); shared by client and server."""

from __future__ import annotations

MAX_USERNAME_LENGTH = 32


def username_problem(name: str) -> str | None:
    """Return why ``name`` cannot be a username, or None when it is fine."""
    if not name:
        return "the username is empty"
    if len(name) > MAX_USERNAME_LENGTH:
        return f"the username is longer than {MAX_USERNAME_LENGTH} characters"
    for char in name:
        if char.isspace():
            return "the username contains whitespace"
        if not char.isprintable():
            return f"the username contains the control character {char!r}"
        if char == ":":
            return "the username contains ':' (the server's /kick syntax uses it)"
    return None


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def fold_nick(name: str) -> str:
    """IRC's ``CASEMAPPING=ascii``: A-Z and a-z are the same, nothing else is
    (the IRC port's names and channels; docs/irc.md, "Names")."""
    return name.translate(_ASCII_LOWER)
