"""Pydantic models of the Avro records in schemas/avro/. GENERATED: do not edit.

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

AidProgram = Literal['CAL_GRANT_A', 'CAL_GRANT_B', 'CAL_GRANT_C', 'MIDDLE_CLASS_SCHOLARSHIP', 'PELL', 'OTHER']
AwardLevel = Literal['HS_DIPLOMA', 'HS_CERTIFICATE', 'HS_EQUIVALENCY', 'CERTIFICATE', 'ASSOCIATE', 'BACHELOR', 'MASTER', 'DOCTORATE', 'OTHER']
CredentialType = Literal['PRELIMINARY_MULTIPLE_SUBJECT', 'PRELIMINARY_SINGLE_SUBJECT', 'PRELIMINARY_EDUCATION_SPECIALIST', 'CLEAR_MULTIPLE_SUBJECT', 'CLEAR_SINGLE_SUBJECT', 'CLEAR_EDUCATION_SPECIALIST', 'INTERN', 'ADMINISTRATIVE_SERVICES', 'PUPIL_PERSONNEL_SERVICES', 'OTHER']
IdentityChangeType = Literal['PERSON_CREATED', 'RECORD_LINKED', 'PERSONS_MERGED', 'UNKNOWN', 'PERSON_SPLIT']
OptOutAction = Literal['REQUESTED', 'REVOKED', 'UNKNOWN']
OptOutCause = Literal['REQUESTED', 'REVOKED', 'MERGED', 'SHARED_ID', 'UNKNOWN']
Provider = Literal['k12', 'ccc', 'csu', 'uc', 'csac', 'edd', 'ctc', 'other']
RaceEthnicity = Literal['HISPANIC_LATINO', 'AMERICAN_INDIAN_ALASKA_NATIVE', 'ASIAN', 'BLACK_AFRICAN_AMERICAN', 'FILIPINO', 'NATIVE_HAWAIIAN_PACIFIC_ISLANDER', 'WHITE', 'TWO_OR_MORE', 'NOT_REPORTED']
Requester = Literal['INDIVIDUAL', 'PROVIDER', 'OPERATOR', 'UNKNOWN']
Sex = Literal['FEMALE', 'MALE', 'NONBINARY', 'NOT_REPORTED']
Term = Literal['FALL', 'WINTER', 'SPRING', 'SUMMER', 'ANNUAL', 'UNKNOWN']


class PersonIdentity(BaseModel):
    """Identifying fields of a person as one source has them (identity zone: PII). Fields a source lacks are null. Only the identity resolver reads them."""

    model_config = ConfigDict(extra="forbid")

    source_person_id: str = Field(min_length=1, max_length=64, description="The source's own person identifier (K-12 local id, college or campus student id, aid applicant id, employer-reported id...). Producers key by it. CEDS: Person Identifier.")
    ssn: str | None = Field(default=None, pattern='^[0-9]{9}$', description='Social Security Number, 9 digits, no dashes (CEDS: Person Identifier, system SSN).')
    itin: str | None = Field(default=None, pattern='^9[0-9]{8}$', description='Individual Taxpayer Identification Number, 9 digits starting with 9.')
    ssid: str | None = Field(default=None, pattern='^[0-9]{10}$', description='Statewide Student Identifier, 10 digits (CEDS: Student Identifier, system State).')
    state_aid_id: str | None = Field(default=None, max_length=32, description='Student Aid Commission id for applicants without an SSN.')
    first_name: str | None = Field(default=None, max_length=100, description='Legal first name, or first initial where that is all a source has (CEDS: First Name).')
    middle_name: str | None = Field(default=None, max_length=100, description='CEDS: Middle Name.')
    last_name: str | None = Field(default=None, max_length=100, description='CEDS: Last or Surname.')
    birth_date: datetime.date | None = Field(default=None, description='CEDS: Birthdate.')
    sex: Sex | None = Field(default=None, description='CEDS: Sex.')
    zip: str | None = Field(default=None, pattern='^[0-9]{5}$', description='Residential ZIP code, 5 digits (CEDS: Address Postal Code).')


class Demographics(BaseModel):
    """Attributes outcome breakdowns need; no identifying fields. Every field is optional: sources report different subsets."""

    model_config = ConfigDict(extra="forbid")

    race_ethnicity: RaceEthnicity | None = Field(default=None, description='CEDS: Race / Hispanic or Latino Ethnicity.')
    county_fips: str | None = Field(default=None, pattern='^06[0-9]{3}$', description='Residential county, 5-digit FIPS code (CEDS: Address County Name, as code).')
    foster_youth: bool | None = Field(default=None, description='CEDS: Foster Care Program participation.')
    homeless: bool | None = Field(default=None, description='CEDS: Homelessness Status.')
    socioeconomically_disadvantaged: bool | None = Field(default=None, description='CEDS: Economic Disadvantage Status.')
    english_learner: bool | None = Field(default=None, description='CEDS: English Learner Status.')


class EnrollmentFacts(BaseModel):
    """What an enrollment says, shared by the raw and linked enrollment events."""

    model_config = ConfigDict(extra="forbid")

    institution_id: str = Field(min_length=1, max_length=32, description='School, college or campus code (CEDS: Institution Identifier / School Identifier).')
    district_id: str | None = Field(default=None, max_length=32, description='K-12 district code (CEDS: LEA Identifier).')
    academic_year: int = Field(ge=1990, le=2100, description='Year the school or academic year starts: 2024 for 2024-25 (CEDS: School Year).')
    term: Term = Field(description='CEDS: Session Type.')
    term_start_date: datetime.date | None = Field(default=None, description='First day of the term (CEDS: Session Begin Date).')
    grade_level: str | None = Field(default=None, pattern='^(TK|KG|0[1-9]|1[0-2])$', description='K-12 grade: TK, KG, 01-12 (CEDS: Grade Level).')
    program_cip: str | None = Field(default=None, pattern='^[0-9]{2}\\.[0-9]{4}$', description='Program of study, CIP 2020 code NN.NNNN (CEDS: CIP Code).')
    first_time: bool | None = Field(default=None, description='First enrollment at any institution of this segment (CEDS: First-Time Postsecondary Student).')


class EnrollmentEvent(BaseModel):
    """An enrollment reported by a school, college or campus. Identity zone: carries PII."""

    model_config = ConfigDict(extra="forbid")

    event_id: str = Field(pattern='^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$', description='Unique event id, derived deterministically from provider, source record id and content (so a re-sent record is recognisable).')
    event_time: datetime.datetime = Field(description='When the event happened at the source (UTC).')
    provider: Provider = Field(description='Source system.')
    source_record_id: str = Field(min_length=1, max_length=64, description="The source's own id for this record; with provider, names the record for corrections and audits.")
    person: PersonIdentity = Field(description='Who the record is about, as the source identifies them.')
    demographics: Demographics | None = Field(default=None, description='Outcome attributes the source reports.')
    facts: EnrollmentFacts = Field(description='What the event says.')


class CompletionFacts(BaseModel):
    """A high-school completion or a postsecondary award."""

    model_config = ConfigDict(extra="forbid")

    award_level: AwardLevel = Field(description='CEDS: High School Diploma Type / Postsecondary Award Type.')
    completion_date: datetime.date = Field(description='CEDS: Diploma or Credential Award Date.')
    institution_id: str = Field(min_length=1, max_length=32, description='Awarding school, college or campus (CEDS: Institution Identifier).')
    program_cip: str | None = Field(default=None, pattern='^[0-9]{2}\\.[0-9]{4}$', description='Program of the award, CIP 2020 code NN.NNNN (CEDS: CIP Code).')


class CompletionEvent(BaseModel):
    """A high-school completion or postsecondary award. Identity zone: carries PII."""

    model_config = ConfigDict(extra="forbid")

    event_id: str = Field(pattern='^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$', description='Unique event id, derived deterministically from provider, source record id and content (so a re-sent record is recognisable).')
    event_time: datetime.datetime = Field(description='When the event happened at the source (UTC).')
    provider: Provider = Field(description='Source system.')
    source_record_id: str = Field(min_length=1, max_length=64, description="The source's own id for this record; with provider, names the record for corrections and audits.")
    person: PersonIdentity = Field(description='Who the record is about, as the source identifies them.')
    demographics: Demographics | None = Field(default=None, description='Outcome attributes the source reports.')
    facts: CompletionFacts = Field(description='What the event says.')


class FinancialAidFacts(BaseModel):
    """A financial-aid award."""

    model_config = ConfigDict(extra="forbid")

    aid_program: AidProgram = Field(description='CEDS: Financial Aid Award Type.')
    award_year: int = Field(ge=1990, le=2100, description='Year the aid year starts: 2024 for 2024-25 (CEDS: Financial Aid Year Designator).')
    amount: decimal.Decimal = Field(max_digits=12, decimal_places=2, ge=0, description='Award amount in US dollars, exact to the cent (CEDS: Financial Aid Award Amount).')
    institution_id: str | None = Field(default=None, max_length=32, description='Institution the aid is paid at.')


class FinancialAidEvent(BaseModel):
    """A financial-aid award reported by the Student Aid Commission. Identity zone: carries PII."""

    model_config = ConfigDict(extra="forbid")

    event_id: str = Field(pattern='^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$', description='Unique event id, derived deterministically from provider, source record id and content (so a re-sent record is recognisable).')
    event_time: datetime.datetime = Field(description='When the event happened at the source (UTC).')
    provider: Provider = Field(description='Source system.')
    source_record_id: str = Field(min_length=1, max_length=64, description="The source's own id for this record; with provider, names the record for corrections and audits.")
    person: PersonIdentity = Field(description='Who the record is about, as the source identifies them.')
    demographics: Demographics | None = Field(default=None, description='Outcome attributes the source reports.')
    facts: FinancialAidFacts = Field(description='What the event says.')


class WageFacts(BaseModel):
    """One employer's quarterly wage record for one person."""

    model_config = ConfigDict(extra="forbid")

    employer_id: str = Field(min_length=1, max_length=32, description='Employer account number (CEDS: Employer Identifier).')
    naics: str | None = Field(default=None, pattern='^[0-9]{2,6}$', description='Employer industry, NAICS code of 2 to 6 digits (CEDS: Employment NAICS Code).')
    year: int = Field(ge=1990, le=2100, description='Calendar year of the quarter.')
    quarter: int = Field(ge=1, le=4, description='Calendar quarter, 1-4.')
    wages: decimal.Decimal = Field(max_digits=14, decimal_places=2, ge=0, description='Wages paid in the quarter, US dollars exact to the cent: the unscaled value is cents (CEDS: Employment Wages).')


