"""The lengths a browser's WebSocket frames declare, checked before their payload.

hypercorn (through wsproto) buffers a message as its frames arrive and only
then compares its size with the limit; after it refuses one it goes on reading
and buffering. ``FrameLimits`` reads only the frame headers of the bytes a
client sends (RFC 6455, section 5.2) and refuses a connection at the header
whose declared length would take its message past the limit, so the server
never holds a byte of such a payload. It checks only what the accounting
needs; wsproto still checks everything else about the frames.
"""

from __future__ import annotations

from dataclasses import dataclass

CONTINUATION, TEXT, BINARY = 0x0, 0x1, 0x2
CLOSE = 0x8
# RFC 6455 close codes: the two reasons this refuses a connection for.
PROTOCOL_ERROR = 1002
MESSAGE_TOO_BIG = 1009
# Control frames (close, ping, pong) carry at most this much (RFC 6455, 5.5).
MAX_CONTROL_PAYLOAD = 125


@dataclass
class Refused(Exception):
    """The connection must be dropped: ``code`` is the close code that says why."""

    code: int
    reason: str


class FrameLimits:
    """Follows the frame headers of a client-to-server byte stream; ``feed``
    raises ``Refused`` at the first header that breaks the limits."""

    def __init__(self, max_message: int) -> None:
        self.max_message = max_message
        self._header = bytearray()  # the header being read, up to 14 bytes
        self._payload_left = 0  # of the current frame, still to come
        self._message = 0  # payload bytes of the data message so far
        self._in_message = False  # a fragmented data message is open

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data)
        while view:
            if self._payload_left:
                skipped = min(self._payload_left, len(view))
                self._payload_left -= skipped
                view = view[skipped:]
                continue
            needed = self._header_size()
            taken = min(needed - len(self._header), len(view))
            self._header += view[:taken]
            view = view[taken:]
            if len(self._header) == needed and needed == self._header_size():
                self._payload_left = self._check(self._header)
                self._header.clear()

    def _header_size(self) -> int:
        """The whole header's size as far as the bytes so far tell."""
        if len(self._header) < 2:
            return 2
        length7 = self._header[1] & 0x7F
        extended = 2 if length7 == 126 else 8 if length7 == 127 else 0
        masked = 4 if self._header[1] & 0x80 else 0
        return 2 + extended + masked

    def _check(self, header: bytearray) -> int:
        """The payload length ``header`` declares, if the limits allow it."""
        final = bool(header[0] & 0x80)
        opcode = header[0] & 0x0F
        if header[0] & 0x70:
            # Only extensions set these, and the server agrees to none.
            raise Refused(PROTOCOL_ERROR, "a frame with reserved bits set")
        if not header[1] & 0x80:
            raise Refused(PROTOCOL_ERROR, "an unmasked frame from a client")
        length = header[1] & 0x7F
        if length == 126:
            length = int.from_bytes(header[2:4], "big")
        elif length == 127:
            length = int.from_bytes(header[2:10], "big")
        if opcode >= CLOSE:
            if length > MAX_CONTROL_PAYLOAD or not final:
                raise Refused(PROTOCOL_ERROR, "a control frame over 125 bytes or fragmented")
            return length
        if opcode not in (CONTINUATION, TEXT, BINARY):
            raise Refused(PROTOCOL_ERROR, f"a frame of reserved opcode {opcode}")
        if (opcode == CONTINUATION) != self._in_message:
            raise Refused(PROTOCOL_ERROR, "a continuation frame out of place")
        self._message += length
        if self._message > self.max_message:
            raise Refused(
                MESSAGE_TOO_BIG,
                f"a message of at least {self._message} bytes (the limit is {self.max_message})",
            )
        self._in_message = not final
        if final:
            self._message = 0
        return length
