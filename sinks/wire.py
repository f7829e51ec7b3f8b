"""Linked events handed to ClickHouse as they came off the wire: ClickHouse decodes them.

Decoding Avro in Python was the larger part of the sink's work (more than the insert
itself). Instead, the sink checks each linked message's frame (the reader schema's id,
the usual case) and passes the bytes on: one insert per table of an Avro object container
(:meth:`WireFormat.container`, no values built in Python) into a ``wire_*`` table (engine
Null: it keeps nothing), whose materialized views write the fact table and ``dim_person``
(migration 0008). A message framed otherwise, or that the sink cannot place, is decoded
in Python as before (sinks/rows.py).

The container's records are the messages as they are, each after the time it was
published (its Kafka timestamp, an Avro long: :data:`PUBLISHED_FIELD`, the fact row's
``published_at``) and followed by :data:`SEPARATOR`: the writer schema (:func:`wire_schema`)
is the linked schema with the publication time and the 5-byte frame as its first fields
and five booleans as the last. The time goes first, not between the message and the
separator, where its varint of any length could absorb a message's wrong length. Avro has
no lengths between records, so a message that is cut short or too long would shift every
record after it;
ClickHouse then reads values that fail to parse (an error, the whole insert refused, as
ClickHouse parses a block before any view writes it, and the writer asks for one block:
sinks.writer.WIRE_BLOCK_ROWS), or separators that are not :data:`SEPARATOR` (which the
views refuse with ``throwIf``, before they write; so is a value out of its column's
range). A refused insert is retried by decoding the batch in Python, which names the bad
message (a dead letter) and writes the rest (sinks/sink.py).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sinks.rows import AFTER_ID_AND_TIME, FACT_TABLES, framed_id_and_time, leading_fields

__all__ = [
    "PUBLISHED_FIELD",
    "SEPARATOR",
    "WIRE_TABLES",
    "WireFormat",
    "event_and_person",
    "person_finder",
    "person_found",
    "varint",
    "wire_schema",
]

# fact table -> the Null table its wire messages are inserted into (migration 0008)
WIRE_TABLES: Mapping[str, str] = {
    table: "wire_" + table.removeprefix("fact_") for table in FACT_TABLES.values()
}

# After each record: five booleans, true false true true false (Avro writes a boolean as
# one byte, 0 or 1; anything else fails to parse). The views check the pattern.
SEPARATOR = bytes([1, 0, 1, 1, 0])
_SEPARATOR_FIELDS = ("wire_end_1", "wire_end_2", "wire_end_3", "wire_end_4", "wire_end_5")
# Before each message: when it was published (migration 0013)
PUBLISHED_FIELD = "wire_published"


def wire_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """The container's writer schema for messages of the linked record ``schema`` (fully
    resolved: named types inline): when it was published, its frame, its fields, the
    separator."""
    return {
        "type": "record",
        "name": f"Wire{schema['name']}",
        "namespace": "org.c2cstream.wire",
        "fields": [
            {"name": PUBLISHED_FIELD, "type": {"type": "long", "logicalType": "timestamp-millis"}},
            {"name": "wire_frame", "type": {"type": "fixed", "name": "WireFrame", "size": 5}},
            *schema["fields"],
            *({"name": name, "type": "boolean"} for name in _SEPARATOR_FIELDS),
        ],
    }


def varint(value: int) -> bytes:
    """An Avro long (zigzag varint)."""
    value = (value << 1) ^ (value >> 63)
    out = bytearray()
    while value > 127:
        out.append((value & 127) | 128)
        value >>= 7
    out.append(value)
    return bytes(out)


class WireFormat:
    """Avro object containers of one linked topic's messages, as they are (module
    docstring). ``schema`` is the topic's reader schema, fully resolved."""

    def __init__(self, schema: Mapping[str, Any]) -> None:
        self.schema = wire_schema(schema)
        self._sync = os.urandom(16)
        meta = {b"avro.schema": json.dumps(self.schema).encode(), b"avro.codec": b"null"}
        parts = [b"Obj\x01", varint(len(meta))]
        for key, value in meta.items():
            parts += [varint(len(key)), key, varint(len(value)), value]
        parts += [b"\x00", self._sync]
        self._header = b"".join(parts)

    def container(self, messages: Sequence[bytes], published: Sequence[int] | None = None) -> bytes:
        """One container holding ``messages`` (framed wire messages of the reader schema),
        in one block, each after when it was published (``published``: epoch milliseconds,
        each message's; none: 0, unknown) and followed by :data:`SEPARATOR`."""
        if published is None:
            published = [0] * len(messages)
        heads: dict[int, bytes] = {}  # many messages share a millisecond: one varint each
        parts: list[bytes] = []
        for message, at in zip(messages, published, strict=True):
            head = heads.get(at)
            if head is None:
                head = heads[at] = varint(at)
            parts += (head, message, SEPARATOR)
        data = b"".join(parts)
        return b"".join((self._header, varint(len(messages)), varint(len(data)), data, self._sync))


# A linked message's person id, without decoding it: after the event id and event_time
# (sinks.rows.framed_id_and_time) and the provider (an enum index, one byte) comes the
# person id: a length byte (ids up to 63 bytes) and its bytes.
_PERSON_AT = AFTER_ID_AND_TIME + 1


_LEADING_FIELDS = [
    ("event_id", "string/uuid"),
    ("event_time", "long/timestamp-millis"),
    ("provider", "enum"),
    ("person_id", "string"),
]


def person_found(schema: Mapping[str, Any]) -> bool:
    """Whether :func:`person_finder` can read a person id from messages of the linked record
    ``schema``: its leading fields are laid out as it assumes (an enum of at most 64
    symbols, an index of one byte)."""
    layout, symbols = leading_fields(schema, 4)
    return layout == _LEADING_FIELDS and len(symbols[2]) <= 64


def person_finder(header: bytes) -> Callable[[bytes], str | None]:
    """A function from a linked message to its person id, if it is framed with ``header``
    and laid out as above; else None (decode it)."""
    layout = framed_id_and_time(header, rb"[\x00-\x7f][\x00-\x7e]").match

    def person_of(data: bytes) -> str | None:
        if layout(data) is None:
            return None
        size = data[_PERSON_AT]
        end = _PERSON_AT + 1 + (size >> 1)
        if size & 1 or end > len(data):  # a negative length, or cut short
            return None
        try:
            return data[_PERSON_AT + 1 : end].decode()
        except UnicodeDecodeError:
            return None

    return person_of


# Where a linked message's event id lies: after its 5-byte frame and its length byte (36
# characters: sinks.rows.framed_id_and_time)
_EVENT_ID = slice(6, 42)


def event_and_person(data: bytes) -> tuple[str, str]:
    """The event id and person id of a linked message that :func:`person_finder`'s function
    placed (a wire message of a batch), read from its leading bytes."""
    end = _PERSON_AT + 1 + (data[_PERSON_AT] >> 1)
    return data[_EVENT_ID].decode(), data[_PERSON_AT + 1 : end].decode()
