"""The one sanitizer: text from a peer is made safe before any terminal sees it.

Every line either program writes on stdout or stderr passes through ``clean``
(the output functions in ``terminal_io`` call it), and the server also cleans
what peers send before the rules use it, so every copy of a line, on every
screen and in the server's log, reads the same.

Replaced by U+FFFD:
- C0 controls (tab aside), DEL and C1 controls, newlines included: escape
  sequences could rewrite a screen and a newline could forge a whole line;
- U+2028 and U+2029, which some terminals and viewers treat as line breaks;
- the bidirectional embedding, override and isolate controls (U+202A-U+202E,
  U+2066-U+2069): on a terminal that reorders right-to-left text they could
  make the rest of a line read backwards, such as another person's name.

Kept: every printable character and the other invisible format characters
(zero-width joiner and non-joiner, left-to-right and right-to-left marks), which
emoji sequences and several scripts need and which cannot move text out of the
message they sit in. Usernames cannot contain any of them: a name must be
printable throughout, so no two names differ only by an invisible character.
"""

from __future__ import annotations

_UNSAFE = {
    code: "\ufffd"
    for code in [
        *range(0x00, 0x09),
        *range(0x0A, 0x20),
        *range(0x7F, 0xA0),
        0x2028,
        0x2029,
        *range(0x202A, 0x202F),
        *range(0x2066, 0x206A),
    ]
}


def clean(text: str) -> str:
    """``text`` with every character that could alter a terminal replaced by U+FFFD."""
    if text.isprintable():
        return text  # the common case: nothing to replace, nothing copied
    return text.translate(_UNSAFE)
