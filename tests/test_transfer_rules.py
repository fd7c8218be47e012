"""The /send relay's rules without I/O (trio_chat.server.transfer_rules;
docs/protocol.md, "Sending a file" and "What the server checks"): every rule
a table of cases, the time passed in."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from trio_chat import wire
from trio_chat.server.transfer_rules import (
    ID_SPAN,
    RELAY,
    CallOff,
    Drop,
    Finished,
    ReceiverFailed,
    Refused,
    SenderFailed,
    Transfer,
    TransferLimits,
    TransferTable,
    Verdict,
    went_away,
)
from trio_chat.wire import FrameType


@dataclass(eq=False)
class End:
    """A sender or receiver: compared by identity, as sessions are."""

    name: str


Table = TransferTable[End, End]
Running = Transfer[End, End]

# Small numbers, so each case's arithmetic can be read off the table.
LIMITS = TransferLimits(
    max_file_size=1000,
    max_incoming=3,
    max_outgoing=3,
    max_between_two=2,
    idle_timeout=60.0,
    window=100,
)
ALICE, BOB, CAROL, DAVE = End("alice"), End("bob"), End("carol"), End("dave")


def table(limits: TransferLimits = LIMITS) -> Table:
    return TransferTable(limits)


def start(
    transfers: Table,
    sender: End = ALICE,
    receiver: End = BOB,
    *,
    ref: int = 1,
    size: int = 500,
    now: float = 0.0,
    path: str = "notes.txt",
) -> Running:
    started = transfers.start(sender, ref, receiver, receiver.name, path, size, now)
    assert isinstance(started, Transfer), started
    return started


# ----- offers -----


@pytest.mark.parametrize(
    ("ref", "size", "longest", "malformed"),
    [
        (0, 0, 0, False),
        (2**32 - 1, 10, wire.MAX_LINE_BYTES, False),
        (-1, 10, 5, True),
        (2**32, 10, 5, True),
        (1, -1, 5, True),
        (1, 10, wire.MAX_LINE_BYTES + 1, True),
    ],
)
def test_an_offer_is_malformed_when_its_fields_are_out_of_range(
    ref: int, size: int, longest: int, malformed: bool
) -> None:
    verdict = table().take_offer(ALICE, ref, size, longest)
    assert verdict == (Drop("malformed SEND_OFFER") if malformed else None)


@pytest.mark.parametrize(
    ("earlier", "malformed"),
    [
        ("none", False),
        ("waiting for the rules", True),
        ("answered, not started", False),
        ("running", True),
        ("over", False),
        ("another sender's, running", False),
    ],
)
def test_a_ref_is_taken_while_its_offer_waits_or_its_transfer_runs(
    earlier: str, malformed: bool
) -> None:
    transfers = table()
    if earlier != "none":
        sender = CAROL if earlier.startswith("another") else ALICE
        assert transfers.take_offer(sender, 7, 10, 5) is None
        if earlier != "waiting for the rules":
            transfers.answered(sender, 7)
        if earlier in ("running", "over", "another sender's, running"):
            running = start(transfers, sender, ref=7)
            if earlier == "over":
                assert transfers.forget(running)
    verdict = transfers.take_offer(ALICE, 7, 10, 5)
    assert verdict == (Drop("malformed SEND_OFFER") if malformed else None)


ALREADY = "you are already sending"


@pytest.mark.parametrize(
    ("running", "sender", "receiver", "size", "refusal"),
    [
        ([], ALICE, BOB, 1000, ""),
        (
            [],
            ALICE,
            BOB,
            1001,
            "notes.txt is 1001 bytes; the server accepts files of at most 1000 bytes",
        ),
        ([(ALICE, BOB)], ALICE, BOB, 10, ""),
        ([(ALICE, BOB)] * 2, ALICE, BOB, 10, f"{ALREADY} 2 files to bob; wait for one to finish"),
        ([(ALICE, BOB)] * 2, ALICE, CAROL, 10, ""),  # another receiver
        ([(ALICE, BOB)] * 2, DAVE, BOB, 10, ""),  # another sender to the same receiver
        (
            [(ALICE, BOB), (ALICE, CAROL), (ALICE, DAVE)],
            ALICE,
            BOB,
            10,
            f"{ALREADY} 3 files; wait for one to finish",
        ),
        (
            [(ALICE, BOB), (CAROL, BOB), (DAVE, BOB)],
            ALICE,
            BOB,
            10,
            "bob is already receiving 3 files; try again later",
        ),
        ([(ALICE, BOB), (CAROL, BOB), (DAVE, BOB)], BOB, ALICE, 10, ""),  # the other way
        # Several limits at once: the first that applies is the reason, in this order.
        (
            [(ALICE, BOB)] * 2 + [(ALICE, CAROL)],
            ALICE,
            BOB,
            1001,
            "notes.txt is 1001 bytes; the server accepts files of at most 1000 bytes",
        ),
        (
            [(ALICE, BOB)] * 2 + [(ALICE, CAROL)],
            ALICE,
            BOB,
            10,
            f"{ALREADY} 3 files; wait for one to finish",
        ),
        (
            [(ALICE, BOB)] * 2 + [(CAROL, BOB)],
            ALICE,
            BOB,
            10,
            f"{ALREADY} 2 files to bob; wait for one to finish",
        ),
    ],
)
def test_an_offer_is_refused_past_a_limit(
    running: list[tuple[End, End]], sender: End, receiver: End, size: int, refusal: str
) -> None:
    transfers = table()
    for ref, (from_, to) in enumerate(running):
        start(transfers, from_, to, ref=ref, size=10)
    started = transfers.start(sender, 99, receiver, receiver.name, "notes.txt", size, 0.0)
    if refusal:
        assert started == Refused(refusal)
        assert len(transfers.running) == len(running)
    else:
        assert isinstance(started, Transfer)
        assert transfers.running[started.ident] is started
        assert (started.sender, started.receiver, started.size) == (sender, receiver, size)


@pytest.mark.parametrize(
    ("running", "forgotten", "offer", "refusal"),
    [
        # Once a transfer is over, its place is free again, for each limit.
        ([(ALICE, BOB)] * 2, 0, (ALICE, BOB), ""),
        ([(ALICE, BOB), (ALICE, CAROL), (ALICE, DAVE)], 1, (ALICE, BOB), ""),
        ([(ALICE, BOB), (CAROL, BOB), (DAVE, BOB)], 2, (ALICE, BOB), ""),
        # Forgetting one transfer frees only its own places.
        ([(ALICE, BOB)] * 2 + [(ALICE, CAROL)], 2, (ALICE, BOB), "2 files to bob"),
    ],
)
def test_a_transfer_that_ends_gives_its_places_back(
    running: list[tuple[End, End]], forgotten: int, offer: tuple[End, End], refusal: str
) -> None:
    transfers = table()
    started = [start(transfers, s, r, ref=ref, size=10) for ref, (s, r) in enumerate(running)]
    assert transfers.forget(started[forgotten])
    assert not transfers.forget(started[forgotten])  # over already: nothing more to give back
    sender, receiver = offer
    outcome = transfers.start(sender, 99, receiver, receiver.name, "x", 10, 0.0)
    if refusal:
        assert isinstance(outcome, Refused) and refusal in outcome.reason
    else:
        assert isinstance(outcome, Transfer)


# ----- transfer ids -----


MANY = TransferLimits(
    max_file_size=10,
    max_incoming=ID_SPAN,
    max_outgoing=ID_SPAN,
    max_between_two=ID_SPAN,
    idle_timeout=1.0,
    window=10,
)


@pytest.mark.parametrize(
    ("id_base", "running", "counter", "expected"),
    [
        (0, [], 1, 1),
        (3 << 24, [], 1, (3 << 24) | 1),  # a cluster node's number in the top byte
        (0, [], ID_SPAN, ID_SPAN),
        (0, [ID_SPAN], ID_SPAN, 1),  # the count wraps to 1, never 0
        (0, [1], 1, 2),  # an id still in use is skipped
        (0, [1, 2, 3], 1, 4),
        (5 << 24, [(5 << 24) | ID_SPAN, (5 << 24) | 1], ID_SPAN, (5 << 24) | 2),
    ],
)
def test_a_new_transfer_gets_an_id_no_running_one_has(
    id_base: int, running: list[int], counter: int, expected: int
) -> None:
    transfers = table(MANY)
    transfers.id_base = id_base
    for ref, ident in enumerate(running):
        # The counter's position, rather than 16 million transfers to get there.
        transfers._next_id = ident & ID_SPAN
        assert start(transfers, ref=ref, size=1).ident == ident
    transfers._next_id = counter
    assert start(transfers, ref=len(running), size=1).ident == expected


def test_ids_count_up_and_are_not_reused_at_once() -> None:
    transfers = table(MANY)
    first = start(transfers, ref=1, size=1)
    transfers.forget(first)
    assert [start(transfers, ref=ref, size=1).ident for ref in (2, 3)] == [2, 3]


# ----- frames of a running transfer -----

SOMEONE_ELSES = "for someone else's transfer"


@pytest.mark.parametrize(
    ("frame_type", "side", "in_order"),
    [
        (FrameType.FILE_DATA, "sender", True),
        (FrameType.FILE_END, "sender", True),
        (FrameType.FILE_ABORT, "sender", True),
        (FrameType.FILE_ACK, "receiver", True),
        (FrameType.FILE_RESULT, "receiver", True),
        (FrameType.FILE_DATA, "receiver", False),
        (FrameType.FILE_END, "receiver", False),
        (FrameType.FILE_ABORT, "receiver", False),
        (FrameType.FILE_ACK, "sender", False),
        (FrameType.FILE_RESULT, "sender", False),
        (FrameType.FILE_DATA, "stranger", False),
        (FrameType.FILE_ACK, "stranger", False),
    ],
)
def test_each_frame_comes_from_its_own_side(frame_type: int, side: str, in_order: bool) -> None:
    transfers = table()
    running = start(transfers)
    who = {"sender": ALICE, "receiver": BOB, "stranger": CAROL}[side]
    verdict = transfers.wrong_side(running, who, frame_type)
    assert verdict == (None if in_order else Drop(f"frame type {frame_type} {SOMEONE_ELSES}"))


def test_a_sender_sending_to_itself_plays_each_part() -> None:
    transfers = table()
    running = start(transfers, ALICE, ALICE)
    for frame_type in (FrameType.FILE_DATA, FrameType.FILE_ACK, FrameType.FILE_RESULT):
        assert transfers.wrong_side(running, ALICE, frame_type) is None


TOO_MUCH = SenderFailed("more file data than the offer announced")
PAST_WINDOW = SenderFailed("file data beyond the flow-control window")


@pytest.mark.parametrize(
    ("size", "relayed", "acked", "ended", "chunk", "verdict"),
    [
        (500, 0, 0, False, 100, RELAY),  # exactly the window
        (500, 0, 0, False, 101, PAST_WINDOW),
        (500, 100, 0, False, 1, PAST_WINDOW),
        (500, 100, 50, False, 50, RELAY),  # acknowledgements open the window again
        (500, 100, 50, False, 51, PAST_WINDOW),
        (500, 450, 400, False, 50, RELAY),  # the last chunk, to the byte
        (500, 450, 400, False, 51, TOO_MUCH),
        (500, 500, 500, False, 1, TOO_MUCH),
        (500, 500, 500, True, 1, TOO_MUCH),  # nothing after FILE_END
        (500, 500, 500, True, 0, TOO_MUCH),  # not even an empty chunk
        (500, 0, 0, False, 0, RELAY),
        (50, 0, 0, False, 101, TOO_MUCH),  # past the size is said first
    ],
)
def test_file_data_keeps_within_the_size_and_the_window(
    size: int, relayed: int, acked: int, ended: bool, chunk: int, verdict: Verdict
) -> None:
    transfers = table()
    running = start(transfers, size=size, now=1.0)
    running.relayed, running.acked, running.ended = relayed, acked, ended
    assert transfers.data(running, chunk, now=5.0) == verdict
    assert running.relayed == relayed + chunk
    # Only data that moves counts as progress.
    assert running.last_progress == (5.0 if verdict is RELAY else 1.0)


FILE_END_WRONG = SenderFailed("FILE_END does not match the offer")


@pytest.mark.parametrize(
    ("size", "relayed", "ended", "checksum_length", "verdict"),
    [
        (500, 500, False, 4, RELAY),
        (0, 0, False, 4, RELAY),  # an empty file
        (500, 499, False, 4, FILE_END_WRONG),  # before the whole file
        (500, 500, True, 4, FILE_END_WRONG),  # a second FILE_END
        (500, 500, False, 3, FILE_END_WRONG),
        (500, 500, False, 5, FILE_END_WRONG),
        (500, 500, False, 0, FILE_END_WRONG),
    ],
)
def test_file_end_comes_after_exactly_the_size_offered(
    size: int, relayed: int, ended: bool, checksum_length: int, verdict: Verdict
) -> None:
    transfers = table()
    running = start(transfers, size=size)
    running.relayed, running.ended = relayed, ended
    assert transfers.end(running, checksum_length) == verdict
    assert running.ended == (ended or verdict is RELAY)


def overclaimed(total: int, delivered: int) -> ReceiverFailed:
    return ReceiverFailed(f"acknowledged {total} bytes of which only {delivered} were sent to it")


@pytest.mark.parametrize(
    ("delivered", "acked", "total", "verdict"),
    [
        (100, 0, 100, RELAY),
        (100, 0, 0, RELAY),  # acknowledging nothing new is allowed
        (100, 50, 50, RELAY),
        (100, 50, 80, RELAY),
        (100, 50, 49, overclaimed(49, 100)),  # going backwards
        (100, 0, 101, overclaimed(101, 100)),  # more than reached its socket
        (0, 0, 1, overclaimed(1, 0)),
        (100, 0, 2**64 - 1, overclaimed(2**64 - 1, 100)),
    ],
)
def test_an_acknowledgement_claims_no_more_than_was_delivered(
    delivered: int, acked: int, total: int, verdict: Verdict
) -> None:
    transfers = table()
    running = start(transfers, now=1.0)
    running.relayed = running.delivered = delivered
    running.acked = acked
    assert transfers.ack(running, total, now=9.0) == verdict
    if verdict is RELAY:
        assert (running.acked, running.last_progress) == (total, 9.0)
    else:
        assert (running.acked, running.last_progress) == (acked, 1.0)


def test_an_acknowledgement_is_checked_against_delivered_not_relayed() -> None:
    """Data taken from the sender but still in the server's outbox has not
    reached the receiver: acknowledging it is a lie."""
    transfers = table()
    running = start(transfers)
    assert transfers.data(running, 100, now=1.0) is RELAY
    transfers.delivered(BOB, running.ident, 60)
    assert transfers.ack(running, 61, now=2.0) == overclaimed(61, 60)


@pytest.mark.parametrize(
    ("receiver", "ident_offset", "counted"),
    [
        ("receiver", 0, True),
        ("sender", 0, False),  # the sender's own socket is not the receiver's
        ("stranger", 0, False),
        ("receiver", 1, False),  # no such transfer (over already, say)
    ],
)
def test_only_the_receivers_socket_counts_as_delivered(
    receiver: str, ident_offset: int, counted: bool
) -> None:
    transfers = table()
    running = start(transfers)
    who = {"sender": ALICE, "receiver": BOB, "stranger": CAROL}[receiver]
    transfers.delivered(who, running.ident + ident_offset, 40)
    transfers.delivered(who, running.ident + ident_offset, 2)
    assert running.delivered == (42 if counted else 0)


@pytest.mark.parametrize(
    ("ended", "saved", "outcome"),
    [
        (True, True, Finished(saved=True)),
        (True, False, Finished(saved=False)),
        (False, False, Finished(saved=False)),  # a receiver may give up at any time
        (False, True, Drop("FILE_RESULT before FILE_END")),
    ],
)
def test_a_file_is_saved_only_after_its_end(
    ended: bool, saved: bool, outcome: Finished | Drop
) -> None:
    transfers = table()
    running = start(transfers)
    running.ended = ended
    assert transfers.result(running, saved) == outcome


# ----- calling transfers off -----


@pytest.mark.parametrize(
    ("running", "gone", "called_off"),
    [
        ([], ALICE, []),
        ([(ALICE, BOB)], ALICE, [0]),
        ([(ALICE, BOB)], BOB, [0]),
        ([(ALICE, BOB)], CAROL, []),
        ([(ALICE, BOB), (CAROL, ALICE), (CAROL, DAVE)], ALICE, [0, 1]),
        ([(ALICE, BOB), (CAROL, ALICE), (CAROL, DAVE)], CAROL, [1, 2]),
        ([(ALICE, BOB), (CAROL, ALICE), (CAROL, DAVE)], DAVE, [2]),
    ],
)
def test_whoever_goes_takes_their_transfers_with_them(
    running: list[tuple[End, End]], gone: End, called_off: list[int]
) -> None:
    transfers = table()
    started = [start(transfers, s, r, ref=ref, size=10) for ref, (s, r) in enumerate(running)]
    assert transfers.gone(gone) == [
        CallOff(t, went_away(t.sender.name), went_away(t.receiver.name))
        for t in (started[i] for i in called_off)
    ]
    assert len(transfers.running) == len(running)  # the shell forgets what it calls off


def test_went_away_names_who_left() -> None:
    assert went_away("bob") == "bob went away before the whole file arrived"


@pytest.mark.parametrize(
    ("idle_timeout", "last_progress", "now", "overdue"),
    [
        (60.0, 0.0, 59.999, False),
        (60.0, 0.0, 60.0, True),
        (60.0, 0.0, 75.0, True),
        (60.0, 30.0, 89.0, False),
        (60.0, 30.0, 90.0, True),
        (0.5, 10.0, 10.5, True),
    ],
)
def test_a_transfer_moving_no_byte_for_the_idle_timeout_is_overdue(
    idle_timeout: float, last_progress: float, now: float, overdue: bool
) -> None:
    limits = TransferLimits(
        max_file_size=100,
        max_incoming=1,
        max_outgoing=1,
        max_between_two=1,
        idle_timeout=idle_timeout,
        window=10,
    )
    transfers = table(limits)
    running = start(transfers, size=10, now=last_progress)
    reason = f"no progress for {idle_timeout:g} s"
    expected = [CallOff(running, reason, f"notes.txt not delivered: {reason}")]
    assert transfers.overdue(now) == (expected if overdue else [])


@pytest.mark.parametrize(
    ("events", "now", "overdue"),
    [
        # (what happened, when): data and acknowledgements are progress.
        ([], 60.0, True),
        ([("data", 10.0)], 60.0, False),
        ([("data", 10.0)], 70.0, True),
        ([("data", 10.0), ("ack", 20.0)], 70.0, False),
        ([("data", 10.0), ("ack", 20.0)], 80.0, True),
        # Refused data and forged acknowledgements are not.
        ([("data past the window", 10.0)], 60.0, True),
        ([("forged ack", 10.0)], 60.0, True),
    ],
)
def test_progress_is_what_moves_the_file(
    events: list[tuple[str, float]], now: float, overdue: bool
) -> None:
    transfers = table()
    running = start(transfers, size=500, now=0.0)
    for event, when in events:
        if event == "data":
            assert transfers.data(running, 50, when) is RELAY
            running.delivered = running.relayed
        elif event == "ack":
            assert transfers.ack(running, running.delivered, when) is RELAY
        elif event == "data past the window":
            assert transfers.data(running, LIMITS.window + 1, when) == PAST_WINDOW
        else:
            assert isinstance(transfers.ack(running, 1, when), ReceiverFailed)
    assert [c.transfer for c in transfers.overdue(now)] == ([running] if overdue else [])


@pytest.mark.parametrize(
    ("idle_timeout", "interval", "reason"),
    [
        (60.0, 15.0, "no progress for 60 s"),
        (0.5, 0.125, "no progress for 0.5 s"),
        (90.25, 22.5625, "no progress for 90.25 s"),
    ],
)
def test_idle_checks_come_four_times_per_timeout(
    idle_timeout: float, interval: float, reason: str
) -> None:
    """So a stalled transfer is called off within 1.25 timeouts of its last byte."""
    limits = TransferLimits(
        max_file_size=1,
        max_incoming=1,
        max_outgoing=1,
        max_between_two=1,
        idle_timeout=idle_timeout,
        window=1,
    )
    assert limits.idle_check_interval == interval
    assert limits.idle_reason == reason
