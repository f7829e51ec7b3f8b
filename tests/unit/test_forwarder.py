"""The forwarder's order: each partition's messages in offset order, partitions merged by
the time they were published."""

from __future__ import annotations

from streams.forwarder import publication_order
from streams.resolution import Incoming


def _at(topic: str, partition: int, offset: int) -> Incoming:
    return Incoming(topic, partition, offset, None, b"", [])


def test_partitions_handed_over_one_after_another_are_merged_by_publication_time() -> None:
    # as librdkafka hands them over: all of one partition's fetch, then the next
    read = [
        (100, _at("c2c.raw.wage", 0, 7)),
        (300, _at("c2c.raw.wage", 0, 8)),
        (200, _at("c2c.raw.enrollment", 2, 1)),
        (400, _at("c2c.raw.enrollment", 2, 2)),
        (300, _at("c2c.raw.wage", 1, 5)),
    ]
    order = [(m.topic, m.partition, m.offset) for m in publication_order(read)]
    assert order == [
        ("c2c.raw.wage", 0, 7),
        ("c2c.raw.enrollment", 2, 1),
        ("c2c.raw.wage", 0, 8),  # ties: the one consumed first
        ("c2c.raw.wage", 1, 5),
        ("c2c.raw.enrollment", 2, 2),
    ]


def test_a_partition_keeps_its_offset_order_even_when_its_clock_went_back() -> None:
    read = [(500, _at("t", 0, 1)), (100, _at("t", 0, 2)), (300, _at("t", 1, 1))]
    order = [(m.partition, m.offset) for m in publication_order(read)]
    assert order.index((0, 1)) < order.index((0, 2))
    assert sorted(order) == [(0, 1), (0, 2), (1, 1)]
