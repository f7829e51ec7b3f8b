-- Each source's horizon (the last day of the latest complete period it has sent), declared
-- by `c2c horizon set PROVIDER PERIOD`, and the outcome views re-created to read it:
-- - a cohort is counted only once its defining period is complete (on or before its
--   defining source's horizon), so a future-dated record makes no row;
-- - a measure whose window has not closed by the horizon of the sources it looks at is NULL
--   (unknown), never 0; a source with no declared horizon has every window open;
-- - a measure's period (pathways' employment_year) comes from the horizon, never from the
--   latest date seen;
-- - coverage: the share of each row's population linked to a record of any source other
--   than the one that defines it.
-- Year labels, one convention in every outcome table: a year is labelled by the calendar
-- year in which its period ends. class_year 2016 completed in the 2015-16 school year;
-- academic_year and entry_year 2017 are the academic year 2016-17 (the fact tables'
-- academic_year 2016: they label it by its start, as the providers send it); issue_year,
-- award_year (earnings) and employment_year are calendar years.

CREATE TABLE IF NOT EXISTS source_horizon
(
    provider LowCardinality(String) COMMENT 'Source system (k12, ccc, csu, uc, csac, edd, ctc, ...)',
    complete_through Date COMMENT 'Last day of the latest complete period the source has sent (a quarter''s last day for edd; June 30 for a school year)',
    declared_at DateTime64(3, 'UTC') DEFAULT now64(3) COMMENT 'When it was declared; the latest declaration counts',
    declared_by LowCardinality(String) DEFAULT '' COMMENT 'Who declared it (an operator name, or the provider)'
)
ENGINE = ReplacingMergeTree(declared_at)
ORDER BY provider
COMMENT 'Per source, the latest complete period it has sent (its horizon), as declared by `c2c horizon set`; outcome windows close against it';

CREATE VIEW IF NOT EXISTS horizon_wide
(
    k12 Nullable(Date) COMMENT 'K-12 horizon',
    ccc Nullable(Date) COMMENT 'Community colleges horizon',
    csu Nullable(Date) COMMENT 'CSU horizon',
    uc Nullable(Date) COMMENT 'UC horizon',
    csac Nullable(Date) COMMENT 'Student Aid Commission horizon',
    edd Nullable(Date) COMMENT 'Employment department horizon',
    ctc Nullable(Date) COMMENT 'Teacher credentialing horizon',
    post Nullable(Date) COMMENT 'The earliest of CCC, CSU and UC (NULL unless all three are declared): enrollment anywhere in public postsecondary is known up to it',
    edd_quarter Nullable(Int64) COMMENT 'Index (year * 4 + quarter - 1) of the last quarter complete by the edd horizon'
)
COMMENT 'The declared horizons in one row; NULL for a source that declared none'
AS
WITH latest AS (
    SELECT provider, argMax(complete_through, declared_at) AS through
    FROM source_horizon GROUP BY provider
)
SELECT maxIfOrNull(through, provider = 'k12') AS k12,
       maxIfOrNull(through, provider = 'ccc') AS ccc,
       maxIfOrNull(through, provider = 'csu') AS csu,
       maxIfOrNull(through, provider = 'uc') AS uc,
       maxIfOrNull(through, provider = 'csac') AS csac,
       maxIfOrNull(through, provider = 'edd') AS edd,
       maxIfOrNull(through, provider = 'ctc') AS ctc,
       if(ccc IS NULL OR csu IS NULL OR uc IS NULL, NULL, least(ccc, csu, uc)) AS post,
       toInt64(toYear(addDays(edd, 1))) * 4 + toQuarter(addDays(edd, 1)) - 2 AS edd_quarter
FROM latest;

