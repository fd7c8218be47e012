"""--log-format json: the server's stderr as one JSON object a line
(server/logs.py; docs/behaviour.md, "Logs"); the text format is unchanged."""

from __future__ import annotations

import json

import trio
import trio.testing

from trio_chat.hub import Hub
from trio_chat.server.core import ChatServer, Limits
from trio_chat.server.logs import ServerLog, iso_time, json_record, wants_json

from .harness import CHANNELS, STAMP, Harness, settle

NOON = 1_796_212_800.25  # 2026-12-02 12:00:00.250 UTC


def test_the_text_format_is_the_line_as_before() -> None:
    written: list[str] = []
    log = ServerLog(written.append)
    log("hello")
    log("refusing connections", event="connection_refused", level="warning", reason="limit")
    assert written == ["trio-chat-server: hello", "trio-chat-server: refusing connections"]


def test_the_json_format_is_one_object_with_time_level_event_message_and_fields() -> None:
    written: list[str] = []
    log = ServerLog(written.append, json_format=True, clock=lambda: NOON)
    log("hello")
    log("no", event="connection_refused", level="warning", reason="limit", open=3)
    assert [json.loads(line) for line in written] == [
        {
            "time": "2026-12-02T12:00:00.250Z",
            "level": "info",
            "event": "message",
            "message": "hello",
        },
        {
            "time": "2026-12-02T12:00:00.250Z",
            "level": "warning",
            "event": "connection_refused",
            "message": "no",
            "reason": "limit",
            "open": 3,
        },
    ]


def test_a_json_record_escapes_controls_and_keeps_its_own_keys() -> None:
    line = json_record("a\x1b[2J\nb", "x", "info", {"message": "forged", "time": 0}, NOON)
    assert "\x1b" not in line and "\n" not in line
    record = json.loads(line)
    assert record["message"] == "a\x1b[2J\nb"
    assert record["message_"] == "forged" and record["time_"] == 0
    assert record["time"] == "2026-12-02T12:00:00.250Z"
    assert iso_time(0.0) == "1970-01-01T00:00:00.000Z"
    assert iso_time(59.9999) == "1970-01-01T00:00:59.999Z"


def test_json_logs_are_seen_on_the_command_line_before_it_is_parsed() -> None:
    assert wants_json(["conf", "--log-format", "json"])
    assert wants_json(["--log-format=json", "conf"])
    assert not wants_json(["conf", "--log-format", "text"])
    assert not wants_json(["conf", "--log-format"])
    assert not wants_json(["json", "--web", "8080"])


async def test_the_main_log_sites_name_their_event_and_fields(
    autojump_clock: trio.testing.MockClock,
) -> None:
    written: list[str] = []
    hub = Hub(CHANNELS, afk_timeout=100.0)
    limits = Limits(max_connections=1, flood_burst=2, flood_rate=1.0, flood_patience=1.0)
    async with trio.open_nursery() as nursery:
        server = ChatServer(
            hub,
            limits,
            out=lambda line: None,
            log=ServerLog(written.append, json_format=True),
            stamp=lambda: STAMP,
        )
        harness = Harness(server, nursery)
        flooder = await harness.join("flooder")
        await harness.connect("late")  # over --max-connections
        await settle()
        for number in range(50):
            await flooder.say(f"spam {number}")
        await flooder.wait_closed()
        harness.console("/history nowhere")
        server._stop_on(15)  # as the signal watcher does on SIGTERM
        await settle()
        nursery.cancel_scope.cancel()
    records = [json.loads(line) for line in written]
    events = {record["event"]: record for record in records}
    refused = events["connection_refused"]
    assert refused["level"] == "warning" and refused["reason"] == "limit"
    assert refused["limit"] == 1
    flood = events["flood_disconnect"]
    assert flood["user"] == "flooder" and flood["channel"] == "general"
    assert flood["message"].startswith("disconnected flooder from general: excess flood")
    assert events["console"]["message"] == "/history: there is no channel nowhere"
    assert events["shutdown"]["signal"] == "SIGTERM"
    assert events["shutdown"]["message"] == "SIGTERM received: shutting down"
    for record in records:
        assert {"time", "level", "event", "message"} <= record.keys()