class WageEvent(BaseModel):
    """A quarterly wage record reported by the employment department. Identity zone: carries PII."""

    model_config = ConfigDict(extra="forbid")

    event_id: str = Field(pattern='^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$', description='Unique event id, derived deterministically from provider, source record id and content (so a re-sent record is recognisable).')
    event_time: datetime.datetime = Field(description='When the event happened at the source (UTC).')
    provider: Provider = Field(description='Source system.')
    source_record_id: str = Field(min_length=1, max_length=64, description="The source's own id for this record; with provider, names the record for corrections and audits.")
    person: PersonIdentity = Field(description='Who the record is about, as the source identifies them.')
    demographics: Demographics | None = Field(default=None, description='Outcome attributes the source reports.')
    facts: WageFacts = Field(description='What the event says.')


class CredentialFacts(BaseModel):
    """A credential issued by the teacher-credentialing commission."""

    model_config = ConfigDict(extra="forbid")

    credential_type: CredentialType = Field(description='CEDS: Credential Type.')
    issue_date: datetime.date = Field(description='CEDS: Credential Issuance Date.')
    recommending_institution_id: str | None = Field(default=None, max_length=32, description='Institution that recommended the credential.')


class CredentialEvent(BaseModel):
    """A credential reported by the teacher-credentialing commission. Identity zone: carries PII."""

    model_config = ConfigDict(extra="forbid")

    event_id: str = Field(pattern='^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$', description='Unique event id, derived deterministically from provider, source record id and content (so a re-sent record is recognisable).')
    event_time: datetime.datetime = Field(description='When the event happened at the source (UTC).')
    provider: Provider = Field(description='Source system.')
    source_record_id: str = Field(min_length=1, max_length=64, description="The source's own id for this record; with provider, names the record for corrections and audits.")
    person: PersonIdentity = Field(description='Who the record is about, as the source identifies them.')
    demographics: Demographics | None = Field(default=None, description='Outcome attributes the source reports.')
    facts: CredentialFacts = Field(description='What the event says.')


