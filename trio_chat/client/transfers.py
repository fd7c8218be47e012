"""The client's side of /send: stream out files, receive files into place.

Disk I/O runs in worker threads so the connection keeps moving chat while a
file is read or written. The sender keeps at most ``wire.SEND_WINDOW`` bytes
unacknowledged; the receiver acknowledges what it has written, a quarter
window at a time and at the end.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import BinaryIO, Protocol

import trio

from .. import wire
from ..wire import FrameType, ProtocolError, SendState
from . import files, note_on_stderr

SendFrame = Callable[[bytes | memoryview], Awaitable[None]]
ACK_EVERY = wire.SEND_WINDOW // 4
# File chunks read per trip to a worker thread (a window's worth), and the
# room each takes: each trip wakes a thread and is woken back, which costs
# more than it seems on a small VM (docs/benchmarks.md, "File transfer").
READ_AHEAD = wire.SEND_WINDOW // wire.CHUNK_SIZE
FRAME_SPAN = wire.BODY_AFTER_ID + wire.CHUNK_SIZE
# Received chunks go to disk in pieces of this size: on the VM where
# bench/transfer.py was measured, 256 KiB writes made the kernel allocate
# large page-cache folios from memory the host had taken back, and the
# receiver spent twice the CPU copying into them (docs/benchmarks.md, "File
# transfer"). Elsewhere it only costs a few more writes.
WRITE_PIECE = 64 * 1024


class ProgressListener(Protocol):
    """Shown how each transfer goes (terminal mode only)."""

    def offered(self, key: object, path: str, target: str, total: int) -> None:
        """/send offered a file: nothing moves until the target's client takes it."""

    def accepted(self, key: object) -> None:
        """The server passed the offer on to the target."""

    def update(self, key: object, label: str, done: int, total: int) -> None: ...

    def finish(self, key: object) -> None: ...


class NoProgress:
    def offered(self, key: object, path: str, target: str, total: int) -> None:
        pass

    def accepted(self, key: object) -> None:
        pass

    def update(self, key: object, label: str, done: int, total: int) -> None:
        pass

    def finish(self, key: object) -> None:
        pass


def human_size(size: float) -> str:
    """Binary multiples, named as such: 1536 is "1.5 KiB"."""
    if size < 1024:
        return f"{size:.0f} B"
    for unit in ("KiB", "MiB", "GiB"):
        size /= 1024
        if size < 1024 or unit == "GiB":
            break
    return f"{size:.1f} {unit}"


@dataclass(eq=False)
class Outgoing:
    ref: int  # ours, until the server's GO gives the transfer id
    target: str
    path: str
    local: files.LocalFile
    acked: int = 0
    ident: int | None = None
    state: SendState | None = None
    reason: str = ""
    changed: trio.Event = field(default_factory=trio.Event)

    def update(self) -> None:
        self.changed.set()
        self.changed = trio.Event()


@dataclass(eq=False)
class Incoming:
    ident: int
    sender: str
    name: str
    size: int
    handle: BinaryIO | None = None
    temporary: str | None = None
    received: int = 0  # data bytes taken in (checked against size)
    written: int = 0  # data bytes written to the file
    acked: int = 0
    checksum: wire.Checksum = field(default_factory=wire.Checksum)
    started: float = field(default_factory=time.monotonic)


