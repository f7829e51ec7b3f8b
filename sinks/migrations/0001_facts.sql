-- Fact tables, one per linked topic, and the person dimension. De-identified: a person id,
-- birth year, sex and demographics; never a name, full birth date, SSN, SSID or address.
-- ReplacingMergeTree ordered by event_id: a replayed event (same id) replaces its copy, so
-- readers use FINAL (the outcome views do).

CREATE TABLE IF NOT EXISTS fact_enrollment
(
    event_id UUID COMMENT 'The raw event''s id: deterministic from provider, source record and content',
    event_time DateTime64(3, 'UTC') COMMENT 'When the enrollment happened at the source',
    provider LowCardinality(String) COMMENT 'Source system (k12, ccc, csu, uc)',
    person_id String COMMENT 'Pseudonymous person id as published; person_map gives the current one after merges',
    birth_year Nullable(UInt16) COMMENT 'Birth year (never the full date)',
    sex LowCardinality(Nullable(String)) COMMENT 'Sex as reported by the source',
    race_ethnicity LowCardinality(Nullable(String)) COMMENT 'Race/ethnicity as reported by the source',
    county_fips Nullable(String) COMMENT 'County of residence (FIPS)',
    foster_youth Nullable(Bool) COMMENT 'Foster youth flag',
    homeless Nullable(Bool) COMMENT 'Homeless flag',
    socioeconomically_disadvantaged Nullable(Bool) COMMENT 'Socioeconomically disadvantaged flag',
    english_learner Nullable(Bool) COMMENT 'English learner flag',
    institution_id String COMMENT 'School, college or campus id',
    district_id Nullable(String) COMMENT 'K-12 district or college district id',
    academic_year UInt16 COMMENT 'Academic year by its starting calendar year (2021 = 2021-22)',
    term LowCardinality(String) COMMENT 'FALL, WINTER, SPRING, SUMMER, ANNUAL',
    term_start_date Nullable(Date) COMMENT 'First day of the term',
    grade_level Nullable(String) COMMENT 'K-12 grade level',
    program_cip Nullable(String) COMMENT 'Program of study (CIP code)',
    first_time Nullable(Bool) COMMENT 'First-time student at this segment',
    ingested_at DateTime64(3, 'UTC') DEFAULT now64(3) COMMENT 'When the sink wrote the row'
)
ENGINE = ReplacingMergeTree(ingested_at)
ORDER BY event_id
COMMENT 'Enrollments (K-12 and postsecondary terms), one row per linked event';

CREATE TABLE IF NOT EXISTS fact_completion
(
    event_id UUID COMMENT 'The raw event''s id',
    event_time DateTime64(3, 'UTC') COMMENT 'When the completion happened at the source',
    provider LowCardinality(String) COMMENT 'Source system',
    person_id String COMMENT 'Pseudonymous person id as published',
    birth_year Nullable(UInt16) COMMENT 'Birth year',
    sex LowCardinality(Nullable(String)) COMMENT 'Sex as reported',
    race_ethnicity LowCardinality(Nullable(String)) COMMENT 'Race/ethnicity as reported',
    county_fips Nullable(String) COMMENT 'County of residence (FIPS)',
    foster_youth Nullable(Bool) COMMENT 'Foster youth flag',
    homeless Nullable(Bool) COMMENT 'Homeless flag',
    socioeconomically_disadvantaged Nullable(Bool) COMMENT 'Socioeconomically disadvantaged flag',
    english_learner Nullable(Bool) COMMENT 'English learner flag',
    award_level LowCardinality(String) COMMENT 'HS_DIPLOMA ... CERTIFICATE, ASSOCIATE, BACHELOR ...',
    completion_date Date COMMENT 'Date of completion or award',
    institution_id String COMMENT 'Awarding school or institution',
    program_cip Nullable(String) COMMENT 'Program (CIP code)',
    ingested_at DateTime64(3, 'UTC') DEFAULT now64(3) COMMENT 'When the sink wrote the row'
)
ENGINE = ReplacingMergeTree(ingested_at)
ORDER BY event_id
COMMENT 'High-school completions and postsecondary awards';

CREATE TABLE IF NOT EXISTS fact_financial_aid
(
    event_id UUID COMMENT 'The raw event''s id',
    event_time DateTime64(3, 'UTC') COMMENT 'When the award was made at the source',
    provider LowCardinality(String) COMMENT 'Source system',
    person_id String COMMENT 'Pseudonymous person id as published',
    birth_year Nullable(UInt16) COMMENT 'Birth year',
    sex LowCardinality(Nullable(String)) COMMENT 'Sex as reported',
    race_ethnicity LowCardinality(Nullable(String)) COMMENT 'Race/ethnicity as reported',
    county_fips Nullable(String) COMMENT 'County of residence (FIPS)',
    foster_youth Nullable(Bool) COMMENT 'Foster youth flag',
    homeless Nullable(Bool) COMMENT 'Homeless flag',
    socioeconomically_disadvantaged Nullable(Bool) COMMENT 'Socioeconomically disadvantaged flag',
    english_learner Nullable(Bool) COMMENT 'English learner flag',
    aid_program LowCardinality(String) COMMENT 'Grant or aid program',
    award_year UInt16 COMMENT 'Aid year by its starting calendar year',
    amount Decimal(18, 2) COMMENT 'Amount in dollars',
    institution_id Nullable(String) COMMENT 'Institution attended with the aid',
    ingested_at DateTime64(3, 'UTC') DEFAULT now64(3) COMMENT 'When the sink wrote the row'
)
ENGINE = ReplacingMergeTree(ingested_at)
ORDER BY event_id
COMMENT 'Financial-aid awards';

