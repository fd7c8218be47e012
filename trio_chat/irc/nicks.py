"""Which nicks IRC takes, and how the other members' names look on IRC.

Native and web names may hold characters an IRC nick cannot (docs/irc.md,
"Names"): ``zoë``, ``a.b``, ``7up``. IRC users see such a name escaped: each
character IRC cannot carry there becomes ``\\`` and the two hex digits of each
of its UTF-8 bytes (``zo\\c3\\ab``, ``a\\2eb``, ``\\37up``). A name IRC can carry
is shown as it is. No IRC nick contains ``\\`` (``nick_problem``), so an escaped
name never looks like anyone's nick, and a message to it reaches the member
it names (``member_name``).
"""

from __future__ import annotations

import functools
import re

from ..names import MAX_USERNAME_LENGTH, fold_nick, username_problem

__all__ = ["NICKLEN", "fold_nick", "member_name", "nick_problem", "shown"]

NICKLEN = MAX_USERNAME_LENGTH
# RFC 2812's nick grammar, less the backslash (kept for escapes).
_SPECIAL = "[]`_^{|}"
_FIRST = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz" + _SPECIAL)
_REST = _FIRST | frozenset("0123456789-")
# (A client that folds case may send the hex digits in capitals.)
_ESCAPE = re.compile(r"\\([0-9a-fA-F]{2})")


def nick_problem(nick: str) -> str | None:
    """Why ``nick`` cannot be an IRC user's nick here, or None (then it is a
    valid member name too)."""
    if len(nick) > NICKLEN:
        return f"a nick is at most {NICKLEN} characters"
    if not nick or nick[0] not in _FIRST or any(char not in _REST for char in nick[1:]):
        return "a nick is a letter or one of []`_^{|} and then letters, digits, those and -"
    return username_problem(nick)


# Each member's name is shown again for every NAMES reply and every line it
# says to IRC users (render.py): a name's look is kept, not worked out each
# time. Bounded: names come and go, and a busy server sees many.
@functools.lru_cache(maxsize=4096)
def shown(name: str) -> str:
    """``name`` as IRC users see it: as it is when IRC can carry it, else escaped."""
    if name and name[0] in _FIRST and all(char in _REST for char in name[1:]):
        return name
    return "".join(
        char
        if (char in _REST if index else char in _FIRST)
        else "".join(f"\\{byte:02x}" for byte in char.encode())
        for index, char in enumerate(name)
    )


def member_name(nick: str) -> str:
    """The member an IRC user means by ``nick`` (``shown`` undone)."""
    if "\\" not in nick:
        return nick
    pieces: list[bytes] = []
    last = 0
    for match in _ESCAPE.finditer(nick):
        pieces.append(nick[last : match.start()].encode())
        pieces.append(bytes([int(match[1], 16)]))
        last = match.end()
    pieces.append(nick[last:].encode())
    return b"".join(pieces).decode(errors="replace")
