"""Writing simulated lives as each provider's extract, with noise, plus the truth.

:func:`records_of` turns a :class:`Life` into (provider, event) pairs in the shape the
producers' mapping builds (so :func:`render_row` can write them with the provider's own
columns, codes and date style). :class:`ExtractWriter` streams rows to files: each
provider's file ends up sorted by event time (rows are spilled per year, then each year is
sorted alone, so memory stays bounded by one provider-year), and truth/records.csv names the
true person behind every source record.
"""

from __future__ import annotations

import csv
import datetime
import decimal
import functools
import random
import shutil
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TextIO

from producers import parsing
from producers.formats import FORMATS, ProviderFormat, RecordType
from producers.synth.noise import NoiseConfig, noisy_identity
from producers.synth.population import Life

__all__ = ["ExtractWriter", "assemble", "demographics", "facts_of", "records_of", "render_row"]

# How each provider writes dates.
_DATE_STYLE = {"k12": "%Y%m%d", "csac": "%m/%d/%Y"}
_SSN_OPTIONAL = {"ccc", "csu", "uc", "csac", "ctc"}
_BIRTH_DATE_OPTIONAL = {"csac", "ctc"}


def _identity(
    life: Life, provider: str, when: datetime.date, rng: random.Random, noise: NoiseConfig
) -> dict[str, Any]:
    person = life.person
    married = (
        person.married_name is not None
        and person.married_year is not None
        and (when.year >= person.married_year)
    )
    last = person.married_name if married else person.last_name
    moved = person.moved_zip is not None and when.year >= (person.moved_year or 0)
    identity: dict[str, Any] = {
        "first_name": person.first_name,
        "middle_name": person.middle_name,
        "last_name": last,
        "birth_date": person.birth_date,
        "sex": person.sex,
        "zip": person.moved_zip if moved else person.zip,
        "ssn": person.ssn,
        "ssid": person.ssid,
        "itin": person.itin,
    }
    if provider == "k12":
        identity["ssn"] = None
    if provider in ("csac", "edd", "ctc"):
        identity["ssid"] = None
    if provider == "edd":
        identity.update(birth_date=None, sex=None, zip=None, middle_name=None)
        identity["first_name"] = (
            person.first_name[0] if rng.random() < 0.5 else person.first_name
        ).upper()
        identity["last_name"] = str(last).upper()
    noisy = noisy_identity(
        rng,
        identity,
        noise,
        ssn_optional=provider in _SSN_OPTIONAL,
        birth_date_optional=provider in _BIRTH_DATE_OPTIONAL,
    )
    if provider == "edd" and noisy.get("ssn") is None:
        noisy["ssn"] = person.ssn
    return noisy


def demographics(life: Life) -> dict[str, Any]:
    """The person's demographics, as K-12 and the colleges report them."""
    p = life.person
    return {
        "race_ethnicity": p.race,
        "county_fips": p.county_fips,
        "foster_youth": p.foster_youth,
        "homeless": p.homeless,
        "socioeconomically_disadvantaged": p.disadvantaged,
        "english_learner": p.english_learner,
    }


def _source_person_id(life: Life, provider: str, institution: str = "") -> str:
    number = life.person.person_id[1:]
    return {
        "k12": f"L{number}",
        "ccc": f"C{number}",
        "csu": f"{institution}{number}",
        "uc": f"9{number[-8:]}",
        "csac": f"A{number}",
        "ctc": f"P{number}",
        "other": f"L{number}",
    }[provider]


