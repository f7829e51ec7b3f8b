"""A Faust codec for Avro in Confluent wire format, using the project's serde.

Faust topics and records declared with ``value_serializer=avro_codec(registry, topic)``
read and write exactly what confluent-kafka and our producers do. Decoding errors surface
as SerdeError (code serde.*), so a Faust agent can route the message to the dead-letter
topic like any other consumer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from faust.serializers.codecs import Codec

from c2c.registry import SchemaRegistry
from c2c.serde import AvroDecoder, AvroEncoder
from c2c.topics import Topic

__all__ = ["AvroWireCodec", "avro_codec"]


class AvroWireCodec(Codec):
    """Encodes mappings (or Faust records) with ``encoder``; decodes with ``decoder``."""

    def __init__(self, encoder: AvroEncoder, decoder: AvroDecoder, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._encoder = encoder
        self._decoder = decoder

    def _dumps(self, obj: Any) -> bytes:
        if hasattr(obj, "asdict"):
            obj = obj.asdict()
        if not isinstance(obj, Mapping):
            raise TypeError(f"AvroWireCodec encodes mappings or Faust records, not {type(obj)!r}")
        return self._encoder.encode(obj)

    def _loads(self, s: bytes) -> Any:
        return self._decoder.decode(s)


def avro_codec(registry: SchemaRegistry, topic: Topic) -> AvroWireCodec:
    """A codec for ``topic``'s value schema, bound to its registered id."""
    return AvroWireCodec(registry.encoder(topic), registry.decoder(topic))
