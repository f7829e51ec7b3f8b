"""Column-oriented inserts through one clickhouse-connect client, each table's insert
context made once; a sink's batch as those inserts (:func:`write_batch`).

clickhouse-connect asks the server ``DESCRIBE TABLE`` before every insert given no column
types (a query of about 1 ms in embedded chdb), and the sink inserts into up to eight
tables every half second. :class:`TableWriter` keeps one ``InsertContext`` per table and
column list, made at the first insert, and gives each insert its data; its settings ask
for one thread (:data:`INSERT_SETTINGS`): the sink's batches are one block of rows in
Native format, which a pool of threads does not read faster, and starting one costs
about 1 ms of CPU per insert here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from clickhouse_connect.driver.insert import InsertContext

from sinks.batch import Batch
from sinks.optouts import OPTOUT_PERSON_COLUMNS
from sinks.rows import (
    DIM_PERSON_COLUMNS,
    PERSON_MAP_COLUMNS,
    PUBLISHED_AT,
    columns,
    dim_person_of,
)
from sinks.wire import WIRE_TABLES, WireFormat

__all__ = ["INSERT_SETTINGS", "TableWriter", "write_batch"]

# Query settings of every insert (any ClickHouse server takes them).
INSERT_SETTINGS: Mapping[str, Any] = {
    "max_threads": 1,
    "max_insert_threads": 1,
    "input_format_parallel_parsing": 0,
}


# Rows a container is parsed into one block of, at most: a server cuts an insert's rows into
# blocks of max_insert_block_size (about a million), and the wire tables' views write each
# block as it comes, so a container refused at a later block would have written the
# earlier ones (copies collapse on retry, but a refused insert should write nothing). A
# sink's container holds at most two batches (C2C_SINK_BATCH_ROWS is at most 1,000,000).
WIRE_BLOCK_ROWS = 4_000_000


class TableWriter:
    """Inserts rows into tables through ``client`` (a clickhouse-connect client), one
    insert per call. Not thread-safe: the caller serializes calls (the sink holds its
    lock). A failed insert raises what the client raised and leaves the writer usable."""

    def __init__(self, client: Any, settings: Mapping[str, Any] = INSERT_SETTINGS) -> None:
        self.client = client
        self._settings = dict(settings)
        self._contexts: dict[tuple[str, tuple[str, ...]], InsertContext] = {}

    def insert(
        self,
        table: str,
        names: Sequence[str],
        rows: Iterable[Sequence[Any]],
        more: Sequence[Sequence[Any]] = (),
    ) -> int:
        """Insert ``rows`` (values in ``names`` order) into ``table``, column-oriented
        (clickhouse-connect converts rows to columns itself otherwise, at a third of the
        speed), and after their values the columns ``more`` (one value per row each, for
        the last names); the rows written, 0 (and no insert) when there are none."""
        data = list(zip(*rows, strict=True))  # the columns, as tuples
        if not data:
            return 0
        data += map(tuple, more)
        key = (table, tuple(names))
        context = self._contexts.get(key)
        if context is None:
            context = self.client.create_insert_context(
                table, column_names=list(names), column_oriented=True, settings=self._settings
            )
            self._contexts[key] = context
        count = len(data[0])
        try:
            self.client.insert(data=data, context=context)  # the client empties the context
        finally:
            # ... but the context still refers to this list (clickhouse-connect's
            # InsertContext.data = None leaves its block columns, and a context is in a
            # reference cycle with its own bound method): emptied, the columns are freed
            # now instead of staying alive until the garbage collector's next run, which
            # would traverse every value of them (10 to 30 ms after each of the sink's
            # batches, about 4% of reading a backlog)
            data.clear()
        return count

    def insert_container(self, table: str, container: bytes) -> None:
        """Insert an Avro object container (sinks/wire.py) into ``table``, whose columns
        are the container's fields by name: ClickHouse decodes it."""
        settings = {**self._settings, "max_insert_block_size": WIRE_BLOCK_ROWS}
        self.client.raw_insert(table, None, container, settings=settings, fmt="Avro")


def write_batch(target: Any, batch: Batch, formats: Mapping[str, WireFormat] | None = None) -> None:
    """Insert ``batch``, one column-oriented insert per table, through ``target``: a
    :class:`TableWriter` (the sink's, which keeps each table's insert context), or a
    clickhouse-connect client; the wire messages of a fact table as one container
    (``formats``: each fact table's) into its wire table. Each fact row gets when its
    message was published (``batch.published``; 1970 where not known). Raises what the
    client raised."""
    writer = target if isinstance(target, TableWriter) else TableWriter(target)
    for table, messages in batch.wire.items():
        if messages:
            assert formats is not None, "wire messages need their tables' formats"
            container = formats[table].container(
                [m.value() or b"" for m in messages], [max(0, m.timestamp()[1]) for m in messages]
            )
            writer.insert_container(WIRE_TABLES[table], container)
    published = batch.published
    for table, rows in batch.facts.items():
        times = [max(0, published.get(id(row), 0)) for row in rows]
        writer.insert(table, (*columns(table), PUBLISHED_AT), rows, (times,))
    writer.insert("person_map", PERSON_MAP_COLUMNS, batch.merges)
    writer.insert("dim_person", DIM_PERSON_COLUMNS, map(dim_person_of, batch.persons.values()))
    writer.insert("optout_person", OPTOUT_PERSON_COLUMNS, batch.optout_persons)
