"""The wire protocol: framing, frame types and limits, sans-I/O.

Every frame is a 5-byte header, a 4-byte big-endian payload length and a 1-byte
frame type, followed by the payload. Text travels as UTF-8. Files (``/send``)
travel on the same connection as chat, so frames rather than bare
newline-separated text; docs/protocol.md describes every frame. This module
imports no trio: the client sends its hello with it before the heavy imports.
"""

from __future__ import annotations

import json
import struct
import zlib
from enum import IntEnum
from typing import NamedTuple, TypeVar

from .terminal_io import MAX_INPUT_LINE

T = TypeVar("T")
# What frame payloads are: views into the received bytes, or bytes in tests.
Payload = bytes | memoryview

# /2: LINE frames name what the line is about (LineKind, subject).
# /3: HISTORY and HISTORY_END frames. A /2 client is served all the same,
# without them (it would not know them): it gets no history.
PROTOCOL = "trio-chat/3"
PROTOCOL_WITHOUT_HISTORY = "trio-chat/2"

HEADER = struct.Struct("!IB")
_LINE_HEADER = struct.Struct("!IBB")  # the header and a LINE frame's kind
# A file chunk is at most CHUNK_SIZE bytes plus a small header, so this bounds
# what any peer can make the other side buffer for one frame.
CHUNK_SIZE = 256 * 1024
MAX_PAYLOAD = CHUNK_SIZE + 1024
# Frames this large (file chunks, never chat) may arrive in place: FrameDecoder.frame_space.
LARGE_FRAME = 64 * 1024
# One line typed at stdin: generous for people, small for a hostile peer.
MAX_LINE_BYTES = MAX_INPUT_LINE
# Any frame a client sends but a file chunk (a hello, a typed line, an offer,
# a transfer's small frames) fits in this; a server refuses a header that
# announces more before it buffers a byte of the payload. The largest is an
# offer: a typed path and its file name, JSON-escaped (up to three bytes for
# each byte of UTF-8), 48 KiB at most.
MAX_CONTROL_PAYLOAD = 64 * 1024


class FrameType(IntEnum):
    # Client to server.
    HELLO = 1  # "trio-chat/3 <username>"
    INPUT = 2  # one stripped line of the client's stdin
    SEND_OFFER = 3  # JSON {"ref", "target", "path", "name", "size", "readable"}
    # Server to client.
    LINE = 16  # one byte LineKind, the subject, "\n", one contract stdout line (no newline)
    NOTICE = 17  # text for the client's stderr
    BYE = 18  # one byte exit status, then a reason for stderr; the server closes next
    FILE_INCOMING = 19  # to the receiver: JSON {"id", "sender", "name", "size"}
    SEND_STATE = 20  # to the sender: id, one byte SendState, then a reason
    CHANNELS = 21  # after joining: JSON {"channels": [names in config order]}
    ROSTER = 22  # on admission: JSON {"names": [members of the channel, at most 1000]}
    EVENT = 23  # to a browser, instead of LINE: JSON {"event", "stamp", ...} (render/browser.py)
    # A line said before this member came (docs/behaviour.md, "Channel
    # history"): a LINE frame's kind, subject and "\n", the day ("YYYY-MM-DD")
    # and "\n", then the line as it was shown live. The history is followed
    # by one HISTORY_END (no payload), before anything live.
    HISTORY = 24
    HISTORY_END = 25
    # File transfer. Every one of these carries the server's transfer id (the
    # sender learns it from SEND_STATE GO), so the server relays them unchanged.
    FILE_DATA = 32  # id, then up to CHUNK_SIZE bytes of the file
    FILE_END = 33  # id, then the CRC-32 of the whole file (Checksum)
    FILE_ABORT = 34  # id, then a reason: the transfer is off
    FILE_ACK = 35  # id, then 8 bytes: how many bytes the receiver has written
    FILE_RESULT = 36  # receiver to server: id, one byte 1 saved / 0 failed, then text


_LINE = int(FrameType.LINE)


