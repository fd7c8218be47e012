"""The frame codec and the parsers never fail in unintended ways (hypothesis)."""

from __future__ import annotations

import contextlib
import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trio_chat import wire
from trio_chat.commands import parse_client_line, parse_console_line
from trio_chat.config import ConfigError, parse_config
from trio_chat.sanitize import clean
from trio_chat.wire import FrameDecoder, FrameType, ProtocolError


def test_round_trip_in_arbitrary_pieces() -> None:
    frames = [wire.encode_hello("alice"), wire.encode_input("hi ✓"), wire.encode(FrameType.INPUT)]
    data = b"".join(frames)
    for split in range(len(data) + 1):
        decoder = FrameDecoder()
        got = [(t, bytes(p)) for t, p, _ in decoder.feed(data[:split]) + decoder.feed(data[split:])]
        assert got == [
            (FrameType.HELLO, wire.PROTOCOL.encode() + b" alice"),
            (FrameType.INPUT, "hi ✓".encode()),
            (FrameType.INPUT, b""),
        ]
        assert decoder.pending == 0


def test_oversize_header_is_refused_before_the_body_arrives() -> None:
    decoder = FrameDecoder(max_payload=10)
    with pytest.raises(ProtocolError):
        decoder.feed(wire.HEADER.pack(11, FrameType.INPUT))


def test_a_servers_decoder_refuses_large_frames_but_file_chunks_at_the_header() -> None:
    """Only a file chunk may be large; the rest is refused from its header
    alone, however the header is split."""
    for frame_type in (FrameType.HELLO, FrameType.INPUT, FrameType.SEND_OFFER, FrameType.FILE_ACK):
        with pytest.raises(ProtocolError):
            FrameDecoder(max_control=100).feed(wire.HEADER.pack(101, frame_type))
        decoder = FrameDecoder(max_control=100)
        assert decoder.feed(wire.HEADER.pack(100, frame_type)) == []  # at the limit: waits
        decoder = FrameDecoder(max_control=100)
        decoder.feed(wire.HEADER.pack(101, frame_type)[:4])
        with pytest.raises(ProtocolError):
            decoder.feed(bytes([frame_type]))
    decoder = FrameDecoder(max_control=100)
    chunk = wire.encode(FrameType.FILE_DATA, b"x" * wire.LARGE_FRAME)
    assert decoder.feed(chunk[:7]) == []
    space = decoder.frame_space()
    assert space is not None
    space[:] = chunk[7:]
    assert [frame.type for frame in decoder.filled(len(space))] == [FrameType.FILE_DATA]


def test_hello_must_name_our_protocol() -> None:
    assert wire.parse_hello(wire.PROTOCOL.encode() + b" bob") == "bob"
    with pytest.raises(ProtocolError):
        wire.parse_hello(b"trio-chat/9 bob")
    with pytest.raises(ProtocolError):
        wire.parse_hello(b"\xff\xfe")


@given(st.lists(st.binary(max_size=64), max_size=20))
def test_decoder_only_raises_protocol_error(chunks: list[bytes]) -> None:
    decoder = FrameDecoder(max_payload=1000)
    try:
        for chunk in chunks:
            for frame_type, payload, _ in decoder.feed(chunk):
                assert 0 <= frame_type < 256
                assert len(payload) <= 1000
    except ProtocolError:
        pass


@given(st.lists(st.tuples(st.integers(0, 255), st.binary(max_size=300)), max_size=10), st.data())
def test_any_frames_survive_any_split(frames: list[tuple[int, bytes]], data: st.DataObject) -> None:
    stream = b"".join(wire.encode(t, p) for t, p in frames)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=5)))
    decoder = FrameDecoder()
    got: list[tuple[int, bytes]] = []
    start = 0
    for cut in [*cuts, len(stream)]:
        got += [(t, bytes(p)) for t, p, _ in decoder.feed(stream[start:cut])]
        start = cut
    assert got == frames


@given(st.lists(st.tuples(st.integers(0, 255), st.binary(max_size=300)), max_size=10), st.data())
def test_large_frames_arrive_in_place_from_any_split(
    frames: list[tuple[int, bytes]], data: st.DataObject
) -> None:
    """The server's way: whole receives fed, or the rest of a large frame
    received into its own buffer (frames of 50 bytes or more count as large here)."""
    stream = b"".join(wire.encode(t, p) for t, p in frames)
    sizes = data.draw(st.lists(st.integers(1, 400), min_size=1, max_size=8))
    decoder = FrameDecoder(max_payload=300)
    got: list[tuple[int, bytes]] = []
    start = 0
    turn = 0
    while start < len(stream):
        size = min(sizes[turn % len(sizes)], len(stream) - start)
        turn += 1
        space = decoder.frame_space(at_least=50)
        if space is None:
            arrived = decoder.feed(stream[start : start + size])
        else:
            size = min(size, len(space))
            space[:size] = stream[start : start + size]
            arrived = decoder.filled(size)
        start += size
        got += [(t, bytes(p)) for t, p, _ in arrived]
    assert got == frames
    assert decoder.pending == 0