class OptOutEvent(BaseModel):
    """A request to leave the linked data set, or its revocation. Identity zone: carries PII to resolve the person."""

    model_config = ConfigDict(extra="forbid")

    event_id: str = Field(pattern='^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$', description='Unique event id, derived deterministically from provider, source record id and content (so a re-sent record is recognisable).')
    event_time: datetime.datetime = Field(description='When the event happened at the source (UTC).')
    provider: Provider = Field(description='Source system.')
    source_record_id: str = Field(min_length=1, max_length=64, description="The source's own id for this record; with provider, names the record for corrections and audits.")
    request_id: str = Field(min_length=1, max_length=64, description='Stable id of the opt-out request; a revocation names the request it revokes.')
    action: OptOutAction = Field(description='REQUESTED or REVOKED.')
    requested_by: Requester = Field(description='Who asked.')
    person: PersonIdentity = Field(description='Identifying fields given with the request.')


class PersonAttributes(BaseModel):
    """De-identified attributes of a linked person that outcomes break down by. Never names, full birth dates, SSNs, SSIDs or addresses."""

    model_config = ConfigDict(extra="forbid")

    birth_year: int | None = Field(default=None, ge=1900, le=2100, description='Year of birth only.')
    sex: Sex | None = Field(default=None, description='CEDS: Sex.')
    demographics: Demographics | None = Field(default=None, description='Race/ethnicity, county and program flags.')


