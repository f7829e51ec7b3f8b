"""A provider format that cannot make valid events is refused before any row is read, with
what to change; the command line offers every registered format."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import click
import pytest

from c2c.schemas import SchemaLibrary
from c2c.settings import Settings
from cli.producing import produce
from producers import formats
from producers.files import produce_file, rejects_path
from producers.formats import FORMATS, FormatError, RecordType, format_problems, get_format

EXAMPLES = Path(__file__).resolve().parents[2] / "producers" / "examples"


@pytest.mark.parametrize("source", list(FORMATS))
def test_every_registered_format_can_make_valid_events(source: str) -> None:
    assert format_problems(source, FORMATS[source]) == []
    assert get_format(source) is FORMATS[source]
    assert (EXAMPLES / f"{source}.csv").exists()


def test_the_command_offers_every_registered_format() -> None:
    (source,) = [param for param in produce.params if param.name == "source"]
    assert isinstance(source.type, click.Choice)
    assert list(source.type.choices) == list(FORMATS)


def test_a_provider_the_enum_lacks_is_refused_before_a_row_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, settings: Settings
) -> None:
    monkeypatch.setitem(formats.FORMATS, "pcc", replace(formats.CTC, provider="pcc"))
    extract = tmp_path / "pcc.csv"
    extract.write_bytes((EXAMPLES / "ctc.csv").read_bytes())
    with pytest.raises(FormatError) as raised:
        produce_file(settings, "pcc", extract, dry_run=True, workers=1)
    message = str(raised.value)
    assert "the pcc format's provider 'pcc' (producers/formats.py)" in message
    symbols = SchemaLibrary().resolve(formats.PROVIDER_ENUM)["symbols"]
    assert f"schemas/avro/common/Provider.avsc: {', '.join(symbols)})" in message
    assert "Add 'pcc' at the end of its symbols" in message
    assert "`c2c schemas codegen`" in message
    assert message.endswith("[producer.format]")
    # before: every row rejected and dead-lettered as invalid ("provider 'pcc' is not one of")
    assert not rejects_path(extract).exists()


def test_a_kind_the_catalogue_lacks_is_named_with_the_file_to_change() -> None:
    grants = replace(
        formats.CSAC,
        provider="other",
        record_types={"": RecordType("grant", (), formats.CSAC.record_types[""].event_time)},
    )
    assert format_problems("grants", grants) == [
        "the grants format's record type '(every row)' makes 'grant' events, which "
        "c2c/kinds.py does not declare (completion, credential, enrollment, financial_aid, "
        "optout, wage); use one of those kinds, or declare a new kind there with its schemas"
    ]