class LineKind(IntEnum):
    """What a LINE frame is about, so a client can colour it and follow who is
    in its channel without reading the text; the frame's subject names whom."""

    SERVER = 0  # any other server message (no subject)
    CHAT = 1  # subject: the sender
    WHISPER = 2  # subject: the sender
    LISTING = 3  # subject: the channel of the row
    JOINED = 4  # subject: who joined; the first a newcomer gets is its own
    LEFT = 5  # subject: who left, went AFK or was kicked
    QUEUED = 6  # this client's place in the waiting queue (no subject)


# LineKinds that are server messages, for colouring.
SERVER_KINDS = frozenset({LineKind.SERVER, LineKind.JOINED, LineKind.LEFT, LineKind.QUEUED})


class SendState(IntEnum):
    GO = 0  # stream the file now
    DONE = 1  # the receiver saved it
    REFUSED = 2  # not started (the reason is on stdout already, or in the text)
    ABORTED = 3  # broken off


# How many bytes of a file may be on their way, unacknowledged by the receiver.
# It bounds what any process holds for one transfer.
SEND_WINDOW = 16 * CHUNK_SIZE

ID = struct.Struct("!I")
ACK_TOTAL = struct.Struct("!IQ")


class ProtocolError(Exception):
    """The peer broke the protocol; the connection is dropped."""


def encode(frame_type: int, payload: bytes = b"") -> bytes:
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD}")
    return HEADER.pack(len(payload), frame_type) + payload


def encode_hello(username: str) -> bytes:
    return encode(FrameType.HELLO, f"{PROTOCOL} {username}".encode())


def encode_input(line: str | bytes) -> bytes:
    """One typed line (as text, or its UTF-8 when the caller measured it)."""
    return encode(FrameType.INPUT, line.encode() if isinstance(line, str) else line)


def encode_line(kind: int, line: str, subject: str = "") -> bytes:
    """A LINE frame (``kind`` a LineKind). Every line the server sends to every
    member goes through here, so it packs the header and kind in one step; a
    line is far below MAX_PAYLOAD (what a member types is at most MAX_LINE_BYTES)."""
    payload = f"{subject}\n{line}".encode()
    return _LINE_HEADER.pack(len(payload) + 1, _LINE, kind) + payload


def decode_line(payload: Payload) -> tuple[LineKind, str, str]:
    """A LINE frame's kind, subject and line."""
    if not payload:
        raise ProtocolError("an empty LINE frame")
    try:
        kind = LineKind(payload[0])
    except ValueError:
        raise ProtocolError(f"unknown line kind {payload[0]}") from None
    subject, newline, line = decode_text(payload[1:]).partition("\n")
    if not newline:
        raise ProtocolError("a LINE frame without its subject")
    return kind, subject, line


_HISTORY = int(FrameType.HISTORY)
HISTORY_END_FRAME = HEADER.pack(0, FrameType.HISTORY_END)


def encode_history(kind: int, date: str, line: str, subject: str = "") -> bytes:
    payload = f"{subject}\n{date}\n{line}".encode()
    return _LINE_HEADER.pack(len(payload) + 1, _HISTORY, kind) + payload


def decode_history(payload: Payload) -> tuple[LineKind, str, str, str]:
    """A HISTORY frame's kind, subject, day and line."""
    kind, subject, rest = decode_line(payload)
    date, newline, line = rest.partition("\n")
    if not newline:
        raise ProtocolError("a HISTORY frame without its day")
    return kind, subject, date, line


def encode_notice(text: str) -> bytes:
    return encode(FrameType.NOTICE, text.encode()[:MAX_LINE_BYTES])


def encode_bye(status: int, reason: str) -> bytes:
    return encode(FrameType.BYE, bytes((status,)) + reason.encode()[:MAX_LINE_BYTES])


def encode_json(frame_type: int, fields: dict[str, object], escaped: bool = True) -> bytes:
    """``escaped``: text outside ASCII as ``\\u`` escapes (else as UTF-8,
    up to three times shorter: a page's history)."""
    text = json.dumps(fields, separators=(",", ":"), ensure_ascii=escaped)
    return encode(frame_type, text.encode())