def test_a_file_chunk_is_received_into_its_own_buffer() -> None:
    chunk = os.urandom(wire.CHUNK_SIZE)
    frame = wire.encode_with_id(FrameType.FILE_DATA, 3, chunk)
    decoder = FrameDecoder()
    assert decoder.frame_space() is None
    assert decoder.feed(frame[:1000]) == []
    space = decoder.frame_space()
    assert space is not None and len(space) == len(frame) - 1000
    space[:] = frame[1000:]
    (frame_type, payload, raw), *others = decoder.filled(len(space))
    assert (frame_type, bytes(payload), bytes(raw), others) == (
        FrameType.FILE_DATA,
        wire.ID.pack(3) + chunk,
        frame,
        [],
    )
    assert decoder.frame_space() is None


def read_in_pieces(
    reader: wire.FrameReader, stream: bytes, cuts: list[int]
) -> list[tuple[int, bytes]]:
    """Receive ``stream`` cut at ``cuts`` as a socket would hand it over
    (never more than the space offered), copying each batch's frames before
    the next receive, as the client does."""
    got: list[tuple[int, bytes]] = []
    start = 0
    for cut in [*cuts, len(stream)]:
        while start < cut:
            space = reader.space()
            assert space, "no room: a receive into it would look like the end"
            count = min(len(space), cut - start)
            space[:count] = stream[start : start + count]
            start += count
            got += [(t, bytes(p)) for t, p, _ in reader.received(count)]
    return got


@given(st.lists(st.tuples(st.integers(0, 255), st.binary(max_size=300)), max_size=10), st.data())
def test_the_reader_gets_any_frames_from_any_split(
    frames: list[tuple[int, bytes]], data: st.DataObject
) -> None:
    stream = b"".join(wire.encode(t, p) for t, p in frames)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=5)))
    # Buffers of two frames of the largest size here: unfinished frames move
    # to the front (of the next buffer, with two) again and again.
    buffers = data.draw(st.integers(1, 3))
    first_size = data.draw(st.integers(1, 700))  # buffers that start small grow
    reader = wire.FrameReader(
        max_payload=300, frames_per_buffer=2, buffers=buffers, first_size=first_size
    )
    assert read_in_pieces(reader, stream, cuts) == frames
    assert reader.pending == 0


def test_the_reader_moves_an_unfinished_file_chunk_to_the_front() -> None:
    chunks = [os.urandom(wire.CHUNK_SIZE) for _ in range(9)]
    stream = b"".join(wire.encode_with_id(FrameType.FILE_DATA, 7, chunk) for chunk in chunks)
    reader = wire.FrameReader()
    # Receives of 100,000 bytes leave a chunk's start at the end of the buffer.
    got = read_in_pieces(reader, stream, list(range(0, len(stream), 100_000)))
    assert [payload for _, payload in got] == [wire.ID.pack(7) + chunk for chunk in chunks]


def test_the_reader_refuses_an_oversize_header_before_the_body() -> None:
    reader = wire.FrameReader(max_payload=10)
    space = reader.space()
    header = wire.HEADER.pack(11, FrameType.INPUT)
    space[: len(header)] = header
    with pytest.raises(ProtocolError):
        reader.received(len(header))


@given(st.lists(st.binary(max_size=64), max_size=20))
def test_the_reader_only_raises_protocol_error(chunks: list[bytes]) -> None:
    reader = wire.FrameReader(max_payload=1000)
    with contextlib.suppress(ProtocolError):
        for chunk in chunks:
            space = reader.space()
            space[: len(chunk)] = chunk
            for frame_type, payload, _ in reader.received(len(chunk)):
                assert 0 <= frame_type < 256
                assert len(payload) <= 1000


@given(st.text())
def test_client_line_parser_is_total(line: str) -> None:
    parse_client_line(line)


@given(st.text())
def test_console_parser_is_total(line: str) -> None:
    parse_console_line(line)


@given(st.text())
def test_config_parser_raises_only_config_error(text: str) -> None:
    with contextlib.suppress(ConfigError):
        parse_config(text)


@given(st.text())
def test_clean_leaves_no_control_characters(line: str) -> None:
    cleaned = clean(line)
    assert len(cleaned) == len(line)
    assert not any((ord(c) < 0x20 and c != "\t") or 0x7F <= ord(c) < 0xA0 for c in cleaned)
    assert not any(c in cleaned for c in "\u2028\u2029\u202a\u202b\u202c\u202d\u202e\u2066\u2069")
    assert clean(cleaned) == cleaned


def test_with_two_buffers_a_batch_stays_intact_while_the_next_arrives() -> None:
    chunks = [bytes([n]) * wire.CHUNK_SIZE for n in range(6)]
    stream = b"".join(wire.encode_with_id(FrameType.FILE_DATA, 7, chunk) for chunk in chunks)
    reader = wire.FrameReader(buffers=2)
    start = 0
    previous: list[memoryview] = []
    got: list[bytes] = []
    while start < len(stream):
        space = reader.space()
        # The batch before this one is still what it was (written behind).
        assert [bytes(p) for p in previous] == got[len(got) - len(previous) :]
        count = min(len(space), len(stream) - start, 300_000)
        space[:count] = stream[start : start + count]
        start += count
        batch = reader.received(count)
        if batch:
            previous = [payload for _, payload, _ in batch]
            got += [bytes(p) for p in previous]
    assert got == [wire.ID.pack(7) + chunk for chunk in chunks]
