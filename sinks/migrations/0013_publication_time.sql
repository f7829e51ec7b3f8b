-- Each fact row's publication time: when its linked message was published (its Kafka
-- timestamp, which the resolver sets when it resolves the record). An opt-out's delete
-- removes a person's rows published up to the decision, so an event re-admitted after a
-- revocation and written before the sink read the opt-out (a lagging decisions
-- partition) is kept (sinks/optouts.py). Rows written before this migration hold 1970:
-- any decision covering their person removes them, as every delete did before. The
-- current views are made again (as in 0002) to show the new column.
--
-- The wire tables (engine Null: they keep nothing) are made again with the publication
-- time before each message (sinks/wire.py), and their views with them: rendered by
-- sinks/ddl.py. Their views are dropped first, as they read the wire table.

ALTER TABLE fact_enrollment ADD COLUMN IF NOT EXISTS published_at DateTime64(3, 'UTC') DEFAULT toDateTime64(0, 3, 'UTC') COMMENT 'When its linked message was published (its Kafka timestamp, set by the resolver); 1970 for rows written before migration 0013';

ALTER TABLE fact_completion ADD COLUMN IF NOT EXISTS published_at DateTime64(3, 'UTC') DEFAULT toDateTime64(0, 3, 'UTC') COMMENT 'When its linked message was published (its Kafka timestamp, set by the resolver); 1970 for rows written before migration 0013';

ALTER TABLE fact_financial_aid ADD COLUMN IF NOT EXISTS published_at DateTime64(3, 'UTC') DEFAULT toDateTime64(0, 3, 'UTC') COMMENT 'When its linked message was published (its Kafka timestamp, set by the resolver); 1970 for rows written before migration 0013';

ALTER TABLE fact_wage ADD COLUMN IF NOT EXISTS published_at DateTime64(3, 'UTC') DEFAULT toDateTime64(0, 3, 'UTC') COMMENT 'When its linked message was published (its Kafka timestamp, set by the resolver); 1970 for rows written before migration 0013';

ALTER TABLE fact_credential ADD COLUMN IF NOT EXISTS published_at DateTime64(3, 'UTC') DEFAULT toDateTime64(0, 3, 'UTC') COMMENT 'When its linked message was published (its Kafka timestamp, set by the resolver); 1970 for rows written before migration 0013';

CREATE OR REPLACE VIEW enrollment_current
COMMENT 'fact_enrollment, one row per event, person_key = the current person id'
AS SELECT f.*, if(m.survivor_id = '', f.person_id, m.survivor_id) AS person_key
FROM fact_enrollment AS f FINAL
LEFT JOIN (SELECT person_id, survivor_id FROM person_map FINAL) AS m ON f.person_id = m.person_id;

CREATE OR REPLACE VIEW completion_current
COMMENT 'fact_completion, one row per event, person_key = the current person id'
AS SELECT f.*, if(m.survivor_id = '', f.person_id, m.survivor_id) AS person_key
FROM fact_completion AS f FINAL
LEFT JOIN (SELECT person_id, survivor_id FROM person_map FINAL) AS m ON f.person_id = m.person_id;

CREATE OR REPLACE VIEW financial_aid_current
COMMENT 'fact_financial_aid, one row per event, person_key = the current person id'
AS SELECT f.*, if(m.survivor_id = '', f.person_id, m.survivor_id) AS person_key
FROM fact_financial_aid AS f FINAL
LEFT JOIN (SELECT person_id, survivor_id FROM person_map FINAL) AS m ON f.person_id = m.person_id;

CREATE OR REPLACE VIEW wage_current
COMMENT 'fact_wage, one row per event, person_key = the current person id'
AS SELECT f.*, if(m.survivor_id = '', f.person_id, m.survivor_id) AS person_key
FROM fact_wage AS f FINAL
LEFT JOIN (SELECT person_id, survivor_id FROM person_map FINAL) AS m ON f.person_id = m.person_id;

CREATE OR REPLACE VIEW credential_current
COMMENT 'fact_credential, one row per event, person_key = the current person id'
AS SELECT f.*, if(m.survivor_id = '', f.person_id, m.survivor_id) AS person_key
FROM fact_credential AS f FINAL
LEFT JOIN (SELECT person_id, survivor_id FROM person_map FINAL) AS m ON f.person_id = m.person_id;

