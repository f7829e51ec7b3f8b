"""The floor plan, checked from the code's own imports (like import-linter's contracts).

c2c/ is the ground floor: it imports none of the packages above it. The four service packages
(producers, streams, sinks, observability) stand on it and never import each other. The local
services and the command line stand above them all. Every import counts, at module level or
inside a function or an ``if TYPE_CHECKING:`` block: a lazy import is still an arrow.
"""

from __future__ import annotations

import ast
import itertools
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Which of the project's packages each package may import (besides itself).
SERVICE_PACKAGES = ("producers", "streams", "sinks", "observability")
ALLOWED: dict[str, frozenset[str]] = {
    "c2c": frozenset(),
    **{name: frozenset({"c2c"}) for name in SERVICE_PACKAGES},
    "services": frozenset({"c2c"}),
    "cli": frozenset({"c2c", *SERVICE_PACKAGES, "services"}),
}


def imported_packages(path: Path) -> list[tuple[int, str]]:
    """(line, top-level name) of every absolute import in the file at ``path``, and of
    every package it runs as a program (``"-m", "cli"`` in a list: a child process of a
    higher floor is an arrow too)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name.split(".")[0]) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module.split(".")[0]))
        elif isinstance(node, ast.List | ast.Tuple):
            texts = [e.value if isinstance(e, ast.Constant) else None for e in node.elts]
            found += [
                (node.lineno, str(module).split(".")[0])
                for flag, module in itertools.pairwise(texts)
                if flag == "-m" and isinstance(module, str)
            ]
    return found


def violations(root: Path = ROOT) -> list[str]:
    """Every import that runs against ALLOWED, as 'file:line: a imports b'."""
    found = []
    for package, allowed in ALLOWED.items():
        for path in sorted((root / package).rglob("*.py")):
            for line, name in imported_packages(path):
                if name in ALLOWED and name != package and name not in allowed:
                    found.append(f"{path.relative_to(root)}:{line}: {package} imports {name}")
    return found


def test_no_import_runs_against_the_floor_plan() -> None:
    assert violations() == []


def test_every_package_of_the_project_has_a_place_in_the_plan() -> None:
    packages = {path.parent.name for path in ROOT.glob("*/__init__.py")}
    assert packages - {"tests", "bench"} == set(ALLOWED)


@pytest.mark.parametrize(
    ("package", "source", "expected"),
    [
        ("c2c", "from producers.files import produce_file\n", ["c2c imports producers"]),
        ("streams", "def f():\n    import sinks.rows\n", ["streams imports sinks"]),
        (
            "sinks",
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from cli import main\n",
            ["sinks imports cli"],
        ),
        ("cli", "from sinks.sink import Sink\nfrom services import services_up\n", []),
        (
            "streams",
            'command = [sys.executable, "-m", "cli", "sink", "run"]\n',
            ["streams imports cli"],
        ),
        ("producers", "from c2c.settings import Settings\nfrom producers import files\n", []),
    ],
)
def test_the_check_finds_an_arrow_that_runs_back_up(
    tmp_path: Path, package: str, source: str, expected: list[str]
) -> None:
    (tmp_path / package).mkdir()
    (tmp_path / package / "module.py").write_text(source)
    found = [v.split(": ", 1)[1] for v in violations(tmp_path)]
    assert found == expected