CREATE VIEW IF NOT EXISTS person_sources
(
    person_key String COMMENT 'The current person id',
    sources Array(String) COMMENT 'Every source with a fact of the person'
)
COMMENT 'The sources each current person has facts from (coverage of the outcome tables)'
AS SELECT person_key, groupUniqArray(toString(provider)) AS sources
FROM (
    SELECT person_key, provider FROM enrollment_current
    UNION ALL SELECT person_key, provider FROM completion_current
    UNION ALL SELECT person_key, provider FROM financial_aid_current
    UNION ALL SELECT person_key, provider FROM wage_current
    UNION ALL SELECT person_key, provider FROM credential_current
)
GROUP BY person_key;

CREATE VIEW IF NOT EXISTS hs_completion
(
    person_key String COMMENT 'The current person id',
    done Date COMMENT 'Their first high-school completion (diploma, certificate or equivalency)',
    race Nullable(String) COMMENT 'Race/ethnicity on that record',
    sex Nullable(String) COMMENT 'Sex on that record',
    county_fips Nullable(String) COMMENT 'County of residence (FIPS) on that record',
    english_learner Nullable(Bool) COMMENT 'English learner flag on that record',
    foster_youth Nullable(Bool) COMMENT 'Foster youth flag on that record',
    homeless Nullable(Bool) COMMENT 'Homeless flag on that record',
    socioeconomically_disadvantaged Nullable(Bool) COMMENT 'Socioeconomically disadvantaged flag on that record'
)
COMMENT 'Each person''s first high-school completion (college-going and pathways count from it)'
AS SELECT person_key,
          min(completion_date) AS done,
          argMin(race_ethnicity, completion_date) AS race,
          argMin(sex, completion_date) AS sex,
          argMin(county_fips, completion_date) AS county_fips,
          argMin(english_learner, completion_date) AS english_learner,
          argMin(foster_youth, completion_date) AS foster_youth,
          argMin(homeless, completion_date) AS homeless,
          argMin(socioeconomically_disadvantaged, completion_date) AS socioeconomically_disadvantaged
FROM completion_current
WHERE award_level IN ('HS_DIPLOMA', 'HS_CERTIFICATE', 'HS_EQUIVALENCY')
GROUP BY person_key;

CREATE VIEW IF NOT EXISTS first_postsecondary_term
(
    person_key String COMMENT 'The current person id',
    start Date COMMENT 'Start of their first public postsecondary term',
    segment String COMMENT 'Its segment: ccc, csu or uc'
)
COMMENT 'Each person''s first public postsecondary term (college-going and pathways)'
AS SELECT person_key,
          min(term_start_date) AS start,
          argMin(provider, term_start_date) AS segment
FROM enrollment_current
WHERE provider IN ('ccc', 'csu', 'uc') AND term_start_date IS NOT NULL
GROUP BY person_key;