DROP VIEW IF EXISTS wire_enrollment_facts;

DROP VIEW IF EXISTS wire_enrollment_persons;

DROP TABLE IF EXISTS wire_enrollment;

CREATE TABLE IF NOT EXISTS wire_enrollment
(
    wire_published DateTime64(3, 'UTC'),
    wire_frame FixedString(5),
    event_id UUID,
    event_time DateTime64(3, 'UTC'),
    provider String,
    person_id String,
    attributes Tuple(birth_year Nullable(Int32), sex Nullable(String), demographics Nullable(Tuple(race_ethnicity Nullable(String), county_fips Nullable(String), foster_youth Nullable(Bool), homeless Nullable(Bool), socioeconomically_disadvantaged Nullable(Bool), english_learner Nullable(Bool)))),
    facts Tuple(institution_id String, district_id Nullable(String), academic_year Int32, term String, term_start_date Nullable(Date32), grade_level Nullable(String), program_cip Nullable(String), first_time Nullable(Bool)),
    wire_end_1 Bool,
    wire_end_2 Bool,
    wire_end_3 Bool,
    wire_end_4 Bool,
    wire_end_5 Bool
)
ENGINE = Null
COMMENT 'Linked enrollment messages as they came off the wire (sinks/wire.py); keeps nothing: its views write fact_enrollment and dim_person';

CREATE MATERIALIZED VIEW IF NOT EXISTS wire_enrollment_facts TO fact_enrollment
AS SELECT
    event_id AS event_id,
    event_time AS event_time,
    provider AS provider,
    person_id AS person_id,
    accurateCast(tupleElement(attributes, 'birth_year'), 'Nullable(UInt16)') AS birth_year,
    tupleElement(attributes, 'sex') AS sex,
    tupleElement(tupleElement(attributes, 'demographics'), 'race_ethnicity') AS race_ethnicity,
    tupleElement(tupleElement(attributes, 'demographics'), 'county_fips') AS county_fips,
    tupleElement(tupleElement(attributes, 'demographics'), 'foster_youth') AS foster_youth,
    tupleElement(tupleElement(attributes, 'demographics'), 'homeless') AS homeless,
    tupleElement(tupleElement(attributes, 'demographics'), 'socioeconomically_disadvantaged') AS socioeconomically_disadvantaged,
    tupleElement(tupleElement(attributes, 'demographics'), 'english_learner') AS english_learner,
    tupleElement(facts, 'institution_id') AS institution_id,
    tupleElement(facts, 'district_id') AS district_id,
    accurateCast(tupleElement(facts, 'academic_year'), 'UInt16') AS academic_year,
    tupleElement(facts, 'term') AS term,
    tupleElement(facts, 'term_start_date') AS term_start_date,
    tupleElement(facts, 'grade_level') AS grade_level,
    tupleElement(facts, 'program_cip') AS program_cip,
    tupleElement(facts, 'first_time') AS first_time,
    wire_published AS published_at
FROM wire_enrollment
WHERE throwIf(NOT (wire_end_1 AND NOT wire_end_2 AND wire_end_3 AND wire_end_4 AND NOT wire_end_5)
    OR NOT ifNull(tupleElement(facts, 'term_start_date') BETWEEN toDate32('1970-01-01') AND toDate32('2149-06-06'), true),
    'a linked message in this insert was cut short or too long, or holds a value out of its column''s range') = 0;

CREATE MATERIALIZED VIEW IF NOT EXISTS wire_enrollment_persons TO dim_person
AS SELECT
    person_id,
    latest.1 AS birth_year,
    latest.2 AS sex,
    latest.3 AS race_ethnicity,
    latest.4 AS county_fips,
    updated_at
