"""The Avro schemas in schemas/avro/: one .avsc per named type, referenced by full name.

:class:`SchemaLibrary` indexes every file by the full name it defines and expands a record
into one self-contained schema (each named type defined at its first use, referenced by
name after), which is what the registry stores and fastavro parses. A reference to a name no
file defines, a file whose name differs from the type it defines, or two files defining one
name is an error naming the file.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from c2c.errors import C2CError

__all__ = ["SCHEMA_DIR", "SchemaError", "SchemaLibrary"]

SCHEMA_DIR = Path(__file__).resolve().parents[1] / "schemas" / "avro"

_PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})


class SchemaError(C2CError):
    """A schema file is missing, malformed or inconsistent."""

    code = "schema"


@dataclass(frozen=True)
class _Entry:
    path: Path
    schema: dict[str, Any]


def _full_name(schema: dict[str, Any], enclosing: str | None = None) -> str:
    name = str(schema["name"])
    if "." in name:
        return name
    namespace = schema.get("namespace", enclosing)
    return f"{namespace}.{name}" if namespace else name


class SchemaLibrary:
    """Every named type under ``root``, by full name."""

    def __init__(self, root: Path = SCHEMA_DIR) -> None:
        self.root = root
        self._entries: dict[str, _Entry] = {}
        for path in sorted(root.rglob("*.avsc")):
            schema = _read_json(path)
            if not isinstance(schema, dict) or "name" not in schema:
                raise SchemaError(
                    f"{path}: top level must be a named type (record, enum or fixed) with a 'name'",
                    code="schema.unnamed",
                )
            full = _full_name(schema)
            if path.stem != schema["name"]:
                raise SchemaError(
                    f"{path}: defines {full!r}; name the file {schema['name']}.avsc",
                    code="schema.file_name",
                )
            if full in self._entries:
                raise SchemaError(
                    f"{path}: {full!r} is already defined in {self._entries[full].path}",
                    code="schema.duplicate",
                )
            self._entries[full] = _Entry(path, schema)

    def names(self) -> list[str]:
        """Full names of every type in the library, sorted."""
        return sorted(self._entries)

    def path_of(self, full_name: str) -> Path:
        return self._entry(full_name).path

    def _entry(self, full_name: str) -> _Entry:
        try:
            return self._entries[full_name]
        except KeyError:
            raise SchemaError(
                f"no schema file defines {full_name!r} under {self.root}",
                code="schema.unknown_name",
            ) from None

    def resolve(self, full_name: str) -> dict[str, Any]:
        """``full_name`` as one self-contained schema, every reference expanded once."""
        entry = self._entry(full_name)
        defined: set[str] = set()
        resolved: dict[str, Any] = self._expand(
            copy.deepcopy(entry.schema), None, defined, entry.path
        )
        return resolved

    def resolve_text(self, full_name: str) -> str:
        """:meth:`resolve` as compact JSON, the form registered in the registry."""
        return json.dumps(self.resolve(full_name), separators=(",", ":"), ensure_ascii=False)

    def _expand(self, node: Any, namespace: str | None, defined: set[str], origin: Path) -> Any:
        if isinstance(node, str):
            if node in _PRIMITIVES:
                return node
            full = node if "." in node or namespace is None else f"{namespace}.{node}"
            if full in defined or node in defined:
                return full if full in defined else node
            if full not in self._entries:
                raise SchemaError(
                    f"{origin}: refers to {node!r}, which no file under {self.root} defines "
                    "(use the full name, e.g. org.c2cstream.common.Sex)",
                    code="schema.unknown_name",
                )
            target = self._entries[full]
            return self._expand(copy.deepcopy(target.schema), None, defined, target.path)
        if isinstance(node, list):
            return [self._expand(item, namespace, defined, origin) for item in node]
        if not isinstance(node, dict):
            return node
        kind = node.get("type")
        if kind in ("record", "error", "enum", "fixed"):
            full = _full_name(node, namespace)
            defined.add(full)
            node["name"] = full.rsplit(".", 1)[-1]
            if "." in full:
                node["namespace"] = full.rsplit(".", 1)[0]
            if kind in ("record", "error"):
                inner_ns = node.get("namespace")
                for field in node.get("fields", []):
                    field["type"] = self._expand(field["type"], inner_ns, defined, origin)
            return node
        if kind == "array":
            node["items"] = self._expand(node["items"], namespace, defined, origin)
        elif kind == "map":
            node["values"] = self._expand(node["values"], namespace, defined, origin)
        elif isinstance(kind, (str, list, dict)):
            node["type"] = self._expand(kind, namespace, defined, origin)
        return node


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except OSError as exc:
        raise SchemaError(f"{path} cannot be read: {exc}", code="schema.missing") from exc
    except json.JSONDecodeError as exc:
        raise SchemaError(
            f"{path}: not JSON: line {exc.lineno}, column {exc.colno}: {exc.msg}",
            code="schema.json",
        ) from exc