CREATE OR REPLACE VIEW outcome_college_going
(
    class_year UInt16 COMMENT 'Calendar year of high-school completion (class 2016 completes in the 2015-16 school year); only completions up to the k12 horizon',
    breakdown String COMMENT 'all, race, sex, county, english_learner, foster_youth, homeless or socioeconomically_disadvantaged (from the completion record)',
    group_value String COMMENT 'The group of the breakdown: all for all; a county FIPS; true or false for a flag; NOT_REPORTED',
    completers UInt64 COMMENT 'High-school completers of the class',
    within_12 Nullable(UInt64) COMMENT 'Completers whose first public postsecondary term starts within 365 days; NULL while the window is open for any of them (CCC, CSU or UC horizon)',
    within_16 Nullable(UInt64) COMMENT 'Within 487 days; NULL while the window is open',
    within_12_ccc Nullable(UInt64) COMMENT 'within_12 whose first term was at CCC; NULL while open',
    within_12_csu Nullable(UInt64) COMMENT 'within_12 at CSU; NULL while open',
    within_12_uc Nullable(UInt64) COMMENT 'within_12 at UC; NULL while open',
    within_16_ccc Nullable(UInt64) COMMENT 'within_16 at CCC; NULL while open',
    within_16_csu Nullable(UInt64) COMMENT 'within_16 at CSU; NULL while open',
    within_16_uc Nullable(UInt64) COMMENT 'within_16 at UC; NULL while open',
    coverage Float64 COMMENT 'Share of the completers linked to a record of a source other than K-12'
)
COMMENT 'Of high-school completers in class Y, those whose first public postsecondary term starts within 12 months (365 days) and within 16 months (487 days) of completion, by segment of that first term; breakdowns all, race, sex, county and the K-12 student groups. NULL: the window has not closed by the sources'' horizons'
AS
WITH
    joined AS (
        SELECT toYear(hs.done) AS class_year, hs.race AS race, hs.sex AS sex,
               hs.county_fips AS county, hs.english_learner AS english_learner,
               hs.foster_youth AS foster_youth, hs.homeless AS homeless,
               hs.socioeconomically_disadvantaged AS disadvantaged,
               ft.person_key != '' AS enrolled, ft.segment AS segment,
               dateDiff('day', hs.done, ft.start) AS days,
               ifNull(addDays(hs.done, 365) <= h.post, false) AS closed_12,
               ifNull(addDays(hs.done, 487) <= h.post, false) AS closed_16,
               length(arrayFilter(s -> s != 'k12', ps.sources)) > 0 AS linked
        FROM hs_completion AS hs
        CROSS JOIN horizon_wide AS h
        LEFT JOIN first_postsecondary_term AS ft ON hs.person_key = ft.person_key
        LEFT JOIN person_sources AS ps ON hs.person_key = ps.person_key
        WHERE ifNull(hs.done <= h.k12, false)
    )
SELECT class_year,
       cell.1 AS breakdown,
       cell.2 AS group_value,
       count() AS completers,
       if(countIf(NOT closed_12) > 0, NULL, countIf(enrolled AND days <= 365)) AS within_12,
       if(countIf(NOT closed_16) > 0, NULL, countIf(enrolled AND days <= 487)) AS within_16,
       if(countIf(NOT closed_12) > 0, NULL, countIf(enrolled AND days <= 365 AND segment = 'ccc')) AS within_12_ccc,
       if(countIf(NOT closed_12) > 0, NULL, countIf(enrolled AND days <= 365 AND segment = 'csu')) AS within_12_csu,
       if(countIf(NOT closed_12) > 0, NULL, countIf(enrolled AND days <= 365 AND segment = 'uc')) AS within_12_uc,
       if(countIf(NOT closed_16) > 0, NULL, countIf(enrolled AND days <= 487 AND segment = 'ccc')) AS within_16_ccc,
       if(countIf(NOT closed_16) > 0, NULL, countIf(enrolled AND days <= 487 AND segment = 'csu')) AS within_16_csu,
       if(countIf(NOT closed_16) > 0, NULL, countIf(enrolled AND days <= 487 AND segment = 'uc')) AS within_16_uc,
       round(countIf(linked) / count(), 3) AS coverage
FROM joined
ARRAY JOIN [
    ('all', 'all'),
    ('race', ifNull(race, 'NOT_REPORTED')),
    ('sex', ifNull(sex, 'NOT_REPORTED')),
    ('county', ifNull(county, 'NOT_REPORTED')),
    ('english_learner', ifNull(toString(english_learner), 'NOT_REPORTED')),
    ('foster_youth', ifNull(toString(foster_youth), 'NOT_REPORTED')),
    ('homeless', ifNull(toString(homeless), 'NOT_REPORTED')),
    ('socioeconomically_disadvantaged', ifNull(toString(disadvantaged), 'NOT_REPORTED'))
] AS cell
GROUP BY class_year, breakdown, group_value;

