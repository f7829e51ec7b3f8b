"""The compiled row encoder against the reference path (mapper, compiled validator, Avro
encoder): on every row of every format, changed every way, it gives the very message the
reference gives, or None (then the reference decides); and it takes the rows that are
plainly good, so that it is the path rows take."""

from __future__ import annotations

import csv
import datetime
import hashlib
import hmac
import uuid
from pathlib import Path
from typing import Any

import pytest

from c2c.schemas import SchemaLibrary
from c2c.serde import AvroEncoder
from c2c.topics import get_topic
from c2c.validation import date_limits
from producers.formats import FORMATS, KIND_TOPICS
from producers.mapping import MappedRow, RowMapper, RowRejected, event_id_for
from producers.row_encoder import RowEncode, compile_row_encoder

EXAMPLES = Path(__file__).resolve().parents[2] / "producers" / "examples"
LIBRARY = SchemaLibrary()
SCHEMAS = {topic: LIBRARY.resolve(get_topic(topic).schema) for topic in KIND_TOPICS.values()}
IDS = {topic: 300 + n for n, topic in enumerate(KIND_TOPICS.values())}
ENCODERS = {topic: AvroEncoder(SCHEMAS[topic], IDS[topic]) for topic in SCHEMAS}
# The day the date limits are taken on (c2c.validation.DATE_RULES), fixed for the tests.
DATES = date_limits(datetime.date(2026, 12, 6))

# Cells right and wrong for every kind of column (cells reach both paths stripped).
_CELLS = ["", "x" * 101, "x" * 150, "12A45678Z", "123456789", "12345678", "1234567890",
          "912345678", "٣", "2031-02-30", "2024-02-29", "02/29/2023", "19890101", "1989", "2101",
          "0000", "0000-0001", "00001", "2024-2025", "2024-2026", "2025Q5", "2025Q1", "1990Q1",
          "-5.00", "$1,234.56", "1.234", "99999999999999.00", "999999999999.99", "1e3", "1E-9",
          "NaN", "Infinity", "0.00", "Y", "yes", "TRUE", "maybe", "F", "f", "Q", "06037", "07001",
          "9999", "110701", "11.07", "ENRL", "enrl", "CMPL", "NOPE", "KG", "TK", "13", "100",
          "REQUEST", "revoke", "OPERATOR", "O'Brien\"); DROP TABLE x;--", "Zoë",
          "a\x00b",
          # at and past the date limits as of DATES.today
          "1899-12-31", "1900-01-01", "1989-12-31", "1990-01-01", "2026-12-06", "2026-12-07",
          "2027-01-06", "2027-01-07", "9999-12-31", "0001-01-01", "0999-01-01", "12/31/9999",
          "00010101", "2026Q4", "2027Q1", "2026-2027", "2027-2028", "1989-1990",
          # amounts past Decimal's context (quantize raised InvalidOperation)
          "1e26", "-1E+30", "100000000000000000000000000.001"]  # fmt: skip


def _example(source: str) -> tuple[list[str], list[list[str]]]:
    with (EXAMPLES / f"{source}.csv").open(newline="", encoding="utf-8") as handle:
        table = list(csv.reader(handle))
    return table[0], table[1:]


def _reference(mapper: RowMapper, columns: tuple[str, ...], cells: list[str], raw: bytes) -> Any:
    """What the reference path makes of a row: its message, or its rejection."""
    try:
        mapped = mapper.for_columns(columns)(cells, raw)
    except RowRejected as exc:
        return str(exc)
    assert isinstance(mapped, MappedRow)
    value = ENCODERS[mapped.topic].encode(mapped.event)
    return (mapped.topic, mapped.key, value, mapped.event["event_id"], mapped.event["event_time"])


def _compiled(
    source: str, ids: dict[str, int] | None
) -> tuple[list[str], list[list[str]], RowMapper, RowEncode]:
    """The example's header and rows, the reference mapper and the compiled encoder."""
    header, rows = _example(source)
    fast = compile_row_encoder(FORMATS[source], tuple(header), SCHEMAS, ids, DATES)
    assert fast is not None
    return header, rows, RowMapper(source, FORMATS[source], dates=DATES), fast


