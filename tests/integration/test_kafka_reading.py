"""Reading topics whole, or from and up to marks taken around publishing (c2c.kafka)."""

from __future__ import annotations

import uuid

import pytest
from confluent_kafka import Producer

from c2c.errors import ServiceError
from c2c.kafka import end_offsets, ensure_topics, read_to_end
from c2c.settings import Settings
from c2c.topics import Topic

pytestmark = pytest.mark.integration


def _publish(settings: Settings, topic: str, values: list[bytes], partition: int) -> None:
    producer = Producer(settings.kafka_config())
    for value in values:
        producer.produce(topic, value, partition=partition)
    assert producer.flush(30) == 0


def test_read_to_end_between_marks_gives_only_what_was_published_between(stack: Settings) -> None:
    topic = f"c2c.test.reading.{uuid.uuid4().hex[:8]}"
    ensure_topics(stack, [Topic(topic, "", "test", "reading", partitions=2)])
    _publish(stack, topic, [b"old-0", b"old-1"], 0)
    _publish(stack, topic, [b"old-2"], 1)

    marks = end_offsets(stack, [topic])
    assert marks == {(topic, 0): 2, (topic, 1): 1}
    _publish(stack, topic, [b"new-0"], 0)
    _publish(stack, topic, [b"new-1", b"new-2"], 1)

    everything = sorted(m.value() for m in read_to_end(stack, [topic]))
    assert everything == [b"new-0", b"new-1", b"new-2", b"old-0", b"old-1", b"old-2"]
    after = sorted(m.value() for m in read_to_end(stack, [topic], since=marks))
    assert after == [b"new-0", b"new-1", b"new-2"]
    before_old = sorted(m.value() for m in read_to_end(stack, [topic], until=marks))
    assert before_old == [b"old-0", b"old-1", b"old-2"]
    ends = end_offsets(stack, [topic])
    _publish(stack, topic, [b"later-0"], 0)
    between = sorted(m.value() for m in read_to_end(stack, [topic], since=marks, until=ends))
    assert between == [b"new-0", b"new-1", b"new-2"]
    # marks at the end: nothing; a partition the marks do not name is read from its start
    assert list(read_to_end(stack, [topic], since=end_offsets(stack, [topic]))) == []
    only_first = {(topic, 0): marks[(topic, 0)]}
    assert sorted(m.value() for m in read_to_end(stack, [topic], since=only_first)) == [
        b"later-0",
        b"new-0",
        b"new-1",
        b"new-2",
        b"old-2",
    ]
    # only the partitions asked for, with the marks of those
    assert sorted(m.value() for m in read_to_end(stack, [topic], partitions=[1])) == [
        b"new-1",
        b"new-2",
        b"old-2",
    ]
    first = read_to_end(stack, [topic], since=marks, until=ends, partitions=[0])
    assert [m.value() for m in first] == [b"new-0"]


def test_end_offsets_of_a_missing_topic_names_it(stack: Settings) -> None:
    missing = f"c2c.test.missing.{uuid.uuid4().hex[:8]}"
    with pytest.raises(ServiceError, match=missing):
        end_offsets(stack, [missing])