CREATE OR REPLACE VIEW outcome_working_while_enrolled
(
    segment String COMMENT 'ccc, csu or uc',
    academic_year UInt16 COMMENT 'Academic year by the calendar year it ends in (2017 = 2016-17); only terms starting up to the segment''s horizon',
    students UInt64 COMMENT 'Students enrolled at the segment that year',
    with_wages Nullable(UInt64) COMMENT 'Of them, those with wages in a quarter in which one of their terms that year starts; NULL while any such quarter is past the edd horizon',
    coverage Float64 COMMENT 'Share of the students linked to a record of a source other than the segment'
)
COMMENT 'Students enrolled at a segment in academic year Y, and those with wages in a quarter in which one of their terms that year starts. NULL: the quarter is not complete in the wage data'
AS
WITH
    terms AS (
        SELECT DISTINCT e.person_key AS person_key, e.provider AS segment,
               e.academic_year + 1 AS academic_year,
               toYear(e.term_start_date) AS y, toQuarter(e.term_start_date) AS q,
               ifNull(toInt64(y) * 4 + q - 1 <= h.edd_quarter, false) AS closed
        FROM enrollment_current AS e
        CROSS JOIN horizon_wide AS h
        WHERE e.provider IN ('ccc', 'csu', 'uc') AND e.term_start_date IS NOT NULL
          AND ifNull(e.term_start_date <= multiIf(e.provider = 'ccc', h.ccc, e.provider = 'csu', h.csu, h.uc), false)
    ),
    paid AS (SELECT DISTINCT person_key, year AS y, quarter AS q FROM wage_current)
SELECT terms.segment AS segment, terms.academic_year AS academic_year,
       uniqExact(terms.person_key) AS students,
       if(countIf(NOT terms.closed) > 0, NULL,
          uniqExactIf(terms.person_key, paid.person_key != '')) AS with_wages,
       round(uniqExactIf(terms.person_key,
                         length(arrayFilter(s -> s != terms.segment, ps.sources)) > 0)
             / uniqExact(terms.person_key), 3) AS coverage
FROM terms
LEFT JOIN paid ON terms.person_key = paid.person_key AND terms.y = paid.y AND terms.q = paid.q
LEFT JOIN person_sources AS ps ON terms.person_key = ps.person_key
GROUP BY segment, academic_year;

CREATE OR REPLACE VIEW outcome_financial_aid
(
    segment String COMMENT 'ccc, csu or uc',
    academic_year UInt16 COMMENT 'Academic (and aid) year by the calendar year it ends in (2017 = 2016-17); only years started by the segment''s horizon',
    students UInt64 COMMENT 'Students enrolled at the segment that year',
    with_aid Nullable(UInt64) COMMENT 'Of them, those with an aid award for that aid year at an institution of the segment they attended; NULL until the csac horizon reaches June 30 ending the aid year',
    coverage Float64 COMMENT 'Share of the students linked to a record of a source other than the segment'
)
COMMENT 'Students enrolled at a segment in academic year Y, and those with an aid award for aid year Y at an institution of that segment they attended that year. NULL: the aid year is not complete in the aid data'
AS
WITH
    terms AS (
        SELECT DISTINCT e.person_key AS person_key, e.provider AS segment,
               e.academic_year AS start_year, e.institution_id AS institution_id,
               ifNull(makeDate(e.academic_year + 1, 6, 30) <= h.csac, false) AS closed
        FROM enrollment_current AS e
        CROSS JOIN horizon_wide AS h
        WHERE e.provider IN ('ccc', 'csu', 'uc')
          AND ifNull(makeDate(e.academic_year, 7, 1) <= multiIf(e.provider = 'ccc', h.ccc, e.provider = 'csu', h.csu, h.uc), false)
    ),
    aid AS (
        SELECT DISTINCT person_key, award_year, institution_id
        FROM financial_aid_current WHERE institution_id IS NOT NULL
    )