@pytest.mark.parametrize("source", list(FORMATS))
def test_rows_changed_every_way_encode_as_the_reference_or_go_to_it(source: str) -> None:
    header, rows, mapper, fast = _compiled(source, IDS)
    columns = tuple(header)
    taken = referred = rejected = 0
    for base in rows[:3]:
        for at, _column in enumerate(header):
            for cell in _CELLS:
                cells = list(base)
                cells[at] = cell
                raw = ",".join(cells).encode()
                expected = _reference(mapper, columns, cells, raw)
                got = fast(cells, raw)
                if got is None:
                    referred += 1
                    rejected += isinstance(expected, str)
                else:
                    assert got == expected, (header[at], cell)
                    taken += 1
    assert taken
    assert referred
    assert rejected > 0.8 * referred  # what it leaves to the reference is mostly bad


@pytest.mark.parametrize("source", list(FORMATS))
def test_good_rows_take_the_compiled_path_with_the_reference_bytes(source: str) -> None:
    header, rows, mapper, fast = _compiled(source, IDS)
    dry = _compiled(source, None)[3]
    columns = tuple(header)
    for cells in rows:
        raw = ",".join(cells).encode()
        expected = _reference(mapper, columns, cells, raw)
        assert fast(cells, raw) == expected
        assert dry(cells, raw) == (expected[0], expected[1], b"", *expected[3:])


@pytest.mark.parametrize("source", list(FORMATS))
def test_headers_in_another_order_or_without_optional_columns(source: str) -> None:
    header, rows = _example(source)
    mapper = RowMapper(source, FORMATS[source], dates=DATES)
    required = set(FORMATS[source].required_columns())
    taken = 0
    orders = [header[::-1]] + [
        [name for name in header if name != dropped]
        for dropped in header
        if dropped not in required
    ]
    for order in orders:
        columns = tuple(order)
        fast = compile_row_encoder(FORMATS[source], columns, SCHEMAS, IDS, DATES)
        for base in rows:
            by_name = dict(zip(header, base, strict=True))
            cells = [by_name[name] for name in order]
            raw = ",".join(cells).encode()
            expected = _reference(mapper, columns, cells, raw)
            got = None if fast is None else fast(cells, raw)
            # without a column the schema requires, the reference rejects the row
            assert got == expected or (got is None and isinstance(expected, str)), order
            taken += got is not None
    assert taken >= len(rows) * len(orders) // 2


def test_a_header_every_row_of_which_the_reference_rejects_gets_no_encoder() -> None:
    header, _ = _example("k12")
    without = tuple(name for name in header if name != "StudentBirthDate")  # required
    assert compile_row_encoder(FORMATS["k12"], without, SCHEMAS, IDS) is None
    unknown = (*header, "Nickname")  # a column the format does not map is ignored
    assert compile_row_encoder(FORMATS["k12"], unknown, SCHEMAS, IDS) is not None


def test_event_ids_are_the_rfc4122_layout_of_a_keyed_hash_of_provider_record_and_content() -> None:
    secret = b"a secret of the identity zone, for this test only"
    for provider, record, content in [
        ("edd", "W-1", b"a,b"),
        ("k12", "K\udce9", b"\xe9"),
        ("", "", b""),
    ]:
        key = hmac.digest(secret, b"c2c-pseudonym|event-id|" + provider.encode(), "sha256")
        message = b"%b|%b" % (record.encode(errors="surrogateescape"), content)
        digest = hmac.digest(key, message, "sha256")
        keyed = event_id_for(provider, record, content, secret=secret)
        assert keyed == str(uuid.UUID(bytes=digest[:16], version=5))
        # without the secret, neither the unkeyed hash of the row nor another key gives it
        namespace = uuid.UUID("6f1c2c00-5a1e-4c2c-9d2c-c2c0c2c0c2c0").bytes
        unkeyed = hashlib.sha256(
            b"%b|%b|%b"
            % (namespace + provider.encode(), record.encode(errors="surrogateescape"), content)
        ).digest()
        assert keyed != str(uuid.UUID(bytes=unkeyed[:16], version=5))
        assert keyed != str(uuid.UUID(bytes=hashlib.sha256(message).digest()[:16], version=5))
        assert keyed != event_id_for(provider, record, content, secret=b"another secret")


def test_a_year_zero_is_a_rejected_row_not_a_crash() -> None:
    header, rows = _example("k12")
    mapper = RowMapper("k12", FORMATS["k12"], dates=DATES)
    row = dict(zip(header, rows[0], strict=True))
    row["AcademicYearID"], row["EnrollmentStartDate"] = "0000-0001", ""
    with pytest.raises(RowRejected, match="no date to place the event in time"):
        mapper.map(row)
