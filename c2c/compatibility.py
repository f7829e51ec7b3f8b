"""Explaining why a new schema cannot read data written with an old one.

The registry decides; some registries (Apicurio's ccompat API among them) answer a
compatibility test with a bare false. :func:`explain` gives the reasons, from Apache Avro's
own reader/writer compatibility checker, so `c2c schemas check` can say what to fix.
"""

from __future__ import annotations

from typing import Any

from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType
from avro.schema import parse

__all__ = ["explain", "removed_required_fields"]

_WORDS = {
    "reader_field_missing_default_value": "a field was added without a default",
    "type_mismatch": "a field's type changed",
    "missing_enum_symbols": "enum symbols were removed",
    "missing_union_branch": "a union lost a branch",
    "name_mismatch": "a named type was renamed",
    "fixed_size_mismatch": "a fixed type changed size",
}


def explain(reader_text: str, writer_text: str) -> list[str]:
    """Why ``reader_text`` cannot read data written with ``writer_text`` ([] if it can)."""
    result = ReaderWriterCompatibilityChecker().get_compatibility(
        parse(reader_text), parse(writer_text)
    )
    if result.compatibility is SchemaCompatibilityType.compatible:
        return []
    kinds = sorted({_WORDS.get(kind.value, kind.value) for kind in result.incompatibilities})
    details = sorted(f"{message}" for message in result.messages)
    where = sorted(result.locations)
    return [*kinds, f"details: {', '.join(details)}", f"at {', '.join(where)}"]


def removed_required_fields(new: Any, old: Any, path: str = "") -> list[str]:
    """Dotted paths of fields that ``old`` has without a default and ``new`` drops.

    The registry's BACKWARD_TRANSITIVE rule allows removing them (a new reader ignores
    them), but consumers still on the old schema could not read data written without them.
    The project refuses such a change: give the field a default in one version first.
    """
    old_record = _record(old)
    new_record = _record(new)
    if old_record is None or new_record is None:
        return []
    new_fields = {field["name"]: field for field in new_record.get("fields", [])}
    removed: list[str] = []
    for field in old_record.get("fields", []):
        where = f"{path}{field['name']}"
        if field["name"] not in new_fields:
            if "default" not in field:
                removed.append(where)
            continue
        removed.extend(
            removed_required_fields(new_fields[field["name"]]["type"], field["type"], where + ".")
        )
    return removed


def _record(schema: Any) -> dict[str, Any] | None:
    if isinstance(schema, dict) and schema.get("type") == "record":
        return schema
    if isinstance(schema, dict) and isinstance(schema.get("type"), dict):
        return _record(schema["type"])
    if isinstance(schema, list):
        records = [branch for branch in schema if _record(branch) is not None]
        return _record(records[0]) if len(records) == 1 else None
    return None
