"""When the sink writes a batch it has read everything for: at once after a backlog, else
when its wait ends (sinks.sink.written_once_read)."""

from __future__ import annotations

from sinks.sink import Batch, written_once_read


def _batch(**rows: int) -> Batch:
    batch = Batch()
    for table, count in rows.items():
        batch.facts[table] = [[index] for index in range(count)]
    return batch


def test_a_backlogs_last_batch_is_written_at_once_a_streams_batches_wait() -> None:
    # after a full batch (a backlog), whatever is left goes once everything is read
    assert written_once_read(_batch(fact_wage=3), 20_000, after_full=True)
    # a steady stream's batch of a few hundred rows waits to gather more
    assert not written_once_read(_batch(fact_wage=300, fact_enrollment=200), 20_000, False)
    # a tenth of a full batch in one table is an insert worth making now
    assert written_once_read(_batch(fact_wage=2_000), 20_000, after_full=False)
    assert not written_once_read(_batch(fact_wage=1_999, fact_enrollment=1_999), 20_000, False)
    # the person dimension's insert counts as one of the batch's inserts
    persons = _batch()
    persons.persons = {f"P{index}": [] for index in range(2_000)}
    assert written_once_read(persons, 20_000, after_full=False)
    assert not written_once_read(Batch(), 20_000, after_full=False)