def decode_json(payload: Payload) -> dict[str, object]:
    try:
        fields = json.loads(decode_text(payload))
    except ValueError:
        raise ProtocolError("malformed JSON payload") from None
    if not isinstance(fields, dict):
        raise ProtocolError("JSON payload is not an object")
    return fields


def encode_with_id(frame_type: int, ident: int, body: bytes | memoryview = b"") -> bytes:
    # One copy of the body: this carries every file chunk.
    length = ID.size + len(body)
    if length > MAX_PAYLOAD:
        raise ValueError(f"payload of {length} bytes exceeds {MAX_PAYLOAD}")
    return b"".join((HEADER.pack(length, frame_type), ID.pack(ident), body))


# Where the body of a frame with an id starts: file data is read straight there.
BODY_AFTER_ID = HEADER.size + ID.size


def pack_id_header(
    frame: bytearray | memoryview, frame_type: int, ident: int, body_length: int
) -> None:
    """Write the header and id of a frame whose body is already in place at
    ``BODY_AFTER_ID`` (a sender reads each file chunk into one reused frame)."""
    length = ID.size + body_length
    if length > MAX_PAYLOAD:
        raise ValueError(f"payload of {length} bytes exceeds {MAX_PAYLOAD}")
    HEADER.pack_into(frame, 0, length, frame_type)
    ID.pack_into(frame, HEADER.size, ident)


def split_id(payload: Payload) -> tuple[int, memoryview]:
    """The id at the front of a frame, and a view of the rest (no copy)."""
    if len(payload) < ID.size:
        raise ProtocolError("frame too short for its id")
    return ID.unpack_from(payload)[0], memoryview(payload)[ID.size :]


def encode_ack(ident: int, total: int) -> bytes:
    return encode(FrameType.FILE_ACK, ACK_TOTAL.pack(ident, total))


def decode_ack(payload: Payload) -> tuple[int, int]:
    if len(payload) != ACK_TOTAL.size:
        raise ProtocolError("malformed FILE_ACK")
    ident, total = ACK_TOTAL.unpack(payload)
    return int(ident), int(total)


def field(fields: dict[str, object], name: str, kind: type[T]) -> T:
    """One typed field of a JSON frame; ProtocolError if missing or mistyped."""
    value = fields.get(name)
    # bool is an int in Python; never accept it where a number is expected.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ProtocolError(f"field {name!r} missing or not {kind.__name__}")
    return value


def decode_text(payload: Payload) -> str:
    try:
        return bytes(payload).decode("utf-8")
    except UnicodeDecodeError as error:
        raise ProtocolError(f"invalid UTF-8 at byte {error.start}") from None


def parse_hello(payload: Payload) -> str:
    """Return the username a HELLO carries; ProtocolError if it is not ours."""
    return parse_hello_protocol(payload)[0]


def parse_hello_protocol(payload: Payload) -> tuple[str, bool]:
    """The username a HELLO carries, and whether its client reads HISTORY
    frames (PROTOCOL) or not (PROTOCOL_WITHOUT_HISTORY); ProtocolError for
    any other protocol."""
    text = decode_text(payload)
    protocol, _, username = text.partition(" ")
    if protocol not in (PROTOCOL, PROTOCOL_WITHOUT_HISTORY):
        raise ProtocolError(f"unsupported protocol {protocol[:40]!r}, expected {PROTOCOL}")
    return username, protocol == PROTOCOL


class Checksum:
    """CRC-32 of a whole file, as FILE_END carries it (4 bytes, big-endian).

    It guards against truncation and relay bugs; TCP already guards the bytes
    on the wire, and a stronger hash would buy nothing against a hostile
    server, which could recompute any hash. CRC-32 costs a fraction of SHA-256.
    """

    def __init__(self) -> None:
        self._value = 0

    def update(self, data: bytes | memoryview) -> None:
        self._value = zlib.crc32(data, self._value)

    def digest(self) -> bytes:
        return ID.pack(self._value)


