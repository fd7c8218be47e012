"""--state-dir (docs/behaviour.md, "/ban, /unban and /bans"): the directory
and its bans file read before any port is bound, the bans placed on the
clock of the next start with the time that passed, and the keeper's writes,
a failed one reported and retried."""

from __future__ import annotations

import json
import math
import os
import stat
import time
from pathlib import Path

import pytest
import trio
import trio.testing

from trio_chat.bans import NameBan
from trio_chat.server.bans_keeper import BansKeeper, keeping_bans
from trio_chat.server.state_dir import (
    StateDir,
    StateDirError,
    bans_document,
    open_state_dir,
    write_atomically,
)

from .harness import running_server, settle


def test_a_new_directory_is_made_private_and_starts_without_bans(tmp_path: Path) -> None:
    state = open_state_dir(str(tmp_path / "state"))
    assert stat.S_IMODE(os.stat(tmp_path / "state").st_mode) == 0o700
    assert (state.bans, state.elapsed) == ([], 0.0)
    # A second server on the same directory is refused while the first runs.
    with pytest.raises(StateDirError, match="is in use: another server keeps its state there"):
        open_state_dir(str(tmp_path / "state"))
    os.close(state.lock)
    os.close(open_state_dir(str(tmp_path / "state")).lock)


def test_the_time_since_the_file_was_written_is_taken_off(tmp_path: Path) -> None:
    rows: list[list[object]] = [["name", "general:bob", 150.0]]
    (tmp_path / "bans.json").write_bytes(bans_document(rows, time.time() - 100))
    state = open_state_dir(str(tmp_path))
    os.close(state.lock)
    assert state.bans == rows
    assert 100 <= state.elapsed < 160  # (however slow this machine is today)
    # A file from the future (a clock set back) takes nothing off.
    (tmp_path / "bans.json").write_bytes(bans_document(rows, time.time() + 1000))
    state = open_state_dir(str(tmp_path))
    os.close(state.lock)
    assert state.elapsed == 0.0


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"\xff", "is not JSON"),
        (b"[]", "is not a bans file of format 1"),
        (b'{"format": 1, "bans": []}', "no 'written' time"),
        (b'{"format": 1, "written": 5}', "no 'bans' list"),
        (b'{"format": 1, "written": 5, "bans": [["name", "x", null]]}', "damaged"),
        (b'{"format": 1, "written": NaN, "bans": []}', "no 'written' time"),
        (b'{"format": 1, "written": 5, "bans": [["name", "a:b", 1e308]]}', "more than a /ban"),
        (b"[" * 100000 + b"]" * 100000, "is not JSON a server writes"),
    ],
)
def test_a_bans_file_that_cannot_be_read_refuses_the_start(
    tmp_path: Path, content: bytes, reason: str
) -> None:
    (tmp_path / "bans.json").write_bytes(content)
    with pytest.raises(StateDirError, match=reason):
        open_state_dir(str(tmp_path))


def test_a_fifo_or_an_open_directory_is_refused_without_waiting(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "bans.json")
    with pytest.raises(StateDirError, match="is not a regular file"):
        open_state_dir(str(tmp_path))
    (tmp_path / "open").mkdir(mode=0o777)
    (tmp_path / "open").chmod(0o1777)
    with pytest.raises(StateDirError, match="is writable by every user"):
        open_state_dir(str(tmp_path / "open"))


def test_a_failed_write_leaves_no_temporary_file(tmp_path: Path) -> None:
    (tmp_path / "bans.json").mkdir()  # os.replace cannot put a file there
    with pytest.raises(OSError):
        write_atomically(str(tmp_path / "bans.json"), b"{}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bans.json"]


async def test_saved_bans_run_on_from_the_time_that_passed(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    state = StateDir(str(tmp_path), [["name", "general:bob", 150.0]], elapsed=100.0)
    async with running_server() as harness, keeping_bans(harness.server, state):
        now = trio.current_time()
        assert list(harness.server.hub.bans.items(now)) == [(NameBan("general", "bob"), now + 50.0)]
        await trio.sleep(50)
        bob = await harness.join("bob")
        assert not bob.closed


async def test_each_change_is_written_and_a_failed_write_is_tried_again(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    state_dir = tmp_path / "gone"
    state_dir.mkdir()
    state = StateDir(str(state_dir), [], 0.0)
    logged: list[str] = []
    async with running_server() as harness:
        harness.server.log = logged.append
        async with keeping_bans(harness.server, state):
            keeper = harness.server.bans_keeper
            assert isinstance(keeper, BansKeeper)

            async def written(command: str) -> None:
                harness.console(command)
                await settle()
                await keeper.quiet()

            # (No ends here: the mock clock jumps while a thread writes.)
            await written("/ban general:bob")
            saved = json.loads((state_dir / "bans.json").read_text())
            assert saved["format"] == 1 and saved["bans"] == [["name", "general:bob", None]]
            assert stat.S_IMODE(os.stat(state_dir / "bans.json").st_mode) == 0o600
            # The directory goes: the next write fails, is reported, and the
            # ban stays in force.
            (state_dir / "bans.json").unlink()
            state_dir.rmdir()
            await written("/ban 10.0.0.0/8")
            assert any(line.startswith("cannot write the bans file") for line in logged)
            assert len(harness.server.hub.bans) == 2
            # Back, it is written at the next change with everything in it.
            state_dir.mkdir()
            await written("/unban general:bob")
            saved = json.loads((state_dir / "bans.json").read_text())
            assert saved["bans"] == [["address", "10.0.0.0/8", None]]
            assert logged[-1].endswith("is written again")
            harness.console("/ban general:carol")  # written at the end
        # At the end nothing is left unwritten.
        saved = json.loads((state_dir / "bans.json").read_text())
        assert [row[1] for row in saved["bans"]] == ["10.0.0.0/8", "general:carol"]
        assert math.isinf(harness.server.hub.bans.end(NameBan("general", "carol")))
