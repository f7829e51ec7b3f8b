"""Encode and decode rates of our Avro serde against confluent-kafka's, in the same run.

For each raw and linked event type: events/s for our encoder and decoder (Confluent wire
format included; the decoder compiled for the schema, c2c._avro_compiled), the same decoder
with compilation off (fastavro underneath, as before), confluent-kafka's AvroSerializer and
AvroDeserializer on the same events, and plain fastavro without framing (the library's raw
limit). Medians of 5 interleaved runs, one core.

    .venv/bin/python -m bench.serde [--events N]

Needs the registry (`c2c services up`); registers the schemas if needed.
"""

from __future__ import annotations

import argparse
import io
from typing import Any

from confluent_kafka.schema_registry import topic_subject_name_strategy
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from fastavro import parse_schema, schemaless_reader, schemaless_writer

from bench._harness import compare_rates, fastavro_decoder, print_table
from c2c.examples import RAW_KINDS, example_linked, example_raw
from c2c.kafka import ensure_topics
from c2c.registry import SchemaRegistry
from c2c.settings import load_settings
from c2c.topics import CATALOGUE, get_topic


def _rates(
    registry: SchemaRegistry, topic_name: str, events: list[dict[str, Any]]
) -> dict[str, float]:
    topic = get_topic(topic_name)
    text = registry.library.resolve_text(topic.schema)
    context = SerializationContext(topic.name, MessageField.VALUE)
    encoder = registry.encoder(topic)
    decoder = registry.decoder(topic)
    schema_id = registry.schema_id(topic)
    uncompiled = fastavro_decoder(registry, topic)
    # Topic name strategy, as ours: confluent-kafka 2.16 otherwise asks the registry for
    # subject "associations" first (an endpoint Apicurio answers 404, and once hung on).
    serializer = AvroSerializer(
        registry.client,
        text,
        conf={
            "auto.register.schemas": False,
            "use.latest.version": True,
            "subject.name.strategy": topic_subject_name_strategy,
        },
    )
    deserializer = AvroDeserializer(
        registry.client, text, conf={"subject.name.strategy": topic_subject_name_strategy}
    )
    parsed = parse_schema(registry.library.resolve(topic.schema))

    encoded = [encoder.encode(event) for event in events]
    assert serializer(events[0], context) == encoded[0]  # same bytes: a fair comparison
    bodies = [data[5:] for data in encoded]
    assert decoder.compiled(schema_id)
    assert [decoder.decode(d) for d in encoded[:50]] == [uncompiled.decode(d) for d in encoded[:50]]

    def ours_encode() -> int:
        for event in events:
            encoder.encode(event)
        return len(events)

    def theirs_encode() -> int:
        for event in events:
            serializer(event, context)
        return len(events)

    def raw_encode() -> int:
        for event in events:
            buffer = io.BytesIO()
            schemaless_writer(buffer, parsed, event)
            buffer.getvalue()
        return len(events)

    def ours_decode() -> int:
        for data in encoded:
            decoder.decode(data)
        return len(encoded)

    def uncompiled_decode() -> int:
        for data in encoded:
            uncompiled.decode(data)
        return len(encoded)

    def theirs_decode() -> int:
        for data in encoded:
            deserializer(data, context)
        return len(encoded)

    def raw_decode() -> int:
        for body in bodies:
            schemaless_reader(io.BytesIO(body), parsed, None)
        return len(bodies)

    return compare_rates(
        {
            "ours_enc": ours_encode,
            "cf_enc": theirs_encode,
            "fa_enc": raw_encode,
            "ours_dec": ours_decode,
            "fa_wire_dec": uncompiled_decode,
            "cf_dec": theirs_decode,
            "fa_dec": raw_decode,
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000, help="events per type and run")
    args = parser.parse_args()

    settings = load_settings()
    ensure_topics(settings, CATALOGUE)
    registry = SchemaRegistry(settings)
    registry.register_all()

    rows = []
    for kind in RAW_KINDS:
        for topic_name, make in (
            (f"c2c.raw.{kind}", example_raw),
            (f"c2c.linked.{kind}", example_linked),
        ):
            events = [make(kind, i) for i in range(args.events)]
            r = _rates(registry, topic_name, events)
            rows.append(
                [
                    topic_name,
                    f"{r['ours_enc']:,.0f}",
                    f"{r['cf_enc']:,.0f}",
                    f"{r['fa_enc']:,.0f}",
                    f"{r['ours_enc'] / r['cf_enc']:.2f}x",
                    f"{r['ours_dec']:,.0f}",
                    f"{r['fa_wire_dec']:,.0f}",
                    f"{r['cf_dec']:,.0f}",
                    f"{r['fa_dec']:,.0f}",
                    f"{r['ours_dec'] / r['fa_wire_dec']:.2f}x",
                    f"{r['ours_dec'] / r['cf_dec']:.2f}x",
                ]
            )
    print(
        f"events/s, median of 5 interleaved runs of {args.events:,} events, one core; "
        "enc/dec = Confluent wire format; compiled dec = ours; ours via fastavro = the same "
        "decoder, compilation off; fastavro = raw body, no framing"
    )
    print_table(
        [
            "topic",
            "ours enc",
            "confluent enc",
            "fastavro enc",
            "enc ratio",
            "compiled dec",
            "ours via fastavro",
            "confluent dec",
            "fastavro dec",
            "vs via fastavro",
            "vs confluent",
        ],
        rows,
    )


if __name__ == "__main__":
    main()