class Frame(NamedTuple):
    type: int
    payload: memoryview
    raw: memoryview  # the whole frame, header included, for relaying unchanged


def _check_length(length: int, frame_type: int, max_payload: int, max_control: int) -> None:
    limit = max_payload if frame_type == FrameType.FILE_DATA else min(max_control, max_payload)
    if length > limit:
        raise ProtocolError(
            f"frame of type {frame_type} and {length} bytes exceeds the limit of {limit}"
        )


def _whole_frames(
    view: memoryview, start: int, end: int, max_payload: int, max_control: int
) -> tuple[list[Frame], int, int]:
    """The whole frames in ``view[start:end]``, where the rest begins, and the
    size of the frame (or header) that rest begins. ProtocolError as soon as
    a header announces more than ``max_payload`` bytes, or more than
    ``max_control`` for anything but a file chunk."""
    frames: list[Frame] = []
    while end - start >= HEADER.size:
        length, frame_type = HEADER.unpack_from(view, start)
        if length > max_control:
            _check_length(length, frame_type, max_payload, max_control)
        body = start + HEADER.size
        if end - body < length:
            return frames, start, HEADER.size + length
        frames.append(Frame(frame_type, view[body : body + length], view[start : body + length]))
        start = body + length
    return frames, start, HEADER.size


class FrameDecoder:
    """Turns a byte stream into frames with few copies.

    Received pieces are kept as they are until a whole frame is there, then
    joined once; payloads are views into that, so a 256 KiB file chunk is not
    copied again on its way through (only the start of a frame that is not
    whole yet is copied out of the joined piece: keeping a view of it instead
    measured no faster in bench/transfer.py). Raises ProtocolError as soon as a header
    announces more than ``max_payload`` bytes, so a hostile peer cannot make us
    buffer an unbounded frame; with ``max_control`` (a server's), as soon as
    one announces more than that for anything but a file chunk.
    """

    def __init__(self, max_payload: int = MAX_PAYLOAD, max_control: int | None = None) -> None:
        self._pieces: list[bytes] = []
        self._held = 0
        self._needed = HEADER.size  # bytes that complete the next frame (or header)
        self._max_payload = max_payload
        self._max_control = max_payload if max_control is None else max_control
        self._frame: bytearray | None = None  # a large frame arriving in place (frame_space)
        self._filled = 0

    def feed(self, data: bytes | bytearray) -> list[Frame]:
        assert self._frame is None, "feed() while a frame arrives in place: use filled()"
        if not data:
            return []
        if not isinstance(data, bytes):
            data = bytes(data)
        self._pieces.append(data)
        self._held += len(data)
        if self._held < self._needed:
            return []
        pieces = self._pieces
        blob = pieces[0] if len(pieces) == 1 else b"".join(pieces)
        frames, start, self._needed = _whole_frames(
            memoryview(blob), 0, len(blob), self._max_payload, self._max_control
        )
        end = len(blob)
        rest = blob[start:] if start < end else b""
        self._pieces = [rest] if rest else []
        self._held = len(rest)
        return frames

    def frame_space(self, at_least: int = LARGE_FRAME) -> memoryview | None:
        """The rest of a frame of ``at_least`` bytes or more that has begun to
        arrive, in a buffer of its own, or None if no such frame has begun.

        A server relays file chunks as they arrived and keeps them in outboxes
        meanwhile, so it cannot reuse one receive buffer as a client does; it
        receives the rest of each chunk straight into the chunk's own buffer
        instead (``socket.recv_into``), and reports with ``filled()``. Only
        the part that came with the previous receive is copied, and nothing
        is joined.
        """
        if self._frame is None:
            if self._held < HEADER.size:
                return None
            first = self._pieces[0]
            header = first if len(first) >= HEADER.size else b"".join(self._pieces)
            length, frame_type = HEADER.unpack_from(header)
            if length > self._max_control:
                _check_length(length, frame_type, self._max_payload, self._max_control)
            if HEADER.size + length < at_least:
                return None
            frame = bytearray(HEADER.size + length)
            for piece in self._pieces:
                frame[self._filled : self._filled + len(piece)] = piece
                self._filled += len(piece)
            self._frame = frame
            self._pieces = []
            self._held = 0
        return memoryview(self._frame)[self._filled :]

    def filled(self, count: int) -> list[Frame]:
        """``count`` bytes arrived in the space frame_space gave: the frame,
        once it is whole."""
        frame = self._frame
        assert frame is not None, "filled() without frame_space()"
        self._filled += count
        if self._filled < len(frame):
            return []
        self._frame = None
        self._filled = 0
        self._needed = HEADER.size
        _, frame_type = HEADER.unpack_from(frame)
        view = memoryview(frame)
        return [Frame(frame_type, view[HEADER.size :], view)]

    @property
    def pending(self) -> int:
        """Bytes held for a frame that has not fully arrived."""
        return self._held + self._filled


