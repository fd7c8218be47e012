"""``--metrics``: the server's numbers in Prometheus's text format
(docs/metrics.md), on a port of their own or at the web port's ``/metrics``.

Imported only with ``--metrics``, as is prometheus_client. Nothing is
counted through that library: the server keeps plain numbers (counts.py) and
the hub its state, and ``ChatCollector`` reads them when a scrape asks. The
scrape is answered inside trio, on the event loop, so it reads the hub between
two of its events, never while one is half applied (prometheus_client's own
HTTP server would read it from another thread).

The port answers ``GET /metrics`` (and HEAD) and nothing else, one request a
connection: its head is bounded (MAX_REQUEST_HEAD), a connection has
REQUEST_DEADLINE to ask and be answered, at most MAX_SCRAPES at once. h11
parses the request (the HTTP/1.1 state machine hypercorn is built on). The
``Host`` header is not looked at: nothing in the answer depends on it.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import h11
import trio
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector, CollectorRegistry

from ..state import ClientProtocol

if TYPE_CHECKING:
    from .core import ChatServer

PREFIX = "trio_chat_"
PATH = "/metrics"
# A scraper's request is a line and a few headers.
MAX_REQUEST_HEAD = 8 * 1024
REQUEST_DEADLINE = 10.0
MAX_SCRAPES = 8
# The protocol label: what docs/behaviour.md calls each kind of client.
PROTOCOL_LABELS = {
    ClientProtocol.TERMINAL: "native",
    ClientProtocol.BROWSER: "web",
    ClientProtocol.IRC: "irc",
}


class ChatCollector(Collector):
    """The server's numbers, read at scrape time."""

    def __init__(self, server: ChatServer) -> None:
        self.server = server

    def collect(self) -> Iterator[Metric]:
        server = self.server
        counts = server.counts
        connections = GaugeMetricFamily(
            PREFIX + "connections",
            "Connections open on this server, by protocol",
            labels=["protocol"],
        )
        for protocol, label in PROTOCOL_LABELS.items():
            connections.add_metric([label], server.connected[protocol])
        yield connections
        members = GaugeMetricFamily(
            PREFIX + "channel_members",
            "Members admitted to each channel (in a cluster, on every node)",
            labels=["channel"],
        )
        queued = GaugeMetricFamily(
            PREFIX + "channel_queue_length",
            "Clients waiting for a place in each channel",
            labels=["channel"],
        )
        capacity = GaugeMetricFamily(
            PREFIX + "channel_capacity", "Each channel's capacity", labels=["channel"]
        )
        for name, channel in server.hub.channels.items():
            members.add_metric([name], len(channel.members))
            queued.add_metric([name], len(channel.queue))
            capacity.add_metric([name], channel.config.capacity)
        yield from (members, queued, capacity)
        yield counter("lines_said", "Chat lines said in the channels", counts.lines_said)
        yield counter(
            "deliveries", "Lines handed to members (a line to N members is N)", counts.deliveries
        )
        yield counter(
            "slow_consumers_dropped",
            "Connections dropped for not reading what they were sent",
            counts.slow_consumers_dropped,
        )
        yield counter(
            "flood_disconnects",
            "Members disconnected by flood control",
            counts.flood_disconnects,
        )
        refused = CounterMetricFamily(
            PREFIX + "refused_connections",
            "Connections refused (at once, or for a ban at the hello), by reason",
            labels=["reason"],
        )
        for reason, count in counts.refused.items():
            refused.add_metric([reason], count)
        yield refused
        yield counter(
            "file_bytes_relayed",
            "File bytes relayed from senders to receivers (/send)",
            server.transfers.bytes_relayed,
        )
        if counts.redis is not None:
            round_trips = counts.redis.round_trips
            histogram = HistogramMetricFamily(
                PREFIX + "redis_round_trip_seconds",
                "Round-trip time of the lease renewals sent to Redis",
            )
            histogram.add_metric(
                [],
                [(bucket_bound(bound), count) for bound, count in round_trips.cumulative()],
                round_trips.total,
            )
            yield histogram
            yield counter(
                "redis_outages",
                "Times Redis stopped answering this node",
                counts.redis.outages,
            )


def counter(name: str, documentation: str, value: int) -> CounterMetricFamily:
    return CounterMetricFamily(PREFIX + name, documentation, value=value)


def bucket_bound(bound: float) -> str:
    """A bucket's ``le`` label, as prometheus_client writes it."""
    return "+Inf" if bound == float("inf") else repr(bound)


def metrics_page(server: ChatServer) -> Callable[[], bytes]:
    """The text a scrape gets: the server's numbers and the process's CPU and memory."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ChatCollector(server))
    ProcessCollector(registry=registry)
    return lambda: generate_latest(registry)


def answer(method: str, target: str, page: Callable[[], bytes]) -> tuple[int, bytes]:
    """The status and body for a request (HEAD's body is not sent)."""
    if target.split("?", 1)[0] != PATH:
        return 404, b"Not found: the metrics are at /metrics.\n"
    if method not in ("GET", "HEAD"):
        return 405, b"Only GET /metrics.\n"
    return 200, page()


async def serve_metrics(server: ChatServer, sock: socket.socket) -> None:
    """Answer scrapes on ``sock`` (bound before trio: server/sockets.py)."""
    page = metrics_page(server)
    busy = 0

    async def connection(stream: trio.SocketStream) -> None:
        nonlocal busy
        if busy >= MAX_SCRAPES:
            await trio.aclose_forcefully(stream)
            return
        busy += 1
        try:
            with trio.move_on_after(REQUEST_DEADLINE):
                await answer_one(stream, page)
        finally:
            busy -= 1
            await trio.aclose_forcefully(stream)

    listener = trio.SocketListener(trio.socket.from_stdlib_socket(sock))
    await trio.serve_listeners(connection, [listener])


async def answer_one(stream: trio.abc.Stream, page: Callable[[], bytes]) -> None:
    """Read one request's head and answer it; the connection closes after."""
    connection = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_REQUEST_HEAD)
    try:
        while True:
            event = connection.next_event()
            if event is h11.NEED_DATA:
                connection.receive_data(bytes(await stream.receive_some(4096)))
                continue
            break
    except h11.RemoteProtocolError as error:
        status, body, method = error.error_status_hint, b"Bad request.\n", "GET"
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        return
    else:
        if not isinstance(event, h11.Request):
            return  # the peer closed before asking
        method = event.method.decode("ascii", "replace")
        status, body = answer(method, event.target.decode("ascii", "replace"), page)
    headers = [
        ("content-type", CONTENT_TYPE_PLAIN_0_0_4 if status == 200 else "text/plain"),
        ("content-length", str(len(body))),
        ("connection", "close"),
    ]
    if status == 405:
        headers.append(("allow", "GET, HEAD"))
    if connection.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
        return
    # (h11 lets a server answer a request it could not parse from IDLE.)
    data = connection.send(h11.Response(status_code=status, headers=headers)) or b""
    if method != "HEAD":
        data += connection.send(h11.Data(data=body)) or b""
    data += connection.send(h11.EndOfMessage()) or b""
    with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
        await stream.send_all(data)
