import json
from pathlib import Path

import pytest
from fastavro import parse_schema

from c2c.schemas import SchemaError, SchemaLibrary
from c2c.topics import CATALOGUE


def test_every_catalogue_schema_resolves_to_one_valid_avro_schema() -> None:
    library = SchemaLibrary()
    for topic in CATALOGUE:
        if topic.schema:
            parse_schema(library.resolve(topic.schema))


def test_named_types_are_defined_once_then_referenced_by_name() -> None:
    text = SchemaLibrary().resolve_text("org.c2cstream.raw.EnrollmentEvent")
    assert text.count('"name":"Provider"') == 1
    assert text.count('"name":"Sex"') == 1  # PersonIdentity.sex defines it once
    assert '"type":"enum","name":"Term"' in text


def test_linked_schemas_carry_no_identifying_fields() -> None:
    library = SchemaLibrary()
    pii = {
        "ssn",
        "itin",
        "ssid",
        "first_name",
        "middle_name",
        "last_name",
        "birth_date",
        "zip",
        "state_aid_id",
        "source_person_id",
        "person",
    }

    def field_names(node: object) -> set[str]:
        names: set[str] = set()
        if isinstance(node, dict):
            for field in node.get("fields", []):
                names.add(field["name"])
                names |= field_names(field["type"])
            for key in ("items", "values", "type"):
                if isinstance(node.get(key), (dict, list)):
                    names |= field_names(node[key])
        elif isinstance(node, list):
            for item in node:
                names |= field_names(item)
        return names

    for topic in CATALOGUE:
        if topic.zone == "deidentified":
            assert not field_names(library.resolve(topic.schema)) & pii, topic.name


def _write(root: Path, relative: str, schema: dict[str, object]) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(schema))


def test_unknown_reference_names_the_file(tmp_path: Path) -> None:
    _write(
        tmp_path,
        "a/Thing.avsc",
        {
            "type": "record",
            "name": "Thing",
            "namespace": "x",
            "fields": [{"name": "f", "type": "x.Missing"}],
        },
    )
    with pytest.raises(SchemaError, match=r"Thing\.avsc: refers to 'x\.Missing'"):
        SchemaLibrary(tmp_path).resolve("x.Thing")


def test_file_must_be_named_for_its_type(tmp_path: Path) -> None:
    _write(tmp_path, "Wrong.avsc", {"type": "enum", "name": "Right", "symbols": ["A"]})
    with pytest.raises(SchemaError, match=r"name the file Right\.avsc"):
        SchemaLibrary(tmp_path)


def test_malformed_json_says_where(tmp_path: Path) -> None:
    (tmp_path / "Bad.avsc").write_text('{"type": "record",\n "name": }')
    with pytest.raises(SchemaError, match=r"Bad\.avsc: not JSON: line 2"):
        SchemaLibrary(tmp_path)