class FrameReader:
    """Frames received straight into buffers that are used again and again.

    The client reads a 256 MiB file as a thousand 256 KiB frames; a fresh
    buffer for each (and another to join the pieces a frame arrived in) costs
    more than parsing them, mostly in page faults on memory the allocator has
    just handed back to the kernel. Here ``space()`` gives the free end of the
    buffer to receive into (``socket.recv_into``), ``received(n)`` returns the
    whole frames that are now there, and only the start of an unfinished frame
    is moved to the front before the next receive.

    The frames' views point into the buffers: with ``buffers=1`` they are good
    until the next call to ``space()``, so the caller handles (or copies) a
    batch of frames before receiving again; with two (the default), one batch
    can be written out while the next is received (see ``space()``). A
    server, which keeps frames in outboxes, uses FrameDecoder instead. Raises
    ProtocolError as soon as a header announces more than ``max_payload``
    bytes.
    """

    def __init__(
        self,
        max_payload: int = MAX_PAYLOAD,
        frames_per_buffer: int = 2,
        buffers: int = 2,
        first_size: int = 64 * 1024,
    ) -> None:
        # The buffers start small and grow to full size when the first frame
        # that does not fit arrives: a client's first lines do not wait for a
        # megabyte of zeroed memory (1.5 ms of page faults on a small VM).
        self._full_size = frames_per_buffer * (HEADER.size + max_payload)
        size = min(max(first_size, HEADER.size), self._full_size)
        self._buffers = [memoryview(bytearray(size)) for _ in range(buffers)]
        self._current = 0
        self._start = 0  # the first byte no frame has taken yet
        self._end = 0  # the end of what has been received
        self._max_payload = max_payload

    def space(self) -> memoryview:
        """Where to receive the next bytes. Once frames have been taken from
        the current buffer, the unfinished rest moves to the front of the next
        one: frames stay good until ``buffers`` more calls (with two, one
        batch can be written out while the next is received)."""
        start, end = self._start, self._end
        view = self._buffers[self._current]
        if start:
            self._current = (self._current + 1) % len(self._buffers)
            following = self._buffers[self._current]
            if end > start:
                following[: end - start] = view[start:end]
            self._start, self._end = 0, end - start
            view = following
        # The unfinished frame now starts at the front.
        if self._end >= HEADER.size and len(view) < self._full_size:
            length, _ = HEADER.unpack_from(view)
            if len(view) < HEADER.size + length <= HEADER.size + self._max_payload:
                # Earlier frames keep their old buffers alive as long as needed.
                self._buffers = [memoryview(bytearray(self._full_size)) for _ in self._buffers]
                self._buffers[self._current][: self._end] = view[: self._end]
                view = self._buffers[self._current]
        return view[self._end :]

    def received(self, count: int) -> list[Frame]:
        """``count`` bytes arrived in the space just given: the frames they complete."""
        self._end += count
        limit = self._max_payload  # a client takes any frame up to it
        frames, self._start, _ = _whole_frames(
            self._buffers[self._current], self._start, self._end, limit, limit
        )
        return frames

    @property
    def pending(self) -> int:
        """Bytes held for a frame that has not fully arrived."""
        return self._end - self._start