SELECT terms.segment AS segment, terms.start_year + 1 AS academic_year,
       uniqExact(terms.person_key) AS students,
       if(countIf(NOT terms.closed) > 0, NULL,
          uniqExactIf(terms.person_key, aid.person_key != '')) AS with_aid,
       round(uniqExactIf(terms.person_key,
                         length(arrayFilter(s -> s != terms.segment, ps.sources)) > 0)
             / uniqExact(terms.person_key), 3) AS coverage
FROM terms
LEFT JOIN aid ON terms.person_key = aid.person_key
    AND terms.start_year = aid.award_year
    AND terms.institution_id = aid.institution_id
LEFT JOIN person_sources AS ps ON terms.person_key = ps.person_key
GROUP BY segment, academic_year;

CREATE OR REPLACE VIEW outcome_teacher_pipeline
(
    issue_year UInt16 COMMENT 'Calendar year the credential was issued; only credentials up to the ctc horizon',
    credential_type String COMMENT 'Credential type',
    breakdown String COMMENT 'all, or institution (the recommending institution)',
    group_value String COMMENT 'all for all; the recommending institution id, or NOT_REPORTED',
    credentials UInt64 COMMENT 'Credentials issued',
    with_ca_public_bachelor Nullable(UInt64) COMMENT 'Of them, held by someone with a CSU or UC bachelor''s before the credential; NULL while an issue date is past the CSU or UC horizon',
    coverage Float64 COMMENT 'Share of the credentials whose holder is linked to a record of a source other than ctc'
)
COMMENT 'Credentials issued by year and type, all and by recommending institution; how many holders earned a bachelor''s at CSU or UC before the credential. NULL: the universities'' data does not reach the issue date yet'
AS
WITH
    bachelors AS (
        SELECT person_key, min(completion_date) AS first_bachelor
        FROM completion_current
        WHERE award_level = 'BACHELOR' AND provider IN ('csu', 'uc')
        GROUP BY person_key
    )
SELECT toYear(c.issue_date) AS issue_year,
       c.credential_type AS credential_type,
       cell.1 AS breakdown,
       cell.2 AS group_value,
       count() AS credentials,
       if(countIf(NOT ifNull(c.issue_date <= least(h.csu, h.uc), false)) > 0, NULL,
          countIf(b.person_key != '' AND b.first_bachelor < c.issue_date)) AS with_ca_public_bachelor,
       round(countIf(length(arrayFilter(s -> s != 'ctc', ps.sources)) > 0) / count(), 3) AS coverage
FROM credential_current AS c
CROSS JOIN horizon_wide AS h
LEFT JOIN bachelors AS b ON c.person_key = b.person_key
LEFT JOIN person_sources AS ps ON c.person_key = ps.person_key
ARRAY JOIN [('all', 'all'), ('institution', ifNull(c.recommending_institution_id, 'NOT_REPORTED'))] AS cell
WHERE ifNull(c.issue_date <= h.ctc, false)
GROUP BY issue_year, credential_type, breakdown, group_value;

