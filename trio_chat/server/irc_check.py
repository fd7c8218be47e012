"""What the IRC port asks of a config's channel names (and of
--irc-password-file), said before any port is bound, and at a reload.

Imported only with --irc; no trio.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from ..config import ChannelConfig
from ..names import fold_nick


def irc_problem(channels: Sequence[ChannelConfig], arguments: argparse.Namespace) -> str | None:
    """Why the IRC port cannot serve this config, or None; reads the
    password file into ``arguments.irc_password``."""
    seen: dict[str, str] = {}
    for channel in channels:
        name = channel.name
        if "," in name or not name.isprintable():
            return f"channel {name!r} cannot be an IRC channel: IRC names hold no ',' or controls"
        folded = fold_nick(name)
        if folded in seen:
            return f"channels {seen[folded]!r} and {name!r} are one channel on IRC (ASCII case)"
        seen[folded] = name
    arguments.irc_password = None
    if arguments.irc_password_file is not None:
        try:
            with open(arguments.irc_password_file, encoding="utf-8") as file:
                password = file.readline().rstrip("\r\n")
        except (OSError, UnicodeDecodeError) as error:
            reason = getattr(error, "strerror", None) or str(error)
            return f"cannot read the IRC password file {arguments.irc_password_file}: {reason}"
        if not password or " " in password:
            return f"the IRC password file {arguments.irc_password_file} holds no password"
        arguments.irc_password = password
    return None
