"""Generating pydantic models from the Avro schemas, so validation and schemas cannot drift.

`c2c schemas codegen` writes c2c/events.py; a test regenerates it and fails if the file is
out of date. Constraints are declared once, in the .avsc files, as extra field attributes
that Avro ignores: ``pattern``, ``minLength``, ``maxLength``, ``minimum``, ``maximum``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from c2c.schemas import SchemaLibrary
from c2c.topics import CATALOGUE

__all__ = ["EVENTS_MODULE", "render_models"]

EVENTS_MODULE = Path(__file__).resolve().parent / "events.py"

_HEADER = '''"""Pydantic models of the Avro records in schemas/avro/. GENERATED: do not edit.

Regenerate with `c2c schemas codegen` after changing a schema; tests/unit/test_codegen.py
fails while this file is out of date. Each model validates one record at the producer
boundary; ``model_dump()`` gives the dict that the Avro encoder writes.
"""

# ruff: noqa: E501

from __future__ import annotations

import datetime
import decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

'''

_PRIMITIVE = {
    "string": "str",
    "int": "int",
    "long": "int",
    "boolean": "bool",
    "double": "float",
    "float": "float",
    "bytes": "bytes",
    "null": "None",
}


class _Renderer:
    def __init__(self, library: SchemaLibrary) -> None:
        self.library = library
        self.enums: dict[str, list[str]] = {}
        self.records: dict[str, str] = {}
        self.order: list[str] = []

    def type_of(self, schema: Any) -> str:
        if isinstance(schema, str):
            if schema in _PRIMITIVE:
                return _PRIMITIVE[schema]
            return self.named(self.library.resolve(schema))
        if isinstance(schema, list):
            branches = [self.type_of(branch) for branch in schema if branch != "null"]
            if "null" in schema:
                branches.append("None")
            return " | ".join(branches)
        logical = schema.get("logicalType")
        if logical == "date":
            return "datetime.date"
        if logical in ("timestamp-millis", "timestamp-micros"):
            return "datetime.datetime"
        if logical == "decimal":
            return "decimal.Decimal"
        if logical == "uuid":
            return "str"
        if schema.get("type") in ("record", "enum"):
            return self.named(schema)
        if schema.get("type") == "array":
            return f"list[{self.type_of(schema['items'])}]"
        if schema.get("type") == "map":
            return f"dict[str, {self.type_of(schema['values'])}]"
        return self.type_of(schema["type"])

    def named(self, schema: dict[str, Any]) -> str:
        name = str(schema["name"])
        if schema["type"] == "enum":
            self.enums[name] = list(schema["symbols"])
            return name
        if name not in self.records:
            self.records[name] = ""  # reserve: recursion into fields may meet it again
            self.records[name] = self.record(schema)
            self.order.append(name)
        return name

    def record(self, schema: dict[str, Any]) -> str:
        lines = [f"class {schema['name']}(BaseModel):"]
        doc = str(schema.get("doc", "")).replace('"""', "'")
        lines.append(f'    """{doc}"""' if doc else '    """(no doc)"""')
        lines.append("")
        lines.append('    model_config = ConfigDict(extra="forbid")')
        lines.append("")
        for field in schema["fields"]:
            lines.append(self.field(field))
        return "\n".join(lines) + "\n"

    def field(self, field: dict[str, Any]) -> str:
        annotation = self.type_of(field["type"])
        args: list[str] = []
        # Only optional (null-first union) fields default, to None. An Avro default on a
        # required field serves readers of old data; a producer must still send the value.
        if isinstance(field["type"], list) and field["type"] and field["type"][0] == "null":
            args.append("default=None")
        decimal_schema = _logical(field["type"], "decimal")
        if decimal_schema is not None:
            args.append(f"max_digits={decimal_schema['precision']}")
            args.append(f"decimal_places={decimal_schema.get('scale', 0)}")
        for avro_key, py_key in (
            ("pattern", "pattern"),
            ("minLength", "min_length"),
            ("maxLength", "max_length"),
            ("minimum", "ge"),
            ("maximum", "le"),
        ):
            if avro_key in field:
                args.append(f"{py_key}={field[avro_key]!r}")
        if _logical(field["type"], "uuid") is not None and "pattern" not in field:
            args.append(f"pattern={_UUID_PATTERN!r}")
        if field.get("doc"):
            args.append(f"description={field['doc']!r}")
        return f"    {field['name']}: {annotation} = Field({', '.join(args)})"


_UUID_PATTERN = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"


def _logical(schema: Any, logical_type: str) -> dict[str, Any] | None:
    """The branch of ``schema`` (a type or a union) with ``logical_type``, if any."""
    if isinstance(schema, dict) and schema.get("logicalType") == logical_type:
        return schema
    if isinstance(schema, list):
        for branch in schema:
            found = _logical(branch, logical_type)
            if found is not None:
                return found
    return None


def render_models(library: SchemaLibrary | None = None) -> str:
    """The text of c2c/events.py for every record the topic catalogue uses."""
    lib = library if library is not None else SchemaLibrary()
    renderer = _Renderer(lib)
    for topic in CATALOGUE:
        if topic.schema:
            renderer.named(lib.resolve(topic.schema))
    parts = [_HEADER]
    for name in sorted(renderer.enums):
        symbols = ", ".join(repr(symbol) for symbol in renderer.enums[name])
        parts.append(f"{name} = Literal[{symbols}]\n")
    parts.append("\n")
    for name in renderer.order:
        parts.append("\n" + renderer.records[name] + "\n")
    exported = sorted([*renderer.enums, *renderer.order])
    parts.append("\n__all__ = [\n" + "".join(f'    "{name}",\n' for name in exported) + "]\n")
    return "".join(parts)
