"""``trio-chat-server CONFIGFILE --redis URL``: one node of a cluster.

Unlike a lone server, a node talks to Redis before it binds anything: an
unreachable Redis or a config that differs from the running cluster's ends
it with status 1 and nothing bound. A node that cannot take its place again
after Redis lost the cluster's state, or that finds the log trimmed past
what it applied, stops with status 1 too (link.py).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING

import coredis
import trio

from ..config import ChannelConfig
from ..hub import Hub
from ..server.core import ChatServer
from ..server.logs import ERROR
from ..server.run import history_config, run_until_stopped, serve_bound
from ..server.sockets import bind_and_announce
from . import keys, scripts, snapshot
from .boot import ClusterError, join_cluster
from .inherit import Rules
from .link import FAILURES, Link, connect
from .node import ClusterGateway
from .resp import RespConnection

if TYPE_CHECKING:
    import ssl


def run_node(
    channels: Sequence[ChannelConfig],
    arguments: argparse.Namespace,
    ssl_context: ssl.SSLContext | None,
) -> int:
    url: str = arguments.redis
    rules = Rules(channels, arguments.afk_timeout, history_config(arguments))
    fingerprint = rules.fingerprint

    async def node(server: ChatServer, hub: Hub) -> int:
        def fail(reason: str) -> int:
            server.log(reason, event="cannot_start", level=ERROR)
            return 1

        commands = connect(url)
        # The two calls made for every line get lean connections (resp.py).
        appends, reads = RespConnection(url), RespConnection(url)
        async with commands:
            try:
                try:
                    with trio.fail_after(keys.CONNECT_TIMEOUT):
                        await commands.ping()
                except (trio.TooSlowError, *FAILURES) as error:
                    silent = f"no answer in {keys.CONNECT_TIMEOUT:g} s"
                    return fail(f"cannot reach Redis at {url}: {error or silent}")
                return await serve_node(server, hub, fail, commands, appends, reads)
            finally:
                await appends.aclose()
                await reads.aclose()

    async def serve_node(
        server: ChatServer,
        hub: Hub,
        fail: Callable[[str], int],
        commands: coredis.Redis[bytes],
        appends: RespConnection,
        reads: RespConnection,
    ) -> int:
        try:
            joined = await join_cluster(commands, rules)
        except ClusterError as error:
            return fail(str(error))
        except FAILURES as error:
            return fail(f"lost Redis at {url} while joining the cluster: {error}")
        except trio.TooSlowError:
            return fail(
                f"Redis at {url} did not answer within {keys.CALL_DEADLINE:g} s "
                "while this node joined the cluster"
            )
        gateway = ClusterGateway(
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
                appends,
                reads,
            ),
        )
        link = gateway.link
        server.gateway = gateway
        server.counts.redis = link.counts
        # Transfer ids from two nodes must not meet at one receiver.
        server.transfers.id_base = (joined.node % 255 + 1) << 24
        if joined.note is not None:
            server.log(joined.note)
        if joined.snapshot is not None:
            gateway.load(*snapshot.unsaved(joined.snapshot))
        # The channels the cluster's rules have: a snapshot from before a
        # reload has the old ones, and the log's Reconfigure brings the new.
        serving = [channel.config for channel in hub.channels.values()]
        try:
            bound = bind_and_announce(
                serving, arguments, tls=ssl_context is not None, who=f"node {joined.node}, "
            )
        except OSError as error:
            await link.leave()
            return fail(str(error))
        async with trio.open_nursery() as nursery:
            nursery.start_soon(link.run)
            server.on_reconfigured.append(partial(config_changed, link, nursery))
            await serve_bound(server, bound, arguments)
            await link.leave()
            nursery.cancel_scope.cancel()
        # Redis lost the cluster's state, or the log was trimmed past this
        # node: the reason is on stderr already.
        return 0 if link.lost is None and link.behind is None else 1

    def config_changed(
        link: Link, nursery: trio.Nursery, channels: Sequence[ChannelConfig], speaking: bool
    ) -> None:
        """A reload changed the cluster's channels: this node writes them back
        if Redis loses them, and the node whose reload it was makes them the
        config a joining node must run (boot.py), in place of the old one."""
        link.fingerprint = keys.fingerprint(
            channels, arguments.afk_timeout, history_config(arguments)
        )
        if speaking:
            nursery.start_soon(store_config, link, link.fingerprint)

    return run_until_stopped(channels, arguments, ssl_context, node)


async def store_config(link: Link, fingerprint: str) -> None:
    try:
        with trio.fail_after(keys.CALL_DEADLINE):
            stored = await link.redis.eval(
                scripts.SET_CONFIG, [keys.EPOCH, keys.CONFIG], [link.epoch, fingerprint]
            )
    except (trio.TooSlowError, *FAILURES) as error:
        link.log(f"could not store the reloaded config in Redis ({error or 'no answer'})")
        return
    if stored == scripts.LOST:
        link.log("could not store the reloaded config: Redis holds another cluster's state")