CREATE TABLE IF NOT EXISTS fact_wage
(
    event_id UUID COMMENT 'The raw event''s id',
    event_time DateTime64(3, 'UTC') COMMENT 'End of the reported quarter',
    provider LowCardinality(String) COMMENT 'Source system',
    person_id String COMMENT 'Pseudonymous person id as published',
    birth_year Nullable(UInt16) COMMENT 'Birth year (usually unknown for wage records)',
    sex LowCardinality(Nullable(String)) COMMENT 'Sex as reported',
    race_ethnicity LowCardinality(Nullable(String)) COMMENT 'Race/ethnicity as reported',
    county_fips Nullable(String) COMMENT 'County (FIPS)',
    foster_youth Nullable(Bool) COMMENT 'Foster youth flag',
    homeless Nullable(Bool) COMMENT 'Homeless flag',
    socioeconomically_disadvantaged Nullable(Bool) COMMENT 'Socioeconomically disadvantaged flag',
    english_learner Nullable(Bool) COMMENT 'English learner flag',
    employer_id String COMMENT 'Employer account id',
    naics Nullable(String) COMMENT 'Employer industry (NAICS)',
    year UInt16 COMMENT 'Calendar year of the quarter',
    quarter UInt8 COMMENT 'Quarter (1-4)',
    wages Decimal(18, 2) COMMENT 'Wages paid in the quarter, dollars',
    ingested_at DateTime64(3, 'UTC') DEFAULT now64(3) COMMENT 'When the sink wrote the row'
)
ENGINE = ReplacingMergeTree(ingested_at)
ORDER BY event_id
COMMENT 'Quarterly wage records from the employment department';

CREATE TABLE IF NOT EXISTS fact_credential
(
    event_id UUID COMMENT 'The raw event''s id',
    event_time DateTime64(3, 'UTC') COMMENT 'When the credential was issued',
    provider LowCardinality(String) COMMENT 'Source system',
    person_id String COMMENT 'Pseudonymous person id as published',
    birth_year Nullable(UInt16) COMMENT 'Birth year',
    sex LowCardinality(Nullable(String)) COMMENT 'Sex as reported',
    race_ethnicity LowCardinality(Nullable(String)) COMMENT 'Race/ethnicity as reported',
    county_fips Nullable(String) COMMENT 'County (FIPS)',
    foster_youth Nullable(Bool) COMMENT 'Foster youth flag',
    homeless Nullable(Bool) COMMENT 'Homeless flag',
    socioeconomically_disadvantaged Nullable(Bool) COMMENT 'Socioeconomically disadvantaged flag',
    english_learner Nullable(Bool) COMMENT 'English learner flag',
    credential_type LowCardinality(String) COMMENT 'Credential type',
    issue_date Date COMMENT 'Issue date',
    recommending_institution_id Nullable(String) COMMENT 'Recommending institution',
    ingested_at DateTime64(3, 'UTC') DEFAULT now64(3) COMMENT 'When the sink wrote the row'
)
ENGINE = ReplacingMergeTree(ingested_at)
ORDER BY event_id
COMMENT 'Teacher credentials issued';

CREATE TABLE IF NOT EXISTS person_map
(
    person_id String COMMENT 'A person id absorbed by a merge',
    survivor_id String COMMENT 'The id it now belongs to (after every later merge)',
    changed_at DateTime64(3, 'UTC') COMMENT 'When the merge that set this row was applied'
)
ENGINE = ReplacingMergeTree(changed_at)
ORDER BY person_id
COMMENT 'Merged person ids and their surviving id; facts are counted under the survivor';

CREATE TABLE IF NOT EXISTS dim_person
(
    person_id String COMMENT 'Pseudonymous person id as published',
    birth_year Nullable(UInt16) COMMENT 'Birth year',
    sex LowCardinality(Nullable(String)) COMMENT 'Sex, from the latest event that reported it',
    race_ethnicity LowCardinality(Nullable(String)) COMMENT 'Race/ethnicity, latest reported',
    county_fips Nullable(String) COMMENT 'County (FIPS), latest reported',
    updated_at DateTime64(3, 'UTC') COMMENT 'Event time of the latest event that set it'
)
ENGINE = ReplacingMergeTree(updated_at)
ORDER BY person_id
COMMENT 'De-identified person attributes (no names, dates of birth or identifiers)';

CREATE VIEW IF NOT EXISTS person_current
COMMENT 'Every published person id and the id it counts under now'
AS SELECT person_id, survivor_id FROM person_map FINAL;
