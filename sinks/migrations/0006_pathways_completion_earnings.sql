-- Student pathways, postsecondary completion, and employment and earnings after an award
-- (DOMAIN.md measures 2, 3 and 4). Definitions match synth's truth
-- (producers/synth/outcomes.py: _pathways, _completion, _earnings). They read only the
-- *_current views, so merges are followed and persons are counted, not fragments.

CREATE VIEW IF NOT EXISTS outcome_pathways
COMMENT 'Class Y completers by first destination (segment of the first postsecondary term within 8 years (2928 days) of completion, else NOT_ENROLLED), highest postsecondary award by the end of the data (BACHELOR > ASSOCIATE > CERTIFICATE > NONE), and how many of them had wages in the last year of the data (employment_year, the latest year of any wage record)'
AS
WITH
    hs AS (
        SELECT person_key, min(completion_date) AS done
        FROM completion_current
        WHERE award_level IN ('HS_DIPLOMA', 'HS_CERTIFICATE', 'HS_EQUIVALENCY')
        GROUP BY person_key
    ),
    first_term AS (
        SELECT person_key,
               min(term_start_date) AS start,
               argMin(provider, term_start_date) AS segment
        FROM enrollment_current
        WHERE provider IN ('ccc', 'csu', 'uc') AND term_start_date IS NOT NULL
        GROUP BY person_key
    ),
    best AS (
        SELECT person_key,
               max(multiIf(award_level = 'BACHELOR', 3, award_level = 'ASSOCIATE', 2, 1)) AS rank
        FROM completion_current
        WHERE award_level IN ('CERTIFICATE', 'ASSOCIATE', 'BACHELOR')
        GROUP BY person_key
    ),
    last_year AS (SELECT maxOrNull(year) AS y FROM wage_current),
    employed AS (
        SELECT DISTINCT person_key FROM wage_current WHERE year = (SELECT y FROM last_year)
    )
SELECT toYear(hs.done) AS class_year,
       if(ft.person_key != '' AND dateDiff('day', hs.done, ft.start) <= 8 * 366,
          upper(ft.segment), 'NOT_ENROLLED') AS first_destination,
       ['NONE', 'CERTIFICATE', 'ASSOCIATE', 'BACHELOR'][b.rank + 1] AS highest_award,
       (SELECT y FROM last_year) AS employment_year,
       count() AS completers,
       countIf(e.person_key != '') AS employed
FROM hs
LEFT JOIN first_term AS ft ON hs.person_key = ft.person_key
LEFT JOIN best AS b ON hs.person_key = b.person_key
LEFT JOIN employed AS e ON hs.person_key = e.person_key
GROUP BY class_year, first_destination, highest_award;

CREATE VIEW IF NOT EXISTS outcome_completion
COMMENT 'First-time students entering a segment in academic year Y (entry_year); those awarded that segment''s level (CCC: certificate or associate; CSU, UC: bachelor''s) by June 30 of Y+3 (CCC) or Y+6 (CSU, UC) (150% of normal time), and by June 30 of Y+8'
AS
WITH
    entrants AS (
        SELECT DISTINCT person_key, provider AS segment, academic_year AS entry_year
        FROM enrollment_current
        WHERE provider IN ('ccc', 'csu', 'uc') AND first_time
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
       countIf(a.person_key != ''
               AND a.awarded <= makeDate(e.entry_year + if(e.segment = 'ccc', 3, 6), 6, 30))
           AS within_150,
       countIf(a.person_key != '' AND a.awarded <= makeDate(e.entry_year + 8, 6, 30))
           AS within_8_years
FROM entrants AS e
LEFT JOIN first_award AS a ON e.person_key = a.person_key AND e.segment = a.segment
GROUP BY segment, entry_year;

CREATE VIEW IF NOT EXISTS outcome_earnings
COMMENT 'Postsecondary awards by calendar year of the award and level; breakdowns all, program (2-digit CIP family) and institution (segment:institution id): how many awardees had any wages in the 2nd and the 4th quarter after the award''s quarter; how many had wages in the 20th quarter after (wages_q20); quartiles of quarterly wages (dollars, all employers) in the 4th (1y) and 20th (5y) quarter after, among those with wages then'
AS
WITH
    awards AS (
        SELECT person_key, award_level, toYear(completion_date) AS award_year,
               ifNull(substring(program_cip, 1, 2), 'NOT_REPORTED') AS program_family,
               concat(provider, ':', institution_id) AS institution,
               toYear(completion_date) * 4 + toQuarter(completion_date) - 1 AS q
        FROM completion_current
        WHERE provider IN ('ccc', 'csu', 'uc')
          AND award_level NOT IN ('HS_DIPLOMA', 'HS_CERTIFICATE', 'HS_EQUIVALENCY')
    ),
    paid AS (
        SELECT person_key, toInt64(year) * 4 + quarter - 1 AS q, toFloat64(sum(wages)) AS dollars
        FROM wage_current
        GROUP BY person_key, q
    ),
    after AS (
        SELECT a.award_year AS award_year, a.award_level AS award_level,
               a.program_family AS program_family, a.institution AS institution,
               q2.person_key != '' AS paid_q2,
               q4.person_key != '' AS paid_q4,
               q4.dollars AS dollars_1y,
               q20.person_key != '' AS paid_q20,
               q20.dollars AS dollars_5y
        FROM awards AS a
        LEFT JOIN paid AS q2 ON a.person_key = q2.person_key AND a.q + 2 = q2.q
        LEFT JOIN paid AS q4 ON a.person_key = q4.person_key AND a.q + 4 = q4.q
        LEFT JOIN paid AS q20 ON a.person_key = q20.person_key AND a.q + 20 = q20.q
    )
SELECT award_year,
       award_level,
       cell.1 AS breakdown,
       cell.2 AS group_value,
       count() AS awards,
       countIf(paid_q2) AS wages_q2,
       countIf(paid_q4) AS wages_q4,
       countIf(paid_q20) AS wages_q20,
       if(wages_q4 = 0, NULL, round(quantileExactInclusiveIf(0.25)(dollars_1y, paid_q4), 2)) AS p25_1y,
       if(wages_q4 = 0, NULL, round(quantileExactInclusiveIf(0.5)(dollars_1y, paid_q4), 2)) AS median_1y,
       if(wages_q4 = 0, NULL, round(quantileExactInclusiveIf(0.75)(dollars_1y, paid_q4), 2)) AS p75_1y,
       if(wages_q20 = 0, NULL, round(quantileExactInclusiveIf(0.25)(dollars_5y, paid_q20), 2)) AS p25_5y,
       if(wages_q20 = 0, NULL, round(quantileExactInclusiveIf(0.5)(dollars_5y, paid_q20), 2)) AS median_5y,
       if(wages_q20 = 0, NULL, round(quantileExactInclusiveIf(0.75)(dollars_5y, paid_q20), 2)) AS p75_5y
FROM after
ARRAY JOIN [('all', 'all'), ('program', program_family), ('institution', institution)] AS cell
GROUP BY award_year, award_level, breakdown, group_value;