class LinkedEnrollment(BaseModel):
    """An enrollment, linked to a person. De-identified zone: no PII."""

    model_config = ConfigDict(extra="forbid")

    event_id: str = Field(pattern='^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$', description="The raw event's id (lineage; also the sink's idempotency key).")
    event_time: datetime.datetime = Field(description='When the event happened at the source (UTC).')
    provider: Provider = Field(description='Source system.')
    person_id: str = Field(min_length=1, max_length=64, description='Stable pseudonymous person id assigned by identity resolution.')
    attributes: PersonAttributes = Field(description='De-identified attributes of the person.')
    facts: EnrollmentFacts = Field(description='What the event says.')


class LinkedCompletion(BaseModel):
    """A completion or award, linked to a person. De-identified zone: no PII."""

    model_config = ConfigDict(extra="forbid")

    event_id: str = Field(pattern='^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$', description="The raw event's id (lineage; also the sink's idempotency key).")
    event_time: datetime.datetime = Field(description='When the event happened at the source (UTC).')
    provider: Provider = Field(description='Source system.')
    person_id: str = Field(min_length=1, max_length=64, description='Stable pseudonymous person id assigned by identity resolution.')
    attributes: PersonAttributes = Field(description='De-identified attributes of the person.')
    facts: CompletionFacts = Field(description='What the event says.')


class LinkedFinancialAid(BaseModel):
    """A financial-aid award, linked to a person. De-identified zone: no PII."""

    model_config = ConfigDict(extra="forbid")

    event_id: str = Field(pattern='^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$', description="The raw event's id (lineage; also the sink's idempotency key).")
    event_time: datetime.datetime = Field(description='When the event happened at the source (UTC).')
    provider: Provider = Field(description='Source system.')
    person_id: str = Field(min_length=1, max_length=64, description='Stable pseudonymous person id assigned by identity resolution.')
    attributes: PersonAttributes = Field(description='De-identified attributes of the person.')
    facts: FinancialAidFacts = Field(description='What the event says.')


class LinkedWage(BaseModel):
    """A quarterly wage record, linked to a person. De-identified zone: no PII."""

    model_config = ConfigDict(extra="forbid")

    event_id: str = Field(pattern='^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$', description="The raw event's id (lineage; also the sink's idempotency key).")
    event_time: datetime.datetime = Field(description='When the event happened at the source (UTC).')
    provider: Provider = Field(description='Source system.')
    person_id: str = Field(min_length=1, max_length=64, description='Stable pseudonymous person id assigned by identity resolution.')
    attributes: PersonAttributes = Field(description='De-identified attributes of the person.')
    facts: WageFacts = Field(description='What the event says.')


class LinkedCredential(BaseModel):
    """A credential, linked to a person. De-identified zone: no PII."""

    model_config = ConfigDict(extra="forbid")

    event_id: str = Field(pattern='^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$', description="The raw event's id (lineage; also the sink's idempotency key).")
    event_time: datetime.datetime = Field(description='When the event happened at the source (UTC).')
    provider: Provider = Field(description='Source system.')
    person_id: str = Field(min_length=1, max_length=64, description='Stable pseudonymous person id assigned by identity resolution.')
    attributes: PersonAttributes = Field(description='De-identified attributes of the person.')
    facts: CredentialFacts = Field(description='What the event says.')