def facts_of(
    life: Life,
) -> Iterator[tuple[str, str, datetime.date, str, dict[str, Any]]]:
    """The facts of every record of ``life`` as (source, kind, when, institution, facts),
    in the order :func:`records_of` sends them (opt-outs aside)."""
    for e in life.enrollments:
        yield (
            e.segment,
            "enrollment",
            e.start,
            e.institution,
            {
                "institution_id": e.institution,
                "academic_year": e.academic_year,
                "term": e.term,
                "term_start_date": e.start,
                "grade_level": e.grade,
                "program_cip": e.program,
                "first_time": e.first_time,
                "district_id": e.institution[:5] if e.segment == "k12" else None,
            },
        )
    for a in [life.hs_completion, *life.awards]:
        if a is None:
            continue
        facts = {
            "award_level": a.level,
            "completion_date": a.date,
            "institution_id": a.institution,
            "program_cip": a.program,
        }
        yield a.segment, "completion", a.date, a.institution, facts
    for aid in life.aid:
        facts = {
            "aid_program": aid.program,
            "award_year": aid.award_year,
            "amount": decimal.Decimal(aid.amount_cents) / 100,
            "institution_id": aid.institution,
        }
        yield "csac", "financial_aid", datetime.date(aid.award_year, 7, 1), "", facts
    for w in life.wages:
        facts = {
            "employer_id": w.employer,
            "naics": w.naics,
            "year": w.year,
            "quarter": w.quarter,
            "wages": decimal.Decimal(w.cents) / 100,
        }
        yield "edd", "wage", datetime.date(w.year, w.quarter * 3, 1), "", facts
    for c in life.credentials:
        facts = {
            "credential_type": c.kind,
            "issue_date": c.date,
            "recommending_institution_id": c.institution,
        }
        yield "ctc", "credential", c.date, "", facts


def records_of(life: Life, noise: NoiseConfig, seed: int) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every source record of ``life`` as (source, event without id and time)."""
    rng = random.Random(f"c2c-noise:{seed}:{life.person.person_id}")
    pid = life.person.person_id
    counter = 0

    def record(
        provider: str, when: datetime.date, institution: str = "", **rest: Any
    ) -> dict[str, Any]:
        nonlocal counter
        counter += 1
        person = _identity(life, provider, when, rng, noise)
        person["source_person_id"] = (
            person["ssn"] if provider == "edd" else _source_person_id(life, provider, institution)
        )
        if provider == "csac":
            person["state_aid_id"] = person["source_person_id"]
        return {
            "provider": provider,
            "source_record_id": f"{provider.upper()}-{pid}-{counter}",
            "person": person,
            **rest,
        }

    for provider, kind, day, institution, facts in facts_of(life):
        if kind in ("enrollment", "completion"):
            yield (
                provider,
                record(
                    provider,
                    day,
                    institution,
                    kind=kind,
                    demographics=demographics(life),
                    facts=facts,
                ),
            )
        else:
            yield provider, record(provider, day, institution, kind=kind, facts=facts)
    if life.optout is not None:
        for action, when in (
            ("REQUESTED", life.optout.requested),
            ("REVOKED", life.optout.revoked),
        ):
            if when is None:
                continue
            event = record(
                "other",
                when,
                kind="optout",
                request_id=life.optout.request_id,
                action=action,
                requested_by="INDIVIDUAL",
                _requested_at=when,
            )
            # the extract's RequestID column is both the record id and the request id: a
            # revocation names the request it revokes
            event["source_record_id"] = life.optout.request_id
            yield "optout", event


def _formatter(parse: Any, source: str) -> Callable[[Any], str]:
    """How ``source`` writes a value that ``parse`` reads back."""
    symbols = getattr(parse, "symbols", None)
    if symbols is not None:
        return lambda value: str(symbols[value])
    if parse is parsing.date:
        style = _DATE_STYLE.get(source, "%Y-%m-%d")
        return lambda value: value.strftime(style)
    if parse is parsing.money:
        return lambda value: f"{value:.2f}"
    if parse is parsing.boolean:
        return lambda value: "Y" if value else "N"
    if parse is parsing.academic_year:
        return lambda value: f"{value}-{value + 1}"
    return str


def _getter(path: str) -> Callable[[Mapping[str, Any]], Any]:
    head, _, rest = path.partition(".")
    if not rest:
        return lambda event: event.get(head)

    def get(event: Mapping[str, Any]) -> Any:
        value = event.get(head)
        return value.get(rest) if type(value) is dict else None

    return get


def _record_type(fmt: ProviderFormat, event: Mapping[str, Any]) -> tuple[str, RecordType]:
    for code, record_type in fmt.record_types.items():
        if record_type.kind == event["kind"] and (
            record_type.constants.get("action", event.get("action")) == event.get("action")
        ):
            return code, record_type
    raise ValueError(f"{fmt.provider} has no record type for {event['kind']}")


Cell = Callable[[Mapping[str, Any], str], str]


@functools.cache
def _plan(source: str) -> tuple[list[str], list[Cell]]:
    """The header of ``source``'s file and, per column, how to write it from an event."""
    fmt = FORMATS[source]
    columns = {column.name: column for column in fmt.columns()}
    header = _header(fmt)
    cells: list[Cell] = []
    for name in header:
        if name == fmt.type_column:
            cells.append(lambda event, code: code)
        elif name == fmt.record_id_column:
            cells.append(lambda event, code: str(event["source_record_id"]))
        elif name == fmt.person_id_column and name not in columns:
            cells.append(lambda event, code: str(event["person"]["source_person_id"]))
        elif isinstance(columns[name].target, tuple):
            year, quarter = (_getter(t) for t in columns[name].target)

            def year_quarter(
                event: Mapping[str, Any], code: str, y: Any = year, q: Any = quarter
            ) -> str:
                return f"{y(event)}Q{q(event)}"

            cells.append(year_quarter)
        else:
            get = _getter(str(columns[name].target))
            write = _formatter(columns[name].parse, source)

            def cell(
                event: Mapping[str, Any], code: str, get: Any = get, write: Any = write
            ) -> str:
                value = get(event)
                return "" if value is None else write(value)

            cells.append(cell)
    return header, cells