FROM
(
    SELECT person_id, argMax(tuple(accurateCast(tupleElement(attributes, 'birth_year'), 'Nullable(UInt16)'), tupleElement(attributes, 'sex'), tupleElement(tupleElement(attributes, 'demographics'), 'race_ethnicity'), tupleElement(tupleElement(attributes, 'demographics'), 'county_fips')), event_time) AS latest, max(event_time) AS updated_at
    FROM wire_enrollment
    WHERE throwIf(NOT (wire_end_1 AND NOT wire_end_2 AND wire_end_3 AND wire_end_4 AND NOT wire_end_5)
    OR NOT ifNull(tupleElement(facts, 'term_start_date') BETWEEN toDate32('1970-01-01') AND toDate32('2149-06-06'), true),
    'a linked message in this insert was cut short or too long, or holds a value out of its column''s range') = 0
    GROUP BY person_id
);

DROP VIEW IF EXISTS wire_completion_facts;

DROP VIEW IF EXISTS wire_completion_persons;

DROP TABLE IF EXISTS wire_completion;

CREATE TABLE IF NOT EXISTS wire_completion
(
    wire_published DateTime64(3, 'UTC'),
    wire_frame FixedString(5),
    event_id UUID,
    event_time DateTime64(3, 'UTC'),
    provider String,
    person_id String,
    attributes Tuple(birth_year Nullable(Int32), sex Nullable(String), demographics Nullable(Tuple(race_ethnicity Nullable(String), county_fips Nullable(String), foster_youth Nullable(Bool), homeless Nullable(Bool), socioeconomically_disadvantaged Nullable(Bool), english_learner Nullable(Bool)))),
    facts Tuple(award_level String, completion_date Date32, institution_id String, program_cip Nullable(String)),
    wire_end_1 Bool,
    wire_end_2 Bool,
    wire_end_3 Bool,
    wire_end_4 Bool,
    wire_end_5 Bool
)
ENGINE = Null
COMMENT 'Linked completion messages as they came off the wire (sinks/wire.py); keeps nothing: its views write fact_completion and dim_person';

CREATE MATERIALIZED VIEW IF NOT EXISTS wire_completion_facts TO fact_completion
AS SELECT
    event_id AS event_id,
    event_time AS event_time,
    provider AS provider,
    person_id AS person_id,
    accurateCast(tupleElement(attributes, 'birth_year'), 'Nullable(UInt16)') AS birth_year,
    tupleElement(attributes, 'sex') AS sex,
    tupleElement(tupleElement(attributes, 'demographics'), 'race_ethnicity') AS race_ethnicity,
    tupleElement(tupleElement(attributes, 'demographics'), 'county_fips') AS county_fips,
    tupleElement(tupleElement(attributes, 'demographics'), 'foster_youth') AS foster_youth,
    tupleElement(tupleElement(attributes, 'demographics'), 'homeless') AS homeless,
    tupleElement(tupleElement(attributes, 'demographics'), 'socioeconomically_disadvantaged') AS socioeconomically_disadvantaged,
    tupleElement(tupleElement(attributes, 'demographics'), 'english_learner') AS english_learner,
    tupleElement(facts, 'award_level') AS award_level,
    tupleElement(facts, 'completion_date') AS completion_date,
    tupleElement(facts, 'institution_id') AS institution_id,
    tupleElement(facts, 'program_cip') AS program_cip,
    wire_published AS published_at
FROM wire_completion
WHERE throwIf(NOT (wire_end_1 AND NOT wire_end_2 AND wire_end_3 AND wire_end_4 AND NOT wire_end_5)
    OR NOT ifNull(tupleElement(facts, 'completion_date') BETWEEN toDate32('1970-01-01') AND toDate32('2149-06-06'), true),
    'a linked message in this insert was cut short or too long, or holds a value out of its column''s range') = 0;

CREATE MATERIALIZED VIEW IF NOT EXISTS wire_completion_persons TO dim_person
AS SELECT
    person_id,
    latest.1 AS birth_year,
    latest.2 AS sex,
    latest.3 AS race_ethnicity,
    latest.4 AS county_fips,
    updated_at
