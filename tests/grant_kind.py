"""A kind of event the project does not have, for the DDL renderer's tests: its linked
record is of another shape than the five kinds' (a long, a nullable double, a nullable date,
an enum, a bounded int that needs 32 bits, the enum again and a timestamp in microseconds)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from c2c.schemas import SCHEMA_DIR, SchemaLibrary

__all__ = ["grant_library"]


def grant_library(tmp_path: Path) -> SchemaLibrary:
    """The project's schemas, copied under ``tmp_path``, with LinkedGrant and its facts."""
    schemas = tmp_path / "avro"
    shutil.copytree(SCHEMA_DIR, schemas)
    facts = {
        "type": "record",
        "name": "GrantFacts",
        "namespace": "org.c2cstream.facts",
        "fields": [
            {"name": "grant_id", "type": "long", "doc": "Grant's number."},
            {"name": "hours", "type": ["null", "double"], "default": None},
            {"name": "ends", "type": ["null", {"type": "int", "logicalType": "date"}]},
            {"name": "term", "type": "org.c2cstream.common.Term"},
            {"name": "cents", "type": "int", "minimum": 0, "maximum": 100000},
            # a second use of a named type: the resolved schema refers to it by name
            {"name": "next_term", "type": ["null", "org.c2cstream.common.Term"]},
            {"name": "signed", "type": {"type": "long", "logicalType": "timestamp-micros"}},
        ],
    }
    linked = json.loads((SCHEMA_DIR / "linked" / "LinkedWage.avsc").read_text())
    linked["name"] = "LinkedGrant"
    for field in linked["fields"]:
        if field["name"] == "facts":
            field["type"] = "org.c2cstream.facts.GrantFacts"
    (schemas / "facts" / "GrantFacts.avsc").write_text(json.dumps(facts))
    (schemas / "linked" / "LinkedGrant.avsc").write_text(json.dumps(linked))
    return SchemaLibrary(schemas)
