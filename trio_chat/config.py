"""Parse and validate the server's config file (behaviour document, "The config file").

Imports no trio: the server validates the whole file, and exits 1 on any fault,
before it binds a port or pays for heavy imports.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass

from .arguments import parse_decimal

MIN_CHANNELS = 3
MIN_CAPACITY = 5


class ConfigError(Exception):
    """The config file is unusable; the message names the line and the fault."""


@dataclass(frozen=True)
class ChannelConfig:
    name: str
    port: int
    capacity: int


def parse_config(text: str, source: str = "configfile") -> list[ChannelConfig]:
    """Return the channels in file order, or raise ConfigError naming the line."""
    channels: list[ChannelConfig] = []
    names: dict[str, int] = {}
    ports: dict[int, int] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        where = f"{source}:{number}"
        fields = raw.split()
        if not fields:
            continue
        if fields[0] != "channel":
            raise ConfigError(f"{where}: expected 'channel', found {fields[0]!r}")
        if len(fields) != 4:
            raise ConfigError(
                f"{where}: expected 'channel <name> <port> <capacity>' "
                f"(4 fields), found {len(fields)}"
            )
        _, name, port_text, capacity_text = fields
        if name[0].isdigit():
            raise ConfigError(f"{where}: channel name {name!r} begins with a digit")
        if name in names:
            raise ConfigError(f"{where}: channel name {name!r} already used on line {names[name]}")
        port = parse_decimal(port_text)
        if port is None:
            raise ConfigError(f"{where}: port {port_text!r} is not an integer")
        if port == 0:
            raise ConfigError(f"{where}: port 0 (the ephemeral port) is not allowed")
        if port > 65535:
            raise ConfigError(f"{where}: port {port} is not in 1..65535")
        if port in ports:
            raise ConfigError(f"{where}: port {port} already used on line {ports[port]}")
        capacity = parse_decimal(capacity_text)
        if capacity is None:
            raise ConfigError(f"{where}: capacity {capacity_text!r} is not an integer")
        if capacity < MIN_CAPACITY:
            raise ConfigError(
                f"{where}: capacity {capacity} is less than the minimum of {MIN_CAPACITY}"
            )
        names[name] = number
        ports[port] = number
        channels.append(ChannelConfig(name, port, capacity))
    if len(channels) < MIN_CHANNELS:
        raise ConfigError(
            f"{source}: {len(channels)} channel(s) defined, at least {MIN_CHANNELS} are required"
        )
    return channels


# Far more than any real config (a line per channel); a bound on what a wrong
# path such as /dev/zero can make the server read.
MAX_CONFIG_BYTES = 1024 * 1024


def read_config_file(path: str) -> bytes:
    """The bytes of the regular file at ``path``; ConfigError for anything else.

    Opened without blocking, so a FIFO given by mistake is refused rather than
    waited on; read up to a bound, so a device cannot fill memory.
    """
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as error:
        raise ConfigError(f"{path}: cannot read config file: {error.strerror}") from None
    try:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            raise ConfigError(f"{path}: not a regular file")
        os.set_blocking(descriptor, True)
        pieces: list[bytes] = []
        held = 0
        while piece := os.read(descriptor, MAX_CONFIG_BYTES + 1 - held):
            pieces.append(piece)
            held += len(piece)
            if held > MAX_CONFIG_BYTES:
                raise ConfigError(
                    f"{path}: larger than {MAX_CONFIG_BYTES // 1024} KiB; not a config file"
                )
    except OSError as error:
        raise ConfigError(f"{path}: cannot read config file: {error.strerror}") from None
    finally:
        os.close(descriptor)
    return b"".join(pieces)


def load_config(path: str) -> list[ChannelConfig]:
    """Read and parse the file at ``path``; unreadable files raise ConfigError."""
    data = read_config_file(path)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ConfigError(f"{path}: not valid UTF-8 (byte {error.start})") from None
    return parse_config(text, source=path)
