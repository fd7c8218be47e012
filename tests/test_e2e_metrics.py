"""End to end: --metrics on its own port and on the web port, --log-format
json on a real server's stderr (docs/metrics.md; docs/behaviour.md, "Logs")."""

from __future__ import annotations

import json
import signal
import socket
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from .processes import Program, cluster
from .programs import SERVER, free_ports, run_program

RECORD_KEYS = {"time", "level", "event", "message"}


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(url, timeout=30) as answer:
        assert answer.status == 200
        assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
        text = answer.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_json_logs_and_metrics_on_the_web_port(tmp_path: Path) -> None:
    options = ("--log-format", "json", "--metrics", "web")
    with cluster(tmp_path, web=True, server_options=options) as chat:
        alice = chat.join("alice")
        chat.join("bob")
        alice.type("hello")
        chat.server.expect("[alice (<time>)] hello")  # stdout: the contract lines, as text
        samples = scrape(chat.web_url() + "metrics")
        assert samples[("trio_chat_channel_members", (("channel", "general"),))] == 2
        assert samples[("trio_chat_connections", (("protocol", "native"),))] == 2
        assert samples[("trio_chat_lines_said_total", ())] == 1
        chat.server.type("/history nowhere")
        chat.server.wait_stderr("there is no channel nowhere")
        assert isinstance(chat.server, Program)
        chat.server.process.send_signal(signal.SIGTERM)
        assert chat.server.wait_exit() == 0
        lines = chat.server.errors().splitlines()
    records = [json.loads(line) for line in lines]  # every line is one object
    for record in records:
        assert record.keys() >= RECORD_KEYS
        assert record["level"] in ("info", "warning", "error")
        assert record["time"].endswith("Z") and len(record["time"]) == 24
    events = {record["event"]: record for record in records}
    listening = events["listening"]
    assert listening["channels"] == chat.ports
    assert listening["message"].startswith("listening on 127.0.0.1: general ")
    assert listening["message"].endswith(f"; metrics on {chat.web_url()}metrics")
    assert events["console"]["message"] == "/history: there is no channel nowhere"
    assert events["shutdown"]["signal"] == "SIGTERM"


def test_metrics_on_their_own_port_with_text_logs(tmp_path: Path) -> None:
    (port,) = free_ports(1)
    with cluster(tmp_path, server_options=("--metrics", str(port))) as chat:
        chat.join("alice")
        samples = scrape(f"http://127.0.0.1:{port}/metrics")
        assert samples[("trio_chat_channel_members", (("channel", "general"),))] == 1
        assert ("process_cpu_seconds_total", ()) in samples
        with socket.create_connection(("127.0.0.1", port)) as other:
            other.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert other.recv(100).startswith(b"HTTP/1.1 404 ")
        chat.shutdown()
        # The text format: the line as it always was, and the metrics' address.
        first = chat.server.errors().splitlines()[0]
        assert first.startswith("trio-chat-server: listening on 127.0.0.1: general ")
        assert first.endswith(f"; metrics on http://127.0.0.1:{port}/metrics")


def test_metrics_refused_before_start_with_a_reason(tmp_path: Path) -> None:
    config = tmp_path / "configfile"
    ports = free_ports(4)
    config.write_text("".join(f"channel c{i} {port} 5\n" for i, port in enumerate(ports[:3])))
    no_web = run_program(SERVER, str(config), "--metrics", "web")
    assert no_web.returncode == 1
    assert "--metrics web serves the metrics on the --web port: it goes with --web" in (
        no_web.stderr
    )
    bad = run_program(SERVER, str(config), "--metrics", "nowhere")
    assert bad.returncode == 1 and "'nowhere' is not a port" in bad.stderr
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        busy = holder.getsockname()[1]
        taken = run_program(SERVER, str(config), "--metrics", str(busy))
    assert taken.returncode == 1
    assert f"cannot listen for the metrics on 127.0.0.1:{busy}: " in taken.stderr
    assert "listening" not in taken.stderr


def test_json_logs_before_the_start_too(tmp_path: Path) -> None:
    missing = run_program(SERVER, str(tmp_path / "nothing"), "--log-format", "json")
    assert missing.returncode == 1
    (line,) = missing.stderr.splitlines()
    record = json.loads(line)
    assert record["level"] == "error" and record["event"] == "cannot_start"
    assert "nothing" in record["message"]
    argument = run_program(SERVER, "conf", "--log-format=json", "--afk-timeout", "soon")
    assert argument.returncode == 1
    (line,) = argument.stderr.splitlines()  # the reason, without argparse's usage lines
    record = json.loads(line)
    assert record["level"] == "error" and "soon" in record["message"]