CREATE OR REPLACE VIEW outcome_pathways
(
    class_year UInt16 COMMENT 'Calendar year of high-school completion (class 2016 completes in the 2015-16 school year); only completions up to the k12 horizon',
    first_destination Nullable(String) COMMENT 'CCC, CSU or UC: segment of the first public postsecondary term within 8 years (2928 days) of completion; NOT_ENROLLED: none in those 8 years; NULL: none yet and the 8 years are not over by the CCC, CSU and UC horizons',
    highest_award String COMMENT 'Highest postsecondary award dated up to the CCC, CSU and UC horizons: BACHELOR > ASSOCIATE > CERTIFICATE > NONE',
    employment_year Nullable(UInt16) COMMENT 'The last calendar year complete by the edd horizon (NULL: no edd horizon declared)',
    completers UInt64 COMMENT 'Completers in the cell',
    employed Nullable(UInt64) COMMENT 'Of them, those with wages in employment_year; NULL without an edd horizon',
    coverage Float64 COMMENT 'Share of the completers linked to a record of a source other than K-12'
)
COMMENT 'Class Y completers by first destination within 8 years, highest postsecondary award by the horizons, and how many had wages in employment_year, the last calendar year complete by the edd horizon (never the latest date seen)'
AS
WITH
    best AS (
        SELECT a.person_key AS person_key,
               max(multiIf(a.award_level = 'BACHELOR', 3, a.award_level = 'ASSOCIATE', 2, 1)) AS rank
        FROM completion_current AS a
        CROSS JOIN horizon_wide AS h
        WHERE a.award_level IN ('CERTIFICATE', 'ASSOCIATE', 'BACHELOR')
          AND ifNull(a.completion_date <= h.post, false)
        GROUP BY person_key
    ),
    last_year AS (
        SELECT if(edd IS NULL, NULL, toUInt16(toYear(addDays(edd, 1)) - 1)) AS y FROM horizon_wide
    ),
    employed AS (
        SELECT DISTINCT person_key FROM wage_current WHERE year = (SELECT y FROM last_year)
    )
SELECT toYear(hs.done) AS class_year,
       multiIf(ft.person_key != '' AND dateDiff('day', hs.done, ft.start) <= 8 * 366,
               upper(ft.segment),
               ifNull(addDays(hs.done, 8 * 366) <= h.post, false), 'NOT_ENROLLED',
               NULL) AS first_destination,
       ['NONE', 'CERTIFICATE', 'ASSOCIATE', 'BACHELOR'][b.rank + 1] AS highest_award,
       (SELECT y FROM last_year) AS employment_year,
       count() AS completers,
       if(employment_year IS NULL, NULL, countIf(e.person_key != '')) AS employed,
       round(countIf(length(arrayFilter(s -> s != 'k12', ps.sources)) > 0) / count(), 3) AS coverage
FROM hs_completion AS hs
CROSS JOIN horizon_wide AS h
LEFT JOIN first_postsecondary_term AS ft ON hs.person_key = ft.person_key
LEFT JOIN best AS b ON hs.person_key = b.person_key
LEFT JOIN employed AS e ON hs.person_key = e.person_key
LEFT JOIN person_sources AS ps ON hs.person_key = ps.person_key
WHERE ifNull(hs.done <= h.k12, false)
GROUP BY class_year, first_destination, highest_award;

CREATE OR REPLACE VIEW outcome_completion
(
    segment String COMMENT 'ccc, csu or uc',
    entry_year UInt16 COMMENT 'Academic year of entry by the calendar year it ends in (2017 = 2016-17); only years started by the segment''s horizon',
    entrants UInt64 COMMENT 'First-time students entering the segment that year',
    within_150 Nullable(UInt64) COMMENT 'Awarded the segment''s level by June 30 of entry_year + 2 (CCC: 3 years) or + 5 (CSU, UC: 6 years); NULL until the segment''s horizon reaches that day',
    within_8_years Nullable(UInt64) COMMENT 'Awarded by June 30 of entry_year + 7 (8 years); NULL until the segment''s horizon reaches that day',
    coverage Float64 COMMENT 'Share of the entrants linked to a record of a source other than the segment'
)
COMMENT 'First-time students entering a segment in the academic year ending in Y (entry_year); those awarded that segment''s level (CCC: certificate or associate; CSU, UC: bachelor''s) within 3 (CCC) or 6 (CSU, UC) academic years (150% of normal time), and within 8. NULL: the window has not closed by the segment''s horizon'
AS
WITH
    entrants AS (
        SELECT DISTINCT e.person_key AS person_key, e.provider AS segment,
               e.academic_year AS start_year, e.academic_year + 1 AS entry_year,
               multiIf(e.provider = 'ccc', h.ccc, e.provider = 'csu', h.csu, h.uc) AS horizon
        FROM enrollment_current AS e
        CROSS JOIN horizon_wide AS h
        WHERE e.provider IN ('ccc', 'csu', 'uc') AND e.first_time
          AND ifNull(makeDate(e.academic_year, 7, 1) <= horizon, false)
    ),
    first_award AS (
        SELECT person_key, provider AS segment, min(completion_date) AS awarded
        FROM completion_current
        WHERE (provider = 'ccc' AND award_level IN ('CERTIFICATE', 'ASSOCIATE'))
           OR (provider IN ('csu', 'uc') AND award_level = 'BACHELOR')
        GROUP BY person_key, segment
    )
