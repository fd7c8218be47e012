"""SIGHUP and ``/reload``: read the config file and the TLS files again.

All or nothing (behaviour.md, "Reloading the config"): the config is checked
as at start-up (config.py, and the IRC port's rules for channel names with
--irc), the certificate and key are loaded, and every new port is bound,
before anything changes; any fault refuses the whole reload with the reason,
and the server goes on with what it had. Only then does the new TLS context
take over (for new connections; those open keep theirs) and the change go to
the rules as one ``events.Reconfigure``: in a cluster through the shared log,
so every node applies it (and binds or closes its own ports).

Imported at the first reload, not at start-up.
"""

from __future__ import annotations

import argparse
import copy
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..config import ChannelConfig, ConfigError, load_config
from ..events import Reconfigure
from .irc_check import irc_problem

if TYPE_CHECKING:
    from .core import ChatServer, ReloadAnswer
    from .notify import Notifier


def reload(
    server: ChatServer,
    arguments: argparse.Namespace,
    notifier: Notifier | None,
    answer: ReloadAnswer,
) -> None:
    """Reload, and ``answer`` what came of it (text, failed): a refusal
    says why, a reload what changed. The service manager hears RELOADING=1
    first and READY=1 after, refused or not (the server serves either way)."""
    if notifier is not None:
        notifier.reloading()
    try:
        text, failed = _reload(server, arguments)
        answer(text, failed)
    finally:
        if notifier is not None:
            notifier.ready(serving_status(len(server.hub.channels)))


def serving_status(channels: int) -> str:
    """The service manager's STATUS line while serving."""
    return f"serving {channels} channels"


def _reload(server: ChatServer, arguments: argparse.Namespace) -> tuple[str, bool]:
    path: str = arguments.configfile
    try:
        channels = load_config(path)
    except ConfigError as error:
        return refused(str(error)), True
    if getattr(arguments, "irc", None) is not None:
        # (On a copy: the password the IRC port has stays as it was read at start.)
        problem = irc_problem(channels, copy.copy(arguments))
        if problem is not None:
            return refused(problem), True
    context = server.ssl_context
    tls_cert = getattr(arguments, "tls_cert", None)
    if tls_cert is not None:
        from ..tls import TLSSetupError, server_context

        try:
            context = server_context(tls_cert, arguments.tls_key)
        except TLSSetupError as error:
            return refused(str(error)), True
    if server.ports is not None:
        try:
            server.ports.bind_new(channels)
        except OSError as error:
            return refused(str(error)), True
    before = [channel.config for channel in server.hub.channels.values()]
    server.ssl_context = context
    server.gateway.submit(Reconfigure(tuple((c.name, c.port, c.capacity) for c in channels)))
    return f"reloaded {path}: {describe(before, channels, tls_cert is not None)}", False


def refused(reason: str) -> str:
    return f"reload refused, nothing changed: {reason}"


def describe(
    before: Sequence[ChannelConfig], after: Sequence[ChannelConfig], tls: bool = False
) -> str:
    """What a reload from ``before`` to ``after`` changes, for the operator."""
    old = {channel.name: channel for channel in before}
    new = {channel.name: channel for channel in after}
    changes: list[str] = []
    for channel in after:
        was = old.get(channel.name)
        if was is None:
            changes.append(f"added {channel.name} (port {channel.port})")
            continue
        if was.port != channel.port:
            changes.append(f"moved {channel.name} from port {was.port} to {channel.port}")
        if was.capacity != channel.capacity:
            changes.append(f"{channel.name}'s capacity {was.capacity} -> {channel.capacity}")
    changes += [f"removed {channel.name}" for channel in before if channel.name not in new]
    if not changes and [c.name for c in before] != [c.name for c in after]:
        changes.append("the channels' order")
    if tls:
        changes.append("the TLS certificate read again")
    return "; ".join(changes) if changes else "no change"
