"""The intake topic's message format: many raw messages forwarded in one Kafka message.

The forwarder (:mod:`streams.forwarder`) reads the raw topics and publishes what it read
to the intake topic, in the order it read it, as *packs*: one intake message holds up to a
batch of raw messages, each with its bytes untouched (key, value, headers) and where it was
read (topic, partition, offset). The resolver unpacks them and resolves the records one by
one, in that order. Packing is what makes the hop cheap: the resolver's Faust machinery
(fetch, event, buffer, ack) then runs once per pack instead of once per record.

A pack is ``MAGIC`` and the record count, then per record a fixed part
(``>HiqiiH``: topic length, partition, offset, key length, value length, header count;
length -1 for a missing key or value) followed by the topic, key and value bytes and each
header as (``>Hi``: name length, value length) name, value. Pure code, no Kafka.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from c2c.serde import SerdeError
from streams.resolution import Incoming

__all__ = [
    "MAGIC",
    "MAX_PACK_BYTES",
    "RECORDS_PER_PACK",
    "is_pack",
    "pack",
    "packs",
    "records_of",
    "unpack",
]

# "C2CI" and the format's version
MAGIC = b"C2CI\x01"
# Under the producer's 1,000,000-byte message limit with room for a pack's framing, so a
# pack of one raw message of the largest size a producer could send still fits (the
# forwarder's producer allows 1 MiB; see streams.forwarder).
MAX_PACK_BYTES = 900_000
# Records the forwarder puts in one pack at most (~110 kB of raw events). Small enough that
# the resolver's batch, a number of packs, can be sized in records whatever the load (see
# streams.app.PACKS_PER_BATCH); large enough that Faust's per-event cost (~100 us) is
# under a microsecond a record.
RECORDS_PER_PACK = 250

_COUNT = struct.Struct(">I")
_RECORD = struct.Struct(">HiqiiH")
_HEADER = struct.Struct(">Hi")


def _header_bytes(value: Any) -> bytes | None:
    if value is None or isinstance(value, bytes):
        return value
    return str(value).encode()


def _record(message: Incoming) -> bytes:
    topic = message.topic.encode()
    key, value = message.key, message.value
    headers = message.headers or ()
    parts = [
        _RECORD.pack(
            len(topic),
            message.partition,
            message.offset,
            -1 if key is None else len(key),
            -1 if value is None else len(value),
            len(headers),
        ),
        topic,
        key or b"",
        value or b"",
    ]
    for name, raw in headers:
        name_bytes = str(name).encode()
        header_value = _header_bytes(raw)
        parts.append(
            _HEADER.pack(len(name_bytes), -1 if header_value is None else len(header_value))
        )
        parts.append(name_bytes)
        parts.append(header_value or b"")
    return b"".join(parts)


def pack(messages: Iterable[Incoming]) -> bytes:
    """One pack of ``messages``, in their order."""
    records = [_record(m) for m in messages]
    return b"".join((MAGIC, _COUNT.pack(len(records)), *records))


def packs(
    messages: Iterable[Incoming], *, max_records: int, max_bytes: int = MAX_PACK_BYTES
) -> Iterator[tuple[bytes, int]]:
    """``messages`` in order, cut into packs of at most ``max_records`` records and about
    ``max_bytes`` bytes (a single larger record gets a pack of its own): (pack, records)."""
    records: list[bytes] = []
    size = 0
    for message in messages:
        record = _record(message)
        if records and (len(records) >= max_records or size + len(record) > max_bytes):
            yield b"".join((MAGIC, _COUNT.pack(len(records)), *records)), len(records)
            records, size = [], 0
        records.append(record)
        size += len(record)
    if records:
        yield b"".join((MAGIC, _COUNT.pack(len(records)), *records)), len(records)


def is_pack(value: bytes | None) -> bool:
    """Whether an intake message's value is a pack (else it is a message forwarded alone,
    with :data:`~streams.resolution.SOURCE_HEADERS`, by a worker before packs, or not one
    of ours at all)."""
    return value is not None and value[: len(MAGIC)] == MAGIC


def unpack(value: bytes, *, where: str = "intake message") -> list[Incoming]:
    """The raw messages in a pack, in order, each as it was read from its raw topic.

    Raises SerdeError (code ``identity.intake_format``) naming ``where`` and the byte
    offset if ``value`` is not a whole pack."""
    if not is_pack(value):
        raise SerdeError(
            f"{where} is not a pack of forwarded messages (it does not start with {MAGIC!r})",
            code="identity.intake_format",
        )
    at = len(MAGIC)
    read_record, read_header = _RECORD.unpack_from, _HEADER.unpack_from
    topics: dict[bytes, str] = {}
    try:
        (count,) = _COUNT.unpack_from(value, at)
        at += _COUNT.size
        out: list[Incoming] = []
        for _ in range(count):
            topic_len, partition, offset, key_len, value_len, n_headers = read_record(value, at)
            at += _RECORD.size
            raw_topic = value[at : at + topic_len]
            topic = topics.get(raw_topic)
            if topic is None:
                topic = topics[raw_topic] = raw_topic.decode()
            at += topic_len
            key = None
            if key_len >= 0:
                key = value[at : at + key_len]
                at += key_len
            body = None
            if value_len >= 0:
                body = value[at : at + value_len]
                at += value_len
            if not n_headers:  # the usual case: no list built
                out.append(Incoming(topic, partition, offset, key, body))
                continue
            headers: list[tuple[str, bytes | None]] = []
            for _ in range(n_headers):
                name_len, header_len = read_header(value, at)
                at += _HEADER.size
                name = value[at : at + name_len].decode()
                at += name_len
                header_value = None
                if header_len >= 0:
                    header_value = value[at : at + header_len]
                    at += header_len
                headers.append((name, header_value))
            out.append(Incoming(topic, partition, offset, key, body, headers))
    except (struct.error, UnicodeDecodeError) as exc:
        raise SerdeError(
            f"{where} is a damaged pack: cannot read it at byte {at} of {len(value)} ({exc})",
            code="identity.intake_format",
        ) from exc
    if at != len(value):
        raise SerdeError(
            f"{where} is a damaged pack: its {count} record(s) end at byte {at}, "
            f"the message has {len(value)}",
            code="identity.intake_format",
        )
    return out


def records_of(message: Incoming) -> Sequence[Incoming]:
    """The raw messages an intake message carries: a pack's records, else the message
    itself (a message forwarded alone; anything else the stage turns into a dead letter).
    Raises SerdeError for a damaged pack."""
    if is_pack(message.value):
        where = f"{message.topic}[{message.partition}] offset {message.offset}"
        return unpack(message.value or b"", where=where)
    return (message,)
