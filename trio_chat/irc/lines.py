"""IRC lines in and out, without I/O.

In: bytes from a peer become ``Line`` objects, one per line ended
by LF (CR LF, or a lone LF as many clients send). What the specifications
limit is checked before anything is parsed (docs/irc.md, "Limits and hostile peers"): a line
is at most 512 bytes with its CR LF, not counting its tags, and its tags at
most 4094 bytes (the message-tags specification); a line over either is
refused with 417 (ERR_INPUTTOOLONG) and the connection goes on. A peer that
sends megabytes without a line end costs no more memory than one longest
line: the rest is skipped up to the next line end. Invalid UTF-8 is replaced
(U+FFFD), never a crash.

IRC's formatting codes (bold, colours, ...) mean nothing to a terminal or a
log: ``strip_formatting`` takes them out of what IRC users say, before the
one sanitizer (sanitize.py) sees the rest.

Out: ``encode`` formats one message with its CR LF.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from irctokens.line import Line, build, tokenise

from ..sanitize import clean

MAX_LINE = 512  # bytes, CR LF included, tags not (RFC 1459, 2.3)
MAX_CLIENT_TAGS = 4094  # bytes of tag data after the '@' (message-tags)
# The most a line may take up in the buffer before it is known to be over.
_MOST = MAX_LINE + MAX_CLIENT_TAGS + 2


@dataclass(frozen=True, slots=True)
class TooLong:
    """A line over a limit: refused with 417, then skipped."""

    what: str  # "line" or "tags": what the 417 says was too long


Received = Line | TooLong


class LineReader:
    """Splits a peer's bytes into lines and checks them."""

    def __init__(self) -> None:
        self._pending = bytearray()
        self._skipping = False  # inside an overlong line, up to its end

    def feed(self, data: bytes | bytearray) -> list[Received]:
        pending = self._pending
        pending += data
        received: list[Received] = []
        start = 0
        while True:
            end = pending.find(b"\n", start)
            if end < 0:
                break
            if self._skipping:
                self._skipping = False
            else:
                line = self._check(bytes(pending[start:end]))
                if line is not None:
                    received.append(line)
            start = end + 1
        del pending[:start]
        if len(pending) > _MOST:
            # No line end in sight: refuse it now and skip the rest of it.
            if not self._skipping:
                received.append(TooLong("line"))
            self._skipping = True
            pending.clear()
        return received

    @staticmethod
    def _check(raw: bytes) -> Received | None:
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        body = raw
        if raw.startswith(b"@"):
            space = raw.find(b" ")
            tags = raw[1:space] if space >= 0 else raw[1:]
            if len(tags) > MAX_CLIENT_TAGS:
                return TooLong("tags")
            body = raw[space + 1 :] if space >= 0 else b""
        if len(body.lstrip(b" ")) + 2 > MAX_LINE:
            return TooLong("line")
        text = raw.decode("utf-8", errors="replace").replace("\0", "\ufffd")
        if not body.strip(b" "):
            return None  # an empty line: nothing to do
        try:
            return tokenise(text)
        except (ValueError, IndexError):
            return None  # no command in it (":prefix" alone): ignored as servers do


# Colour (\x03 with up to two digits, a comma and up to two more), hex colour
# (\x04 and six hex digits, maybe a comma and six more), and the one-byte
# codes: bold, monospace, reset, reverse, italic, strikethrough, underline.
_FORMATTING = re.compile(
    "\x03(?:\\d{1,2}(?:,\\d{1,2})?)?"
    "|\x04(?:[0-9a-fA-F]{6}(?:,[0-9a-fA-F]{6})?)?"
    "|[\x02\x11\x0f\x16\x1d\x1e\x1f]"
)


_ANY_FORMATTING = re.compile("[\x02\x03\x04\x0f\x11\x16\x1d\x1e\x1f]")


def strip_formatting(text: str) -> str:
    """``text`` without IRC's formatting codes."""
    if _ANY_FORMATTING.search(text) is None:
        return text  # the common case: one scan, nothing copied
    return _FORMATTING.sub("", text)


def word(text: str) -> str:
    """What a peer sent, made fit to be a middle parameter of a reply (a
    numeric echoes the nick or channel it is about): cleaned, up to its first
    space, no leading ':', never empty, at most 64 characters."""
    cleaned = clean(text).split(" ", 1)[0].lstrip(":")[:64]
    return cleaned or "*"


def encode(
    command: str,
    params: list[str],
    source: str | None = None,
    tags: dict[str, str] | None = None,
) -> bytes:
    """One message with its CR LF, at most ``MAX_LINE`` bytes not counting its
    tags: a longer last parameter (a reason, an echoed token) is cut, between
    characters. (Chat is split into several messages before it gets here.)"""
    line = build(command, params, source, tags).format().encode()
    body = len(line) - (line.index(b" ") + 1 if tags else 0)
    excess = body + 2 - MAX_LINE
    if excess > 0 and params:
        last = params[-1].encode()
        cut = max(0, len(last) - excess)
        while cut and (last[cut] & 0xC0) == 0x80:
            cut -= 1  # not inside a character
        params = [*params[:-1], last[:cut].decode()]
        line = build(command, params, source, tags).format().encode()
    return line + b"\r\n"
