"""The intake topic's packs: raw messages in, the same messages out, in order; damage is
refused with where it is."""

from __future__ import annotations

import pytest

from c2c.serde import SerdeError
from streams.intake import MAGIC, is_pack, pack, packs, records_of, unpack
from streams.resolution import SOURCE_HEADERS, Incoming, source_of

MESSAGES = [
    Incoming("c2c.raw.enrollment", 3, 17, b"k12:1", b"\x00\x00\x00\x00\x01body", []),
    Incoming("c2c.raw.wage", 0, 2**40, None, b"", [("traceparent", b"00-abc"), ("x", None)]),
    Incoming("c2c.raw.optout", 5, 0, b"", None, [("h\u00e9", "text")]),
]


def test_a_pack_gives_back_every_message_in_order() -> None:
    out = unpack(pack(MESSAGES))
    assert [(m.topic, m.partition, m.offset, m.key, m.value) for m in out] == [
        (m.topic, m.partition, m.offset, m.key, m.value) for m in MESSAGES
    ]
    assert out[1].headers == [("traceparent", b"00-abc"), ("x", None)]
    assert out[2].headers == [("h\u00e9", b"text")]  # header values travel as bytes
    assert unpack(pack([])) == []


def test_packs_cut_by_count_and_size_and_keep_the_order() -> None:
    many = [Incoming("c2c.raw.wage", 1, i, None, bytes(100), []) for i in range(25)]
    cut = list(packs(many, max_records=10))
    assert [n for _, n in cut] == [10, 10, 5]
    assert [m.offset for value, _ in cut for m in unpack(value)] == list(range(25))
    by_size = list(packs(many, max_records=100, max_bytes=1000))
    assert all(len(value) < 1200 for value, _ in by_size)
    assert sum(n for _, n in by_size) == 25
    big = [Incoming("c2c.raw.wage", 1, 0, None, bytes(5000), [])]
    assert [n for _, n in packs(big, max_records=10, max_bytes=1000)] == [1]  # alone


def test_a_damaged_pack_is_refused_naming_where() -> None:
    value = pack(MESSAGES)
    with pytest.raises(SerdeError, match="intake\\[0\\] offset 9 is a damaged pack") as exc:
        records_of(Incoming("intake", 0, 9, None, value[:-3], []))
    assert exc.value.code == "identity.intake_format"
    with pytest.raises(SerdeError, match="end at byte"):
        unpack(value + b"extra")
    with pytest.raises(SerdeError, match="not a pack"):
        unpack(b"not a pack")


def test_a_message_forwarded_alone_or_a_stranger_is_itself() -> None:
    # the format before packs: one raw message with headers saying where it was read
    alone = Incoming(
        "c2c.identity.intake",
        0,
        4,
        b"k",
        b"v",
        list(zip(SOURCE_HEADERS, (b"c2c.raw.wage", b"2", b"40"), strict=True)),
    )
    [same] = records_of(alone)
    assert (source_of(same).topic, source_of(same).offset) == ("c2c.raw.wage", 40)
    stranger = Incoming("c2c.identity.intake", 0, 5, None, b"garbage", [])
    assert records_of(stranger) == (stranger,)
    assert not is_pack(None)
    assert is_pack(MAGIC + bytes(4))
