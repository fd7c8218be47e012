"""``trio-chat-server CONFIGFILE --redis URL``: one node of a cluster.

Unlike a lone server, a node talks to Redis before it binds anything: an
unreachable Redis or a config that differs from the running cluster's ends
it with status 1 and nothing bound. A node that cannot take its place again
after Redis lost the cluster's state, or that finds the log trimmed past
what it applied, stops with status 1 too (link.py).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from functools import partial
from typing import TYPE_CHECKING

import coredis
import trio

from ..config import ChannelConfig
from ..hub import Hub
from ..server.cli import announce_listening, bind_channels, bind_web
from ..server.run import (
    close_output,
    make_server,
    open_output,
    socket_listeners,
    web_services,
)
from . import keys
from .boot import ClusterError, join_cluster
from .link import FAILURES, Link, connect
from .node import ClusterGateway

if TYPE_CHECKING:
    import ssl

CONNECT_TIMEOUT = 5.0


def run_node(
    channels: Sequence[ChannelConfig],
    arguments: argparse.Namespace,
    ssl_context: ssl.SSLContext | None,
) -> int:
    output, errors = open_output()
    hub = Hub(channels, afk_timeout=arguments.afk_timeout)
    server = make_server(hub, arguments, ssl_context, output, errors)

    def fail(reason: str) -> int:
        server.log(reason)
        return 1

    url: str = arguments.redis
    fingerprint = keys.fingerprint(channels, arguments.afk_timeout)

    async def node() -> int:
        commands, reads = connect(url), connect(url)
        async with commands, reads:
            try:
                with trio.fail_after(CONNECT_TIMEOUT):
                    await commands.ping()
            except (trio.TooSlowError, *FAILURES) as error:
                return fail(f"cannot reach Redis at {url}: {error or 'no answer in 5 s'}")
            return await serve_node(commands, reads)

    async def serve_node(commands: coredis.Redis[bytes], reads: coredis.Redis[bytes]) -> int:
        try:
            joined = await join_cluster(commands, fingerprint)
        except ClusterError as error:
            return fail(str(error))
        except FAILURES as error:
            return fail(f"lost Redis at {url} while joining the cluster: {error}")
        except trio.TooSlowError:
            return fail(
                f"Redis at {url} did not answer within {keys.CALL_DEADLINE:g} s "
                "while this node joined the cluster"
            )
        rules = ClusterGateway(
            server,
            hub,
            joined.node,
            partial(
                Link,
                url,
                joined.node,
                joined.token,
                joined.epoch,
                fingerprint,
                server.log,
                commands,
                reads,
            ),
        )
        link = rules.link
        server.gateway = rules
        # Transfer ids from two nodes must not meet at one receiver.
        server.transfers.id_base = (joined.node % 255 + 1) << 24
        if joined.snapshot is not None:
            saved = json.loads(joined.snapshot)
            rules.load(saved["id"].encode(), saved["state"].encode())
        try:
            web = bind_web(arguments)
            sockets = bind_channels(channels, arguments.host, reuse_port=arguments.reuse_port)
        except OSError as error:
            await link.leave()
            return fail(str(error))
        announce_listening(arguments, channels, ssl_context, f"node {joined.node}, ")
        async with trio.open_nursery() as nursery:
            nursery.start_soon(link.run)
            await server.serve(
                socket_listeners(sockets, server.backlog),
                services=web_services(server, web, arguments),
            )
            await link.leave()
            nursery.cancel_scope.cancel()
        # Redis lost the cluster's state, or the log was trimmed past this
        # node: the reason is on stderr already.
        return 0 if link.lost is None and link.behind is None else 1

    try:
        return trio.run(node)
    except KeyboardInterrupt:
        return 0
    finally:
        close_output(output, errors)