class IdentityChange(BaseModel):
    """A change in who is who: a new person, a record linked to a person, or two persons merged (downstream re-keys previous_person_id to person_id). No PII."""

    model_config = ConfigDict(extra="forbid")

    change_id: str = Field(pattern='^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$', description='Unique id of the change.')
    changed_at: datetime.datetime = Field(description='When the resolver made the change (UTC).')
    change_type: IdentityChangeType = Field(description='What changed.')
    person_id: str = Field(min_length=1, max_length=64, description='The person created or linked to, or the surviving person of a merge.')
    previous_person_id: str | None = Field(default=None, max_length=64, description='For a merge: the person id that no longer survives.')
    provider: Provider | None = Field(default=None, description='Provider of the record that caused the change.')
    source_event_id: str | None = Field(default=None, pattern='^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$', description='Raw event that caused the change.')
    rule: str | None = Field(default=None, max_length=64, description='Which rule decided: SSN, SSID, PROBABILISTIC...')
    match_weight: float | None = Field(default=None, description='Fellegi-Sunter weight of a probabilistic decision.')


class OptOutDecision(BaseModel):
    """The identity resolver applied an opt-out, a revocation, or a merge that spread an opt-out: downstream removes (opted_out) or re-admits (not opted_out) the listed person ids. De-identified: ids only, never the identifying fields of the request."""

    model_config = ConfigDict(extra="forbid")

    decision_id: str = Field(pattern='^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$', description='Unique id of the decision, derived from the raw event that caused it (a replay gives the same id).')
    decided_at: datetime.datetime = Field(description='When the resolver decided (UTC).')
    requested_at: datetime.datetime = Field(description="When the request or revocation was made at its source (the raw event's time; for a merge, the raw event that caused it).")
    request_id: str = Field(min_length=1, max_length=64, description='The opt-out request this decision applies (for a merge, the earliest active request of the merged person).')
    cause: OptOutCause = Field(description='REQUESTED, REVOKED, MERGED or SHARED_ID (a person holding an SSN or SSID of an opted-out person).')
    requested_by: Requester = Field(description='Who asked (for a merge, who asked for the request named).')
    person_id: str = Field(min_length=1, max_length=64, description="The person (surviving id) the decision is about; for SHARED_ID, the opted-out person whose SSN or SSID the covered person holds (so that the decision is keyed, and ordered, with that person's request and revocation).")
    person_ids: list[str] = Field(description="Every person id whose published rows the decision covers: the person and each id merged into it (for SHARED_ID, the covered person's).")
    opted_out: bool = Field(description='Whether the person is opted out after this decision (false once every request of theirs is revoked).')


class NeedsReview(BaseModel):
    """A raw event the identity resolver would not force into a person, or a possible match it would not make on its own, held for review with the reason. Identity zone: raw_value carries the event as received, PII included."""

    model_config = ConfigDict(extra="forbid")

    review_id: str = Field(pattern='^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$', description='Unique id of this review item (derived from the event, so a replay gives the same id).')
    received_at: datetime.datetime = Field(description='When the resolver set it aside (UTC).')
    reason: str = Field(max_length=200, description='Why it was not resolved, in words that carry no identifying values.')
    provider: Provider = Field(description='Source system.')
    event_id: str = Field(pattern='^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$', description="The raw event's id.")
    source_topic: str = Field(description='Raw topic it was read from.')
    source_partition: int = Field(description='Partition it was read from.')
    source_offset: int = Field(description='Offset it was read at.')
    raw_value: bytes = Field(description='The raw event exactly as received (Confluent wire format).')
    person_id: str | None = Field(default=None, max_length=64, description='A possible match: the person the record was linked to (null for a record held unresolved).')
    candidate_person_id: str | None = Field(default=None, max_length=64, description='A possible match: the person the record scored close to, below the match threshold.')
    match_weight: float | None = Field(default=None, description='A possible match: the Fellegi-Sunter weight of the record against the candidate.')
    comparison: dict[str, str] | None = Field(default=None, description="A possible match: each compared field's level (ssn: one_digit, first: close, ...), never a value.")


class OperatorDecision(BaseModel):
    """An operator's decision on a possible match held for review (`c2c review link|separate`), sent to the identity worker, which applies it as an identity change. Ids only, and the operator's reason in words."""

    model_config = ConfigDict(extra="forbid")

    decision_id: str = Field(pattern='^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$', description="Unique id of this decision (the audit record's action_id): the worker applies a decision id once.")
    decided_at: datetime.datetime = Field(description='When the operator decided (UTC).')
    action: str = Field(max_length=16, description='LINK (the two persons are one) or SEPARATE (they are not: kept apart, split if merged).')
    review_id: str = Field(pattern='^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$', description='The review decided (NeedsReview.review_id).')
    person_id: str = Field(min_length=1, max_length=64, description="The review's person: the one its record was linked to.")
    candidate_person_id: str = Field(min_length=1, max_length=64, description="The review's candidate person.")
    operator: str = Field(max_length=200, description='Who decided: the --operator given, else the login name of the process.')
    reason: str = Field(max_length=2000, description="The operator's reason, in words.")


