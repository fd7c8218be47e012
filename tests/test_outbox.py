"""An outbox's accounting (trio_chat/server/outbox.py), without a socket: what
it counts from queued to written, and what the counts call for (docs/security.md,
"Limits and the slow-consumer policy")."""

from __future__ import annotations

from trio_chat import wire
from trio_chat.cluster.routes import RemoteConn
from trio_chat.server.broadcast import Broadcast
from trio_chat.server.core import Limits
from trio_chat.server.outbox import Backpressure, Outbox, WriterItem
from trio_chat.server.session import CLOSED, FINISHING, MEMBER, Session
from trio_chat.state import Connection

from .harness import running_server, settle

# Hard limits 64 frames, 4096 bytes; high water 16 frames, 1024 bytes; low
# water 4 frames, 256 bytes.
LIMITS = Limits(outbox_frames=64, outbox_bytes=4096, writer_grace=0.25)
CHUNK_LIMIT = LIMITS.outbox_file_bytes


def _member_conns(session: Session, remote: RemoteConn) -> list[Connection]:
    """What the hub's Member.conn may be: mypy checks that both are Connections
    (tests/test_code_quality.py runs it)."""
    return [session, remote]


def line(size: int) -> bytes:
    """A text frame of ``size`` bytes in all."""
    return wire.encode_notice("x" * (size - wire.HEADER.size))


class Holding:
    """A broadcast's holder that counts into an outbox, as a session does."""

    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox
        self.said: list[Backpressure] = []

    def count_held(self, frames: int, size: int) -> None:
        self.said.append(self.outbox.count_held(frames, size))


def held(outbox: Outbox, *frames: bytes) -> tuple[Broadcast, Holding]:
    broadcast = Broadcast((), frames[0])
    for frame in frames[1:]:
        broadcast.add(frame)
    holder = Holding(outbox)
    outbox.hold(broadcast)
    broadcast.holders.append(holder)
    return broadcast, holder


def test_a_line_counts_its_frame_and_bytes_and_waits_for_the_round() -> None:
    outbox = Outbox(LIMITS)
    assert outbox.add_line(line(10)) is Backpressure.NONE
    assert outbox.add_line(line(20)) is Backpressure.NONE
    assert (outbox.frames, outbox.text_bytes, outbox.file_bytes) == (2, 30, 0)
    assert outbox.pending == [line(10), line(20)]


def test_past_the_high_water_mark_it_is_congested_once_until_it_drains() -> None:
    outbox = Outbox(LIMITS)
    said = [outbox.add_line(line(10)) for _ in range(20)]
    # The 17th frame passes 16; it is said once, not for every frame after.
    assert said[16] is Backpressure.CONGESTED
    assert said.count(Backpressure.CONGESTED) == 1
    assert outbox.congested
    data = outbox.take_round()
    outbox.handed_to_writer()
    assert outbox.frames == 1  # the round is one item for the writer now
    # Above the low-water mark still, in bytes: not drained.
    outbox.add_line(line(300))
    outbox.take_round()
    outbox.handed_to_writer()
    assert not outbox.written([(data, False)])
    assert outbox.congested
    assert outbox.written([(line(300), False)])
    assert not outbox.congested
    assert (outbox.frames, outbox.text_bytes, outbox.in_writer) == (0, 0, 0)


def test_past_the_byte_limit_the_client_is_not_reading() -> None:
    outbox = Outbox(LIMITS)
    assert outbox.add_line(line(4000)) is Backpressure.CONGESTED
    assert outbox.add_line(line(100)) is Backpressure.OVER_LIMIT
    assert outbox.overflow == "2 frames, 4100 bytes waiting: the client is not reading"


def test_past_the_frame_limit_the_client_is_not_reading() -> None:
    outbox = Outbox(LIMITS)
    said = [outbox.add_line(line(8)) for _ in range(65)]
    assert said[-1] is Backpressure.OVER_LIMIT
    assert Backpressure.OVER_LIMIT not in said[:-1]
    assert outbox.overflow == "65 frames, 520 bytes waiting: the client is not reading"


def test_file_chunks_count_apart_and_never_congest() -> None:
    # Room for frames: only the bytes of files limit here.
    outbox = Outbox(Limits(outbox_frames=4096, outbox_bytes=4096))
    chunk = wire.MAX_PAYLOAD
    taken = 0
    while taken + chunk <= CHUNK_LIMIT:
        assert outbox.add_chunk(chunk) is Backpressure.NONE
        taken += chunk
    assert (outbox.file_bytes, outbox.text_bytes) == (taken, 0)
    assert not outbox.congested
    assert outbox.add_chunk(chunk) is Backpressure.OVER_LIMIT
    assert outbox.overflow == f"{taken + chunk} bytes of files waiting: not reading"


def test_file_chunks_count_as_frames_against_the_frame_limit() -> None:
    outbox = Outbox(LIMITS)
    for _ in range(64):
        outbox.add_line(line(8))
        outbox.take_round()
    assert outbox.add_chunk(100) is Backpressure.OVER_LIMIT
    assert outbox.overflow == "outbox full: the client is not reading"


