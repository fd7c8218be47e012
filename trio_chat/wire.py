"""The wire protocol: framing, frame types and limits, sans-I/O.

Every frame is a 5-byte header, a 4-byte big-endian payload length and a 1-byte
frame type, followed by the payload. Text travels as UTF-8. Files (SPEC §5
``/send``) travel on the same connection as chat, so frames rather than bare
newline-separated text. This module imports no trio: the client sends its hello
with it before the heavy imports.
"""

from __future__ import annotations

import json
import struct
from enum import IntEnum
from typing import TypeVar

T = TypeVar("T")

PROTOCOL = "trio-chat/1"

HEADER = struct.Struct("!IB")
# A file chunk is at most CHUNK_SIZE bytes plus a small header, so this bounds
# what any peer can make the other side buffer for one frame.
CHUNK_SIZE = 64 * 1024
MAX_PAYLOAD = CHUNK_SIZE + 1024
# One line typed at stdin: generous for people, small for a hostile peer.
MAX_LINE_BYTES = 8 * 1024


class FrameType(IntEnum):
    # Client to server.
    HELLO = 1  # "trio-chat/1 <username>"
    INPUT = 2  # one stripped line of the client's stdin
    SEND_OFFER = 3  # JSON {"ref", "target", "path", "name", "size", "readable"}
    # Server to client.
    LINE = 16  # one byte LineKind, then one stdout line of SPEC (no newline)
    NOTICE = 17  # text for the client's stderr
    BYE = 18  # one byte exit status, then a reason for stderr; the server closes next
    FILE_INCOMING = 19  # to the receiver: JSON {"id", "sender", "name", "size"}
    SEND_STATE = 20  # to the sender: id, one byte SendState, then a reason
    # File transfer, both directions. The id is the sender's own ref between
    # sender and server, and the server's transfer id between server and receiver.
    FILE_DATA = 32  # id, then up to CHUNK_SIZE bytes of the file
    FILE_END = 33  # id, then the SHA-256 of the whole file
    FILE_ABORT = 34  # id, then a reason: the transfer is off
    FILE_ACK = 35  # id, then 8 bytes: how many bytes the receiver has written
    FILE_RESULT = 36  # receiver to server: id, one byte 1 saved / 0 failed, then text


class LineKind(IntEnum):
    """What a LINE frame is, so a terminal client can colour it."""

    SERVER = 0
    CHAT = 1
    WHISPER = 2
    LISTING = 3


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


def encode_input(line: str) -> bytes:
    return encode(FrameType.INPUT, line.encode())


def encode_line(kind: LineKind, line: str) -> bytes:
    return encode(FrameType.LINE, bytes((kind,)) + line.encode())


def encode_notice(text: str) -> bytes:
    return encode(FrameType.NOTICE, text.encode()[:MAX_LINE_BYTES])


def encode_bye(status: int, reason: str) -> bytes:
    return encode(FrameType.BYE, bytes((status,)) + reason.encode()[:MAX_LINE_BYTES])


def encode_json(frame_type: int, fields: dict[str, object]) -> bytes:
    return encode(frame_type, json.dumps(fields, separators=(",", ":")).encode())


def decode_json(payload: bytes) -> dict[str, object]:
    try:
        fields = json.loads(decode_text(payload))
    except ValueError:
        raise ProtocolError("malformed JSON payload") from None
    if not isinstance(fields, dict):
        raise ProtocolError("JSON payload is not an object")
    return fields


def encode_with_id(frame_type: int, ident: int, body: bytes = b"") -> bytes:
    return encode(frame_type, ID.pack(ident) + body)


def split_id(payload: bytes) -> tuple[int, bytes]:
    if len(payload) < ID.size:
        raise ProtocolError("frame too short for its id")
    return ID.unpack_from(payload)[0], payload[ID.size :]


def encode_ack(ident: int, total: int) -> bytes:
    return encode(FrameType.FILE_ACK, ACK_TOTAL.pack(ident, total))


def decode_ack(payload: bytes) -> tuple[int, int]:
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


def decode_text(payload: bytes | bytearray | memoryview) -> str:
    try:
        return bytes(payload).decode("utf-8")
    except UnicodeDecodeError as error:
        raise ProtocolError(f"invalid UTF-8 at byte {error.start}") from None


def parse_hello(payload: bytes) -> str:
    """Return the username a HELLO carries; ProtocolError if it is not ours."""
    text = decode_text(payload)
    protocol, _, username = text.partition(" ")
    if protocol != PROTOCOL:
        raise ProtocolError(f"unsupported protocol {protocol[:40]!r}, expected {PROTOCOL}")
    return username


class FrameDecoder:
    """Turns a byte stream into (frame type, payload) pairs.

    Raises ProtocolError as soon as a header announces more than ``max_payload``
    bytes, so a hostile peer cannot make us buffer an unbounded frame.
    """

    def __init__(self, max_payload: int = MAX_PAYLOAD) -> None:
        self._buffer = bytearray()
        self._max_payload = max_payload

    def feed(self, data: bytes | bytearray) -> list[tuple[int, bytes]]:
        buffer = self._buffer
        buffer += data
        frames: list[tuple[int, bytes]] = []
        start = 0
        end = len(buffer)
        while end - start >= HEADER.size:
            length, frame_type = HEADER.unpack_from(buffer, start)
            if length > self._max_payload:
                raise ProtocolError(
                    f"frame of {length} bytes exceeds the limit of {self._max_payload}"
                )
            body = start + HEADER.size
            if end - body < length:
                break
            frames.append((frame_type, bytes(buffer[body : body + length])))
            start = body + length
        if start:
            del buffer[:start]
        return frames

    @property
    def pending(self) -> int:
        """Bytes held for a frame that has not fully arrived."""
        return len(self._buffer)
