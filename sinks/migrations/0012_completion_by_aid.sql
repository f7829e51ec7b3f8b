-- Completion by aid receipt (DOMAIN.md: completion rates by aid receipt): outcome_completion
-- gets breakdown and group_value. The 'all' row is the view as before; the received_aid
-- rows split the entrants by whether they received aid in their entry year: any financial
-- aid record of the person (any program, any institution) for the aid year that is their
-- academic year of entry. UNKNOWN while the csac horizon has not reached June 30 ending it.

CREATE OR REPLACE VIEW outcome_completion
(
    segment String COMMENT 'ccc, csu or uc',
    entry_year UInt16 COMMENT 'Academic year of entry by the calendar year it ends in (2017 = 2016-17); only years started by the segment''s horizon',
    breakdown String COMMENT 'all, or received_aid: whether the entrant received aid in the entry year (any financial aid record of the person, any program or institution, for the aid year of the academic year of entry)',
    group_value String COMMENT 'all for all; for received_aid: true, false, or UNKNOWN while the csac horizon has not reached June 30 ending the entry year',
    entrants UInt64 COMMENT 'First-time students entering the segment that year',
    within_150 Nullable(UInt64) COMMENT 'Awarded the segment''s level by June 30 of entry_year + 2 (CCC: 3 years) or + 5 (CSU, UC: 6 years); NULL until the segment''s horizon reaches that day',
    within_8_years Nullable(UInt64) COMMENT 'Awarded by June 30 of entry_year + 7 (8 years); NULL until the segment''s horizon reaches that day',
    coverage Float64 COMMENT 'Share of the entrants linked to a record of a source other than the segment'
)
COMMENT 'First-time students entering a segment in the academic year ending in Y (entry_year); those awarded that segment''s level (CCC: certificate or associate; CSU, UC: bachelor''s) within 3 (CCC) or 6 (CSU, UC) academic years (150% of normal time), and within 8; all, and by aid receipt in the entry year (any financial aid record of the person for that aid year). NULL: the window has not closed by the segment''s horizon'
AS
WITH
    entrants AS (
        SELECT DISTINCT e.person_key AS person_key, e.provider AS segment,
               e.academic_year AS start_year, e.academic_year + 1 AS entry_year,
               multiIf(e.provider = 'ccc', h.ccc, e.provider = 'csu', h.csu, h.uc) AS horizon,
               ifNull(makeDate(e.academic_year + 1, 6, 30) <= h.csac, false) AS aid_known
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
    ),
    aided AS (
        SELECT DISTINCT person_key, award_year FROM financial_aid_current
    )
SELECT e.segment AS segment,
       e.entry_year AS entry_year,
       cell.1 AS breakdown,
       cell.2 AS group_value,
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
LEFT JOIN aided AS f ON e.person_key = f.person_key AND e.start_year = f.award_year
LEFT JOIN person_sources AS ps ON e.person_key = ps.person_key
ARRAY JOIN [
    ('all', 'all'),
    ('received_aid', if(NOT e.aid_known, 'UNKNOWN', if(f.person_key != '', 'true', 'false')))
] AS cell
GROUP BY segment, entry_year, breakdown, group_value;