def test_written_takes_chunks_and_text_off_their_own_counts() -> None:
    outbox = Outbox(LIMITS)
    outbox.add_line(line(50))
    text = outbox.take_round()
    chunk = b"c" * 1000
    outbox.add_chunk(len(chunk))
    batch: list[WriterItem] = [(text, False), (chunk, True)]
    for _ in batch:
        outbox.handed_to_writer()
    assert (outbox.frames, outbox.text_bytes, outbox.file_bytes) == (2, 50, 1000)
    outbox.written(batch)
    assert (outbox.frames, outbox.text_bytes, outbox.file_bytes, outbox.in_writer) == (
        0,
        0,
        0,
        0,
    )


def test_a_broadcast_counts_when_it_closes_and_keeps_its_place() -> None:
    outbox = Outbox(LIMITS)
    outbox.add_line(line(10))
    broadcast, holder = held(outbox, line(20), line(30))
    broadcast.add(line(40))
    assert outbox.frames == 1  # the broadcast's lines are not counted yet
    # A line for this holder alone closes it: later lines of the channel's
    # must not overtake this one.
    outbox.add_line(line(50))
    assert not broadcast.open
    assert holder.said == [Backpressure.NONE]
    assert (outbox.frames, outbox.text_bytes) == (5, 150)
    assert outbox.take_round() == line(10) + line(20) + line(30) + line(40) + line(50)
    assert (outbox.frames, outbox.text_bytes, outbox.pending) == (1, 150, [])


def test_taking_the_round_closes_the_open_broadcast_and_counts_it() -> None:
    outbox = Outbox(LIMITS)
    broadcast, holder = held(outbox, line(20), line(30))
    assert outbox.frames == 0
    # Alone in the round, the broadcast's own joined bytes are the round.
    assert outbox.take_round() is broadcast.joined()
    assert holder.said == [Backpressure.NONE]
    assert (outbox.frames, outbox.text_bytes) == (1, 50)


def test_a_broadcast_past_the_limit_says_so_when_it_closes() -> None:
    outbox = Outbox(LIMITS)
    _, holder = held(outbox, *[line(8) for _ in range(70)])
    outbox.take_round()
    assert holder.said == [Backpressure.OVER_LIMIT]
    assert outbox.overflow == "70 frames, 560 bytes waiting: the client is not reading"


def test_a_round_written_in_part_leaves_one_frame_of_the_rest() -> None:
    outbox = Outbox(LIMITS)
    for _ in range(20):
        outbox.add_line(line(10))
    data = outbox.take_round()
    outbox.wrote_part(150)
    assert (outbox.frames, outbox.text_bytes) == (1, 50)
    outbox.handed_to_writer()
    assert outbox.written([(data[150:], False)])  # it was congested: now drained
    assert (outbox.frames, outbox.text_bytes) == (0, 0)


def test_a_round_written_whole_by_the_session_drains_it() -> None:
    outbox = Outbox(LIMITS)
    for _ in range(20):
        outbox.add_line(line(10))
    data = outbox.take_round()
    assert outbox.wrote_round(len(data))
    assert (outbox.frames, outbox.text_bytes, outbox.congested) == (0, 0, False)


def test_the_bye_is_counted_and_never_refused() -> None:
    outbox = Outbox(LIMITS)
    for _ in range(64):
        outbox.add_line(line(8))
    outbox.add_last(40)
    assert (outbox.frames, outbox.text_bytes) == (65, 552)


def test_dropping_the_round_forgets_its_text() -> None:
    outbox = Outbox(LIMITS)
    outbox.add_line(line(10))
    outbox.drop_round()
    assert outbox.pending == []


def test_a_writer_stuck_past_the_grace_is_not_waited_for() -> None:
    outbox = Outbox(LIMITS)
    assert outbox.keeping_up(100.0)
    assert outbox.patience(100.0) == 0.25
    outbox.writing_since = 100.0
    assert outbox.keeping_up(100.1)
    assert abs(outbox.patience(100.1) - 0.15) < 1e-9
    assert not outbox.keeping_up(100.25)
    assert outbox.patience(101.0) == 0.0


async def test_a_session_moves_through_its_states_only_onwards() -> None:
    async with running_server() as harness:
        alice = await harness.join("alice")
        await harness.join("bob")
        await settle()
        alice_session, bob_session = sorted(harness.server.sessions, key=lambda s: s.name)
        assert (alice_session.state, alice_session.greeted) == (MEMBER, True)
        alice_session.finish(0, "test: done")
        assert alice_session.state is FINISHING
        bob_session.abort("test: dropped")
        assert bob_session.state is CLOSED
        # A finish after the drop does not bring it back.
        bob_session.finish(0, "test: too late")
        assert bob_session.state is CLOSED
        await alice.wait_closed()
        await settle()
        assert alice.bye == (0, "test: done")
        assert alice_session.state is CLOSED
