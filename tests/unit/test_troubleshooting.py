"""Every error code the code raises has its entry in README's troubleshooting section."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("c2c", "producers", "streams", "sinks", "observability", "services", "cli")


def error_codes() -> dict[str, str]:
    """code -> where it is first set: ``code="..."`` arguments and ``code = "..."`` class
    attributes (codes built at run time, such as f-strings, are not seen)."""
    found: dict[str, str] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                values: list[ast.expr | None] = []
                if isinstance(node, ast.keyword) and node.arg == "code":
                    values = [node.value]
                elif isinstance(node, ast.ClassDef):
                    values = [
                        item.value
                        for item in node.body
                        if (isinstance(item, ast.Assign) and _names_code(item.targets))
                        or (isinstance(item, ast.AnnAssign) and _names_code([item.target]))
                    ]
                for value in values:
                    if isinstance(value, ast.Constant) and isinstance(value.value, str):
                        where = f"{path.relative_to(ROOT)}:{value.lineno}"
                        found.setdefault(value.value, where)
    return found


def _names_code(targets: list[ast.expr]) -> bool:
    return any(isinstance(target, ast.Name) and target.id == "code" for target in targets)


def troubleshooting() -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index("\n## Troubleshooting")
    end = text.find("\n## ", start + 1)
    return text[start : end if end >= 0 else None]


def test_the_scan_finds_the_codes() -> None:
    codes = error_codes()
    assert codes["c2c"].startswith("c2c/errors.py")
    assert "service.kafka.unreachable" in codes
    assert len(codes) > 40


def test_every_error_code_has_a_troubleshooting_entry() -> None:
    section = troubleshooting()
    missing = {code: where for code, where in error_codes().items() if f"`{code}`" not in section}
    assert missing == {}