SELECT e.segment AS segment,
       e.entry_year AS entry_year,
       count() AS entrants,
       if(countIf(NOT ifNull(makeDate(e.start_year + if(e.segment = 'ccc', 3, 6), 6, 30) <= e.horizon, false)) > 0,
          NULL,
          countIf(a.person_key != ''
                  AND a.awarded <= makeDate(e.start_year + if(e.segment = 'ccc', 3, 6), 6, 30)))
           AS within_150,
       if(countIf(NOT ifNull(makeDate(e.start_year + 8, 6, 30) <= e.horizon, false)) > 0,
          NULL,
          countIf(a.person_key != '' AND a.awarded <= makeDate(e.start_year + 8, 6, 30)))
           AS within_8_years,
       round(countIf(length(arrayFilter(s -> s != e.segment, ps.sources)) > 0) / count(), 3) AS coverage
FROM entrants AS e
LEFT JOIN first_award AS a ON e.person_key = a.person_key AND e.segment = a.segment
LEFT JOIN person_sources AS ps ON e.person_key = ps.person_key
GROUP BY segment, entry_year;

CREATE OR REPLACE VIEW outcome_earnings
(
    award_year UInt16 COMMENT 'Calendar year of the award; only awards up to the awarding segment''s horizon',
    award_level String COMMENT 'CERTIFICATE, ASSOCIATE, BACHELOR, ...',
    breakdown String COMMENT 'all, program (2-digit CIP family) or institution (segment:institution id)',
    group_value String COMMENT 'The group of the breakdown (all for all)',
    awards UInt64 COMMENT 'Awards in the cell',
    wages_q2 Nullable(UInt64) COMMENT 'Awardees with any wages in the 2nd quarter after the award''s quarter; NULL while that quarter is past the edd horizon for any award of the cell',
    wages_q4 Nullable(UInt64) COMMENT 'In the 4th quarter after; NULL while open',
    wages_q20 Nullable(UInt64) COMMENT 'In the 20th quarter after; NULL while open',
    p25_1y Nullable(Float64) COMMENT 'Lower quartile of quarterly wages (dollars, all employers) in the 4th quarter after, of those with wages then; NULL while open or none',
    median_1y Nullable(Float64) COMMENT 'Median, 4th quarter after',
    p75_1y Nullable(Float64) COMMENT 'Upper quartile, 4th quarter after',
    p25_5y Nullable(Float64) COMMENT 'Lower quartile, 20th quarter after; NULL while open or none',
    median_5y Nullable(Float64) COMMENT 'Median, 20th quarter after',
    p75_5y Nullable(Float64) COMMENT 'Upper quartile, 20th quarter after',
    coverage Float64 COMMENT 'Share of the awards whose holder is linked to a record of a source other than the awarding segment'
)
COMMENT 'Postsecondary awards by calendar year of the award and level; breakdowns all, program (2-digit CIP family) and institution (segment:institution id): how many awardees had any wages in the 2nd, 4th and 20th quarter after the award''s quarter, quartiles of quarterly wages in the 4th (1y) and 20th (5y) quarter after. NULL: the quarter is past the edd horizon'
AS
WITH
    awards AS (
        SELECT c.person_key AS person_key, c.provider AS provider, c.award_level AS award_level,
               toYear(c.completion_date) AS award_year,
               ifNull(substring(c.program_cip, 1, 2), 'NOT_REPORTED') AS program_family,
               concat(c.provider, ':', c.institution_id) AS institution,
               toYear(c.completion_date) * 4 + toQuarter(c.completion_date) - 1 AS q,
               h.edd_quarter AS last_q
        FROM completion_current AS c
        CROSS JOIN horizon_wide AS h
        WHERE c.provider IN ('ccc', 'csu', 'uc')
          AND c.award_level NOT IN ('HS_DIPLOMA', 'HS_CERTIFICATE', 'HS_EQUIVALENCY')
          AND ifNull(c.completion_date <= multiIf(c.provider = 'ccc', h.ccc, c.provider = 'csu', h.csu, h.uc), false)
    ),
    paid AS (
        SELECT person_key, toInt64(year) * 4 + quarter - 1 AS q, toFloat64(sum(wages)) AS dollars
        FROM wage_current
        GROUP BY person_key, q
    ),
    after AS (
        SELECT a.award_year AS award_year, a.award_level AS award_level,
               a.program_family AS program_family, a.institution AS institution,
               ifNull(a.q + 2 <= a.last_q, false) AS closed_q2,
               ifNull(a.q + 4 <= a.last_q, false) AS closed_q4,
               ifNull(a.q + 20 <= a.last_q, false) AS closed_q20,
               q2.person_key != '' AS paid_q2,
               q4.person_key != '' AS paid_q4,
               q4.dollars AS dollars_1y,
               q20.person_key != '' AS paid_q20,
               q20.dollars AS dollars_5y,
               length(arrayFilter(s -> s != a.provider, ps.sources)) > 0 AS linked
        FROM awards AS a
        LEFT JOIN paid AS q2 ON a.person_key = q2.person_key AND a.q + 2 = q2.q
        LEFT JOIN paid AS q4 ON a.person_key = q4.person_key AND a.q + 4 = q4.q
        LEFT JOIN paid AS q20 ON a.person_key = q20.person_key AND a.q + 20 = q20.q
        LEFT JOIN person_sources AS ps ON a.person_key = ps.person_key
    )