FROM
(
    SELECT person_id, argMax(tuple(accurateCast(tupleElement(attributes, 'birth_year'), 'Nullable(UInt16)'), tupleElement(attributes, 'sex'), tupleElement(tupleElement(attributes, 'demographics'), 'race_ethnicity'), tupleElement(tupleElement(attributes, 'demographics'), 'county_fips')), event_time) AS latest, max(event_time) AS updated_at
    FROM wire_completion
    WHERE throwIf(NOT (wire_end_1 AND NOT wire_end_2 AND wire_end_3 AND wire_end_4 AND NOT wire_end_5)
    OR NOT ifNull(tupleElement(facts, 'completion_date') BETWEEN toDate32('1970-01-01') AND toDate32('2149-06-06'), true),
    'a linked message in this insert was cut short or too long, or holds a value out of its column''s range') = 0
    GROUP BY person_id
);

DROP VIEW IF EXISTS wire_financial_aid_facts;

DROP VIEW IF EXISTS wire_financial_aid_persons;

DROP TABLE IF EXISTS wire_financial_aid;

CREATE TABLE IF NOT EXISTS wire_financial_aid
(
    wire_published DateTime64(3, 'UTC'),
    wire_frame FixedString(5),
    event_id UUID,
    event_time DateTime64(3, 'UTC'),
    provider String,
    person_id String,
    attributes Tuple(birth_year Nullable(Int32), sex Nullable(String), demographics Nullable(Tuple(race_ethnicity Nullable(String), county_fips Nullable(String), foster_youth Nullable(Bool), homeless Nullable(Bool), socioeconomically_disadvantaged Nullable(Bool), english_learner Nullable(Bool)))),
    facts Tuple(aid_program String, award_year Int32, amount Decimal(12, 2), institution_id Nullable(String)),
    wire_end_1 Bool,
    wire_end_2 Bool,
    wire_end_3 Bool,
    wire_end_4 Bool,
    wire_end_5 Bool
)
ENGINE = Null
COMMENT 'Linked financial_aid messages as they came off the wire (sinks/wire.py); keeps nothing: its views write fact_financial_aid and dim_person';

CREATE MATERIALIZED VIEW IF NOT EXISTS wire_financial_aid_facts TO fact_financial_aid
AS SELECT
    event_id AS event_id,
    event_time AS event_time,
    provider AS provider,
    person_id AS person_id,
    accurateCast(tupleElement(attributes, 'birth_year'), 'Nullable(UInt16)') AS birth_year,
    tupleElement(attributes, 'sex') AS sex,
    tupleElement(tupleElement(attributes, 'demographics'), 'race_ethnicity') AS race_ethnicity,
    tupleElement(tupleElement(attributes, 'demographics'), 'county_fips') AS county_fips,
    tupleElement(tupleElement(attributes, 'demographics'), 'foster_youth') AS foster_youth,
    tupleElement(tupleElement(attributes, 'demographics'), 'homeless') AS homeless,
    tupleElement(tupleElement(attributes, 'demographics'), 'socioeconomically_disadvantaged') AS socioeconomically_disadvantaged,
    tupleElement(tupleElement(attributes, 'demographics'), 'english_learner') AS english_learner,
    tupleElement(facts, 'aid_program') AS aid_program,
    accurateCast(tupleElement(facts, 'award_year'), 'UInt16') AS award_year,
    tupleElement(facts, 'amount') AS amount,
    tupleElement(facts, 'institution_id') AS institution_id,
    wire_published AS published_at
FROM wire_financial_aid
WHERE throwIf(NOT (wire_end_1 AND NOT wire_end_2 AND wire_end_3 AND wire_end_4 AND NOT wire_end_5),
    'a linked message in this insert was cut short or too long, or holds a value out of its column''s range') = 0;

CREATE MATERIALIZED VIEW IF NOT EXISTS wire_financial_aid_persons TO dim_person
AS SELECT
    person_id,
    latest.1 AS birth_year,
    latest.2 AS sex,
    latest.3 AS race_ethnicity,
    latest.4 AS county_fips,
    updated_at
FROM
(
    SELECT person_id, argMax(tuple(accurateCast(tupleElement(attributes, 'birth_year'), 'Nullable(UInt16)'), tupleElement(attributes, 'sex'), tupleElement(tupleElement(attributes, 'demographics'), 'race_ethnicity'), tupleElement(tupleElement(attributes, 'demographics'), 'county_fips')), event_time) AS latest, max(event_time) AS updated_at
    FROM wire_financial_aid
    WHERE throwIf(NOT (wire_end_1 AND NOT wire_end_2 AND wire_end_3 AND wire_end_4 AND NOT wire_end_5),
    'a linked message in this insert was cut short or too long, or holds a value out of its column''s range') = 0
    GROUP BY person_id
);