def render_row(source: str, event: Mapping[str, Any]) -> tuple[list[str], datetime.date]:
    """The row ``event`` is in ``source``'s file (columns in header order), and its date."""
    code, record_type = _record_type(FORMATS[source], event)
    row = [cell(event, code) for cell in _plan(source)[1]]
    when = record_type.event_time(event)
    assert isinstance(when, datetime.date)
    return row, when


def _header(fmt: ProviderFormat) -> list[str]:
    names = [fmt.type_column] if fmt.type_column else []
    names += [fmt.record_id_column, fmt.person_id_column]
    names += [column.name for column in fmt.columns()]
    return list(dict.fromkeys(name for name in names if name))


class ExtractWriter:
    """Spills rendered rows per provider and year (unsorted) into ``spill``, and the truth
    of each row into ``truth``. Several writers (one per process) may share ``spill``'s
    parent; :func:`assemble` then sorts and joins what they wrote."""

    def __init__(self, spill: Path, truth: Path) -> None:
        self.spill = spill
        shutil.rmtree(spill, ignore_errors=True)
        spill.mkdir(parents=True)
        self._truth_handle = truth.open("w", newline="")
        self._truth = csv.writer(self._truth_handle)
        self._handles: dict[tuple[str, int], tuple[TextIO, Any]] = {}
        self.counts: dict[str, int] = {}

    def write(self, source: str, event: Mapping[str, Any], person_id: str) -> None:
        row, when = render_row(source, event)
        key = (source, when.year)
        if key not in self._handles:
            handle = (self.spill / f"{source}-{when.year}.csv").open("w", newline="")
            self._handles[key] = (handle, csv.writer(handle))
        self._handles[key][1].writerow([when.isoformat(), *row])
        self._truth.writerow([source, event["source_record_id"], person_id])
        self.counts[source] = self.counts.get(source, 0) + 1

    def close(self) -> None:
        self._truth_handle.close()
        for handle, _ in self._handles.values():
            handle.close()


def assemble(out: Path, spills: list[Path]) -> dict[str, Path]:
    """Each provider's file in ``out``: its header, then every spilled row in event-time
    order (ties by content, so the result does not depend on how the work was split).
    Memory holds one provider-year at a time. The spill folders are removed."""
    chunks: dict[tuple[str, int], list[Path]] = {}
    for spill in spills:
        for path in spill.glob("*.csv"):
            source, _, year_text = path.stem.rpartition("-")
            chunks.setdefault((source, int(year_text)), []).append(path)
    files = {}
    for source in sorted({source for source, _ in chunks}):
        path = out / f"{source}.csv"
        with path.open("w", newline="") as target:
            writer = csv.writer(target)
            writer.writerow(_header(FORMATS[source]))
            for year in sorted(year for s, year in chunks if s == source):
                rows: list[list[str]] = []
                for part in chunks[(source, year)]:
                    with part.open(newline="") as handle:
                        rows.extend(csv.reader(handle))
                rows.sort(key=lambda r: (r[0], r[1:]))
                writer.writerows(row[1:] for row in rows)
        files[source] = path
    for spill in spills:
        shutil.rmtree(spill, ignore_errors=True)
    return files