SELECT award_year,
       award_level,
       cell.1 AS breakdown,
       cell.2 AS group_value,
       count() AS awards,
       if(countIf(NOT closed_q2) > 0, NULL, countIf(paid_q2)) AS wages_q2,
       if(countIf(NOT closed_q4) > 0, NULL, countIf(paid_q4)) AS wages_q4,
       if(countIf(NOT closed_q20) > 0, NULL, countIf(paid_q20)) AS wages_q20,
       if(ifNull(wages_q4, 0) = 0, NULL, round(quantileExactInclusiveIf(0.25)(dollars_1y, paid_q4), 2)) AS p25_1y,
       if(ifNull(wages_q4, 0) = 0, NULL, round(quantileExactInclusiveIf(0.5)(dollars_1y, paid_q4), 2)) AS median_1y,
       if(ifNull(wages_q4, 0) = 0, NULL, round(quantileExactInclusiveIf(0.75)(dollars_1y, paid_q4), 2)) AS p75_1y,
       if(ifNull(wages_q20, 0) = 0, NULL, round(quantileExactInclusiveIf(0.25)(dollars_5y, paid_q20), 2)) AS p25_5y,
       if(ifNull(wages_q20, 0) = 0, NULL, round(quantileExactInclusiveIf(0.5)(dollars_5y, paid_q20), 2)) AS median_5y,
       if(ifNull(wages_q20, 0) = 0, NULL, round(quantileExactInclusiveIf(0.75)(dollars_5y, paid_q20), 2)) AS p75_5y,
       round(countIf(linked) / count(), 3) AS coverage
FROM after
ARRAY JOIN [('all', 'all'), ('program', program_family), ('institution', institution)] AS cell
GROUP BY award_year, award_level, breakdown, group_value;