class DeadLetter(BaseModel):
    """A message a consumer or producer could not process, with everything needed to inspect and replay it. May carry PII in original_value: the dead-letter topic belongs to the identity zone."""

    model_config = ConfigDict(extra="forbid")

    dead_letter_id: str = Field(pattern='^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$', description='Unique id of this dead letter.')
    failed_at: datetime.datetime = Field(description='When processing failed (UTC).')
    stage: str = Field(description='Who failed: producer:k12, consumer:identity, sink...')
    error_code: str = Field(description='Stable error code, e.g. serde.not_wire_format.')
    error_message: str = Field(description='What was wrong, in words.')
    source_topic: str | None = Field(default=None, description='Topic the message was read from (or meant for).')
    source_partition: int | None = Field(default=None, description='Partition it was read from.')
    source_offset: int | None = Field(default=None, description='Offset it was read at.')
    source_file: str | None = Field(default=None, description='Input file, for a rejected row.')
    source_line: int | None = Field(default=None, description='Line number in that file.')
    original_key: bytes | None = Field(default=None, description='The message key as received; its first bytes only when original_key_size is larger (c2c.deadletter.MAX_ORIGINAL_KEY).')
    original_value: bytes | None = Field(default=None, description="The message value or row as received, byte for byte; its first bytes only when original_value_size is larger (c2c.deadletter.MAX_ORIGINAL_VALUE), so that the dead letter stays under the broker's message size.")
    original_key_size: int | None = Field(default=None, description='Length in bytes of the whole original key; original_key is truncated when it holds fewer. Null in dead letters written before this field.')
    original_key_sha256: str | None = Field(default=None, description='SHA-256 of the whole original key, lower-case hex: identifies it when original_key is truncated.')
    original_value_size: int | None = Field(default=None, description='Length in bytes of the whole original value or row; original_value is truncated when it holds fewer. Null in dead letters written before this field.')
    original_value_sha256: str | None = Field(default=None, description='SHA-256 of the whole original value or row, lower-case hex: identifies it (and checks a copy recovered from the source) when original_value is truncated.')


class Heartbeat(BaseModel):
    """A probe event that operators and the demo send through the stack to check it end to end. Carries no person data."""

    model_config = ConfigDict(extra="forbid")

    heartbeat_id: str = Field(pattern='^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$', description='Unique id of this probe.')
    sent_at: datetime.datetime = Field(description='When the probe was produced (UTC).')
    origin: str = Field(description="Which command or host sent it, e.g. 'c2c demo'.")


class OperatorAction(BaseModel):
    """An operator's decision on a dead letter or a record held for review: who, when, what, on which item, and where it went. Ids, topics and offsets only, never the item's values."""

    model_config = ConfigDict(extra="forbid")

    action_id: str = Field(pattern='^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$', description='Unique id of this action.')
    acted_at: datetime.datetime = Field(description='When the action was taken (UTC).')
    operator: str = Field(description='Who took it: the --operator given, else the login name of the process.')
    action: str = Field(description='What was done, e.g. deadletter.replay, deadletter.discard.')
    subject: str = Field(description="The id of the item acted on (a dead letter's dead_letter_id).")
    note: str | None = Field(default=None, description="The operator's reason, in words.")
    target: str | None = Field(default=None, description='Where the item went, e.g. topic[partition]@offset of a replayed message.')


__all__ = [
    "AidProgram",
    "AwardLevel",
    "CompletionEvent",
    "CompletionFacts",
    "CredentialEvent",
    "CredentialFacts",
    "CredentialType",
    "DeadLetter",
    "Demographics",
    "EnrollmentEvent",
    "EnrollmentFacts",
    "FinancialAidEvent",
    "FinancialAidFacts",
    "Heartbeat",
    "IdentityChange",
    "IdentityChangeType",
    "LinkedCompletion",
    "LinkedCredential",
    "LinkedEnrollment",
    "LinkedFinancialAid",
    "LinkedWage",
    "NeedsReview",
    "OperatorAction",
    "OperatorDecision",
    "OptOutAction",
    "OptOutCause",
    "OptOutDecision",
    "OptOutEvent",
    "PersonAttributes",
    "PersonIdentity",
    "Provider",
    "RaceEthnicity",
    "Requester",
    "Sex",
    "Term",
    "WageEvent",
    "WageFacts",
]
