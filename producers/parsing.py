"""Turning a provider's cell text into the value a schema field wants.

Each parser takes the stripped cell ('' means empty) and returns the value, None for an
empty cell (always: the compiled row encoder relies on it), or raises ValueError with a
message that completes "COLUMN 'value' ..." (for example "is not a date (YYYY-MM-DD or
MM/DD/YYYY)"). Parsers know nothing of files, rows or Kafka.
"""

from __future__ import annotations

import datetime
import decimal
from collections.abc import Callable, Mapping
from typing import Any

__all__ = [
    "FEW_VALUES",
    "Codes",
    "Parser",
    "Table",
    "academic_year",
    "boolean",
    "cip",
    "code",
    "date",
    "digits",
    "integer",
    "money",
    "text",
    "year_quarter",
]

Parser = Callable[[str], Any]


def text(cell: str) -> str | None:
    """The cell as is (names keep accents, quotes and anything else), None if empty."""
    return cell or None


def digits(cell: str) -> str | None:
    """An identifier of digits; dashes and spaces (123-45-6789) are dropped."""
    if not cell:
        return None
    cleaned = cell.replace("-", "").replace(" ", "")
    if not cleaned.isdigit():
        raise ValueError("has characters other than digits")
    return cleaned


def integer(cell: str) -> int | None:
    if not cell:
        return None
    try:
        return int(cell)
    except ValueError:
        raise ValueError("is not a whole number") from None


def date(cell: str) -> datetime.date | None:
    """ISO dates (2025-06-30), US dates (06/30/2025) and compact dates (20250630)."""
    if not cell:
        return None
    try:
        if len(cell) == 10 and cell[2] == "/" and cell[5] == "/":
            return datetime.date(int(cell[6:]), int(cell[:2]), int(cell[3:5]))
        if len(cell) in (8, 10) and cell[:4].isdigit():
            return datetime.date.fromisoformat(cell)  # 2025-06-30 and 20250630
    except ValueError:
        pass
    raise ValueError("is not a date (YYYY-MM-DD, MM/DD/YYYY or YYYYMMDD)")


def money(cell: str) -> decimal.Decimal | None:
    """Dollars with up to 2 decimals; '$' and thousands separators are allowed."""
    if not cell:
        return None
    cleaned = cell.replace("$", "").replace(",", "")
    try:
        amount = decimal.Decimal(cleaned)
    except decimal.InvalidOperation:
        raise ValueError("is not an amount in dollars") from None
    if not amount.is_finite():
        raise ValueError("is not an amount in dollars")
    if cleaned[-3:-2] == ".":
        # written with cents, as most are (a number Decimal reads that ends in .NN has
        # exponent -2): already what quantize gives
        return amount
    try:
        cents = amount.quantize(_CENT)
    except decimal.InvalidOperation:
        # more digits than Decimal's context holds (1e26 and up): more than any amount's
        # precision, which the schema's check reports
        return amount
    if amount != cents:
        raise ValueError("has more than 2 decimal places")
    return cents


_CENT = decimal.Decimal("0.01")


class Table:
    """A parser that looks the cell up in a table, after folding its case: ``table`` maps
    folded cells to values (``fold`` is "upper" or "lower"); a cell not in it raises
    ValueError(``message``). Declared as data so that the compiled row encoder
    (producers.row_encoder) can look cells up inline."""

    def __init__(self, table: Mapping[str, Any], fold: str, message: str) -> None:
        if fold not in ("upper", "lower"):
            raise ValueError(f"fold must be 'upper' or 'lower', not {fold!r}")
        self.table: Mapping[str, Any] = dict(table)
        self.fold = fold
        self.message = message
        self._fold: Callable[[str], str] = getattr(str, fold)

    def __call__(self, cell: str) -> Any:
        if not cell:
            return None
        try:
            return self.table[self._fold(cell)]
        except KeyError:
            raise ValueError(self.message) from None


class Codes(Table):
    """A provider's codes (case-insensitive) for schema symbols; ``symbols`` gives the
    first code for each symbol, for writers of the format (producers.synth)."""

    def __init__(self, table: Mapping[str, str]) -> None:
        super().__init__(
            {key.upper(): value for key, value in table.items()},
            "upper",
            f"is not one of the codes {', '.join(sorted(table))}",
        )
        self.symbols: dict[str, str] = {}
        for key, value in table.items():
            self.symbols.setdefault(value, key)


boolean = Table(
    {
        **dict.fromkeys(("y", "yes", "true", "t", "1"), True),
        **dict.fromkeys(("n", "no", "false", "f", "0"), False),
    },
    "lower",
    "is not Y or N",
)


def code(table: Mapping[str, str]) -> Codes:
    """A parser mapping the provider's codes (case-insensitive) to schema symbols."""
    return Codes(table)


def academic_year(cell: str) -> int | None:
    """'2024-2025', '2024-25' or '2024' → 2024 (the year the academic year starts)."""
    if not cell:
        return None
    first, _, second = cell.partition("-")
    if not first.isdigit() or len(first) != 4:
        raise ValueError("is not an academic year (2024-2025)")
    start = int(first)
    if second and not (second.isdigit() and int(second[-2:]) == (start + 1) % 100):
        raise ValueError("is not an academic year (2024-2025): the years must be consecutive")
    return start


def cip(cell: str) -> str | None:
    """A CIP 2020 code; '110701' and '11.0701' are both accepted."""
    if not cell:
        return None
    cleaned = cell.replace(".", "")
    if len(cleaned) != 6 or not cleaned.isdigit():
        raise ValueError("is not a CIP code (NN.NNNN)")
    return f"{cleaned[:2]}.{cleaned[2:]}"


def year_quarter(cell: str) -> tuple[int, int] | None:
    """'2025Q1', '2025-Q1' or '20251' → (2025, 1)."""
    if not cell:
        return None
    cleaned = cell.upper().replace("-", "").replace("Q", "")
    if len(cleaned) != 5 or not cleaned.isdigit() or cleaned[4] not in "1234":
        raise ValueError("is not a year and quarter (2025Q1)")
    return int(cleaned[:4]), int(cleaned[4])


FEW_VALUES: frozenset[Parser] = frozenset({date, academic_year, year_quarter, cip})
"""Parsers whose cells repeat a lot in an extract (dates, years, quarters, programs): a
caller may remember what a cell parsed to (they are pure functions of the cell)."""