DROP VIEW IF EXISTS wire_wage_facts;

DROP VIEW IF EXISTS wire_wage_persons;

DROP TABLE IF EXISTS wire_wage;

CREATE TABLE IF NOT EXISTS wire_wage
(
    wire_published DateTime64(3, 'UTC'),
    wire_frame FixedString(5),
    event_id UUID,
    event_time DateTime64(3, 'UTC'),
    provider String,
    person_id String,
    attributes Tuple(birth_year Nullable(Int32), sex Nullable(String), demographics Nullable(Tuple(race_ethnicity Nullable(String), county_fips Nullable(String), foster_youth Nullable(Bool), homeless Nullable(Bool), socioeconomically_disadvantaged Nullable(Bool), english_learner Nullable(Bool)))),
    facts Tuple(employer_id String, naics Nullable(String), year Int32, quarter Int32, wages Decimal(14, 2)),
    wire_end_1 Bool,
    wire_end_2 Bool,
    wire_end_3 Bool,
    wire_end_4 Bool,
    wire_end_5 Bool
)
ENGINE = Null
COMMENT 'Linked wage messages as they came off the wire (sinks/wire.py); keeps nothing: its views write fact_wage and dim_person';

CREATE MATERIALIZED VIEW IF NOT EXISTS wire_wage_facts TO fact_wage
AS SELECT
    event_id AS event_id,
    event_time AS event_time,
    provider AS provider,
    person_id AS person_id,
    accurateCast(tupleElement(attributes, 'birth_year'), 'Nullable(UInt16)') AS birth_year,
    tupleElement(attributes, 'sex') AS sex,
    tupleElement(tupleElement(attributes, 'demographics'), 'race_ethnicity') AS race_ethnicity,
    tupleElement(tupleElement(attributes, 'demographics'), 'county_fips') AS county_fips,
    tupleElement(tupleElement(attributes, 'demographics'), 'foster_youth') AS foster_youth,
    tupleElement(tupleElement(attributes, 'demographics'), 'homeless') AS homeless,
    tupleElement(tupleElement(attributes, 'demographics'), 'socioeconomically_disadvantaged') AS socioeconomically_disadvantaged,
    tupleElement(tupleElement(attributes, 'demographics'), 'english_learner') AS english_learner,
    tupleElement(facts, 'employer_id') AS employer_id,
    tupleElement(facts, 'naics') AS naics,
    accurateCast(tupleElement(facts, 'year'), 'UInt16') AS year,
    accurateCast(tupleElement(facts, 'quarter'), 'UInt8') AS quarter,
    tupleElement(facts, 'wages') AS wages,
    wire_published AS published_at
FROM wire_wage
WHERE throwIf(NOT (wire_end_1 AND NOT wire_end_2 AND wire_end_3 AND wire_end_4 AND NOT wire_end_5),
    'a linked message in this insert was cut short or too long, or holds a value out of its column''s range') = 0;

CREATE MATERIALIZED VIEW IF NOT EXISTS wire_wage_persons TO dim_person
AS SELECT
    person_id,
    latest.1 AS birth_year,
    latest.2 AS sex,
    latest.3 AS race_ethnicity,
    latest.4 AS county_fips,
    updated_at
FROM
(
    SELECT person_id, argMax(tuple(accurateCast(tupleElement(attributes, 'birth_year'), 'Nullable(UInt16)'), tupleElement(attributes, 'sex'), tupleElement(tupleElement(attributes, 'demographics'), 'race_ethnicity'), tupleElement(tupleElement(attributes, 'demographics'), 'county_fips')), event_time) AS latest, max(event_time) AS updated_at
    FROM wire_wage
    WHERE throwIf(NOT (wire_end_1 AND NOT wire_end_2 AND wire_end_3 AND wire_end_4 AND NOT wire_end_5),
    'a linked message in this insert was cut short or too long, or holds a value out of its column''s range') = 0
    GROUP BY person_id
);