class Transfers:
    def __init__(
        self,
        send: SendFrame,
        download_dir: str,
        progress: ProgressListener | None = None,
        note: Callable[[str], None] = note_on_stderr,
    ) -> None:
        self._send = send
        self._note = note
        self.download_dir = download_dir
        self.progress = progress or NoProgress()
        self._outgoing: dict[int, Outgoing] = {}  # by our ref
        self._sending: dict[int, Outgoing] = {}  # by the server's transfer id
        self._incoming: dict[int, Incoming] = {}
        self._undelivered: list[Outgoing] = []
        self._next_ref = 1
        self._idle = trio.Event()
        self._idle.set()
        self._writer: trio.Nursery | None = None  # see write_behind
        self._writing: trio.Event | None = None  # set once the last batch is written

    # ----- sending -----

    async def send_file(self, target: str, typed_path: str, nursery: trio.Nursery) -> None:
        """Offer the file; the server answers, and a task streams it on GO."""
        local = files.open_for_sending(typed_path)
        if local.problem:
            self._note(f"/send {typed_path}: {local.problem}")
        ref = self._next_ref
        self._next_ref += 1
        outgoing = Outgoing(ref, target, typed_path, local)
        self._outgoing[ref] = outgoing
        self._idle = trio.Event()
        if local.handle is not None:
            # Said at once: a target that is slow to read shows no progress for a while.
            self.progress.offered(outgoing, typed_path, target, local.size)
        nursery.start_soon(self._stream, outgoing)
        await self._send(
            wire.encode_json(
                FrameType.SEND_OFFER,
                {
                    "ref": ref,
                    "target": target,
                    "path": typed_path,
                    "name": local.name,
                    "size": local.size,
                    "readable": local.handle is not None,
                },
            )
        )

    async def wait_sent(self) -> None:
        """Until every file this client offered is delivered or given up."""
        await self._idle.wait()

    async def _stream(self, outgoing: Outgoing) -> None:
        handle = outgoing.local.handle
        try:
            while outgoing.state is None:
                await outgoing.changed.wait()
            if outgoing.state != SendState.GO or handle is None:
                return
            await self._stream_data(outgoing, handle)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the connection is gone; the receive side reports it once
        finally:
            self.progress.finish(outgoing)
            if handle is not None:
                handle.close()
            self._outgoing.pop(outgoing.ref, None)
            self._sending.pop(outgoing.ident or 0, None)
            if not self._outgoing:
                self._idle.set()
            if outgoing.state in (SendState.REFUSED, SendState.ABORTED) and outgoing.reason:
                self._note(f"/send {outgoing.path}: {outgoing.reason}")
            elif outgoing.state == SendState.GO:
                self._undelivered.append(outgoing)

    async def _stream_data(self, outgoing: Outgoing, handle: BinaryIO) -> None:
        checksum = wire.Checksum()
        async with trio.open_nursery() as nursery:  # where the next chunks are read
            try:
                if not await self._send_chunks(outgoing, handle, checksum, nursery):
                    return
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                # Caught here rather than by the caller, so that it does not
                # leave the nursery wrapped in an exception group.
                return  # the connection is gone; the receive side reports it once
        assert outgoing.ident is not None
        await self._send(wire.encode_with_id(FrameType.FILE_END, outgoing.ident, checksum.digest()))
        while outgoing.state == SendState.GO:
            await outgoing.changed.wait()

    async def _send_chunks(
        self,
        outgoing: Outgoing,
        handle: BinaryIO,
        checksum: wire.Checksum,
        nursery: trio.Nursery,
    ) -> bool:
        """Send the whole file as FILE_DATA frames; False if it was given up."""
        ident = outgoing.ident
        assert ident is not None
        size = outgoing.local.size
        sent = 0
        # Up to READ_AHEAD chunks are read (and hashed) in one trip to a worker
        # thread, each straight into its frame after the header, into one of
        # two sets of frames: the next chunks are read into one set while the
        # other's are sent. A fresh buffer per chunk (and a copy to put a header
        # before it) cost more than the reading did. A set holds no more
        # chunks than the file has: both sets take 8.4 MB for a file of 4 MiB
        # or more, 512 KiB for one of 256 KiB or less.
        per_set = max(1, min(READ_AHEAD, -(-size // wire.CHUNK_SIZE)))
        sets = [memoryview(bytearray(per_set * FRAME_SPAN + 1)) for _ in range(2)]
        batch: _Batch | None = _Batch.start(nursery, handle, sets[0], 0, size, checksum)
        while batch is not None:
            await batch.done.wait()
            if batch.error is not None:
                await self._give_up(outgoing, f"cannot read it: {batch.error.strerror}")
                return False
            # counts stops at the first read that came out wrong.
            for want, count in zip(batch.plan, batch.counts, strict=False):
                if count != want:
                    why = "it grew while being sent" if count > want else "it shrank"
                    await self._give_up(outgoing, why)
                    return False
            following = None
            if batch.end < size:
                free = sets[1] if batch.frames is sets[0] else sets[0]
                following = _Batch.start(nursery, handle, free, batch.end, size, checksum)
            for index, count in enumerate(batch.counts):
                while sent - outgoing.acked >= wire.SEND_WINDOW and outgoing.state == SendState.GO:
                    await outgoing.changed.wait()
                if outgoing.state != SendState.GO:
                    return False
                if not count:
                    continue
                start = index * FRAME_SPAN
                frame = batch.frames[start : start + wire.BODY_AFTER_ID + count]
                wire.pack_id_header(frame, FrameType.FILE_DATA, ident, count)
                # Frame by frame, so a typed line can go out between chunks.
                await self._send(frame)
                sent += count
            batch = following
        return True

    async def _give_up(self, outgoing: Outgoing, why: str) -> None:
        assert outgoing.ident is not None
        await self._send(wire.encode_with_id(FrameType.FILE_ABORT, outgoing.ident, why.encode()))
        outgoing.state = SendState.ABORTED
        outgoing.reason = f"not sent: {why}"

    def report_undelivered(self) -> None:
        """The connection is over: say which files did not arrive (stderr only)."""
        for outgoing in self._undelivered:
            self._note(f"{outgoing.path} was not delivered to {outgoing.target}")
        self._undelivered.clear()

    def on_send_state(self, payload: wire.Payload) -> None:
        ref, body = wire.split_id(payload)
        outgoing = self._outgoing.get(ref)
        if outgoing is None or not body:
            return
        try:
            outgoing.state = SendState(body[0])
        except ValueError:
            raise ProtocolError(f"unknown send state {body[0]}") from None
        if outgoing.state == SendState.GO:
            (outgoing.ident,) = wire.ID.unpack(body[1:])
            self._sending[outgoing.ident] = outgoing
            self.progress.accepted(outgoing)
        else:
            outgoing.reason = wire.decode_text(body[1:])
        outgoing.update()

    def on_ack(self, payload: wire.Payload) -> None:
        ident, total = wire.decode_ack(payload)
        outgoing = self._sending.get(ident)
        if outgoing is not None:
            outgoing.acked = max(outgoing.acked, total)
            self.progress.update(
                outgoing,
                f"{outgoing.path} -> {outgoing.target}",
                outgoing.acked,
                outgoing.local.size,
            )
            outgoing.update()

    # ----- receiving -----

    async def on_incoming(self, payload: wire.Payload) -> None:
        fields = wire.decode_json(payload)
        ident = wire.field(fields, "id", int)
        sender = wire.field(fields, "sender", str)
        name = wire.field(fields, "name", str)
        size = wire.field(fields, "size", int)
        if ident in self._incoming or size < 0:
            raise ProtocolError("malformed FILE_INCOMING")
        # The temporary file is created when the first byte arrives: offers
        # that never send anything hold no file and no descriptor.
        self._incoming[ident] = Incoming(ident, sender, name, size)
        self._note(f"receiving {files.safe_file_name(name)} ({human_size(size)}) from {sender}")

    def write_behind(self, nursery: trio.Nursery) -> None:
        """From now on, a batch of chunks is written (in ``nursery``) while the
        next is received. The chunks are views into the session's frame
        reader, which must not hand out their buffer again until
        ``writes_done()``: on_data waits for it before it starts a batch, and
        so do on_end and on_abort."""
        self._writer = nursery

    async def writes_done(self) -> None:
        """Until every chunk handed over so far is written (and acknowledged)."""
        if self._writing is not None:
            await self._writing.wait()

    async def on_data(self, *payloads: wire.Payload) -> None:
        """FILE_DATA frames that arrived together, written in one trip to a
        worker thread: each trip costs a thread wakeup and a wakeup back.
        Batches are written one at a time, in order."""
        await self.writes_done()
        writes: dict[Incoming, list[memoryview]] = {}
        for payload in payloads:
            ident, chunk = wire.split_id(payload)
            incoming = self._incoming.get(ident)
            if incoming is None:
                continue  # refused earlier: drop the rest quietly
            if incoming.received + len(chunk) > incoming.size:
                writes.pop(incoming, None)
                await self._fail(incoming, "more data than announced")
                continue
            if not await self._open_file(incoming):
                writes.pop(incoming, None)
                continue
            incoming.received += len(chunk)
            writes.setdefault(incoming, []).append(chunk)
        if not writes:
            return
        if self._writer is None:
            await self._write(writes)
            return
        self._writing = trio.Event()
        self._writer.start_soon(self._write_behind, writes, self._writing)

    async def _write_behind(
        self, writes: dict[Incoming, list[memoryview]], done: trio.Event
    ) -> None:
        try:
            await self._write(writes)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the connection is gone; the receive loop reports it
        finally:
            done.set()

    async def _write(self, writes: dict[Incoming, list[memoryview]]) -> None:
        failures = await trio.to_thread.run_sync(_write_and_hash, writes)
        for incoming, chunks in writes.items():
            error = failures.get(incoming)
            if error is not None:
                await self._fail(incoming, f"cannot write: {error.strerror}")
                continue
            incoming.written += sum(len(chunk) for chunk in chunks)
            self.progress.update(
                incoming, f"{incoming.sender}: {incoming.name}", incoming.written, incoming.size
            )
            # Every chunk's acknowledgement would cost all three processes a
            # wakeup; a quarter window keeps the sender's window open all the same.
            if incoming.written - incoming.acked >= ACK_EVERY or incoming.written == incoming.size:
                incoming.acked = incoming.written
                await self._send(wire.encode_ack(incoming.ident, incoming.written))

    async def on_end(self, payload: wire.Payload) -> None:
        await self.writes_done()
        ident, digest = wire.split_id(payload)
        incoming = self._incoming.get(ident)
        if incoming is None:
            return
        if incoming.written != incoming.size or digest != incoming.checksum.digest():
            await self._fail(incoming, "the file arrived damaged (size or checksum differ)")
            return
        if not await self._open_file(incoming):  # an empty file gets its file here
            return
        assert incoming.temporary is not None
        try:
            await trio.to_thread.run_sync(_flush_and_close, incoming.handle)
            final = await trio.to_thread.run_sync(
                files.publish, incoming.temporary, self.download_dir, incoming.name
            )
        except OSError as error:
            await self._fail(incoming, f"cannot save: {error.strerror or error}")
            return
        del self._incoming[ident]
        self.progress.finish(incoming)
        seconds = max(time.monotonic() - incoming.started, 1e-6)
        self._note(
            f"received {os.path.basename(final)} ({human_size(incoming.size)}) from "
            f"{incoming.sender} in {seconds:.1f} s, saved as {final}",
        )
        await self._send(
            wire.encode_with_id(FrameType.FILE_RESULT, ident, b"\x01" + final.encode())
        )

    async def on_abort(self, payload: wire.Payload) -> None:
        await self.writes_done()
        ident, body = wire.split_id(payload)
        incoming = self._incoming.get(ident)
        if incoming is not None:
            self._abandon(incoming, f"broke off: {wire.decode_text(body)}")

    async def _open_file(self, incoming: Incoming) -> bool:
        """Create the temporary file if it is not there yet; False if it cannot be."""
        if incoming.handle is not None:
            return True
        try:
            incoming.handle, incoming.temporary = await trio.to_thread.run_sync(
                files.create_temporary, self.download_dir
            )
        except OSError as error:
            await self._fail(
                incoming, f"cannot create a file in {self.download_dir}: {error.strerror}"
            )
            return False
        return True

    async def _fail(self, incoming: Incoming, reason: str) -> None:
        self._abandon(incoming, f"could not be received: {reason}")
        await self._refuse(incoming.ident, reason)

    def _abandon(self, incoming: Incoming, why: str) -> None:
        """Forget a transfer that will not complete, and its partial file."""
        self._incoming.pop(incoming.ident, None)
        self.progress.finish(incoming)
        _drop_partial(incoming)
        self._note(
            f"{files.safe_file_name(incoming.name)} from {incoming.sender} {why}",
        )

    async def _refuse(self, ident: int, reason: str) -> None:
        await self._send(
            wire.encode_with_id(FrameType.FILE_RESULT, ident, b"\x00" + reason.encode())
        )

    def discard_partials(self) -> None:
        """The connection is over: no half-received file stays behind."""
        for incoming in self._incoming.values():
            _drop_partial(incoming)
        self._incoming.clear()


@dataclass(eq=False)
class _Batch:
    """The chunks of a file that fit in a set of frames, being read into it."""

    frames: memoryview
    plan: list[int]  # the size of each chunk
    end: int  # the file position after them
    counts: list[int] = field(default_factory=list)  # what each read got
    error: OSError | None = None
    done: trio.Event = field(default_factory=trio.Event)

    @classmethod
    def start(
        cls,
        nursery: trio.Nursery,
        handle: BinaryIO,
        frames: memoryview,
        position: int,
        size: int,
        checksum: wire.Checksum,
    ) -> _Batch:
        """Start reading the chunks from ``position`` in a worker thread."""
        plan: list[int] = []
        end = position
        while len(plan) < len(frames) // FRAME_SPAN:
            plan.append(min(wire.CHUNK_SIZE, size - end))
            end += plan[-1]
            if end == size:
                break
        batch = cls(frames, plan, end)
        nursery.start_soon(batch._read, handle, end == size, checksum)
        return batch

    async def _read(self, handle: BinaryIO, to_end: bool, checksum: wire.Checksum) -> None:
        try:
            self.counts = await trio.to_thread.run_sync(
                _read_and_hash, handle, self.frames, self.plan, to_end, checksum
            )
        except OSError as error:
            self.error = error
        finally:
            self.done.set()


# Checksums beside the disk I/O, in the worker thread: zlib lets go of the GIL
# for large buffers, so the event loop keeps moving frames meanwhile.
def _read_and_hash(
    handle: BinaryIO, frames: memoryview, plan: list[int], to_end: bool, checksum: wire.Checksum
) -> list[int]:
    """Read the planned chunks into their frames (``frames``, FRAME_SPAN
    apart) and hash them; how many bytes each read got.

    If the plan reaches the end of the file (``to_end``), its last read asks
    for one byte more: a file that grew since it was offered is refused
    rather than sent short.
    """
    counts: list[int] = []
    for index, want in enumerate(plan):
        start = index * FRAME_SPAN + wire.BODY_AFTER_ID
        last = to_end and index == len(plan) - 1
        count = handle.readinto(frames[start : start + want + last])  # type: ignore[attr-defined]
        checksum.update(frames[start : start + min(count, want)])
        counts.append(int(count))
        if count != want:
            break
    return counts


def _write_and_hash(writes: dict[Incoming, list[memoryview]]) -> dict[Incoming, OSError]:
    """Write and hash each transfer's chunks in order; a transfer whose write
    fails stops there and is returned with its error."""
    failures: dict[Incoming, OSError] = {}
    for incoming, chunks in writes.items():
        assert incoming.handle is not None
        try:
            for chunk in chunks:
                for start in range(0, len(chunk), WRITE_PIECE):
                    incoming.handle.write(chunk[start : start + WRITE_PIECE])
                incoming.checksum.update(chunk)
        except OSError as error:
            failures[incoming] = error
    return failures


def _flush_and_close(handle: BinaryIO | None) -> None:
    assert handle is not None
    handle.flush()
    os.fsync(handle.fileno())
    handle.close()


def _drop_partial(incoming: Incoming) -> None:
    if incoming.handle is not None:
        with contextlib.suppress(OSError):
            incoming.handle.close()
    if incoming.temporary is not None:
        files.discard(incoming.temporary)
