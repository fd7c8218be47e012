"""Events as the cluster's log entries, and back: one codec for every event.

An entry is a JSON object: ``type`` (the event's name), ``origin`` and ``seq``
(the node that appended it, and its sequence number there: a batch retried after a lost
connection may reach Redis twice), and the event's own fields by their names
(``events.py``). Each field is checked against its declared type on the way
back in, so an entry this node cannot read is skipped rather than applied.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import dataclass
from typing import Any

from ..events import EVENTS, ConsoleLine, Event, Join


@dataclass(frozen=True, slots=True)
class NodeGone:
    """A node left the cluster, or its lease lapsed (link.py): its members go,
    as if each hung up, and every file to or from them is called off."""

    node: int


LogEvent = Event | NodeGone
LOG_EVENTS: tuple[type[LogEvent], ...] = (*EVENTS, NodeGone)


class EntryError(ValueError):
    """A log entry that is not an event this node knows."""


def _type_name(cls: type) -> str:
    # Join -> join, TransferStarted -> transfer_started
    name = cls.__name__
    return "".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_")


def _checker(hint: Any) -> typing.Callable[[Any], Any]:
    """A function that returns a JSON value as ``hint``, or raises EntryError."""
    origin = typing.get_origin(hint)
    if hint in (str, int, bool):

        def plain(value: Any) -> Any:
            # (bool is an int in Python, not in our entries)
            if type(value) is not hint:
                raise EntryError(f"{value!r} is not {hint.__name__}")
            return value

        return plain
    if origin is tuple and typing.get_args(hint)[-1] is Ellipsis:  # tuple[str, ...]
        item = _checker(typing.get_args(hint)[0])
        return lambda value: tuple(item(v) for v in _list(value))
    if origin is tuple:  # tuple[str, int, int]: a fixed shape
        fields = [_checker(arg) for arg in typing.get_args(hint)]

        def shaped(value: Any) -> Any:
            items = _list(value)
            if len(items) != len(fields):
                raise EntryError(f"{value!r} does not have {len(fields)} items")
            return tuple(check(item) for check, item in zip(fields, items, strict=True))

        return shaped
    args = typing.get_args(hint)
    if type(None) in args:  # X | None
        (inner,) = (a for a in args if a is not type(None))
        check = _checker(inner)
        return lambda value: None if value is None else check(value)
    raise TypeError(f"no codec for a field of type {hint!r}")


def _list(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise EntryError(f"{value!r} is not a list")
    return value


# The entry's own keys: no event may have a field of these names.
ENVELOPE = frozenset({"type", "origin", "seq"})
assert not any(ENVELOPE & {f.name for f in dataclasses.fields(cls)} for cls in LOG_EVENTS)

_BY_NAME: dict[str, type[LogEvent]] = {_type_name(cls): cls for cls in LOG_EVENTS}
_NAME: dict[type[LogEvent], str] = {cls: name for name, cls in _BY_NAME.items()}
_FIELDS: dict[type[LogEvent], list[tuple[str, typing.Callable[[Any], Any]]]] = {
    cls: [(name, _checker(hint)) for name, hint in typing.get_type_hints(cls).items()]
    for cls in LOG_EVENTS
}
# The fields an entry may leave out, taking the dataclass's default: those
# added since entries were first written this way, so an older log still
# reads (a new cluster inherits one: inherit.py). Any other missing field
# makes the entry unreadable. A node that does not know a field ignores it
# (``decode`` reads the fields it knows).
_ADDED_LATER: dict[type[LogEvent], frozenset[str]] = {
    ConsoleLine: frozenset({"answer_to"}),
    Join: frozenset({"protocol"}),
}
assert all(
    name in {f.name for f in dataclasses.fields(cls) if f.default is not dataclasses.MISSING}
    for cls, names in _ADDED_LATER.items()
    for name in names
)


# Each event's field names, in order, and the checker of an entry's envelope:
# worked out once, not for every line (encode and decode run for each).
_FIELD_NAMES: dict[type[LogEvent], tuple[str, ...]] = {
    cls: tuple(field.name for field in dataclasses.fields(cls)) for cls in LOG_EVENTS
}
_INT = _checker(int)
_COMPACT = json.JSONEncoder(separators=(",", ":"))
_DECODER = json.JSONDecoder()


def encode(event: LogEvent, node: int, seq: int) -> bytes:
    fields: dict[str, Any] = {"type": _NAME[type(event)], "origin": node, "seq": seq}
    for name in _FIELD_NAMES[type(event)]:
        value = getattr(event, name)
        fields[name] = list(value) if isinstance(value, tuple) else value
    return _COMPACT.encode(fields).encode()


@dataclass(frozen=True, slots=True)
class Entry:
    node: int  # its origin
    seq: int
    event: LogEvent


def decode(blob: bytes) -> Entry:
    """The entry ``blob`` holds; EntryError if it holds none this node can read."""
    try:
        # (json.loads would first sniff the bytes for UTF-16 and -32)
        fields = _DECODER.decode(blob.decode())
    except ValueError as error:
        raise EntryError(f"not JSON: {error}") from None
    if not isinstance(fields, dict):
        raise EntryError("not a JSON object")
    name = fields.get("type")
    cls = _BY_NAME.get(name) if isinstance(name, str) else None
    if cls is None:
        raise EntryError(f"an event of unknown type {fields.get('type')!r}")
    try:
        node = _INT(fields["origin"])
        seq = _INT(fields["seq"])
        optional = _ADDED_LATER.get(cls, frozenset())
        values = {
            name: check(fields[name])
            for name, check in _FIELDS[cls]
            if name in fields or name not in optional
        }
    except KeyError as missing:
        raise EntryError(f"a {_NAME[cls]} entry without {missing}") from None
    return Entry(node, seq, cls(**values))
