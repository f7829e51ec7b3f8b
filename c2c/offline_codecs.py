"""The catalogue's Avro codecs with no schema registry: every topic's schema under an id
fixed here, for tests, benches and tools that encode and decode in one process (the
registry gives the ids that travel on Kafka)."""

from __future__ import annotations

from c2c.schemas import SchemaLibrary
from c2c.serde import AvroDecoder, AvroEncoder
from c2c.topics import CATALOGUE

__all__ = ["OfflineCodecs"]


class OfflineCodecs:
    """An encoder and a decoder for every topic of the catalogue with a schema; topic
    ``k`` (in the catalogue's order) under schema id ``first_id + k``."""

    def __init__(self, first_id: int = 100) -> None:
        library = SchemaLibrary()
        self.schemas = {t.name: library.resolve(t.schema) for t in CATALOGUE if t.schema}
        self.ids = {name: first_id + n for n, name in enumerate(self.schemas)}
        self._by_id = {self.ids[name]: schema for name, schema in self.schemas.items()}
        self.encoders = {name: AvroEncoder(s, self.ids[name]) for name, s in self.schemas.items()}

    def decoder(self, topic: str) -> AvroDecoder:
        """A decoder of ``topic``'s messages (any id of this set as the writer's)."""
        return AvroDecoder(
            self.schemas[topic], self._by_id.__getitem__, reader_schema_id=self.ids[topic]
        )
