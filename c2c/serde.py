"""Avro in Confluent wire format, fast: compiled encoders and decoders, fastavro for the rest.

Wire format: magic byte 0, the writer schema's registry id as 4 bytes big-endian, then the
Avro binary body. Messages written by confluent-kafka's AvroSerializer decode here and
ours decode there. A message written with the reader's own schema is read by a decoder
compiled for it (c2c._avro_compiled: the same values as fastavro, faster); one written with
an older schema version is read into the current reader schema by fastavro (Avro schema
resolution); unknown ids are fetched from the registry once.

This module knows nothing of Kafka: it turns records into bytes and back. Errors are
:class:`SerdeError` with a stable code (serde.not_wire_format, serde.unknown_schema_id,
serde.decode, serde.encode) so that consumers can route them to the dead-letter topic.
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Callable, Mapping
from typing import Any

from fastavro import parse_schema, schemaless_reader, schemaless_writer

from c2c._avro_compiled import CompiledDecoder, UnsupportedSchema, compile_decoder, compile_encoder
from c2c.errors import C2CError

__all__ = [
    "MAGIC_BYTE",
    "AvroDecoder",
    "AvroEncoder",
    "SerdeError",
    "frame",
    "schema_id_of",
]

MAGIC_BYTE = 0
_HEADER_SIZE = 5


class SerdeError(C2CError):
    """A message could not be encoded or decoded; ``code`` says why."""

    code = "serde"


def frame(schema_id: int, body: bytes) -> bytes:
    """Wrap an Avro body in the Confluent wire format."""
    return bytes((MAGIC_BYTE,)) + schema_id.to_bytes(4, "big") + body


def schema_id_of(data: bytes) -> int:
    """The schema id of a wire-format message; SerdeError if it is not in wire format."""
    if len(data) < _HEADER_SIZE or data[0] != MAGIC_BYTE:
        # the first byte only: a message that is not Avro may be a provider's row, and its
        # first bytes an SSN (the original stays in the dead letter)
        shown = f"with byte 0x{data[0]:02x}" if data else "(empty)"
        raise SerdeError(
            f"not in Confluent wire format: expected magic byte 0 and a 4-byte schema id, "
            f"got {len(data)} byte(s) starting {shown}",
            code="serde.not_wire_format",
        )
    return int.from_bytes(data[1:_HEADER_SIZE], "big")


class AvroEncoder:
    """Encodes records of one schema, registered under ``schema_id``, to wire format.

    Uses an encoder compiled for the schema (c2c._avro_compiled: same bytes as fastavro,
    several times faster) and fastavro for schemas outside the compiled subset.
    """

    def __init__(self, schema: Mapping[str, Any], schema_id: int) -> None:
        self.schema_id = schema_id
        self._parsed = parse_schema(dict(schema))
        self._name = str(schema.get("name", "record"))
        self._header = bytes((MAGIC_BYTE,)) + schema_id.to_bytes(4, "big")
        self._buffer = io.BytesIO()
        try:
            self._compiled: Callable[[Mapping[str, Any]], bytes] | None = compile_encoder(schema)
        except UnsupportedSchema:
            self._compiled = None

    def encode(self, record: Mapping[str, Any]) -> bytes:
        """The wire-format bytes of ``record``; SerdeError naming the problem if it does not
        fit the schema. Not thread-safe: use one encoder per thread."""
        if self._compiled is not None:
            try:
                return self._header + self._compiled(record)
            except (ValueError, TypeError, KeyError, AttributeError) as exc:
                raise SerdeError(
                    f"record does not fit schema {self._name} (id {self.schema_id}): {exc!r}",
                    code="serde.encode",
                ) from exc
        return self._encode_fastavro(record)

    def _encode_fastavro(self, record: Mapping[str, Any]) -> bytes:
        buffer = self._buffer
        buffer.seek(0)
        buffer.truncate()
        buffer.write(self._header)
        try:
            schemaless_writer(buffer, self._parsed, record)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise SerdeError(
                f"record does not fit schema {self._name} (id {self.schema_id}): {exc!r}",
                code="serde.encode",
            ) from exc
        return buffer.getvalue()


WriterSchemaLookup = Callable[[int], Mapping[str, Any]]


class AvroDecoder:
    """Decodes wire-format messages into one reader schema.

    ``writer_schema`` fetches the schema registered under an id (from the registry); each
    is fetched and parsed once. A writer schema equal to the reader schema (the usual case)
    is read by a compiled decoder (``compiled=False``: fastavro for it too); any other is
    resolved into the reader schema by fastavro.

    ``uuid_text``: the compiled decoder gives uuid fields as their text (what ``str()`` of
    the uuid.UUID gives; :meth:`with_uuid_text`), for a reader that wants only that; a
    record resolved by fastavro still carries uuid.UUID objects, so such a reader takes
    ``str()`` of either.
    """

    def __init__(
        self,
        reader_schema: Mapping[str, Any],
        writer_schema: WriterSchemaLookup,
        *,
        reader_schema_id: int | None = None,
        compiled: bool = True,
        uuid_text: bool = False,
    ) -> None:
        self._arguments = (dict(reader_schema), writer_schema, reader_schema_id, compiled)
        self.uuid_text = uuid_text
        self._reader = parse_schema(dict(reader_schema))
        self._reader_text = _canonical(reader_schema)
        self._name = str(reader_schema.get("name", "record"))
        self._lookup = writer_schema
        self._writers: dict[int, Any] = {}
        self._same_as_reader: set[int] = set()
        self._compiled: dict[int, CompiledDecoder] = {}
        self._by_header: dict[bytes, CompiledDecoder] = {}  # the same, by the 5 header bytes
        self._reader_compiled: CompiledDecoder | None = None
        if compiled and reader_schema.get("type") == "record":
            with contextlib.suppress(UnsupportedSchema):  # outside the subset: fastavro
                self._reader_compiled = compile_decoder(reader_schema, uuid_text=uuid_text)
        if reader_schema_id is not None:
            self._adopt(reader_schema_id, self._reader, same=True)

    def with_uuid_text(self) -> AvroDecoder:
        """A decoder like this one whose compiled decoder gives uuid fields as text (see
        the class docstring); this one if it already does."""
        if self.uuid_text:
            return self
        reader, lookup, reader_id, compiled = self._arguments
        return AvroDecoder(
            reader, lookup, reader_schema_id=reader_id, compiled=compiled, uuid_text=True
        )

    def _adopt(self, schema_id: int, parsed: Any, *, same: bool) -> None:
        self._writers[schema_id] = parsed
        if same:
            self._same_as_reader.add(schema_id)
            if self._reader_compiled is not None:
                self._compiled[schema_id] = self._reader_compiled
                self._by_header[frame(schema_id, b"")] = self._reader_compiled

    def compiled(self, schema_id: int) -> bool:
        """Whether messages written under ``schema_id`` are read by the compiled decoder
        (known once one has been decoded)."""
        return schema_id in self._compiled

    def _writer(self, schema_id: int) -> Any:
        try:
            schema = self._lookup(schema_id)
        except Exception as exc:  # the lookup is the registry client: any failure means unknown
            raise SerdeError(
                f"schema id {schema_id} is not known to the registry: {exc}",
                code="serde.unknown_schema_id",
            ) from exc
        parsed = parse_schema(dict(schema))
        self._adopt(schema_id, parsed, same=_canonical(schema) == self._reader_text)
        return parsed

    def decode(self, data: bytes) -> dict[str, Any]:
        """The record in ``data``, read into the reader schema. SerdeError (code
        serde.not_wire_format, serde.unknown_schema_id or serde.decode) says what was wrong."""
        if type(data) is not bytes:  # bytes fields must come out as bytes (and a key hashes)
            data = bytes(data)
        compiled = self._by_header.get(data[:_HEADER_SIZE])  # one look-up for the usual case
        if compiled is not None:
            try:
                record, end = compiled.decode(data, _HEADER_SIZE)
            except Exception:  # IndexError, MalformedAvro, UnicodeDecodeError...: see below
                pass
            else:
                if end == len(data):
                    return record  # type: ignore[no-any-return]
            # bad bytes: the tracking decoder reads them again and says what and where
            why = compiled.explain(data, _HEADER_SIZE)
            raise self._malformed(schema_id_of(data), data, why)
        schema_id = schema_id_of(data)
        writer = self._writers.get(schema_id)
        if writer is None:
            writer = self._writer(schema_id)
            if schema_id in self._compiled:
                return self.decode(data)  # now by the compiled decoder
        stream = io.BytesIO(data)
        stream.seek(_HEADER_SIZE)
        try:
            if schema_id in self._same_as_reader:
                record = schemaless_reader(stream, writer, None)
            else:
                record = schemaless_reader(stream, writer, self._reader)
        except Exception as exc:  # fastavro raises many types for corrupt or foreign bodies
            raise self._malformed(schema_id, data, repr(exc)) from exc
        if stream.tell() != len(data):
            raise self._malformed(
                schema_id,
                data,
                f"{len(data) - stream.tell()} byte(s) left over after the record: the body "
                "belongs to another schema",
            )
        if not isinstance(record, dict):
            raise SerdeError(f"schema id {schema_id} is not a record", code="serde.decode")
        return record

    def _malformed(self, schema_id: int, data: bytes, why: str) -> SerdeError:
        return SerdeError(
            f"body ({len(data) - _HEADER_SIZE} bytes) does not decode as schema id {schema_id} "
            f"into {self._name}: {why}",
            code="serde.decode",
        )


def _canonical(schema: Mapping[str, Any]) -> str:
    """A schema's JSON with sorted keys: equal text, equal schema (docs included: a writer
    that differs from the reader only in a doc is still resolved, correctly, by fastavro)."""
    return json.dumps(schema, sort_keys=True, separators=(",", ":"))
