"""Locating and loading the Avro schemas in schemas/avro/."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from c2c.errors import C2CError

__all__ = ["SCHEMA_DIR", "load_schema", "load_schema_text"]

SCHEMA_DIR = Path(__file__).resolve().parents[1] / "schemas" / "avro"


def load_schema_text(relative: str) -> str:
    """The text of schemas/avro/``relative``; raises C2CError if missing or not JSON."""
    path = SCHEMA_DIR / relative
    try:
        text = path.read_text()
        json.loads(text)
    except OSError as exc:
        raise C2CError(f"schema file {path} cannot be read: {exc}", code="schema.missing") from exc
    except json.JSONDecodeError as exc:
        raise C2CError(
            f"schema file {path} is not JSON: line {exc.lineno}, column {exc.colno}: {exc.msg}",
            code="schema.json",
        ) from exc
    return text


def load_schema(relative: str) -> dict[str, Any]:
    """schemas/avro/``relative`` parsed as JSON."""
    parsed: dict[str, Any] = json.loads(load_schema_text(relative))
    return parsed
