"""--metrics: what a scrape reads (docs/metrics.md), the metrics port's HTTP,
and the counters the server keeps for it (server/counts.py)."""

from __future__ import annotations

import socket
import urllib.error
import urllib.request

import pytest
import trio
import trio.testing
from prometheus_client.parser import text_string_to_metric_families

from trio_chat.config import ChannelConfig
from trio_chat.server.core import Limits
from trio_chat.server.counts import RoundTrips, ServerCounts
from trio_chat.server.metrics import answer_one, metrics_page, serve_metrics
from trio_chat.state import ClientProtocol

from .harness import running_server, settle

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
# The scenario's channel holds two members, so a third waits.
SMALL = [
    ChannelConfig("general", 41001, 2),
    ChannelConfig("random", 41002, 5),
    ChannelConfig("help", 41003, 5),
]


def parsed(text: str) -> Samples:
    """Every sample of a scrape, by name and labels (the Prometheus parser's reading)."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


async def test_a_scrape_reads_connections_members_queue_and_counts(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with running_server(SMALL) as harness:
        alice = await harness.join("alice")
        await harness.join("bob")
        await harness.join("carol")  # queued: general holds two
        # A browser's WebSocket session, as web/app.py hands it over.
        web = await harness.join("dave", "random", "127.0.0.1", ClientProtocol.BROWSER)
        scrape = metrics_page(harness.server)
        before = parsed(scrape().decode())
        for number in range(3):
            await alice.say(f"line {number}")
        await settle()
        after = parsed(scrape().decode())
        assert value(after, "trio_chat_connections", protocol="native") == 3
        assert value(after, "trio_chat_connections", protocol="web") == 1
        assert value(after, "trio_chat_connections", protocol="irc") == 0
        assert value(after, "trio_chat_channel_members", channel="general") == 2
        assert value(after, "trio_chat_channel_queue_length", channel="general") == 1
        assert value(after, "trio_chat_channel_members", channel="random") == 1
        assert value(after, "trio_chat_channel_queue_length", channel="random") == 0
        assert value(after, "trio_chat_channel_capacity", channel="general") == 2
        assert value(after, "trio_chat_lines_said_total") == 3
        # Each line goes to both members of general (its sender too), not to
        # the one queued nor to random's.
        deliveries = "trio_chat_deliveries_total"
        assert value(after, deliveries) - value(before, deliveries) == 3 * 2
        for reason in ("limit", "per_address", "ban"):
            assert value(after, "trio_chat_refused_connections_total", reason=reason) == 0
        assert value(after, "trio_chat_slow_consumers_dropped_total") == 0
        assert value(after, "trio_chat_flood_disconnects_total") == 0
        assert value(after, "trio_chat_file_bytes_relayed_total") == 0
        # A lone server has no Redis; the process's own numbers are there.
        assert not any(name.startswith("trio_chat_redis") for name, _ in after)
        assert value(after, "process_resident_memory_bytes") > 0
        assert ("process_cpu_seconds_total", ()) in after
        await web.hang_up()


async def test_refused_connections_are_counted_by_reason(
    autojump_clock: trio.testing.MockClock,
) -> None:
    limits = Limits(max_connections=1, max_per_address=1)
    async with running_server(limits=limits) as harness:
        await harness.join("alice", address="10.0.0.1")
        await harness.connect("bob", address="10.0.0.2")  # over the limit of 1
        await settle()
        samples = parsed(metrics_page(harness.server)().decode())
        assert value(samples, "trio_chat_refused_connections_total", reason="limit") == 1
    async with running_server(limits=Limits(max_per_address=1)) as harness:
        await harness.join("alice", address="10.0.0.1")
        await harness.connect("bob", address="10.0.0.1")  # a second from one address
        await settle()
        # A banned name said hello: refused for the ban.
        harness.console("/ban general:mallory")
        mallory = await harness.join("mallory", address="10.0.0.3")
        await mallory.wait_closed()
        samples = parsed(metrics_page(harness.server)().decode())
        assert value(samples, "trio_chat_refused_connections_total", reason="per_address") == 1
        assert value(samples, "trio_chat_refused_connections_total", reason="ban") == 1
        assert value(samples, "trio_chat_refused_connections_total", reason="limit") == 0


async def test_a_flood_disconnect_is_counted(autojump_clock: trio.testing.MockClock) -> None:
    limits = Limits(flood_burst=2, flood_rate=1.0, flood_patience=1.0)
    async with running_server(limits=limits) as harness:
        flooder = await harness.join("flooder")
        for number in range(50):
            await flooder.say(f"spam {number}")
        await flooder.wait_closed()
        samples = parsed(metrics_page(harness.server)().decode())
        assert value(samples, "trio_chat_flood_disconnects_total") == 1


def test_redis_round_trips_are_a_cumulative_histogram() -> None:
    trips = RoundTrips((0.001, 0.01))
    for seconds in (0.0005, 0.001, 0.005, 2.0):
        trips.observe(seconds)
    assert trips.cumulative() == [(0.001, 2), (0.01, 3), (float("inf"), 4)]
    assert trips.count == 4 and trips.total == pytest.approx(2.0065)


async def test_a_cluster_nodes_scrape_has_redis_round_trips_and_outages(
    autojump_clock: trio.testing.MockClock,
) -> None:
    from trio_chat.server.counts import RedisCounts

    async with running_server() as harness:
        redis = harness.server.counts.redis = RedisCounts()
        redis.round_trips.observe(0.002)
        redis.outages = 2
        samples = parsed(metrics_page(harness.server)().decode())
        assert value(samples, "trio_chat_redis_outages_total") == 2
        assert value(samples, "trio_chat_redis_round_trip_seconds_count") == 1
        assert value(samples, "trio_chat_redis_round_trip_seconds_bucket", le="0.001") == 0
        assert value(samples, "trio_chat_redis_round_trip_seconds_bucket", le="0.0025") == 1
        assert value(samples, "trio_chat_redis_round_trip_seconds_bucket", le="+Inf") == 1


def test_counters_start_at_zero_with_every_refusal_reason() -> None:
    counts = ServerCounts()
    assert counts.refused == {"limit": 0, "per_address": 0, "ban": 0}
    counts.refuse("limit")
    assert counts.refused["limit"] == 1


async def exchange(request: bytes) -> bytes:
    """What the metrics port answers ``request`` (memory streams, in process)."""
    client, server = trio.testing.memory_stream_pair()
    await client.send_all(request)
    await client.send_eof()  # (the request is all it says)
    await answer_one(server, lambda: b"# the page\n")
    await server.aclose()
    answer = b""
    while data := await client.receive_some(65536):
        answer += data
    return answer


async def test_the_metrics_port_answers_get_metrics_only() -> None:
    ok = await exchange(b"GET /metrics HTTP/1.1\r\nHost: anything.example\r\n\r\n")
    assert ok.startswith(b"HTTP/1.1 200 ")
    assert b"content-type: text/plain; version=0.0.4; charset=utf-8\r\n" in ok
    assert b"connection: close\r\n" in ok
    assert ok.endswith(b"\r\n\r\n# the page\n")
    head = await exchange(b"HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ") and head.endswith(b"\r\n\r\n")
    assert b"content-length: 11\r\n" in head
    assert (await exchange(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")).startswith(b"HTTP/1.1 404 ")
    assert (await exchange(b"GET /metricsx HTTP/1.1\r\nHost: x\r\n\r\n")).startswith(
        b"HTTP/1.1 404 "
    )
    posted = await exchange(b"POST /metrics HTTP/1.1\r\nHost: x\r\ncontent-length: 0\r\n\r\n")
    assert posted.startswith(b"HTTP/1.1 405 ") and b"allow: GET, HEAD\r\n" in posted
    assert (await exchange(b"\x16\x03\x01 not http\r\n\r\n")).startswith(b"HTTP/1.1 400 ")


async def test_the_metrics_port_bounds_a_request_head() -> None:
    endless = b"GET /metrics HTTP/1.1\r\nX-Long: " + b"a" * 20000 + b"\r\n\r\n"
    answer = await exchange(endless)
    assert answer.startswith(b"HTTP/1.1 431 ")
    assert await exchange(b"") == b""  # closed before asking: nothing to answer


async def test_a_silent_scraper_is_dropped_after_the_deadline(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with running_server() as harness:
        client, server = trio.testing.memory_stream_pair()

        async def served() -> None:
            with trio.move_on_after(10.0):  # serve_metrics's REQUEST_DEADLINE
                await answer_one(server, metrics_page(harness.server))
            await server.aclose()

        harness.nursery.start_soon(served)
        await client.send_all(b"GET /metr")  # and nothing more
        assert await client.receive_some(65536) == b""


async def test_an_http_client_scrapes_the_metrics_port() -> None:
    # Loopback with an ordinary HTTP client (urllib, in a thread): the real clock.
    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    listening.listen()
    port = listening.getsockname()[1]
    async with running_server() as harness, trio.open_nursery() as nursery:
        await harness.join("alice")
        nursery.start_soon(serve_metrics, harness.server, listening)

        def scrape(path: str) -> tuple[int, str]:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=30) as got:
                    return got.status, got.read().decode()
            except urllib.error.HTTPError as error:
                return error.code, ""

        status, text = await trio.to_thread.run_sync(scrape, "/metrics")
        assert status == 200
        assert value(parsed(text), "trio_chat_channel_members", channel="general") == 1
        assert (await trio.to_thread.run_sync(scrape, "/"))[0] == 404
        nursery.cancel_scope.cancel()