DROP VIEW IF EXISTS wire_credential_facts;

DROP VIEW IF EXISTS wire_credential_persons;

DROP TABLE IF EXISTS wire_credential;

CREATE TABLE IF NOT EXISTS wire_credential
(
    wire_published DateTime64(3, 'UTC'),
    wire_frame FixedString(5),
    event_id UUID,
    event_time DateTime64(3, 'UTC'),
    provider String,
    person_id String,
    attributes Tuple(birth_year Nullable(Int32), sex Nullable(String), demographics Nullable(Tuple(race_ethnicity Nullable(String), county_fips Nullable(String), foster_youth Nullable(Bool), homeless Nullable(Bool), socioeconomically_disadvantaged Nullable(Bool), english_learner Nullable(Bool)))),
    facts Tuple(credential_type String, issue_date Date32, recommending_institution_id Nullable(String)),
    wire_end_1 Bool,
    wire_end_2 Bool,
    wire_end_3 Bool,
    wire_end_4 Bool,
    wire_end_5 Bool
)
ENGINE = Null
COMMENT 'Linked credential messages as they came off the wire (sinks/wire.py); keeps nothing: its views write fact_credential and dim_person';

CREATE MATERIALIZED VIEW IF NOT EXISTS wire_credential_facts TO fact_credential
AS SELECT
    event_id AS event_id,
    event_time AS event_time,
    provider AS provider,
    person_id AS person_id,
    accurateCast(tupleElement(attributes, 'birth_year'), 'Nullable(UInt16)') AS birth_year,
    tupleElement(attributes, 'sex') AS sex,
    tupleElement(tupleElement(attributes, 'demographics'), 'race_ethnicity') AS race_ethnicity,
    tupleElement(tupleElement(attributes, 'demographics'), 'county_fips') AS county_fips,
    tupleElement(tupleElement(attributes, 'demographics'), 'foster_youth') AS foster_youth,
    tupleElement(tupleElement(attributes, 'demographics'), 'homeless') AS homeless,
    tupleElement(tupleElement(attributes, 'demographics'), 'socioeconomically_disadvantaged') AS socioeconomically_disadvantaged,
    tupleElement(tupleElement(attributes, 'demographics'), 'english_learner') AS english_learner,
    tupleElement(facts, 'credential_type') AS credential_type,
    tupleElement(facts, 'issue_date') AS issue_date,
    tupleElement(facts, 'recommending_institution_id') AS recommending_institution_id,
    wire_published AS published_at
FROM wire_credential
WHERE throwIf(NOT (wire_end_1 AND NOT wire_end_2 AND wire_end_3 AND wire_end_4 AND NOT wire_end_5)
    OR NOT ifNull(tupleElement(facts, 'issue_date') BETWEEN toDate32('1970-01-01') AND toDate32('2149-06-06'), true),
    'a linked message in this insert was cut short or too long, or holds a value out of its column''s range') = 0;

CREATE MATERIALIZED VIEW IF NOT EXISTS wire_credential_persons TO dim_person
AS SELECT
    person_id,
    latest.1 AS birth_year,
    latest.2 AS sex,
    latest.3 AS race_ethnicity,
    latest.4 AS county_fips,
    updated_at
FROM
(
    SELECT person_id, argMax(tuple(accurateCast(tupleElement(attributes, 'birth_year'), 'Nullable(UInt16)'), tupleElement(attributes, 'sex'), tupleElement(tupleElement(attributes, 'demographics'), 'race_ethnicity'), tupleElement(tupleElement(attributes, 'demographics'), 'county_fips')), event_time) AS latest, max(event_time) AS updated_at
    FROM wire_credential
    WHERE throwIf(NOT (wire_end_1 AND NOT wire_end_2 AND wire_end_3 AND wire_end_4 AND NOT wire_end_5)
    OR NOT ifNull(tupleElement(facts, 'issue_date') BETWEEN toDate32('1970-01-01') AND toDate32('2149-06-06'), true),
    'a linked message in this insert was cut short or too long, or holds a value out of its column''s range') = 0
    GROUP BY person_id
);
