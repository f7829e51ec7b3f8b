"""Each provider's extract format, declared as data: its columns, what each maps to, and
how its record types become raw events.

Adding a provider of the kinds c2c/kinds.py declares means a :class:`ProviderFormat` here
registered in :data:`FORMATS`, an example file in producers/examples/, and its provider code
at the end of the Provider enum's symbols (schemas/avro/common/Provider.avsc, then `c2c
schemas codegen`), and nothing else: the command line, reading, validation, rejects, dead
letters, publishing, linking and the sink's tables are shared (tests/unit/
test_eighth_provider.py adds one to a copy of the project). :func:`get_format` refuses a
format whose code is not in the enum, saying what to add. producers/README.md documents
every format.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from c2c.errors import C2CError
from c2c.kinds import EVENT_KINDS
from c2c.schemas import SchemaLibrary
from producers.parsing import (
    Parser,
    academic_year,
    boolean,
    cip,
    code,
    date,
    digits,
    money,
    text,
    year_quarter,
)

__all__ = [
    "FORMATS",
    "KIND_TOPICS",
    "PROVIDER_ENUM",
    "Column",
    "EventTime",
    "FormatError",
    "ProviderFormat",
    "RecordType",
    "format_problems",
    "get_format",
    "provider_kinds",
]

# Which raw topic each kind of event goes to (c2c.kinds).
KIND_TOPICS: Mapping[str, str] = {kind.name: kind.raw_topic for kind in EVENT_KINDS}

# The enum of provider codes that every event carries (schemas/avro/common/Provider.avsc).
PROVIDER_ENUM = "org.c2cstream.common.Provider"


class FormatError(C2CError):
    """A provider format that cannot make valid events: the message names what to change."""

    code = "producer.format"


@dataclass(frozen=True)
class Column:
    """One provider column: where its value goes in the raw event.

    ``target`` is a dotted path (``person.last_name``, ``facts.wages``), or a tuple of
    paths when the parser returns a tuple (``2025Q1`` → facts.year, facts.quarter).
    ``required`` columns must be in the header (a file without them is not this format).
    """

    name: str
    target: str | tuple[str, ...]
    parse: Parser = text
    required: bool = False


When = datetime.date | datetime.datetime | None


@dataclass(frozen=True)
class EventTime:
    """When an event happened, from some of its values: ``compute`` gets the values at
    ``paths`` (dotted paths of the raw event, None where unset; ``_name`` for a value kept
    only for this) and returns a date or timestamp, or None if they place it nowhere.

    Declared as data so that the mapper (over an event) and the compiled row encoder
    (producers.row_encoder, over a row's parsed cells) compute it the same way.
    """

    paths: tuple[str, ...]
    compute: Callable[..., When]

    def __call__(self, event: Mapping[str, Any]) -> When:
        """The time of ``event`` (a raw event as the mapper builds it)."""
        return self.compute(*(_value_at(event, path) for path in self.paths))


def _value_at(event: Mapping[str, Any], path: str) -> Any:
    head, _, rest = path.partition(".")
    if not rest:
        return event.get(head)
    return (event.get(head) or {}).get(rest)


@dataclass(frozen=True)
class RecordType:
    """One kind of row in a provider's file, selected by the format's type column."""

    kind: str
    columns: tuple[Column, ...]
    event_time: EventTime
    constants: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ProviderFormat:
    """A provider's extract: shared identity columns and one or more record types."""

    provider: str
    description: str
    record_id_column: str
    person_id_column: str
    shared: tuple[Column, ...]
    record_types: Mapping[str, RecordType]
    type_column: str | None = None

    def columns(self) -> list[Column]:
        seen: dict[str, Column] = {}
        for column in self.shared:
            seen.setdefault(column.name, column)
        for record_type in self.record_types.values():
            for column in record_type.columns:
                seen.setdefault(column.name, column)
        return list(seen.values())

    def required_columns(self) -> list[str]:
        names = [self.record_id_column, self.person_id_column]
        if self.type_column:
            names.append(self.type_column)
        names += [c.name for c in self.columns() if c.required]
        return list(dict.fromkeys(names))


# -- shared code tables ---------------------------------------------------------------------

SEX = code(
    {
        "F": "FEMALE",
        "M": "MALE",
        "X": "NONBINARY",
        "N": "NOT_REPORTED",
        "U": "NOT_REPORTED",
        "FEMALE": "FEMALE",
        "MALE": "MALE",
    }
)
RACE = code(
    {
        "HL": "HISPANIC_LATINO",
        "AI": "AMERICAN_INDIAN_ALASKA_NATIVE",
        "AS": "ASIAN",
        "BL": "BLACK_AFRICAN_AMERICAN",
        "FI": "FILIPINO",
        "PI": "NATIVE_HAWAIIAN_PACIFIC_ISLANDER",
        "WH": "WHITE",
        "MR": "TWO_OR_MORE",
        "NR": "NOT_REPORTED",
    }
)
TERM = code(
    {
        "FA": "FALL",
        "WI": "WINTER",
        "SP": "SPRING",
        "SU": "SUMMER",
        "FALL": "FALL",
        "WINTER": "WINTER",
        "SPRING": "SPRING",
        "SUMMER": "SUMMER",
    }
)


def _start_or_august(start: Any, year: Any) -> When:
    if start is not None:
        return start  # type: ignore[no-any-return]
    return datetime.date(year, 8, 15) if isinstance(year, int) else None


def _as_is(value: Any) -> When:
    return value  # type: ignore[no-any-return]


def _july_first(year: Any) -> When:
    return datetime.date(year, 7, 1) if isinstance(year, int) else None


def _last_day(year: Any, quarter: Any) -> When:
    if not isinstance(year, int) or not isinstance(quarter, int) or not 1 <= quarter <= 4:
        return None
    first_of_next = datetime.date(year + quarter // 4, quarter % 4 * 3 + 1, 1)
    return first_of_next - datetime.timedelta(days=1)


# The term's start date, else August 15 of the academic year.
_term_start = EventTime(("facts.term_start_date", "facts.academic_year"), _start_or_august)


def _fact(name: str) -> EventTime:
    return EventTime((f"facts.{name}",), _as_is)


_aid_year_start = EventTime(("facts.award_year",), _july_first)
_quarter_end = EventTime(("facts.year", "facts.quarter"), _last_day)
_requested_at = EventTime(("_requested_at",), _as_is)


def _demographics(prefix: str = "") -> tuple[Column, ...]:
    return (
        Column(f"{prefix}RaceEthnicity", "demographics.race_ethnicity", RACE),
        Column(f"{prefix}CountyFIPS", "demographics.county_fips", text),
        Column(f"{prefix}FosterYouth", "demographics.foster_youth", boolean),
        Column(f"{prefix}Homeless", "demographics.homeless", boolean),
        Column(
            f"{prefix}EconDisadvantaged", "demographics.socioeconomically_disadvantaged", boolean
        ),
        Column(f"{prefix}EnglishLearner", "demographics.english_learner", boolean),
    )


# -- the providers ----------------------------------------------------------------------------

K12 = ProviderFormat(
    provider="k12",
    description="K-12 (CALPADS-like): enrollment by school year, school and grade; "
    "high-school completion.",
    record_id_column="RecordID",
    person_id_column="LocalStudentID",
    type_column="RecordType",
    shared=(
        Column("SSID", "person.ssid", digits),
        Column("StudentLegalFirstName", "person.first_name", required=True),
        Column("StudentLegalMiddleName", "person.middle_name"),
        Column("StudentLegalLastName", "person.last_name", required=True),
        Column("StudentBirthDate", "person.birth_date", date, required=True),
        Column("StudentGenderCode", "person.sex", SEX),
        Column("ResidentialZipCode", "person.zip", text),
        Column("SchoolCode", "facts.institution_id", text, required=True),
        *_demographics("Student"),
    ),
    record_types={
        "ENRL": RecordType(
            kind="enrollment",
            columns=(
                Column("DistrictCode", "facts.district_id", text),
                Column("AcademicYearID", "facts.academic_year", academic_year),
                Column(
                    "GradeLevelCode",
                    "facts.grade_level",
                    code(
                        {
                            "TK": "TK",
                            "KN": "KG",
                            "KG": "KG",
                            **{f"{g:02d}": f"{g:02d}" for g in range(1, 13)},
                            **{str(g): f"{g:02d}" for g in range(1, 13)},
                        }
                    ),
                ),
                Column("EnrollmentStartDate", "facts.term_start_date", date),
            ),
            constants={"facts.term": "ANNUAL"},
            event_time=_term_start,
        ),
        "CMPL": RecordType(
            kind="completion",
            columns=(
                Column(
                    "CompletionStatusCode",
                    "facts.award_level",
                    code(
                        {
                            "100": "HS_DIPLOMA",
                            "106": "HS_DIPLOMA",
                            "108": "HS_DIPLOMA",
                            "250": "HS_CERTIFICATE",
                            "320": "HS_EQUIVALENCY",
                            "330": "HS_EQUIVALENCY",
                            "480": "HS_EQUIVALENCY",
                        }
                    ),
                ),
                Column("CompletionDate", "facts.completion_date", date),
            ),
            event_time=_fact("completion_date"),
        ),
    },
)


def _postsecondary(
    provider: str,
    description: str,
    names: Mapping[str, str],
    award_codes: Mapping[str, str],
    enroll: str,
    award: str,
) -> ProviderFormat:
    """CCC, CSU and UC send the same shape of extract under their own column names."""
    n = names
    return ProviderFormat(
        provider=provider,
        description=description,
        record_id_column=n["record_id"],
        person_id_column=n["student_id"],
        type_column=n["record_type"],
        shared=(
            Column(n["ssn"], "person.ssn", digits),
            Column(n["ssid"], "person.ssid", digits),
            Column(n["first"], "person.first_name", required=True),
            Column(n["middle"], "person.middle_name"),
            Column(n["last"], "person.last_name", required=True),
            Column(n["birth"], "person.birth_date", date, required=True),
            Column(n["sex"], "person.sex", SEX),
            Column(n["zip"], "person.zip", text),
            Column(n["institution"], "facts.institution_id", text, required=True),
            Column(n["cip"], "facts.program_cip", cip),
            *_demographics(),
        ),
        record_types={
            enroll: RecordType(
                kind="enrollment",
                columns=(
                    Column(n["year"], "facts.academic_year", academic_year),
                    Column(n["term"], "facts.term", TERM),
                    Column(n["term_start"], "facts.term_start_date", date),
                    Column(n["first_time"], "facts.first_time", boolean),
                ),
                event_time=_term_start,
            ),
            award: RecordType(
                kind="completion",
                columns=(
                    Column(n["award"], "facts.award_level", code(award_codes)),
                    Column(n["award_date"], "facts.completion_date", date),
                ),
                event_time=_fact("completion_date"),
            ),
        },
    )


CCC = _postsecondary(
    "ccc",
    "Community colleges (MIS-like): term enrollment; certificates and associate degrees.",
    {
        "record_type": "RecordType",
        "record_id": "RecordID",
        "student_id": "StudentID",
        "ssn": "SSN",
        "ssid": "SSID",
        "first": "FirstName",
        "middle": "MiddleName",
        "last": "LastName",
        "birth": "BirthDate",
        "sex": "Gender",
        "zip": "Zip",
        "institution": "CollegeID",
        "cip": "ProgramCIP",
        "year": "AcademicYear",
        "term": "TermCode",
        "term_start": "TermStartDate",
        "first_time": "FirstTimeStudent",
        "award": "AwardType",
        "award_date": "AwardDate",
    },
    {
        "AA": "ASSOCIATE",
        "AS": "ASSOCIATE",
        "AAT": "ASSOCIATE",
        "AST": "ASSOCIATE",
        "C": "CERTIFICATE",
        "CA": "CERTIFICATE",
        "CN": "CERTIFICATE",
    },
    enroll="ENRL",
    award="AWRD",
)
CSU = _postsecondary(
    "csu",
    "California State University (ERS-like): term enrollment; bachelor's and graduate degrees.",
    {
        "record_type": "RecordType",
        "record_id": "RecordID",
        "student_id": "CampusStudentID",
        "ssn": "SSN",
        "ssid": "SSID",
        "first": "FirstName",
        "middle": "MiddleName",
        "last": "LastName",
        "birth": "BirthDate",
        "sex": "Sex",
        "zip": "Zip",
        "institution": "CampusCode",
        "cip": "MajorCIP",
        "year": "AcademicYear",
        "term": "Term",
        "term_start": "TermStartDate",
        "first_time": "FirstTimeFreshman",
        "award": "DegreeLevel",
        "award_date": "DegreeDate",
    },
    {
        "BA": "BACHELOR",
        "BS": "BACHELOR",
        "MA": "MASTER",
        "MS": "MASTER",
        "EDD": "DOCTORATE",
        "CRED": "OTHER",
    },
    enroll="ENRL",
    award="DEGR",
)
UC = _postsecondary(
    "uc",
    "University of California: term enrollment; bachelor's and graduate degrees.",
    {
        "record_type": "Type",
        "record_id": "RecordKey",
        "student_id": "StudentID",
        "ssn": "SSN",
        "ssid": "SSID",
        "first": "GivenName",
        "middle": "MiddleName",
        "last": "FamilyName",
        "birth": "DateOfBirth",
        "sex": "Gender",
        "zip": "ZipCode",
        "institution": "Campus",
        "cip": "CIPCode",
        "year": "AcademicYear",
        "term": "AcademicTerm",
        "term_start": "TermStart",
        "first_time": "NewFreshman",
        "award": "DegreeCode",
        "award_date": "DegreeConferredDate",
    },
    {
        "BA": "BACHELOR",
        "BS": "BACHELOR",
        "MA": "MASTER",
        "MS": "MASTER",
        "PHD": "DOCTORATE",
        "MD": "DOCTORATE",
        "JD": "DOCTORATE",
    },
    enroll="ENRL",
    award="DEGR",
)

CSAC = ProviderFormat(
    provider="csac",
    description="Student Aid Commission: financial-aid awards (Cal Grant, Middle Class "
    "Scholarship, Pell as reported).",
    record_id_column="AwardID",
    person_id_column="ApplicantID",
    shared=(
        Column("ApplicantID", "person.state_aid_id", text),
        Column("SSN", "person.ssn", digits),
        Column("FirstName", "person.first_name", required=True),
        Column("LastName", "person.last_name", required=True),
        Column("DOB", "person.birth_date", date),
    ),
    record_types={
        "": RecordType(
            kind="financial_aid",
            columns=(
                Column("AwardYear", "facts.award_year", academic_year, required=True),
                Column(
                    "ProgramCode",
                    "facts.aid_program",
                    code(
                        {
                            "A": "CAL_GRANT_A",
                            "B": "CAL_GRANT_B",
                            "C": "CAL_GRANT_C",
                            "MCS": "MIDDLE_CLASS_SCHOLARSHIP",
                            "PELL": "PELL",
                            "OTH": "OTHER",
                        }
                    ),
                    required=True,
                ),
                Column("AwardAmount", "facts.amount", money, required=True),
                Column("SchoolCode", "facts.institution_id", text),
            ),
            event_time=_aid_year_start,
        )
    },
)

EDD = ProviderFormat(
    provider="edd",
    description="Employment department: quarterly wage records (SSN and name only).",
    record_id_column="WageRecordID",
    person_id_column="SSN",
    shared=(
        Column("SSN", "person.ssn", digits, required=True),
        Column("FirstName", "person.first_name"),
        Column("LastName", "person.last_name"),
    ),
    record_types={
        "": RecordType(
            kind="wage",
            columns=(
                Column("EmployerAccountNo", "facts.employer_id", text, required=True),
                Column("NAICS", "facts.naics", digits),
                Column("YearQuarter", ("facts.year", "facts.quarter"), year_quarter, required=True),
                Column("Wages", "facts.wages", money, required=True),
            ),
            event_time=_quarter_end,
        )
    },
)

CTC = ProviderFormat(
    provider="ctc",
    description="Teacher credentialing commission: credentials issued.",
    record_id_column="DocumentNumber",
    person_id_column="CTCPersonID",
    shared=(
        Column("SSN", "person.ssn", digits),
        Column("ITIN", "person.itin", digits),
        Column("FirstName", "person.first_name", required=True),
        Column("MiddleName", "person.middle_name"),
        Column("LastName", "person.last_name", required=True),
        Column("BirthDate", "person.birth_date", date),
    ),
    record_types={
        "": RecordType(
            kind="credential",
            columns=(
                Column(
                    "CredentialType",
                    "facts.credential_type",
                    code(
                        {
                            "PMS": "PRELIMINARY_MULTIPLE_SUBJECT",
                            "PSS": "PRELIMINARY_SINGLE_SUBJECT",
                            "PES": "PRELIMINARY_EDUCATION_SPECIALIST",
                            "CMS": "CLEAR_MULTIPLE_SUBJECT",
                            "CSS": "CLEAR_SINGLE_SUBJECT",
                            "CES": "CLEAR_EDUCATION_SPECIALIST",
                            "INT": "INTERN",
                            "ASC": "ADMINISTRATIVE_SERVICES",
                            "PPS": "PUPIL_PERSONNEL_SERVICES",
                            "OTH": "OTHER",
                        }
                    ),
                    required=True,
                ),
                Column("IssueDate", "facts.issue_date", date, required=True),
                Column("RecommendingInstitution", "facts.recommending_institution_id", text),
            ),
            event_time=_fact("issue_date"),
        )
    },
)

OPTOUT = ProviderFormat(
    provider="other",
    description="Opt-out requests and revocations, from any provider or an operator.",
    record_id_column="RequestID",
    person_id_column="SourcePersonID",
    type_column="Action",
    shared=(
        Column("RequestID", "request_id", text, required=True),
        Column(
            "RequestedBy",
            "requested_by",
            code({"INDIVIDUAL": "INDIVIDUAL", "PROVIDER": "PROVIDER", "OPERATOR": "OPERATOR"}),
            required=True,
        ),
        Column("RequestedAt", "_requested_at", date, required=True),
        Column("SSN", "person.ssn", digits),
        Column("SSID", "person.ssid", digits),
        Column("FirstName", "person.first_name"),
        Column("MiddleName", "person.middle_name"),
        Column("LastName", "person.last_name"),
        Column("BirthDate", "person.birth_date", date),
        Column("Zip", "person.zip", text),
    ),
    record_types={
        "REQUEST": RecordType(
            kind="optout", columns=(), event_time=_requested_at, constants={"action": "REQUESTED"}
        ),
        "REVOKE": RecordType(
            kind="optout", columns=(), event_time=_requested_at, constants={"action": "REVOKED"}
        ),
    },
)

FORMATS: Mapping[str, ProviderFormat] = {
    "k12": K12,
    "ccc": CCC,
    "csu": CSU,
    "uc": UC,
    "csac": CSAC,
    "edd": EDD,
    "ctc": CTC,
    "optout": OPTOUT,
}


def provider_kinds() -> dict[str, list[str]]:
    """Each provider's (format's) name -> the kinds of event it sends: whose raw topics its
    producer's principal may write (c2c/acls.py)."""
    return {
        name: sorted({record_type.kind for record_type in fmt.record_types.values()})
        for name, fmt in FORMATS.items()
    }


def format_problems(
    source: str, fmt: ProviderFormat, library: SchemaLibrary | None = None
) -> list[str]:
    """What keeps ``fmt`` (the format registered as ``source``) from making any valid
    event, whatever its rows: each problem names the file to change and how; [] if none.

    A provider code must be a symbol of the Provider enum, which every event carries: a
    format whose code is not would have every row rejected (and dead-lettered) as invalid.
    Each record type's kind must be one of c2c.kinds.EVENT_KINDS.
    """
    lib = library if library is not None else SchemaLibrary()
    problems = []
    symbols = [str(symbol) for symbol in lib.resolve(PROVIDER_ENUM)["symbols"]]
    if fmt.provider not in symbols:
        enum_file = _shown(lib.path_of(PROVIDER_ENUM))
        problems.append(
            f"the {source} format's provider {fmt.provider!r} (producers/formats.py) is not a "
            f"symbol of {PROVIDER_ENUM} ({enum_file}: {', '.join(symbols)}). Add "
            f"{fmt.provider!r} at the end of its symbols (appending keeps every other "
            "symbol's index, so events already written read the same), run `c2c schemas "
            "codegen` to regenerate c2c/events.py, and `c2c schemas register` on each stack"
        )
    known = {kind.name for kind in EVENT_KINDS}
    for type_code, record_type in fmt.record_types.items():
        if record_type.kind not in known:
            problems.append(
                f"the {source} format's record type {type_code or '(every row)'!r} makes "
                f"{record_type.kind!r} events, which c2c/kinds.py does not declare "
                f"({', '.join(sorted(known))}); use one of those kinds, or declare a new kind "
                "there with its schemas"
            )
    return problems


def _shown(path: Path) -> str:
    """``path`` relative to the project when it is inside it (as a reader finds it)."""
    root = Path(__file__).resolve().parents[1]
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)


def get_format(source: str, library: SchemaLibrary | None = None) -> ProviderFormat:
    """The format of ``source`` (a provider code, or 'optout'). KeyError names the known
    sources; FormatError lists what keeps the format from making valid events
    (:func:`format_problems`), before any row is read."""
    try:
        fmt = FORMATS[source]
    except KeyError:
        raise KeyError(f"unknown source {source!r}; choose from {', '.join(FORMATS)}") from None
    problems = format_problems(source, fmt, library)
    if problems:
        raise FormatError("; ".join(problems))
    return fmt
